"""KL divergence of the model's next-token distributions on WikiText-2 text, edited against clean:
how much an edit damages text that has nothing to do with the fact it targeted."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from bench.data.corpus import wikitext_pages
from bench.errors import BenchError
from bench.model.loading import LoadedModel


def wikitext_windows(data_dir: Path | None, tokenizer: PreTrainedTokenizerBase, n: int, length: int) -> torch.Tensor:
    """[n, length] token ids: consecutive windows from the start of WikiText-2's test split."""
    ids: list[int] = []
    for page in wikitext_pages(data_dir, "test"):
        ids.extend(tokenizer(page, add_special_tokens=False)["input_ids"])
        if len(ids) >= n * length:
            return torch.tensor(ids[: n * length]).view(n, length)
    raise BenchError(f"WikiText-2 test has {len(ids)} tokens, fewer than the {n} x {length} the KL control asks for.")


def next_token_logprobs(loaded: LoadedModel, windows: torch.Tensor) -> torch.Tensor:
    """[n, length, vocab] log-probabilities under whatever edits are active."""
    with torch.no_grad():
        logits = loaded.model(input_ids=windows.to(loaded.device)).logits
    return logits.float().log_softmax(-1).cpu()


def mean_kl(clean: torch.Tensor, edited: torch.Tensor) -> float:
    """KL(clean ‖ edited) per token, averaged over every position (nats)."""
    return float((clean.exp() * (clean - edited)).sum(-1).mean())
