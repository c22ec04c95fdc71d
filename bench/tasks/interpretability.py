"""Interpretability score (IS): can a judge predict a unit's activations from an explanation?

Simulation scoring (Bills et al. 2023), METHODS.md "Interpretability score": for each scored
unit, its top-activating windows over a corpus (from the shared cached activation pass) are
split alternately into explanation examples and held-out ones; random windows are added to
the held-out set; the judge explains from the first and simulates the second;
IS = Pearson correlation of predicted and true activations over every held-out token.
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

from bench.activations import ActivationSpec, collect, token_ids
from bench.attribution import attribute
from bench.context import TaskContext
from bench.errors import BenchError
from bench.judges import Example, Judge
from bench.lens import Lens
from bench.registry import plugins
from bench.scoring import encode
from bench.stats import mean_se
from bench.tasks.facts import AttributionConfig, BootstrapConfig, DataConfig, FilterConfig, Section, known_facts
from bench.taskspec import TaskConfig


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


def score_unit(
    judge: Judge, acts: np.ndarray, texts: Sequence[str], context_len: int, config: ExamplesConfig, seed: int
) -> dict[str, Any]:
    """IS of one unit from its activations over the corpus ([n_tokens]) and the token texts."""
    if acts.max() <= 0:
        return {"is": None, "reason": "never active on the corpus"}
    order = np.argsort(-acts, kind="stable")
    n_top = 2 * max(config.explain, config.heldout_top)
    top = order[:n_top]
    explain_rows, heldout_rows = list(top[0::2][: config.explain]), list(top[1::2][: config.heldout_top])
    rng = np.random.default_rng(seed)
    heldout_rows += list(rng.choice(len(acts), size=config.heldout_random, replace=False))

    def example(row: int) -> Example:
        rows = _window(int(row), config.window, context_len)
        return Example(tuple(texts[r] for r in rows), tuple(float(acts[r]) for r in rows))

    explanation = judge.explain([example(r) for r in explain_rows])
    heldout = [example(r) for r in heldout_rows]
    predicted = judge.simulate(explanation, [ex.tokens for ex in heldout])
    pred = np.concatenate([np.asarray(p, dtype=float) for p in predicted])
    true = np.concatenate([np.asarray(ex.activations) for ex in heldout])
    if len(pred) != len(true):
        raise BenchError(f"the judge returned {len(pred)} predictions for {len(true)} tokens.")
    score = 0.0 if pred.std() == 0 or true.std() == 0 else float(np.corrcoef(pred, true)[0, 1])
    return {"is": score, "explanation": explanation}


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
    )
    return sorted({int(u) for u in scores.topk(config.units.top_k, dim=1).indices.flatten()})


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, InterpretabilityConfig)
    judge_entry = plugins().judges.entry(config.judge.name)
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
                **score_unit(judge, acts[:, j], texts, spec.context_size - 1, config.examples, config.seed + u),
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
