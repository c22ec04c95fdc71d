"""Teacher-forced answer probabilities p(y | x) for batches of (prompt, answer) pairs.

Multi-token answers: p(y | x) is the product of the answer's token probabilities, each
conditioned on the prompt and the answer tokens before it. Sequences are right-padded, so
every real token keeps its position.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache, PreTrainedTokenizerBase

from bench.data.pararel import Fact
from bench.errors import BenchError
from bench.model.loading import LoadedModel


@dataclass(frozen=True)
class Encoded:
    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]


def encode(tokenizer: PreTrainedTokenizerBase, facts: Sequence[Fact]) -> list[Encoded]:
    """Prompt and answer tokenized apart (the answer with its leading space), so no token straddles both."""
    encoded = []
    for fact in facts:
        prompt = tuple(tokenizer(fact.prompt)["input_ids"])
        answer = tuple(tokenizer(" " + fact.answer, add_special_tokens=False)["input_ids"])
        if not prompt or not answer:
            raise BenchError(
                f"fact {fact.id} tokenizes to an empty prompt or answer: {fact.prompt!r} / {fact.answer!r}"
            )
        encoded.append(Encoded(prompt, answer))
    return encoded


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    last_prompt: torch.Tensor  # [B] position of each row's last prompt token
    rows: torch.Tensor  # [N] for every answer token: its row,
    positions: torch.Tensor  # [N] the position whose logits predict it,
    targets: torch.Tensor  # [N] and the token id.
    # A batch that continues cached clean prefixes (bench.model.prefix) also carries:
    position_ids: torch.Tensor | None = None  # [B, T] each token's position in its whole sequence
    past: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # the prefixes' keys and values per layer
    offsets: torch.Tensor | None = None  # [B] position of column 0 in the whole sequence (None: 0)


def collate(items: Sequence[Encoded], pad_id: int, device: torch.device) -> Batch:
    full = [item.prompt_ids + item.answer_ids[:-1] for item in items]
    width = max(map(len, full))
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    rows, positions, targets = [], [], []
    for b, (item, ids) in enumerate(zip(items, full, strict=True)):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        attention_mask[b, : len(ids)] = 1
        start = len(item.prompt_ids) - 1
        for j, token in enumerate(item.answer_ids):
            rows.append(b)
            positions.append(start + j)
            targets.append(token)
    last_prompt = torch.tensor([len(item.prompt_ids) - 1 for item in items])
    return Batch(
        *(t.to(device) for t in (input_ids, attention_mask, last_prompt)),
        *(torch.tensor(t, device=device) for t in (rows, positions, targets)),
    )


def cache_argument(model: torch.nn.Module, past: list[tuple[torch.Tensor, torch.Tensor]] | None) -> dict[str, Any]:
    """Forward keywords that continue cached keys and values. A fresh cache object per pass: the
    model appends the pass's own keys to it. transformers renamed ``past_key_values`` to ``cache``
    within 5.x; both sides of the rename are supported."""
    if past is None:
        return {}
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {name: DynamicCache(ddp_cache_data=past, config=model.config)}


@dataclass
class Scores:
    log_prob: torch.Tensor  # [B] log p(y | x)
    greedy_correct: torch.Tensor  # [B] bool: every answer token is the argmax (greedy decoding yields y)
    # [B, vocab] log-probabilities of the next token at the last prompt token, when asked for
    next_logp: torch.Tensor | None = None


def score(loaded: LoadedModel, batch: Batch, next_token: bool = False) -> Scores:
    """Forward the batch (under whatever hooks are active) and score each row's answer; with
    ``next_token``, also keep the whole next-token distribution at the last prompt token.

    The LM head runs only at the positions that predict answer tokens (``logits_to_keep``): with a
    49k vocabulary it would otherwise be a fifth of the pass and a [B, T, vocab] tensor."""
    keep = torch.unique(batch.positions)  # sorted
    logits = loaded.model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=batch.past is not None,
        logits_to_keep=keep,
        **cache_argument(loaded.model, batch.past),
    ).logits
    picked = logits[batch.rows, torch.searchsorted(keep, batch.positions)].float()
    token_logp = picked.log_softmax(-1).gather(1, batch.targets[:, None]).squeeze(1)
    n_rows = batch.input_ids.shape[0]
    log_prob = torch.zeros(n_rows, device=token_logp.device).index_add(0, batch.rows, token_logp)
    hit = (picked.argmax(-1) == batch.targets).float()
    misses = torch.zeros(n_rows, device=hit.device).index_add(0, batch.rows, 1 - hit)
    if torch.isnan(log_prob).any():
        raise BenchError("the model produced NaN log-probabilities; try --dtype float32 or check the weights.")
    # rows are listed in order, so each row's first answer token (predicted at its last prompt token) comes first
    first = torch.searchsorted(batch.rows, torch.arange(n_rows, device=batch.rows.device))
    return Scores(log_prob, misses == 0, picked[first].log_softmax(-1) if next_token else None)


def score_items(
    loaded: LoadedModel, items: Sequence[Encoded], batch_size: int, progress: str | None = None
) -> list[tuple[float, bool]]:
    """(p(y|x), greedy correct) for every item on the model as it is now (edits and hooks included);
    with `progress`, a bar of that name counts the batches. Items are batched by length (less
    padding) and returned in their order."""
    order = sorted(range(len(items)), key=lambda i: len(items[i].prompt_ids) + len(items[i].answer_ids))
    out: list[tuple[float, bool]] = [(0.0, False)] * len(items)
    starts = range(0, len(items), batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc=progress, unit="batch") if progress else starts:
            chunk = order[start : start + batch_size]
            scores = score(loaded, collate([items[i] for i in chunk], loaded.tokenizer.pad_token_id, loaded.device))
            for i, p, greedy in zip(chunk, scores.log_prob.exp().tolist(), scores.greedy_correct.tolist(), strict=True):
                out[i] = (p, greedy)
    return out
