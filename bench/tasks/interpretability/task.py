"""Interpretability score (IS): can a judge predict a unit's activations from an explanation?

Simulation scoring (Bills et al. 2023), METHODS.md "Interpretability score": for each scored
unit, the corpus's contexts (from the shared cached activation pass) are split once, seeded,
into an explanation half and a held-out half; the explainer sees the unit's top windows from
the first half, and the simulator predicts its top and random windows from the second, at
most one window per context, so no held-out token was ever shown to the explainer and no
two windows overlap; IS = Pearson correlation of predicted and true activations over every
held-out token.
Units scored: a seeded sample of the lens's units, and separately the units attributed to
known facts (the ΔProb attribution). Units that never fire on the corpus have no IS and are
counted, not scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from bench.engine.context import TaskContext
from bench.engine.taskspec import TaskConfig
from bench.errors import BenchError
from bench.model.activations import ActivationSpec, collect, token_ids
from bench.model.attribution import attribute
from bench.model.lens import Lens
from bench.model.scoring import encode
from bench.plugin.specs import TaskType
from bench.stats import mean_se
from bench.tasks.facts import AttributionConfig, BootstrapConfig, DataConfig, FilterConfig, Section, known_facts
from bench.tasks.interpretability.judges import Example, Judge
from bench.tasks.interpretability.outputs import METRICS, InterpretabilityRecord


class JudgeConfig(Section):
    name: str = "embedding"
    options: dict[str, Any] = Field(default_factory=dict)


class CorpusConfig(Section):
    name: Literal["train", "heldout"] = "train"
    context_size: int = Field(128, ge=8)
    max_tokens: int = Field(100_000, ge=100)


class UnitsConfig(Section):
    sample: int = Field(50, ge=0, description="units drawn at random from the lens")
    attributed_facts: int = Field(20, ge=0, description="known facts whose top units are scored too")
    top_k: int = Field(1, ge=1, description="units per fact")


class ExamplesConfig(Section):
    window: int = Field(16, ge=2, description="tokens per window, ending at the activating token")
    explain: int = Field(10, ge=1, description="top-activating windows shown to the explainer")
    heldout_top: int = Field(5, ge=1)
    heldout_random: int = Field(5, ge=1)


class InterpretabilityConfig(TaskConfig):
    type: Literal["interpretability"]
    judge: JudgeConfig = JudgeConfig()
    corpus: CorpusConfig = CorpusConfig()
    units: UnitsConfig = UnitsConfig()
    examples: ExamplesConfig = ExamplesConfig()
    data: DataConfig = DataConfig()
    filter: FilterConfig = FilterConfig()
    attribution: AttributionConfig = AttributionConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()


def unit_activations(lens: Lens, site_acts: dict[str, np.ndarray], units: Sequence[int]) -> np.ndarray:
    """[n_tokens, len(units)] activations of the chosen units over cached site activations."""
    index = torch.tensor(list(units))
    out = []
    n = len(site_acts[lens.site])
    for start in range(0, n, 4096):
        acts = {
            name: torch.from_numpy(np.asarray(a[start : start + 4096], dtype=np.float32))[None]
            for name, a in site_acts.items()
        }
        with torch.no_grad():
            out.append(lens.encode(acts)[0][:, index].numpy())
    return np.concatenate(out)


def _window(row: int, length: int, context_len: int) -> range:
    """Rows of the window ending at `row`, not crossing into the previous context."""
    start = max(row - length + 1, row - row % context_len)
    return range(start, row + 1)


def split_contexts(n_tokens: int, context_len: int, seed: int) -> np.ndarray:
    """Per context of the corpus: True for the explanation half, False for the held-out half."""
    n_contexts = -(-n_tokens // context_len)
    explain = np.zeros(n_contexts, dtype=bool)
    explain[np.random.default_rng(seed).permutation(n_contexts)[: n_contexts // 2]] = True
    return explain


def _peaks(acts: np.ndarray, context_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Per context: the row of the unit's highest activation, and that activation."""
    grid = np.pad(acts, (0, -len(acts) % context_len), constant_values=-np.inf).reshape(-1, context_len)
    return np.arange(len(grid)) * context_len + grid.argmax(1), grid.max(1)


def score_unit(
    judge: Judge,
    acts: np.ndarray,
    texts: Sequence[str],
    context_len: int,
    explain_half: np.ndarray,
    config: ExamplesConfig,
    seed: int,
) -> dict[str, Any]:
    """IS of one unit from its activations over the corpus ([n_tokens]), the token texts and
    the context split (`split_contexts`)."""
    if acts.max() <= 0:
        return {"is": None, "reason": "never active on the corpus"}
    peak_rows, peaks = _peaks(acts, context_len)

    def top_contexts(half: np.ndarray, n: int) -> np.ndarray:
        contexts = np.flatnonzero(half)
        return contexts[np.argsort(-peaks[contexts], kind="stable")[:n]]

    explain_contexts = top_contexts(explain_half, config.explain)
    heldout_contexts = top_contexts(~explain_half, config.heldout_top)
    rng = np.random.default_rng(seed)
    unused = np.setdiff1d(np.flatnonzero(~explain_half), heldout_contexts)
    random_contexts = rng.choice(unused, size=min(config.heldout_random, len(unused)), replace=False)
    # a random token of each random context (the last context may be short)
    random_rows = [
        c * context_len + int(rng.integers(min(context_len, len(acts) - c * context_len))) for c in random_contexts
    ]

    def example(row: int) -> Example:
        rows = _window(int(row), config.window, context_len)
        return Example(tuple(texts[r] for r in rows), tuple(float(acts[r]) for r in rows))

    explanation = judge.explain([example(peak_rows[c]) for c in explain_contexts])
    heldout = [example(peak_rows[c]) for c in heldout_contexts] + [example(r) for r in random_rows]
    predicted = judge.simulate(explanation, [ex.tokens for ex in heldout])
    pred = np.concatenate([np.asarray(p, dtype=float) for p in predicted])
    true = np.concatenate([np.asarray(ex.activations) for ex in heldout])
    if len(pred) != len(true):
        raise BenchError(f"the judge returned {len(pred)} predictions for {len(true)} tokens.")
    score = 0.0 if pred.std() == 0 or true.std() == 0 else float(np.corrcoef(pred, true)[0, 1])
    contexts = {
        "explain": explain_contexts.tolist(),
        "heldout": [*heldout_contexts.tolist(), *random_contexts.tolist()],
    }
    return {"is": score, "explanation": explanation, "contexts": contexts}


def _attributed_units(ctx: TaskContext, config: InterpretabilityConfig) -> list[int]:
    if config.units.attributed_facts == 0:
        return []
    facts = known_facts(ctx, config.data, config.filter, config.units.attributed_facts, config.seed)
    scores = attribute(
        ctx.loaded,
        ctx.lens,
        encode(ctx.loaded.tokenizer, facts),
        config.attribution.method,
        config.attribution.ig_steps,
        ctx.batch_size,
        reuse_clean=ctx.reuse_clean,
    )
    return sorted({int(u) for u in scores.topk(config.units.top_k, dim=1).indices.flatten()})


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, InterpretabilityConfig)
    judge_entry = ctx.plugins.judges.entry(config.judge.name)
    judge = judge_entry.obj.build(config.judge.options)
    lens, loaded = ctx.lens, ctx.loaded
    spec = ActivationSpec(config.corpus.name, config.corpus.context_size, config.corpus.max_tokens)
    site_acts = collect(loaded, [lens.site, *lens.reads], spec, ctx.data_dir)
    ids = token_ids(loaded, spec)
    vocab = {int(i): loaded.tokenizer.decode([int(i)]) for i in np.unique(ids)}
    texts = [vocab[int(i)] for i in ids]
    rng = np.random.default_rng(config.seed)
    sampled = sorted(rng.choice(lens.n_units, size=min(config.units.sample, lens.n_units), replace=False).tolist())
    groups = {"sampled": sampled, "attributed": _attributed_units(ctx, config)}
    units = sorted(set(groups["sampled"]) | set(groups["attributed"]))

    context_len = spec.context_size - 1
    explain_half = split_contexts(len(ids), context_len, config.seed)
    done = {row["id"]: row for row in ctx.slot.done_items()}
    todo = [u for u in units if str(u) not in done]
    bar = ctx.progress("units", len(units), len(units) - len(todo))
    for start in range(0, len(todo), 64):  # one pass over the cached activations per 64 units
        chunk = todo[start : start + 64]
        acts = unit_activations(lens, site_acts, chunk)
        rows = [
            {
                "id": str(u),
                "unit": u,
                **score_unit(judge, acts[:, j], texts, context_len, explain_half, config.examples, config.seed + u),
            }
            for j, u in enumerate(chunk)
        ]
        ctx.slot.log_items(rows)
        done.update((row["id"], row) for row in rows)
        bar.update(len(rows))
    bar.close()

    metrics, inactive = {}, {}
    for group, members in groups.items():
        scores = [done[str(u)]["is"] for u in members if done[str(u)]["is"] is not None]
        inactive[group] = len(members) - len(scores)
        if scores:
            metrics[f"is_{group}"] = mean_se(scores, config.bootstrap.resamples, config.seed)
    if not metrics:
        raise BenchError("no scored unit was ever active on the corpus; raise corpus.max_tokens or units.sample.")
    return {
        "metrics": metrics,
        "judge": {
            "name": judge_entry.name,
            "version": judge_entry.obj.version,
            "source": judge_entry.source,
            **judge.describe(),
        },
        "inactive_units": inactive,
        "units": groups,
        "items": [done[str(u)] for u in units],
    }


TASK_TYPE = TaskType(
    name="interpretability",
    description="IS: correlation of a judge's simulated activations with the unit's true ones.",
    config_model=InterpretabilityConfig,
    run=run,
    metrics=METRICS,
    record_model=InterpretabilityRecord,
    family="Interpretability",
    method_page="docs/methods/interpretability.md",
)
