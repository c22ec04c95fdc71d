"""Monosemanticity: do a fact's top-attributed units fire on related facts only?

Facts come from the sampler every knowledge task shares (bench/tasks/facts.py: same ids as ΔProb
for the same seed and limit), and every related prompt and negative is a fact the model knows
(its subject and answer passed the task's screen), so a unit is never asked to separate facts
the model recalls from ones it fails on.
For each fact: its top-k units (the ΔProb attribution); their activations at the last
prompt token on related prompts (the same fact through other ParaRel paraphrases, and other
subjects with the same relation and object) and on negatives. By default the negatives are
facts of the same relation with another object, through the related prompts' patterns in
turn, so both sets share their templates: negatives from other relations differ in their
template, and any unit that tracks the template separates them, so they measure relation
selectivity rather than fact selectivity. Per
unit: Cohen's d and AUROC of related versus negatives, with activations taken in the
direction the unit fires on the fact itself (neurons can fire negatively), and a floor on
the pooled SD so that a unit nearly constant on both sets does not reach d in the hundreds.
Cohen's d is heavy-tailed, so the headline is its median. The paper's mixing experiment
(prompt sets with 0-100% related facts) reuses those activations and is drawn as a PNG.
See docs/methods/monosemanticity.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from pydantic import Field
from sklearn.metrics import roc_auc_score

from bench.data.pararel import Fact, load_relation
from bench.engine.context import TaskContext
from bench.engine.taskspec import TaskConfig
from bench.errors import BenchError
from bench.model.attribution import attribute
from bench.model.scoring import encode
from bench.plugin.specs import TaskType
from bench.report.plots import mixing_histograms
from bench.stats import mean_se, median_se
from bench.tasks.facts import (
    BootstrapConfig,
    DataConfig,
    FactAttributionConfig,
    FilterConfig,
    SamplingConfig,
    Section,
    fact_sample,
    ig_baseline,
)
from bench.tasks.monosemanticity.outputs import METRICS, MonosemanticityRecord, item_values


class RelatedConfig(Section):
    max_paraphrases: int = Field(8, ge=0)
    max_same_object: int = Field(8, ge=0)
    min_related: int = Field(2, ge=2, description="facts with fewer related prompts are skipped")


class MixingConfig(Section):
    shares: list[float] = Field([0.0, 0.25, 0.5, 0.75, 1.0], min_length=1)
    prompts: int = Field(40, ge=1, description="prompts per set")


class NegativesConfig(Section):
    source: Literal["same_relation", "other_relations"] = "same_relation"
    count: int = Field(32, ge=2, description="negative prompts per target fact")


class MonosemanticityConfig(TaskConfig):
    type: Literal["monosemanticity"]
    data: DataConfig = DataConfig()
    filter: FilterConfig = FilterConfig()
    sampling: SamplingConfig = SamplingConfig()
    attribution: FactAttributionConfig = FactAttributionConfig()
    top_k: int = Field(5, ge=1)
    related: RelatedConfig = RelatedConfig()
    negatives: NegativesConfig = NegativesConfig()
    sd_floor: float = Field(0.1, ge=0, description="pooled SD >= sd_floor x the unit's RMS activation on these prompts")
    mixing: MixingConfig = MixingConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()


def cohens_d(related: np.ndarray, negatives: np.ndarray, sd_floor: float = 0.0) -> float:
    """Standardized mean difference with the pooled SD, floored at `sd_floor` x the RMS of
    both samples together; 0 when both samples are constant zero."""
    n1, n2 = len(related), len(negatives)
    pooled = ((n1 - 1) * related.var(ddof=1) + (n2 - 1) * negatives.var(ddof=1)) / (n1 + n2 - 2)
    rms = np.sqrt(np.mean(np.r_[related, negatives] ** 2))
    sd = max(np.sqrt(pooled), sd_floor * rms)
    return 0.0 if sd == 0 else float((related.mean() - negatives.mean()) / sd)


def auroc(related: np.ndarray, negatives: np.ndarray) -> float:
    labels = np.r_[np.ones(len(related)), np.zeros(len(negatives))]
    return float(roc_auc_score(labels, np.r_[related, negatives]))


def orient_to_fact(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signs of row 0 (the fact's own prompt) and the other rows multiplied by them.

    Neurons of gated MLPs fire with either sign: a unit "fires" in the direction of its
    activation on the fact itself, so related prompts and negatives are compared along it.
    """
    sign = np.where(acts[0] < 0, -1.0, 1.0)
    return sign, acts[1:] * sign


RelatedKind = Literal["paraphrase", "same_object"]


class PromptSets(NamedTuple):
    """Related prompts and negatives, each with the kind of related prompt whose pattern it
    goes through (None for negatives from other relations, whose templates are their own)."""

    related: list[Fact]
    negatives: list[Fact]
    related_kinds: list[RelatedKind]
    negative_kinds: list[RelatedKind | None]


# Keeps the first `limit` (all when None) of the prompts, in order, that the model knows.
KnownFilter = Callable[[list[Fact], "int | None"], list[Fact]]


def every_prompt(facts: list[Fact], limit: int | None) -> list[Fact]:
    return facts[:limit]


def prompt_sets(
    ctx: TaskContext, config: MonosemanticityConfig, fact: Fact, pool: list[Fact], keep: KnownFilter = every_prompt
) -> PromptSets:
    """``pool``: the known facts other-relation negatives come from; ``keep``: the known-fact filter
    related prompts and same-relation negatives pass through."""
    relation = load_relation(ctx.data_dir, fact.relation)
    paraphrases = keep(relation.paraphrases(fact), config.related.max_paraphrases)
    same_object = keep(relation.same_object(fact), config.related.max_same_object)
    related = paraphrases + same_object
    kinds: list[RelatedKind] = ["paraphrase"] * len(paraphrases) + ["same_object"] * len(same_object)
    rng = random.Random(f"{config.seed}/{fact.id}")
    if config.negatives.source == "other_relations":
        others = [f for f in pool if f.relation != fact.relation]
        negatives = rng.sample(others, min(config.negatives.count, len(others)))
        return PromptSets(related, negatives, kinds, [None] * len(negatives))
    # Each negative goes through the pattern of a related prompt in turn, so the two sets share
    # their templates and differ in the fact only: with negatives all through the fact's own
    # pattern, units tracking the template fire more on them than on the paraphrases.
    if not related:
        return PromptSets([], [], [], [])
    rows = relation.other_objects(fact)
    rows = rng.sample(rows, len(rows))
    turns = [i % len(related) for i in range(len(rows))]
    candidates = [relation.fact(row, relation.pattern_of(related[t])) for row, t in zip(rows, turns, strict=True)]
    turn_of = {id(f): t for f, t in zip(candidates, turns, strict=True)}
    negatives = keep(candidates, config.negatives.count)
    return PromptSets(related, negatives, kinds, [kinds[turn_of[id(f)]] for f in negatives])


def auroc_by_kind(rel: np.ndarray, neg: np.ndarray, sets: PromptSets) -> dict[str, list[float]]:
    """Per unit, AUROC of each kind of related prompt against the negatives through its patterns.

    Paraphrases share the fact's subject and object; same-object prompts its object only. A unit
    that tracks the subject separates paraphrases but not same-object prompts; one that tracks
    the object separates both."""
    out: dict[str, list[float]] = {}
    for kind in ("paraphrase", "same_object"):
        r = [i for i, k in enumerate(sets.related_kinds) if k == kind]
        n = [i for i, k in enumerate(sets.negative_kinds) if k in (kind, None)]
        if r and n:
            out[kind] = [auroc(rel[r, j], neg[n, j]) for j in range(rel.shape[1])]
    return out


def _process(
    ctx: TaskContext,
    config: MonosemanticityConfig,
    fact: Fact,
    pool: list[Fact],
    known_tuples: set[tuple[str, str, str]],
    baseline: torch.Tensor | None,
) -> dict[str, Any]:
    """``known_tuples``: (relation, subject, answer) of every fact the model knows (the task's
    screen); a related prompt or negative is kept only when its fact is one of them."""

    def keep(facts: list[Fact], limit: int | None) -> list[Fact]:
        return [f for f in facts if (f.relation, f.subject, f.answer) in known_tuples][:limit]

    sets = prompt_sets(ctx, config, fact, pool, keep)
    related, negatives = sets.related, sets.negatives
    if len(related) < config.related.min_related:
        return {"id": fact.id, "skipped": f"only {len(related)} related prompts"}
    if len(negatives) < 2:
        return {"id": fact.id, "skipped": f"only {len(negatives)} negative prompts"}
    tok, lens = ctx.loaded.tokenizer, ctx.lens
    method, steps = config.attribution.method, config.attribution.ig_steps
    scores = attribute(
        ctx.loaded,
        lens,
        encode(tok, [fact]),
        method,
        steps,
        ctx.batch_size,
        reuse_clean=ctx.reuse_clean,
        baseline=baseline,
    )
    units = scores[0].topk(config.top_k)
    prompts = encode(tok, [fact, *related, *negatives])
    acts = attribute(ctx.loaded, lens, prompts, "activation", 1, ctx.batch_size)[:, units.indices].numpy()
    sign, acts = orient_to_fact(acts)
    rel, neg = acts[: len(related)], acts[len(related) :]
    return {
        "id": fact.id,
        "relation": fact.relation,
        "units": units.indices.tolist(),
        "signs": sign.tolist(),
        "cohens_d": [cohens_d(rel[:, j], neg[:, j], config.sd_floor) for j in range(config.top_k)],
        "auroc": [auroc(rel[:, j], neg[:, j]) for j in range(config.top_k)],
        "auroc_by_kind": auroc_by_kind(rel, neg, sets),
        "n_related": len(related),
        "n_negatives": len(negatives),
        # the top unit's activations, kept for the mixing experiment (and so a resumed run can redo it)
        "top_unit_related": rel[:, 0].tolist(),
        "top_unit_negatives": neg[:, 0].tolist(),
    }


def _mixing(config: MonosemanticityConfig, rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per share of related prompts: each fact's top-unit activations, scaled by its max |activation|."""
    rng = random.Random(config.seed)
    out: dict[str, list[float]] = {}
    for share in config.mixing.shares:
        n_related = round(share * config.mixing.prompts)
        values = []
        for row in rows:
            rel, neg = row["top_unit_related"], row["top_unit_negatives"]
            scale = max(map(abs, rel + neg)) or 1.0
            chosen = rng.choices(rel, k=n_related) + rng.choices(neg, k=config.mixing.prompts - n_related)
            values.extend(v / scale for v in chosen)
        out[f"{share:g}"] = values
    return out


def _auroc_by_kind_metrics(config: MonosemanticityConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean AUROC of paraphrases and of same-object prompts, each against its own templates' negatives."""
    out = {}
    for kind in ("paraphrase", "same_object"):
        with_kind = [row for row in rows if kind in row["auroc_by_kind"]]
        if with_kind:
            values = [v for row in with_kind for v in row["auroc_by_kind"][kind]]
            relations = [row["relation"] for row in with_kind for _ in row["auroc_by_kind"][kind]]
            out[f"auroc_{kind}"] = mean_se(values, config.bootstrap.resamples, config.seed, relations)
    return out


def _distribution(values: list[float]) -> dict[str, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3)}


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, MonosemanticityConfig)
    known, pool, facts = fact_sample(ctx, config.data, config.filter, config.sampling, config.limit, config.seed)
    known_tuples = {(f.relation, f.subject, f.answer) for f in known}
    baseline = ig_baseline(ctx, config.attribution)
    done = {row["id"]: row for row in ctx.slot.done_items()}
    bar = ctx.progress("facts", len(facts), sum(f.id in done for f in facts))
    for fact in facts:
        if fact.id in done:
            continue
        row = _process(ctx, config, fact, pool, known_tuples, baseline)
        ctx.slot.log_items([row])
        done[fact.id] = row
        bar.update(1)
    bar.close()
    rows = [done[f.id] for f in facts if "skipped" not in done[f.id]]
    if not rows:
        raise BenchError(
            f"none of the {len(facts)} facts had enough related prompts; lower related.min_related "
            "or raise related.max_paraphrases / max_same_object."
        )
    d = [v for row in rows for v in row["cohens_d"]]
    auc = [v for row in rows for v in row["auroc"]]
    relations = [row["relation"] for row in rows for _ in row["cohens_d"]]  # units of one relation are not independent
    resamples = config.bootstrap.resamples
    mixing = _mixing(config, rows)
    plot = mixing_histograms(
        mixing,
        f"{ctx.lens.site}: top-unit activations as related facts are mixed in",
        ctx.slot.path.with_suffix(".mixing.png"),
    )
    return {
        "metrics": {
            "median_d": median_se(d, resamples, config.seed, relations),
            "auroc": mean_se(auc, resamples, config.seed, relations),
            **_auroc_by_kind_metrics(config, rows),
        },
        "distribution": {"cohens_d": _distribution(d), "auroc": _distribution(auc)},
        "skipped_facts": len(facts) - len(rows),
        "artifacts": {"mixing_plot": plot.name},
        "items": [done[f.id] for f in facts],
    }


TASK_TYPE = TaskType(
    name="monosemanticity",
    description="Cohen's d and AUROC of top units' activations on related versus unrelated facts.",
    config_model=MonosemanticityConfig,
    run=run,
    metrics=METRICS,
    record_model=MonosemanticityRecord,
    item_values=item_values,
    family="Knowledge",
    method_page="docs/methods/monosemanticity.md",
)
