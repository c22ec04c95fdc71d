"""Interpretability score (IS): can a judge predict a unit's activations from an explanation?

Simulation scoring (Bills et al. 2023), docs/methods/interpretability.md: the corpus is WikiText-2
test text, which no SAE or basis was fitted on. Its pages are split once, seeded, into an
explanation half and a held-out half (a context that spans pages of both halves is used by
neither), so the simulator is never scored on a page the explainer read from. The explainer sees
the unit's top windows from the first half; the simulator predicts its top and random windows
from the second, at most one window per context; IS = Pearson correlation of predicted and true
activations over every held-out token.
Units scored: a seeded sample of the lens's units, and separately the units attributed to the
facts ΔProb samples (same sampler, same attribution). A unit that never fires on the corpus is
dead: it scores 0 and the alive fraction is reported. Two nulls are printed beside every IS: the
same judge scoring each unit's held-out windows from another unit's explanation (shuffled), and
the same pipeline on random directions of the site (what IS a non-feature gets).
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
from bench.model.loading import LoadedModel
from bench.model.scoring import encode
from bench.plugin.specs import TaskType
from bench.stats import mean_se
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
from bench.tasks.interpretability.judges import Example, Judge
from bench.tasks.interpretability.outputs import METRICS, InterpretabilityRecord


class JudgeConfig(Section):
    name: str = "embedding"
    options: dict[str, Any] = Field(default_factory=dict)


class CorpusConfig(Section):
    # heldout: WikiText-2 test, outside every SAE's and basis's training text (bench/data/corpus.py)
    name: Literal["train", "heldout"] = "heldout"
    context_size: int = Field(128, ge=8)
    max_tokens: int = Field(100_000, ge=100)


class UnitsConfig(Section):
    sample: int = Field(50, ge=0, description="units drawn at random from the lens")
    attributed_facts: int = Field(20, ge=0, description="known facts whose top units are scored too")
    top_k: int = Field(1, ge=1, description="units per fact")
    random_directions: int = Field(20, ge=0, description="random directions of the site scored as a null")


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
    sampling: SamplingConfig = SamplingConfig()
    attribution: FactAttributionConfig = FactAttributionConfig()
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


EXPLAIN, HELDOUT, NEITHER = 1, 0, -1


def split_documents(ids: np.ndarray, eos: int, context_len: int, seed: int) -> np.ndarray:
    """Per context of the corpus: EXPLAIN, HELDOUT, or NEITHER for a context spanning pages of both
    halves. Pages are joined by EOS in the activation pass, so they are told apart by it (a page
    boundary on a dropped first position merges two pages: both then go to one half)."""
    boundary = ids == eos
    page = np.cumsum(boundary) - boundary  # the EOS closing a page belongs to it
    pages = np.unique(page)
    if len(pages) < 2:
        raise BenchError("the IS corpus holds a single page; splitting by page needs two: raise corpus.max_tokens.")
    explain_pages = np.random.default_rng(seed).permutation(pages)[: len(pages) // 2]
    explain = np.isin(page, explain_pages)
    grid = np.pad(explain, (0, -len(explain) % context_len), mode="edge").reshape(-1, context_len)
    return np.where(grid.all(1), EXPLAIN, np.where(~grid.any(1), HELDOUT, NEITHER))


def _peaks(acts: np.ndarray, context_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Per context: the row of the unit's highest activation, and that activation."""
    grid = np.pad(acts, (0, -len(acts) % context_len), constant_values=-np.inf).reshape(-1, context_len)
    return np.arange(len(grid)) * context_len + grid.argmax(1), grid.max(1)


def simulated_is(judge: Judge, explanation: str, heldout: Sequence[Example]) -> float:
    """Pearson correlation of the judge's simulation from ``explanation`` with the true activations."""
    predicted = judge.simulate(explanation, [ex.tokens for ex in heldout])
    pred = np.concatenate([np.asarray(p, dtype=float) for p in predicted])
    true = np.concatenate([np.asarray(ex.activations) for ex in heldout])
    if len(pred) != len(true):
        raise BenchError(f"the judge returned {len(pred)} predictions for {len(true)} tokens.")
    return 0.0 if pred.std() == 0 or true.std() == 0 else float(np.corrcoef(pred, true)[0, 1])


def score_unit(
    judge: Judge,
    acts: np.ndarray,
    texts: Sequence[str],
    context_len: int,
    halves: np.ndarray,
    config: ExamplesConfig,
    seed: int,
) -> dict[str, Any]:
    """IS of one unit from its activations over the corpus ([n_tokens]), the token texts and
    the context split (`split_documents`). A dead unit scores 0: dropping it would reward a lens
    for units that explain nothing."""
    if acts.max() <= 0:
        return {"is": 0.0, "dead": True}
    peak_rows, peaks = _peaks(acts, context_len)

    def top_contexts(half: np.ndarray, n: int) -> np.ndarray:
        contexts = np.flatnonzero(half)
        return contexts[np.argsort(-peaks[contexts], kind="stable")[:n]]

    explain_contexts = top_contexts(halves == EXPLAIN, config.explain)
    heldout_contexts = top_contexts(halves == HELDOUT, config.heldout_top)
    rng = np.random.default_rng(seed)
    unused = np.setdiff1d(np.flatnonzero(halves == HELDOUT), heldout_contexts)
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
    contexts = {
        "explain": explain_contexts.tolist(),
        "heldout": [*heldout_contexts.tolist(), *random_contexts.tolist()],
    }
    return {
        "is": simulated_is(judge, explanation, heldout),
        "explanation": explanation,
        "contexts": contexts,
        # kept for the shuffled null (and so a resumed run can compute it)
        "heldout_windows": [[list(ex.tokens), list(ex.activations)] for ex in heldout],
    }


def shuffled_null(judge: Judge, rows: Sequence[dict[str, Any]], seed: int) -> dict[str, float]:
    """Each alive unit's held-out windows simulated from another alive unit's explanation (a seeded
    cyclic shift along a random order, so no unit keeps its own): the IS an explanation that is not
    about the unit gets from this judge, by unit id."""
    alive = [row for row in rows if not row.get("dead")]
    if len(alive) < 2:
        return {}
    order = np.random.default_rng(seed).permutation(len(alive))
    out = {}
    for i, j in zip(order, np.roll(order, 1), strict=True):
        heldout = [Example(tuple(tokens), tuple(acts)) for tokens, acts in alive[i]["heldout_windows"]]
        out[alive[i]["id"]] = simulated_is(judge, alive[j]["explanation"], heldout)
    return out


def random_direction_activations(site_acts: np.ndarray, n: int, seed: int) -> np.ndarray:
    """[n_tokens, n] activations of the site along n seeded random unit directions."""
    directions = np.random.default_rng(seed).standard_normal((site_acts.shape[1], n)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=0)
    return np.concatenate(
        [np.asarray(site_acts[i : i + 4096], dtype=np.float32) @ directions for i in range(0, len(site_acts), 4096)]
    )


def random_direction_id(j: int) -> str:
    """The record item id of the null's j-th random direction (a unit's id is its index)."""
    return f"random{j}"


def corpus_spec(config: InterpretabilityConfig) -> ActivationSpec:
    return ActivationSpec(config.corpus.name, config.corpus.context_size, config.corpus.max_tokens)


def scoring_corpus(loaded: LoadedModel, spec: ActivationSpec, seed: int) -> tuple[list[str], int, np.ndarray]:
    """The corpus's token texts, its context length (the activation pass drops each context's
    first position) and its explanation/held-out split (`split_documents`)."""
    ids = token_ids(loaded, spec)
    vocab = {int(i): loaded.tokenizer.decode([int(i)]) for i in np.unique(ids)}
    context_len = spec.context_size - 1
    halves = split_documents(ids, loaded.tokenizer.eos_token_id, context_len, seed)
    return [vocab[int(i)] for i in ids], context_len, halves


def _attributed_units(ctx: TaskContext, config: InterpretabilityConfig) -> list[int]:
    if config.units.attributed_facts == 0:
        return []
    # the first facts of ΔProb's sample, attributed as ΔProb attributes them
    sample = fact_sample(ctx, config.data, config.filter, config.sampling, config.units.attributed_facts, config.seed)
    scores = attribute(
        ctx.loaded,
        ctx.lens,
        encode(ctx.loaded.tokenizer, sample.used),
        config.attribution.method,
        config.attribution.ig_steps,
        ctx.batch_size,
        reuse_clean=ctx.reuse_clean,
        baseline=ig_baseline(ctx, config.attribution),
    )
    return sorted({int(u) for u in scores.topk(config.units.top_k, dim=1).indices.flatten()})


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, InterpretabilityConfig)
    judge_entry = ctx.plugins.judges.entry(config.judge.name)
    judge = judge_entry.obj.build(config.judge.options)
    lens, loaded = ctx.lens, ctx.loaded
    spec = corpus_spec(config)
    site_acts = collect(loaded, [lens.site, *lens.reads], spec, ctx.data_dir)
    texts, context_len, halves = scoring_corpus(loaded, spec, config.seed)
    seed = config.seed
    rng = np.random.default_rng(seed)
    sampled = sorted(rng.choice(lens.n_units, size=min(config.units.sample, lens.n_units), replace=False).tolist())
    groups = {"sampled": sampled, "attributed": _attributed_units(ctx, config)}
    units = sorted(set(groups["sampled"]) | set(groups["attributed"]))

    done = {row["id"]: row for row in ctx.slot.done_items()}
    n_random = config.units.random_directions
    todo = [u for u in units if str(u) not in done]
    random_todo = [j for j in range(n_random) if random_direction_id(j) not in done]
    bar = ctx.progress("units", len(units) + n_random, len(units) + n_random - len(todo) - len(random_todo))

    def log(rows: list[dict[str, Any]]) -> None:
        ctx.slot.log_items(rows)
        done.update((row["id"], row) for row in rows)
        bar.update(len(rows))

    def scored_unit(unit_acts: np.ndarray, unit_seed: int) -> dict[str, Any]:
        return score_unit(judge, unit_acts, texts, context_len, halves, config.examples, unit_seed)

    for start in range(0, len(todo), 64):  # one pass over the cached activations per 64 units
        chunk = todo[start : start + 64]
        acts = unit_activations(lens, site_acts, chunk)
        log([{"id": str(u), "unit": u, **scored_unit(acts[:, j], seed + u)} for j, u in enumerate(chunk)])
    if random_todo:
        acts = random_direction_activations(site_acts[lens.site], n_random, seed)
        log([{"id": random_direction_id(j), **scored_unit(acts[:, j], seed + j)} for j in random_todo])
    bar.close()

    scored = {group: [done[str(u)] for u in members] for group, members in groups.items()}
    scored["random_direction"] = [done[random_direction_id(j)] for j in range(n_random)]
    null = shuffled_null(judge, scored["sampled"], seed)
    resamples = config.bootstrap.resamples
    metrics = {
        f"is_{group}": mean_se([row["is"] for row in rows], resamples, seed) for group, rows in scored.items() if rows
    }
    if null:
        metrics["is_shuffled"] = mean_se(list(null.values()), resamples, seed)
    if scored["sampled"]:
        metrics["alive_sampled"] = mean_se([float(not row.get("dead")) for row in scored["sampled"]], resamples, seed)
    if not any(not row.get("dead") for rows in scored.values() for row in rows):
        raise BenchError("no scored unit was ever active on the corpus; raise corpus.max_tokens or units.sample.")
    return {
        "metrics": metrics,
        "judge": {
            "name": judge_entry.name,
            "version": judge_entry.obj.version,
            "source": judge_entry.source,
            **judge.describe(),
        },
        "dead_units": {group: sum(bool(row.get("dead")) for row in rows) for group, rows in scored.items()},
        "units": groups,
        "shuffled_null": null,
        "items": [done[str(u)] for u in units] + scored["random_direction"],
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
