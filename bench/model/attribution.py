"""Attribution of p(y|x) (or log p(y|x), every answer token teacher-forced) to a lens's units at
the last prompt token, or at every position that predicts an answer token.

- integrated_gradients: units at the last prompt token moved from a baseline b to their value f
  in ``steps`` steps, b + alpha (f - b) with alpha = 1/m .. m/m (knowledge neurons use b = 0);
  the Riemann sum of the gradients times (f - b). The baseline is the value ablation sets a unit
  to (bench.model.reference), so a unit at its reference value scores 0.
- gradient_x_activation: one backward pass, gradient times (f - b).
- activation: the value itself.

With ``positions="answer"`` the units at every answer-predicting position move together (one
alpha per row), and a unit's score sums its contributions over those positions: a multi-token
answer (a phone number, an e-mail) is carried by its later tokens as much as by its first.

Every (fact, alpha) pair is one row of a batch, so the IG steps of several facts share a
forward and a backward pass (``batch_size`` rows at a time) instead of one pass per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch

from bench.errors import BenchError
from bench.model.lens import Lens, UnitEdit, lensed
from bench.model.loading import LoadedModel
from bench.model.prefix import CleanPrefixes, collate_items, rows_per_pass
from bench.model.scoring import Encoded, score

METHODS = ("integrated_gradients", "gradient_x_activation", "activation")
Positions = Literal["last", "answer"]
Objective = Literal["prob", "log_prob"]


def _scaling_edit(
    rows: torch.Tensor,
    positions: torch.Tensor,
    alphas: torch.Tensor,
    baseline: torch.Tensor,
    out: dict[str, torch.Tensor],
    grad: bool,
) -> UnitEdit:
    """Move the units at (rows[i], positions[i]) to baseline + alpha of the row (value − baseline);
    keep them as a grad leaf [len(rows), n_units]."""

    def edit(units: torch.Tensor) -> torch.Tensor:
        original = units[rows, positions].detach()
        base = baseline.to(original.device, original.dtype)
        scaled = (base + alphas[rows][:, None].to(original.dtype) * (original - base)).requires_grad_(grad)
        out["original"], out["scaled"] = original, scaled
        edited = units.detach().clone()
        edited[rows, positions] = scaled
        return edited

    return edit


def _rows_pass(
    loaded: LoadedModel,
    lens: Lens,
    items: Sequence[Encoded],
    alphas: torch.Tensor,
    grad: bool,
    prefixes: CleanPrefixes | None,
    baseline: torch.Tensor,
    where: Positions,
    objective: Objective,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Original units at the edited positions, d objective / d units there at the given scales,
    and each edited position's row."""
    batch = collate_items(loaded, items, prefixes)
    if where == "last":
        rows, positions = torch.arange(len(items), device=batch.last_prompt.device), batch.last_prompt
    else:
        rows, positions = batch.rows, batch.positions
    out: dict[str, torch.Tensor] = {}
    with (
        torch.set_grad_enabled(grad),
        lensed(loaded, lens, _scaling_edit(rows, positions, alphas, baseline, out, grad)),
    ):
        log_prob = score(loaded, batch).log_prob
        target = log_prob.exp() if objective == "prob" else log_prob
        if grad:
            target.sum().backward()  # rows are independent, so each leaf row gets its own gradient
    gradient = out["scaled"].grad if grad else None
    return out["original"].float(), None if gradient is None else gradient.float(), rows.cpu()


def attribute(
    loaded: LoadedModel,
    lens: Lens,
    items: Sequence[Encoded],
    method: str,
    steps: int,
    batch_size: int,
    on_rows: Callable[[int], None] | None = None,
    prefixes: CleanPrefixes | None = None,
    reuse_clean: bool = True,
    baseline: torch.Tensor | None = None,
    positions: Positions = "last",
    objective: Objective = "prob",
) -> torch.Tensor:
    """Attribution scores [len(items), n_units]. The passes run only the last prompt token and the
    answer after each prompt's cached clean prefix: ``prefixes`` (holding every item's prompt), or,
    for integrated gradients (one pass per step), a cache made here; ``reuse_clean=False`` runs
    whole sequences (the reference path). ``baseline`` [n_units]: the units' absent value (0 if None).
    ``positions``: the last prompt token, or every position predicting an answer token (scores
    summed over them); ``objective``: p(y|x) or log p(y|x)."""
    if method not in METHODS:
        raise BenchError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}.")
    if prefixes is None and reuse_clean and method == "integrated_gradients" and steps > 1:
        prefixes = CleanPrefixes(loaded, items, batch_size)
    alphas = (
        torch.arange(1, steps + 1, dtype=torch.float32) / steps if method == "integrated_gradients" else torch.ones(1)
    )
    plan = [(i, alpha) for i in range(len(items)) for alpha in alphas.tolist()]  # fact-major rows
    base = torch.zeros(lens.n_units) if baseline is None else baseline.float().cpu()
    # per edited position of each item (one per item for "last"): its value and summed gradient
    width = [1 if positions == "last" else len(item.answer_ids) for item in items]
    first = torch.tensor([0, *width]).cumsum(0)
    original = torch.zeros(int(first[-1]), lens.n_units)
    grad_sum = torch.zeros(int(first[-1]), lens.n_units)
    step = rows_per_pass(batch_size, prefixes)
    for start in range(0, len(plan), step):
        chunk = plan[start : start + step]
        index = torch.tensor([i for i, _ in chunk])
        values, grads, rows = _rows_pass(
            loaded,
            lens,
            [items[i] for i in index.tolist()],
            torch.tensor([a for _, a in chunk], device=loaded.device),
            grad=method != "activation",
            prefixes=prefixes,
            baseline=base,
            where=positions,
            objective=objective,
        )
        # the j-th edited position of a batch row belongs to item index[row], slot j of that item
        item_of = index[rows]
        slot = torch.arange(len(rows)) - torch.searchsorted(rows, rows)
        target = first[item_of] + slot
        original[target] = values.cpu()  # every alpha of a fact carries the same original value
        if grads is not None:
            grad_sum.index_add_(0, target, grads.cpu())
        if on_rows:
            on_rows(len(chunk))
    per_position = original if method == "activation" else (original - base) * grad_sum / len(alphas)
    owner = torch.repeat_interleave(torch.arange(len(items)), torch.tensor(width))
    scores = torch.zeros(len(items), lens.n_units).index_add_(0, owner, per_position)
    if not torch.isfinite(scores).all():
        raise BenchError(f"{method} attribution produced NaN or infinite scores; try --dtype float32.")
    return scores
