"""ΔProb: how much ablating a fact's top-attributed units lowers the probability of its answer,
with the controls that say whether the drop is specific to the fact.

For each known fact: P = p(y|x); attribute p(y|x) to the lens's units at the last prompt
token; ablate the top-k units at the configured positions (default: that token only) and
rescore, P'; ΔProb = max(0, (P-P')/P) (docs/methods/knowledge_ablation.md). Every lens removes
a unit the same way: it is set to its reference value (its mean on WikiText by default,
bench.model.reference), which is also the integrated-gradients baseline. Controls, per fact and k:

- same relation: the same units ablated the same way on known facts of the fact's relation
  with another answer, through the same ParaRel pattern; selectivity = ΔProb - max(ΔProb
  there, ΔProb unrelated), the ranked metric: units that carry the relation, not the fact, score ~0;
- unrelated: the same on N known facts of other relations; specificity = ΔProb - ΔProb there;
- KL last token: KL(clean ‖ ablated) of the next-token distribution at the last token of the
  unrelated prompts, under the very edit that is scored; the side effect the frontier
  (selectivity at a KL budget, frontier.py) is matched on;
- random edit: a random vector with the ablation's norm added at the same positions;
- KL WikiText: the mean per-token KL on WikiText-2 text, the units ablated at every position
  but the first (the cost of the edit made permanent);
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
from pydantic import Field, field_validator

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
from bench.model.reference import AblationValue, UnitReference
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
    fact_sample,
)
from bench.tasks.knowledge_ablation.caveats import budget_caveats
from bench.tasks.knowledge_ablation.frontier import at_budget
from bench.tasks.knowledge_ablation.outputs import METRICS, KnowledgeAblationRecord, item_values
from bench.tasks.knowledge_ablation.plot import frontier_plot


class SelectionConfig(Section):
    k: list[int] = Field([1, 2, 5, 10, 20, 50], min_length=1)
    threshold: float | None = Field(None, gt=0, le=1, description="also ablate all units >= threshold x max")


class AblationConfig(Section):
    positions: Positions = Field("last", description="last prompt token | all_but_first | all (edits the sink)")
    value: AblationValue = Field("mean", description="what a removed unit is set to: mean | zero | resample")
    reference_windows: int = Field(
        16, ge=1, description="WikiText-2 validation windows of 128 tokens for the reference"
    )


class ControlsConfig(Section):
    same_relation: int = Field(10, ge=1, description="known facts of the same relation, another answer, per fact")
    unrelated: int = Field(20, ge=1, description="known facts of other relations ablated the same way, per fact")
    random_edit: bool = True
    kl_windows: int = Field(4, ge=0, description="WikiText-2 windows for the KL control; 0 turns it off")
    kl_window_tokens: int = Field(64, ge=2)


class FrontierConfig(Section):
    kl_budgets: list[float] = Field([0.005, 0.01, 0.02], min_length=1, description="next-token KL budgets (nats)")

    @field_validator("kl_budgets")
    @classmethod
    def _positive(cls, budgets: list[float]) -> list[float]:
        if any(b <= 0 for b in budgets):
            raise ValueError("every KL budget must be positive")
        return budgets


class KnowledgeAblationConfig(TaskConfig):
    type: Literal["knowledge_ablation"]
    data: DataConfig = DataConfig()
    filter: FilterConfig = FilterConfig()
    sampling: SamplingConfig = SamplingConfig()
    attribution: AttributionConfig = AttributionConfig()
    selection: SelectionConfig = SelectionConfig()
    ablation: AblationConfig = AblationConfig()
    controls: ControlsConfig = ControlsConfig()
    frontier: FrontierConfig = FrontierConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()


# Per-item values reported per selection, in the order the leaderboard shows them.
PER_SELECTION = (
    "selectivity",
    "specificity",
    "delta_prob",
    "delta_prob_same_relation",
    "delta_prob_unrelated",
    "delta_prob_random",
    "kl_last",
    "kl",
    "edit_norm",
)


def _selections(scores: torch.Tensor, config: SelectionConfig) -> dict[str, torch.Tensor]:
    """Boolean [n_facts, n_units] masks of the units to ablate, by metric suffix."""
    out = {}
    for k in fitting_ks(config.k, scores.shape[1]):
        mask = torch.zeros_like(scores, dtype=torch.bool)
        mask.scatter_(1, scores.topk(k, dim=1).indices, True)
        out[str(k)] = mask
    if config.threshold is not None:
        out[f"thr{config.threshold:g}"] = scores >= config.threshold * scores.max(dim=1, keepdim=True).values
    return out


def fitting_ks(ks: Sequence[int], n_units: int) -> list[int]:
    """The ks a lens of ``n_units`` units can run: a narrow lens (a tiny model, a small basis) skips
    the larger ks of the sweep rather than failing; the record lists the skipped ones."""
    kept = [k for k in ks if k <= n_units]
    if not kept:
        raise BenchError(f"every selection.k ({list(ks)}) exceeds the lens's {n_units} units; add a smaller k.")
    return kept


def drop(p_clean: float, p_after: float) -> float:
    return max(0.0, (p_clean - p_after) / p_clean)


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


@dataclass
class Ablated:
    prob: torch.Tensor  # [rows] p(y|x) with the units ablated
    random_prob: torch.Tensor | None  # [rows] p(y|x) with a random edit of the same size instead
    edit_norm: torch.Tensor  # [rows] ‖Δh‖/‖h‖ over the edited positions
    kl: torch.Tensor | None  # [rows] KL(clean ‖ ablated) of the next token at the last prompt token


def ablate(
    loaded: LoadedModel,
    lens: Lens,
    items: Sequence[Encoded],
    masks: torch.Tensor,
    where: Positions,
    batch_size: int,
    reference: UnitReference,
    row_seeds: Sequence[int],
    random_edit_too: bool,
    prefixes: CleanPrefixes | None,
    clean_next: torch.Tensor | None = None,
) -> Ablated:
    """Each row's masked units set to their reference value at the positions; with
    ``random_edit_too``, also the matched random edit; with ``clean_next`` [rows, vocab] (clean
    next-token log-probabilities), the KL of each row's edited next-token distribution.
    ``row_seeds`` draw the random directions and resampled values. With ``prefixes`` (positions
    'last' only), each pass starts at the last prompt token."""
    probs, randoms, norms, kls = [], [], [], []
    step = rows_per_pass(batch_size, prefixes)
    with torch.no_grad():
        for start in range(0, len(items), step):
            batch = collate_items(loaded, items[start : start + step], prefixes)
            seeds = row_seeds[start : start + step]
            value = reference.values(seeds)
            with units_ablated_at(
                loaded, lens, masks[start : start + step], batch_positions(batch, where), value
            ) as size:
                scores = score(loaded, batch, next_token=clean_next is not None)
            probs.append(scores.log_prob.exp().cpu())
            if clean_next is not None and scores.next_logp is not None:
                clean = clean_next[start : start + step].to(scores.next_logp.device)
                kls.append((clean.exp() * (clean - scores.next_logp)).sum(-1).cpu())  # term by term (text_kl.py)
            norms.append(size.relative.cpu())
            if random_edit_too:
                with random_edit(loaded, lens.site, size.delta_norm, seeds, batch.offsets):
                    randoms.append(score(loaded, batch).log_prob.exp().cpu())
    return Ablated(
        torch.cat(probs), torch.cat(randoms) if randoms else None, torch.cat(norms), torch.cat(kls) if kls else None
    )


def clean_scores(
    loaded: LoadedModel, items: Sequence[Encoded], batch_size: int, prefixes: CleanPrefixes | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """[len(items)] p(y|x) without any edit, and [len(items), vocab] the next-token log-probabilities
    at each prompt's last token."""
    step = rows_per_pass(batch_size, prefixes)
    probs, nexts = [], []
    with torch.no_grad():
        for start in range(0, len(items), step):
            scores = score(loaded, collate_items(loaded, items[start : start + step], prefixes), next_token=True)
            assert scores.next_logp is not None
            probs.append(scores.log_prob.exp().cpu())
            nexts.append(scores.next_logp.cpu())
    return torch.cat(probs), torch.cat(nexts)


class _Controls:
    """What every chunk of facts shares: the control-fact pool with its clean scores and the clean
    prefixes of its prompts (the target facts are in it), the units' reference values and the clean
    WikiText windows."""

    def __init__(self, ctx: TaskContext, config: KnowledgeAblationConfig, pool: list[Fact]):
        self.config = config
        self.pool = pool
        ablation = config.ablation
        self.reference = UnitReference.measure(
            ctx.loaded, ctx.lens, ablation.value, ctx.data_dir, windows=ablation.reference_windows
        )
        encoded = encode(ctx.loaded.tokenizer, pool)
        reuse = ctx.reuse_clean and ablation.positions == "last"
        self.prefixes = CleanPrefixes(ctx.loaded, encoded, ctx.batch_size) if reuse else None
        clean, self.pool_next = clean_scores(ctx.loaded, encoded, ctx.batch_size, self.prefixes)
        self.pool_clean = {fact.id: p for fact, p in zip(pool, clean.tolist(), strict=True)}
        self.pool_row = {fact.id: i for i, fact in enumerate(pool)}
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

    def same_relation(self, fact: Fact) -> list[Fact]:
        """Known facts of the fact's relation with another answer, through the fact's own pattern:
        what a unit that carries the relation or its template (not the fact) also breaks. A
        partner through another paraphrase would spare template units and flatter them. Empty
        when the sample has none (reported per record)."""
        partners = [
            f
            for f in self.pool
            if f.relation == fact.relation and f.pattern == fact.pattern and f.answer != fact.answer
        ]
        rng = random.Random(_seed(self.config.seed, fact.id, "same_relation"))
        return rng.sample(partners, min(self.config.controls.same_relation, len(partners)))

    def kl(self, ctx: TaskContext, selections: torch.Tensor, seeds: Sequence[int]) -> list[float]:
        """KL on the windows for each selection of units [n_selections, n_units], ablated at every
        position (but the first, unless 'all'); one pass for every selection."""
        assert self.windows is not None
        n, times = len(self.windows), len(selections)
        windows = self.windows.repeat(times, 1)  # selection-major rows
        where = "all" if self.config.ablation.positions == "all" else "all_but_first"
        mask = position_mask(windows, torch.ones_like(windows), None, where)
        value = self.reference.values([seed for seed in seeds for _ in range(n)])
        with (
            self.stream.skipping(times),
            units_ablated_at(ctx.loaded, ctx.lens, selections.repeat_interleave(n, 0), mask, value),
        ):
            edited = next_token_logits(ctx.loaded, windows)
        return [self.clean.mean_kl(edited[i * n : (i + 1) * n]) for i in range(times)]


def _control_drops(
    ctx: TaskContext,
    controls: _Controls,
    facts: Sequence[Fact],
    partners: list[list[Fact]],
    masks: torch.Tensor,
    names: list[str],
    with_kl: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each (fact, selection)'s ablation repeated on the fact's partner facts: the mean ΔProb over
    them [facts, selections] (NaN where a fact has none) and, with ``with_kl``, the mean KL of the
    next token at their last prompt token."""
    config = controls.config
    rows = [(i, j, u) for i in range(len(facts)) for j in range(len(names)) for u in partners[i]]
    drops = torch.full((len(facts), len(names)), float("nan"))
    kls = torch.full((len(facts), len(names)), float("nan")) if with_kl else None
    if not rows:
        return drops, kls
    out = ablate(
        ctx.loaded,
        ctx.lens,
        encode(ctx.loaded.tokenizer, [u for _, _, u in rows]),
        torch.stack([masks[i * len(names) + j] for i, j, _ in rows]),
        config.ablation.positions,
        ctx.batch_size,
        controls.reference,
        [_seed(config.seed, facts[i].id, names[j], u.id) for i, j, u in rows],
        False,
        controls.prefixes,
        controls.pool_next[[controls.pool_row[u.id] for _, _, u in rows]] if with_kl else None,
    )
    sums = torch.zeros(len(facts), len(names))
    kl_sums = torch.zeros(len(facts), len(names))
    for r, (i, j, u) in enumerate(rows):
        sums[i, j] += drop(controls.pool_clean[u.id], float(out.prob[r]))
        if out.kl is not None:
            kl_sums[i, j] += float(out.kl[r])
    counts = torch.tensor([max(1, len(p)) for p in partners], dtype=torch.float32)[:, None]
    has = torch.tensor([bool(p) for p in partners])[:, None]
    drops = torch.where(has, sums / counts, drops)
    if kls is not None:
        kls = torch.where(has, kl_sums / counts, kls)
    return drops, kls


def _frontier(rows: list[dict[str, Any]], budgets: Sequence[float]) -> dict[str, dict[str, Any]]:
    """Each budget's point on the lens's mean (KL, selectivity) path (frontier.py), and each fact's
    value there (its own edits mixed by the same weights), over the facts with a selectivity."""
    kept = [row for row in rows if all(v is not None for v in row["selectivity"].values())]
    ks = sorted((name for name in rows[0]["selectivity"] if name.isdigit()), key=int)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        row["selectivity_at_kl"] = {}
    if not kept or not ks:
        return out
    path = [
        (k, sum(r["kl_last"][k] for r in kept) / len(kept), sum(r["selectivity"][k] for r in kept) / len(kept))
        for k in ks
    ]
    for budget in budgets:
        point = at_budget(path, budget)
        key = f"{budget:g}"
        out[key] = {
            "weights": point.weights,
            "smallest_edit_fits": point.smallest_edit_fits,
            "binding": point.binding,
        }
        for row in kept:
            row["selectivity_at_kl"][key] = sum(w * row["selectivity"][k] for k, w in point.weights.items())
    return out


def _process(
    ctx: TaskContext, config: KnowledgeAblationConfig, facts: Sequence[Fact], controls: _Controls
) -> list[dict[str, Any]]:
    loaded, lens, prefixes = ctx.loaded, ctx.lens, controls.prefixes
    items = encode(loaded.tokenizer, facts)
    # P is rescored here rather than read from the known-facts cache, which may have been filled on
    # another device or batch size: P and P' then differ by the ablation only
    clean, _ = clean_scores(loaded, items, ctx.batch_size, prefixes)
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
        baseline=controls.reference.mean,
    )
    selections = _selections(scores, config.selection)
    names = list(selections)
    # One row per (fact, selection), fact-major, batched together.
    masks = torch.stack([selections[name] for name in names], dim=1).flatten(0, 1)
    seeds = [_seed(config.seed, fact.id, name) for fact in facts for name in names]
    target = ablate(
        loaded,
        lens,
        [item for item in items for _ in names],
        masks,
        config.ablation.positions,
        ctx.batch_size,
        controls.reference,
        seeds,
        config.controls.random_edit,
        prefixes,
    )
    # The same ablations on the control facts, one row per (fact, selection, control fact).
    unrelated = [controls.unrelated(fact) for fact in facts]
    same = [controls.same_relation(fact) for fact in facts]
    unrelated_drop, unrelated_kl = _control_drops(ctx, controls, facts, unrelated, masks, names, with_kl=True)
    same_drop, _ = _control_drops(ctx, controls, facts, same, masks, names, with_kl=False)
    assert unrelated_kl is not None
    top = scores.topk(max(fitting_ks(config.selection.k, scores.shape[1])), dim=1)
    rows = []
    for i, fact in enumerate(facts):
        kl = (
            controls.kl(
                ctx, torch.stack([selections[name][i] for name in names]), seeds[i * len(names) : (i + 1) * len(names)]
            )
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
            "same_relation": [u.id for u in same[i]],
            **{key: {} for key in ("p_ablated", "n_ablated", *PER_SELECTION)},
        }
        for j, name in enumerate(names):
            r = i * len(names) + j
            delta = drop(p, float(target.prob[r]))
            other, partner = float(unrelated_drop[i, j]), float(same_drop[i, j])
            row["p_ablated"][name] = float(target.prob[r])
            row["n_ablated"][name] = int(selections[name][i].sum())
            row["delta_prob"][name] = delta
            row["delta_prob_unrelated"][name] = other
            row["specificity"][name] = delta - other
            row["delta_prob_same_relation"][name] = None if same[i] == [] else partner
            row["selectivity"][name] = None if same[i] == [] else delta - max(other, partner)
            row["kl_last"][name] = float(unrelated_kl[i, j])
            row["edit_norm"][name] = float(target.edit_norm[r])
            if target.random_prob is not None:
                row["delta_prob_random"][name] = drop(p, float(target.random_prob[r]))
            if kl is not None:
                row["kl"][name] = kl[j]
        rows.append(row)
    return rows


def _summaries(rows: list[dict[str, Any]], config: KnowledgeAblationConfig) -> dict[str, Any]:
    """Every per-selection and per-budget value's mean with a relation-clustered bootstrap SE, over
    the facts that have it (selectivity: the facts with a same-relation partner)."""
    resamples, seed = config.bootstrap.resamples, config.seed
    metrics = {}
    for key in (*PER_SELECTION, "selectivity_at_kl"):
        for name in dict.fromkeys(name for row in rows for name in row[key]):
            kept = [row for row in rows if row[key].get(name) is not None]
            if kept:
                metrics[f"{key}@{name}"] = mean_se(
                    [float(row[key][name]) for row in kept], resamples, seed, [row["relation"] for row in kept]
                )
    relations = [row["relation"] for row in rows]
    metrics["p_clean"] = mean_se([row["p_clean"] for row in rows], resamples, seed, relations)
    return metrics


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, KnowledgeAblationConfig)
    _, pool, facts = fact_sample(ctx, config.data, config.filter, config.sampling, config.limit, config.seed)
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
    frontier = _frontier(rows, config.frontier.kl_budgets)
    without_partner = [row["id"] for row in rows if not row["same_relation"]]
    sample = {
        "known_after_sampling": len(pool),
        "used": len(facts),
        "relations": len({row["relation"] for row in rows}),
        # selectivity needs a fact of the same relation with another answer; these have none and
        # count in every metric but selectivity
        "without_same_relation_partner": without_partner,
        "k_skipped_wider_than_lens": [k for k in config.selection.k if k > ctx.lens.n_units],
    }
    return {
        "metrics": _summaries(rows, config),
        "sample": sample,
        "ablation": controls.reference.describe(),
        "frontier": frontier,
        "items": rows,
    }


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
    caveats=budget_caveats,
    plot=frontier_plot,
)
