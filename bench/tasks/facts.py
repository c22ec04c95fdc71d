"""Config sections and fact selection shared by the knowledge tasks (ΔProb, monosemanticity, the
IS fact units): every one draws its facts through `fact_sample`, so the same seed, data, filter,
sampling and limit give the same fact ids in each, and its attribution from the same baseline."""

from __future__ import annotations

from collections import Counter
from typing import Literal, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field

from bench.data.pararel import Fact, load_facts
from bench.engine.context import TaskContext
from bench.errors import BenchError
from bench.model.attribution import METHODS
from bench.model.reference import UnitReference
from bench.tasks.known_facts import known


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Section):
    source: Literal["pararel"] = "pararel"
    relations: list[str] | None = Field(None, description="ParaRel relation ids; all when null")
    patterns_per_relation: int = Field(1, ge=1)
    tuples_per_relation: int = Field(100, ge=1)


class FilterConfig(Section):
    greedy_correct: bool = True
    min_prob: float | None = Field(None, ge=0, le=1)


class AttributionConfig(Section):
    method: Literal[METHODS] = "integrated_gradients"  # type: ignore[valid-type]
    ig_steps: int = Field(20, ge=1)


class FactAttributionConfig(AttributionConfig):
    """Attribution in a task that does not ablate: IG starts from the reference value ΔProb ablates to."""

    baseline: Literal["mean", "zero"] = Field(
        "mean", description="IG from each unit's mean on WikiText-2 validation (ΔProb's default ablation value) or 0"
    )
    reference_windows: int = Field(16, ge=1, description="WikiText-2 validation windows of 128 tokens for the mean")


def ig_baseline(ctx: TaskContext, attribution: FactAttributionConfig) -> torch.Tensor | None:
    """The units' IG baseline [n_units], or None for 0."""
    if attribution.baseline == "zero":
        return None
    reference = UnitReference.measure(ctx.loaded, ctx.lens, "mean", ctx.data_dir, attribution.reference_windows)
    return reference.mean


class SamplingConfig(Section):
    """Which known facts are used: ParaRel is skewed (one relation or one answer can fill a sample),
    and a fact whose answer is in its prompt tests copying, not recall."""

    max_per_relation: int | None = Field(10, ge=1, description="facts per relation; null: no cap")
    max_per_answer: int | None = Field(5, ge=1, description="facts per answer string; null: no cap")
    drop_answer_in_prompt: bool = True


class BootstrapConfig(Section):
    resamples: int = Field(1000, ge=2)


def known_facts(ctx: TaskContext, data: DataConfig, filter: FilterConfig, limit: int | None, seed: int) -> list[Fact]:
    """The first `limit` facts (in seeded order) that the model knows under the filter."""
    candidates = load_facts(ctx.data_dir, data.relations, data.patterns_per_relation, data.tuples_per_relation, seed)
    kept = known(ctx.loaded, candidates, filter.greedy_correct, filter.min_prob, ctx.batch_size, limit)
    if not kept:
        raise BenchError(
            f"the model knows none of the {len(candidates)} candidate facts under the filter {filter}; "
            "loosen filter.min_prob / greedy_correct or add relations."
        )
    return kept


class FactSample(NamedTuple):
    known: list[Fact]  # every fact the screen found known, in seeded order, before the caps
    pool: list[Fact]  # those that pass the sampling caps: where controls are drawn from
    used: list[Fact]  # the pool's first ``limit`` (all when None)


def fact_sample(
    ctx: TaskContext, data: DataConfig, filter: FilterConfig, sampling: SamplingConfig, limit: int | None, seed: int
) -> FactSample:
    known = known_facts(ctx, data, filter, None, seed)
    pool = sampled(known, sampling)
    if not pool:
        raise BenchError("no known fact survives the sampling caps; loosen sampling.max_per_relation / max_per_answer.")
    return FactSample(known, pool, pool[:limit] if limit else pool)


def answer_in_prompt(fact: Fact) -> bool:
    return fact.answer.lower() in fact.prompt.lower()


def tuple_of(fact: Fact) -> str:
    """The T-REx tuple a prompt asks about: its id without the pattern index."""
    return fact.id.rsplit("/", 1)[0]


def sampled(facts: list[Fact], config: SamplingConfig) -> list[Fact]:
    """Facts in their (seeded) order, skipping any past its relation's or answer's cap. The caps
    count tuples: with several patterns per relation (`data.patterns_per_relation`) a paraphrase
    of a tuple already in is kept without counting again, so paraphrases add prompts of the same
    facts (more items, clustered with their relation by the bootstrap), not more of one relation."""
    per_relation: Counter[str] = Counter()
    per_answer: Counter[str] = Counter()
    counted: set[str] = set()
    kept = []
    for fact in facts:
        if config.drop_answer_in_prompt and answer_in_prompt(fact):
            continue
        if tuple_of(fact) not in counted:
            if config.max_per_relation and per_relation[fact.relation] >= config.max_per_relation:
                continue
            if config.max_per_answer and per_answer[fact.answer] >= config.max_per_answer:
                continue
            per_relation[fact.relation] += 1
            per_answer[fact.answer] += 1
            counted.add(tuple_of(fact))
        kept.append(fact)
    return kept
