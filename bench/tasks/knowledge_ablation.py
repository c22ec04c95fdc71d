"""ΔProb: how much ablating a fact's top-attributed units lowers the probability of its answer.

For each known fact: P = p(y|x); attribute p(y|x) to the lens's units at the last prompt
token; ablate the top-k units (at every position) and rescore, P'; ΔProb = max(0, (P-P')/P).
See METHODS.md, "ΔProb (knowledge ablation)".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import Field

from bench.attribution import attribute
from bench.context import TaskContext
from bench.errors import BenchError
from bench.lens import Lens, lensed
from bench.models import LoadedModel
from bench.pararel import Fact
from bench.scoring import Encoded, collate, encode, score
from bench.stats import mean_se
from bench.tasks.facts import (
    AttributionConfig,
    BootstrapConfig,
    DataConfig,
    FilterConfig,
    Section,
    known_facts,
)
from bench.taskspec import TaskConfig


class SelectionConfig(Section):
    k: list[int] = Field([1, 5, 10], min_length=1)
    threshold: float | None = Field(None, gt=0, le=1, description="also ablate all units >= threshold x max")


class KnowledgeAblationConfig(TaskConfig):
    type: Literal["knowledge_ablation"]
    data: DataConfig = DataConfig()
    filter: FilterConfig = FilterConfig()
    attribution: AttributionConfig = AttributionConfig()
    selection: SelectionConfig = SelectionConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()


def _selections(scores: torch.Tensor, config: SelectionConfig) -> dict[str, torch.Tensor]:
    """Boolean [n_facts, n_units] masks of the units to ablate, by metric suffix."""
    n_units = scores.shape[1]
    out = {}
    for k in config.k:
        if k > n_units:
            raise BenchError(f"selection.k = {k} exceeds the lens's {n_units} units.")
        mask = torch.zeros_like(scores, dtype=torch.bool)
        mask.scatter_(1, scores.topk(k, dim=1).indices, True)
        out[str(k)] = mask
    if config.threshold is not None:
        out[f"thr{config.threshold:g}"] = scores >= config.threshold * scores.max(dim=1, keepdim=True).values
    return out


def _ablated_probs(
    loaded: LoadedModel, lens: Lens, items: Sequence[Encoded], masks: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """p(y|x) with each row's masked units set to 0 at every position."""
    out = []
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            keep = (~masks[start : start + batch_size]).to(loaded.device)
            batch = collate(items[start : start + batch_size], loaded.tokenizer.pad_token_id, loaded.device)
            with lensed(loaded, lens, lambda units, keep=keep: units * keep[:, None, :].to(units.dtype)):
                out.append(score(loaded, batch).log_prob.exp().cpu())
    return torch.cat(out)


def _process(ctx: TaskContext, config: KnowledgeAblationConfig, facts: Sequence[Fact]) -> list[dict[str, Any]]:
    loaded, lens = ctx.loaded, ctx.lens
    items = encode(loaded.tokenizer, facts)
    with torch.no_grad():
        clean = score(loaded, collate(items, loaded.tokenizer.pad_token_id, loaded.device)).log_prob.exp().cpu()
    scores = attribute(loaded, lens, items, config.attribution.method, config.attribution.ig_steps, ctx.batch_size)
    selections = _selections(scores, config.selection)
    names = list(selections)
    # One row per (fact, selection), fact-major, batched together.
    masks = torch.stack([selections[name] for name in names], dim=1).flatten(0, 1)
    ablated = _ablated_probs(loaded, lens, [item for item in items for _ in names], masks, ctx.batch_size)
    ablated = ablated.view(len(facts), len(names))
    top = scores.topk(max(config.selection.k), dim=1)
    rows = []
    for i, fact in enumerate(facts):
        p = float(clean[i])
        rows.append(
            {
                "id": fact.id,
                "relation": fact.relation,
                "prompt": fact.prompt,
                "answer": fact.answer,
                "p_clean": p,
                "top_units": top.indices[i].tolist(),
                "top_scores": top.values[i].tolist(),
                "p_ablated": {name: float(ablated[i, j]) for j, name in enumerate(names)},
                "delta_prob": {name: max(0.0, (p - float(ablated[i, j])) / p) for j, name in enumerate(names)},
                "n_ablated": {name: int(selections[name][i].sum()) for name in names},
            }
        )
    return rows


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, KnowledgeAblationConfig)
    facts = known_facts(ctx, config.data, config.filter, config.limit, config.seed)
    done = {row["id"]: row for row in ctx.slot.done_items()}
    todo = [fact for fact in facts if fact.id not in done]
    # Enough facts per step that the IG rows fill a batch.
    steps = config.attribution.ig_steps if config.attribution.method == "integrated_gradients" else 1
    per_chunk = max(1, ctx.batch_size // steps)
    bar = ctx.progress("facts", len(facts), len(facts) - len(todo))
    for start in range(0, len(todo), per_chunk):
        rows = _process(ctx, config, todo[start : start + per_chunk])
        ctx.slot.log_items(rows)
        done.update((row["id"], row) for row in rows)
        bar.update(len(rows))
    bar.close()
    rows = [done[fact.id] for fact in facts]
    names = list(rows[0]["delta_prob"])
    metrics = {
        f"delta_prob@{name}": mean_se(
            [row["delta_prob"][name] for row in rows], config.bootstrap.resamples, config.seed
        )
        for name in names
    }
    metrics["p_clean"] = mean_se([row["p_clean"] for row in rows], config.bootstrap.resamples, config.seed)
    return {"metrics": metrics, "items": rows}
