"""ΔProb: how much ablating a fact's top-attributed units lowers the probability of its answer,
with the controls that say whether the drop is specific to the fact.

For each known fact: P = p(y|x); attribute p(y|x) to the lens's units at the last prompt
token; ablate the top-k units at the configured positions (default: that token only) and
rescore, P'; ΔProb = max(0, (P-P')/P) (docs/methods/knowledge_ablation.md). Controls,
per fact and k:

- unrelated: the same units ablated the same way on N known facts of other relations;
  specificity = ΔProb - ΔProb on those. A lens whose ablations break everything scores ~0;
- random edit: a random vector with the ablation's norm added at the same positions;
- KL: the mean per-token KL(clean ‖ ablated) on WikiText-2 text, the units ablated at every
  position but the first;
- edit norm: ‖Δh‖/‖h‖ at the site over the edited positions.

Nothing clean is computed twice (unless ``ctx.reuse_clean`` is off): with edits at the last prompt
token, every pass runs only that token and the answer after the prompt's cached clean prefix
(bench.model.prefix), and the KL passes of all selections run together from the site's block on
(bench.model.clean_stream).

Means carry a bootstrap SE clustered by relation (facts of one relation are not independent).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field

from bench.data.pararel import Fact
from bench.engine.context import TaskContext
from bench.engine.taskspec import TaskConfig
from bench.errors import BenchError
from bench.model.attribution import attribute
from bench.model.clean_stream import CleanStream, first_edited_block
from bench.model.interventions import Positions, batch_positions, position_mask, random_edit, units_ablated_at
from bench.model.lens import Lens
from bench.model.loading import LoadedModel
from bench.model.prefix import CleanPrefixes, collate_items, rows_per_pass
from bench.model.scoring import Encoded, encode, score
from bench.model.text_kl import CleanDistribution, next_token_logits, wikitext_windows
from bench.plugin.specs import TaskType
from bench.stats import mean_se
from bench.tasks.facts import (
    AttributionConfig,
    BootstrapConfig,
    DataConfig,
    FilterConfig,
    SamplingConfig,
    Section,
    known_facts,
    sampled,
)
from bench.tasks.knowledge_ablation.outputs import METRICS, KnowledgeAblationRecord, item_values
from bench.tasks.knowledge_ablation.plot import frontier_plot


class SelectionConfig(Section):
    k: list[int] = Field([1, 5, 10], min_length=1)
    threshold: float | None = Field(None, gt=0, le=1, description="also ablate all units >= threshold x max")


class AblationConfig(Section):
    positions: Positions = Field("last", description="last prompt token | all_but_first | all (edits the sink)")


class ControlsConfig(Section):
    unrelated: int = Field(20, ge=1, description="known facts of other relations ablated the same way, per fact")
    random_edit: bool = True
    kl_windows: int = Field(4, ge=0, description="WikiText-2 windows for the KL control; 0 turns it off")
    kl_window_tokens: int = Field(64, ge=2)


class KnowledgeAblationConfig(TaskConfig):
    type: Literal["knowledge_ablation"]
    data: DataConfig = DataConfig()
    filter: FilterConfig = FilterConfig()
    sampling: SamplingConfig = SamplingConfig()
    attribution: AttributionConfig = AttributionConfig()
    selection: SelectionConfig = SelectionConfig()
    ablation: AblationConfig = AblationConfig()
    controls: ControlsConfig = ControlsConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()


# Per-item values reported per selection, in the order the leaderboard shows them.
PER_SELECTION = ("specificity", "delta_prob", "delta_prob_unrelated", "delta_prob_random", "kl", "edit_norm")


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


def drop(p_clean: float, p_after: float) -> float:
    return max(0.0, (p_clean - p_after) / p_clean)


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


@dataclass
class Ablated:
    prob: torch.Tensor  # [rows] p(y|x) with the units ablated
    random_prob: torch.Tensor | None  # [rows] p(y|x) with a random edit of the same size instead
    edit_norm: torch.Tensor  # [rows] ‖Δh‖/‖h‖ over the edited positions


def ablate(
    loaded: LoadedModel,
    lens: Lens,
    items: Sequence[Encoded],
    masks: torch.Tensor,
    where: Positions,
    batch_size: int,
    random_seeds: Sequence[int] | None,
    prefixes: CleanPrefixes | None,
) -> Ablated:
    """Each row's masked units ablated at the positions; with seeds, also the matched random edit.
    With ``prefixes`` (positions 'last' only), each pass starts at the last prompt token."""
    probs, randoms, norms = [], [], []
    step = rows_per_pass(batch_size, prefixes)
    with torch.no_grad():
        for start in range(0, len(items), step):
            batch = collate_items(loaded, items[start : start + step], prefixes)
            with units_ablated_at(loaded, lens, masks[start : start + step], batch_positions(batch, where)) as size:
                probs.append(score(loaded, batch).log_prob.exp().cpu())
            norms.append(size.relative.cpu())
            if random_seeds is not None:
                seeds = random_seeds[start : start + step]
                with random_edit(loaded, lens.site, size.delta_norm, seeds, batch.offsets):
                    randoms.append(score(loaded, batch).log_prob.exp().cpu())
    return Ablated(torch.cat(probs), torch.cat(randoms) if randoms else None, torch.cat(norms))


def clean_probs(
    loaded: LoadedModel, items: Sequence[Encoded], batch_size: int, prefixes: CleanPrefixes | None
) -> torch.Tensor:
    """[len(items)] p(y|x) without any edit."""
    step = rows_per_pass(batch_size, prefixes)
    with torch.no_grad():
        return torch.cat(
            [
                score(loaded, collate_items(loaded, items[start : start + step], prefixes)).log_prob.exp().cpu()
                for start in range(0, len(items), step)
            ]
        )


class _Controls:
    """What every chunk of facts shares: the unrelated-fact pool, the clean prefixes of its prompts
    (the target facts are in it) and the clean WikiText windows."""

    def __init__(self, ctx: TaskContext, config: KnowledgeAblationConfig, pool: list[Fact]):
        self.config = config
        self.pool = pool
        encoded = encode(ctx.loaded.tokenizer, pool)
        reuse = ctx.reuse_clean and config.ablation.positions == "last"
        self.prefixes = CleanPrefixes(ctx.loaded, encoded, ctx.batch_size) if reuse else None
        clean = clean_probs(ctx.loaded, encoded, ctx.batch_size, self.prefixes).tolist()
        self.pool_clean = {fact.id: p for fact, p in zip(pool, clean, strict=True)}
        controls = config.controls
        self.windows = None
        if controls.kl_windows:
            self.windows = wikitext_windows(
                ctx.data_dir, ctx.loaded.tokenizer, controls.kl_windows, controls.kl_window_tokens
            )
            first = first_edited_block((ctx.lens.site, *ctx.lens.reads)) if ctx.reuse_clean else 0
            self.stream = CleanStream(ctx.loaded, first)
            with self.stream.capturing():  # the clean pass keeps the stream the edited passes start from
                self.clean = CleanDistribution(next_token_logits(ctx.loaded, self.windows))

    def unrelated(self, fact: Fact) -> list[Fact]:
        others = [f for f in self.pool if f.relation != fact.relation]
        if not others:
            raise BenchError(
                f"no known facts outside relation {fact.relation} for the unrelated-fact control; "
                "add relations to data.relations."
            )
        rng = random.Random(_seed(self.config.seed, fact.id))
        return rng.sample(others, min(self.config.controls.unrelated, len(others)))

    def kl(self, ctx: TaskContext, selections: torch.Tensor) -> list[float]:
        """KL on the windows for each selection of units [n_selections, n_units], ablated at every
        position (but the first, unless 'all'); one pass for every selection."""
        assert self.windows is not None
        n, times = len(self.windows), len(selections)
        windows = self.windows.repeat(times, 1)  # selection-major rows
        where = "all" if self.config.ablation.positions == "all" else "all_but_first"
        mask = position_mask(windows, torch.ones_like(windows), None, where)
        with (
            self.stream.skipping(times),
            units_ablated_at(ctx.loaded, ctx.lens, selections.repeat_interleave(n, 0), mask),
        ):
            edited = next_token_logits(ctx.loaded, windows)
        return [self.clean.mean_kl(edited[i * n : (i + 1) * n]) for i in range(times)]


def _process(
    ctx: TaskContext, config: KnowledgeAblationConfig, facts: Sequence[Fact], controls: _Controls
) -> list[dict[str, Any]]:
    loaded, lens, prefixes = ctx.loaded, ctx.lens, controls.prefixes
    items = encode(loaded.tokenizer, facts)
    # P is rescored here rather than read from the known-facts cache, which may have been filled on
    # another device or batch size: P and P' then differ by the ablation only
    clean = clean_probs(loaded, items, ctx.batch_size, prefixes)
    attribution = config.attribution
    scores = attribute(
        loaded,
        lens,
        items,
        attribution.method,
        attribution.ig_steps,
        ctx.batch_size,
        prefixes=prefixes,
        reuse_clean=ctx.reuse_clean,
    )
    selections = _selections(scores, config.selection)
    names = list(selections)
    where = config.ablation.positions
    # One row per (fact, selection), fact-major, batched together.
    masks = torch.stack([selections[name] for name in names], dim=1).flatten(0, 1)
    seeds = [_seed(config.seed, fact.id, name) for fact in facts for name in names]
    target = ablate(
        loaded,
        lens,
        [item for item in items for _ in names],
        masks,
        where,
        ctx.batch_size,
        seeds if config.controls.random_edit else None,
        prefixes,
    )
    # The same ablations on unrelated facts: one row per (fact, selection, unrelated fact).
    unrelated = [controls.unrelated(fact) for fact in facts]
    rows_unrelated = [(i, j, u) for i in range(len(facts)) for j in range(len(names)) for u in unrelated[i]]
    other = ablate(
        loaded,
        lens,
        encode(loaded.tokenizer, [u for _, _, u in rows_unrelated]),
        torch.stack([masks[i * len(names) + j] for i, j, _ in rows_unrelated]),
        where,
        ctx.batch_size,
        None,
        prefixes,
    )
    unrelated_drop = torch.zeros(len(facts), len(names))
    for (i, j, u), p in zip(rows_unrelated, other.prob.tolist(), strict=True):
        unrelated_drop[i, j] += drop(controls.pool_clean[u.id], p) / len(unrelated[i])
    top = scores.topk(max(config.selection.k), dim=1)
    rows = []
    for i, fact in enumerate(facts):
        kl = (
            controls.kl(ctx, torch.stack([selections[name][i] for name in names]))
            if controls.windows is not None
            else None
        )
        p = float(clean[i])
        row: dict[str, Any] = {
            "id": fact.id,
            "relation": fact.relation,
            "prompt": fact.prompt,
            "answer": fact.answer,
            "p_clean": p,
            "top_units": top.indices[i].tolist(),
            "top_scores": top.values[i].tolist(),
            "unrelated": [u.id for u in unrelated[i]],
            **{key: {} for key in ("p_ablated", "n_ablated", *PER_SELECTION)},
        }
        for j, name in enumerate(names):
            r = i * len(names) + j
            row["p_ablated"][name] = float(target.prob[r])
            row["n_ablated"][name] = int(selections[name][i].sum())
            row["delta_prob"][name] = drop(p, float(target.prob[r]))
            row["delta_prob_unrelated"][name] = float(unrelated_drop[i, j])
            row["specificity"][name] = row["delta_prob"][name] - row["delta_prob_unrelated"][name]
            row["edit_norm"][name] = float(target.edit_norm[r])
            if target.random_prob is not None:
                row["delta_prob_random"][name] = drop(p, float(target.random_prob[r]))
            if kl is not None:
                row["kl"][name] = kl[j]
        rows.append(row)
    return rows


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, KnowledgeAblationConfig)
    pool = sampled(known_facts(ctx, config.data, config.filter, None, config.seed), config.sampling)
    if not pool:
        raise BenchError("no known fact survives the sampling caps; loosen sampling.max_per_relation / max_per_answer.")
    facts = pool[: config.limit] if config.limit else pool
    controls = _Controls(ctx, config, pool)
    done = {row["id"]: row for row in ctx.slot.done_items()}
    todo = [fact for fact in facts if fact.id not in done]
    # Enough facts per step that the IG rows fill a batch.
    steps = config.attribution.ig_steps if config.attribution.method == "integrated_gradients" else 1
    per_chunk = max(1, ctx.batch_size // steps)
    bar = ctx.progress("facts", len(facts), len(facts) - len(todo))
    for start in range(0, len(todo), per_chunk):
        rows = _process(ctx, config, todo[start : start + per_chunk], controls)
        ctx.slot.log_items(rows)
        done.update((row["id"], row) for row in rows)
        bar.update(len(rows))
    bar.close()
    rows = [done[fact.id] for fact in facts]
    relations = [row["relation"] for row in rows]
    resamples, seed = config.bootstrap.resamples, config.seed
    metrics = {
        f"{key}@{name}": mean_se([row[key][name] for row in rows], resamples, seed, relations)
        for key in PER_SELECTION
        for name in rows[0][key]
    }
    metrics["p_clean"] = mean_se([row["p_clean"] for row in rows], resamples, seed, relations)
    sample = {"known_after_sampling": len(pool), "used": len(facts), "relations": len(set(relations))}
    return {"metrics": metrics, "sample": sample, "items": rows}


TASK_TYPE = TaskType(
    name="knowledge_ablation",
    description="ΔProb: drop in p(answer) when a fact's top-k attributed units are ablated.",
    config_model=KnowledgeAblationConfig,
    run=run,
    metrics=METRICS,
    record_model=KnowledgeAblationRecord,
    family="Knowledge",
    method_page="docs/methods/knowledge_ablation.md",
    item_values=item_values,
    plot=frontier_plot,
)
