"""Teacher-forced answer probabilities p(y | x) for batches of (prompt, answer) pairs.

Multi-token answers: p(y | x) is the product of the answer's token probabilities, each
conditioned on the prompt and the answer tokens before it. Sequences are right-padded, so
every real token keeps its position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

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


@dataclass
class Scores:
    log_prob: torch.Tensor  # [B] log p(y | x)
    greedy_correct: torch.Tensor  # [B] bool: every answer token is the argmax (greedy decoding yields y)


def score(loaded: LoadedModel, batch: Batch) -> Scores:
    """Forward the batch (under whatever hooks are active) and score each row's answer."""
    logits = loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    picked = logits[batch.rows, batch.positions].float()  # only the positions that predict answer tokens
    token_logp = picked.log_softmax(-1).gather(1, batch.targets[:, None]).squeeze(1)
    n_rows = batch.input_ids.shape[0]
    log_prob = torch.zeros(n_rows, device=token_logp.device).index_add(0, batch.rows, token_logp)
    hit = (picked.argmax(-1) == batch.targets).float()
    misses = torch.zeros(n_rows, device=hit.device).index_add(0, batch.rows, 1 - hit)
    if torch.isnan(log_prob).any():
        raise BenchError("the model produced NaN log-probabilities; try --dtype float32 or check the weights.")
    return Scores(log_prob, misses == 0)


def score_items(
    loaded: LoadedModel, items: Sequence[Encoded], batch_size: int, progress: str | None = None
) -> list[tuple[float, bool]]:
    """(p(y|x), greedy correct) for every item on the model as it is now (edits and hooks included);
    with `progress`, a bar of that name counts the batches."""
    out: list[tuple[float, bool]] = []
    starts = range(0, len(items), batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc=progress, unit="batch") if progress else starts:
            scores = score(
                loaded, collate(items[start : start + batch_size], loaded.tokenizer.pad_token_id, loaded.device)
            )
            out.extend(zip(scores.log_prob.exp().tolist(), scores.greedy_correct.tolist(), strict=True))
    return out
