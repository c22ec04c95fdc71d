"""Privacy erasure: inject generated private facts, erase each with every method that can edit
the lens, and score Rel, Gen, Loc and ΔPPL (docs/methods/privacy_erasure.md).

Stages: generate the people (seeded); check the clean model does not know them; fine-tune
them in (cached, shared by every lens and method); then, per target fact and method,
attribute the fact to the lens's units on the injected model, apply the method's edit,
rescore the injection prompt (Rel), the held-out templates (Gen) and unrelated known facts
(Loc), and for the first few edits measure WikiText-2 perplexity through lm-eval (ΔPPL).
Each edit is undone before the next, so every edit starts from the same injected model.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field

from bench.data.pararel import Fact, load_facts
from bench.engine.context import TaskContext
from bench.engine.taskspec import TaskConfig
from bench.errors import BenchError
from bench.io import file_lock, write_json_atomic
from bench.model.attribution import attribute
from bench.model.lens import Lens, RefitData, Refits
from bench.model.loading import LoadedModel
from bench.model.prefix import CleanPrefixes
from bench.model.reference import UnitReference
from bench.model.scoring import encode, score_items
from bench.model.sites import Site
from bench.paths import cache_dir
from bench.plugin.specs import TaskType
from bench.stats import holm, mean_se, paired_difference
from bench.tasks.facts import BootstrapConfig, Section
from bench.tasks.known_facts import known
from bench.tasks.privacy_erasure.injection import InjectionConfig, inject
from bench.tasks.privacy_erasure.methods import ErasureMethod
from bench.tasks.privacy_erasure.outputs import METRICS, PrivacyErasureRecord, item_values
from bench.tasks.privacy_erasure.people import PrivateFact, generate
from bench.tasks.privacy_erasure.perplexity import word_perplexity, write_task
from bench.tasks.privacy_erasure.plot import frontier_plot
from bench.tasks.privacy_erasure.scores import PromptScore, share_erased, share_kept
from bench.tasks.privacy_erasure.summary import leaderboard_note, run_summary
from bench.tasks.privacy_erasure.targets import choose_targets, split_by_person


class PrivateDataConfig(Section):
    people: int = Field(24, ge=2, description="fictional people; six private facts each")
    injection_templates: int = Field(
        1, ge=1, description="templates of each fact the fine-tuning sees (its own, then the next held-out ones)"
    )
    refine_templates: int = Field(
        0, ge=0, description="held-out templates moved from Gen to attribution (knowledge-neuron refinement)"
    )


@dataclass(frozen=True)
class TemplateSplit:
    """Each target's prompts by role, keyed by the target fact's id. A fact's own template (the
    first injected) is Rel's; the other templates of its relation are injected, used for
    refinement, or held out for Gen, in that order, each in one role only."""

    injected: dict[str, list[Fact]]
    attribution: dict[str, list[Fact]]  # its own template and the refinement templates
    gen: dict[str, list[Fact]]


def template_split(private: Sequence[PrivateFact], data: PrivateDataConfig) -> TemplateSplit:
    extra, refine = data.injection_templates - 1, data.refine_templates
    short = sorted({p.fact.relation for p in private if len(p.heldout) <= extra + refine})
    if short:
        fewest = min(len(p.heldout) + 1 for p in private)
        raise BenchError(
            f"data.injection_templates ({extra + 1}) + data.refine_templates ({refine}) leave no template for Gen "
            f"in {', '.join(short)} (the fewest templates a relation has is {fewest}); lower one of them."
        )
    return TemplateSplit(
        {p.fact.id: [p.fact, *p.heldout[:extra]] for p in private},
        {p.fact.id: [p.fact, *p.heldout[extra : extra + refine]] for p in private},
        {p.fact.id: list(p.heldout[extra + refine :]) for p in private},
    )


class LocalityConfig(Section):
    private: int = Field(20, ge=0, description="other people's injected facts per target")
    pararel: int = Field(20, ge=0, description="ParaRel facts the injected model knows (one fixed sample)")
    pararel_relations: list[str] | None = Field(None, description="ParaRel relation ids; all when null")
    pararel_tuples_per_relation: int = Field(10, ge=1)


class PerplexityConfig(Section):
    split: Literal["test", "valid"] = "test"
    max_tokens: int = Field(4096, ge=16, description="WikiText-2 tokens scored, the same for every method")
    max_length: int = Field(1024, ge=16, description="lm-eval's rolling window")
    edits: int = Field(10, ge=0, description="the first this many edits of each method are scored")


class TargetsConfig(Section):
    """Targets are spread over people and relations; variants are chosen on the dev half of the
    people and reported on the test half (bench/tasks/privacy_erasure/targets.py)."""

    max_per_person: int = Field(3, ge=1, description="targets per person at most")


class BudgetConfig(Section):
    """The side effects an erasure may have: Rel at this budget is the task's headline."""

    min_loc: float = Field(0.9, ge=0, le=1)
    max_ppl_ratio: float = Field(1.05, ge=1)


class ErasureAttributionConfig(Section):
    ig_steps: int = Field(20, ge=1)
    # private answers (phone numbers, e-mails, dates) are several tokens; the later ones carry much of the fact
    positions: Literal["last", "answer"] = Field("answer", description="last prompt token, or every answer position")
    objective: Literal["prob", "log_prob"] = Field("log_prob", description="attribute p(answer) or log p(answer)")
    # From 0, a dense, always-on unit (an SAE feature on at every token) scores high for every fact
    # and gets chosen; from its mean it scores what the fact adds. Activation edits set units to it.
    baseline: Literal["mean", "zero"] = Field(
        "mean", description="IG baseline and ablation value: each unit's WikiText-2 valid mean, or 0 (the papers')"
    )


class LensFitConfig(Section):
    """Which lens the edits use: a fitted lens (SAE, basis, clusters) refitted to the injected
    model, or the one fitted on the base model, which never saw the injected facts."""

    model: Literal["injected", "base"] = "injected"
    tokens: int = Field(50_000, ge=1024, description="corpus tokens of the injected model's activations to refit on")


class PrivacyErasureConfig(TaskConfig):
    type: Literal["privacy_erasure"]
    data: PrivateDataConfig = PrivateDataConfig()
    injection: InjectionConfig = InjectionConfig()
    lens_fit: LensFitConfig = LensFitConfig()
    attribution: ErasureAttributionConfig = ErasureAttributionConfig()
    methods: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"feature_edit": {}, "knowledge_neurons": {}, "depn": {}, "ablate_top_k": {}},
        description="erasure methods and their options (a list of values sweeps that option); "
        "each runs on the lenses it can edit",
    )
    targets: TargetsConfig = TargetsConfig()
    budget: BudgetConfig = BudgetConfig()
    erased_below: float = Field(0.5, gt=0, le=1, description="erased: not greedy and p < this x p before")
    locality: LocalityConfig = LocalityConfig()
    perplexity: PerplexityConfig = PerplexityConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()


def score_facts(loaded: LoadedModel, facts: Sequence[Fact], batch_size: int) -> list[PromptScore]:
    return [PromptScore(p, g) for p, g in score_items(loaded, encode(loaded.tokenizer, facts), batch_size)]


def _variants(name: str, options: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One (label, options) per point of the grid that list-valued options span."""
    swept = {key: value for key, value in options.items() if isinstance(value, list)}
    if not swept:
        return [(name, options)]
    out = []
    for values in itertools.product(*swept.values()):
        chosen = dict(zip(swept, values, strict=True))
        label = f"{name}[{','.join(f'{k}={v}' for k, v in chosen.items())}]"
        out.append((label, options | chosen))
    return out


def _methods(config: PrivacyErasureConfig, ctx: TaskContext) -> tuple[dict[str, ErasureMethod], dict[str, str]]:
    """The configured method variants (by label) that can edit this lens, and why the others cannot."""
    registry = ctx.plugins.erasure_methods
    usable, skipped = {}, {}
    for name, options in config.methods.items():
        for label, chosen in _variants(name, options):
            try:
                method = registry.get(name)(**chosen)
            except ValueError as err:  # pydantic's ValidationError
                raise BenchError(f"erasure method {name!r}: bad options {chosen}: {err}") from err
            reason = method.unsupported(ctx.lens)
            if reason:
                skipped[name] = reason
            else:
                usable[label] = method
    if not usable:
        raise BenchError(
            f"no configured erasure method can edit lens {ctx.lens.site}: "
            + "; ".join(f"{n}: {r}" for n, r in skipped.items())
            + ". Add ablate_top_k (it works on every lens) to methods."
        )
    return usable, skipped


def cached_perplexity(loaded: LoadedModel, task: tuple[str, Any], config: PerplexityConfig, batch: int) -> float:
    """Perplexity of an unedited model, cached by its weights and the lm-eval task."""
    key = hashlib.sha256(json.dumps([loaded.weights_sha256, task[0], config.max_length]).encode()).hexdigest()[:16]
    path = cache_dir() / "perplexity" / f"{key}.json"
    if not path.exists():
        write_json_atomic(path, {"word_perplexity": word_perplexity(loaded, task, config.max_length, batch)})
    return json.loads(path.read_text())["word_perplexity"]


class ErasureSetup:
    """Everything shared by the per-fact edits: the injected model, splits and scores before any edit."""

    def __init__(self, ctx: TaskContext, config: PrivacyErasureConfig):
        self.private = generate(config.data.people, config.seed)
        split = template_split(self.private, config.data)
        facts = [p.fact for p in self.private]
        clean = score_facts(ctx.loaded, facts, ctx.batch_size)
        self.clean = {
            "median_p_answer": statistics.median(s.prob for s in clean),
            "max_p_answer": max(s.prob for s in clean),
            "greedy_correct": sum(s.greedy_correct for s in clean),
        }
        seen = [f for p in self.private for f in split.injected[p.fact.id]]
        injected = inject(ctx.loaded, seen, config.injection, Site.parse(ctx.lens.site).layer, ctx.data_dir)
        self.model, self.injection = injected.loaded, injected.report
        self.lens, self.lens_fit = fitted_lens(ctx, config.lens_fit, self.model, seen, config.seed)
        self._references: dict[tuple[str, str, int, str], torch.Tensor] = {}
        self.attribution_prompts, self.gen_prompts = split.attribution, split.gen
        data = config.locality
        pararel = load_facts(ctx.data_dir, data.pararel_relations, 1, data.pararel_tuples_per_relation, config.seed)
        pararel_known = known(self.model, pararel, True, None, ctx.batch_size)
        self.loc_pararel = random.Random(config.seed).sample(pararel_known, min(data.pararel, len(pararel_known)))
        everything = facts + [f for p in self.private for f in self.gen_prompts[p.fact.id]] + self.loc_pararel
        self.before = dict(
            zip((f.id for f in everything), score_facts(self.model, everything, ctx.batch_size), strict=True)
        )
        self.learnt = [p for p in self.private if self.before[p.fact.id].greedy_correct]

    def reference(self, ctx: TaskContext, attribution: ErasureAttributionConfig, unit_lens: Lens) -> torch.Tensor:
        """A lens's units' reference value on the injected model (measured once per site and lens kind)."""
        key = (unit_lens.site, type(unit_lens).__name__, unit_lens.n_units, attribution.baseline)
        if key not in self._references:
            measured = UnitReference.measure(self.model, unit_lens, attribution.baseline, ctx.data_dir)
            self._references[key] = measured.mean
        return self._references[key]

    def locality_facts(self, target: PrivateFact, config: PrivacyErasureConfig) -> list[Fact]:
        others = [p.fact for p in self.learnt if p.person != target.person]
        rng = random.Random(f"{config.seed}/{target.fact.id}")
        return rng.sample(others, min(config.locality.private, len(others))) + self.loc_pararel


def fitted_lens(
    ctx: TaskContext, fit: LensFitConfig, injected: LoadedModel, facts: Sequence[Fact], seed: int
) -> tuple[Lens, dict[str, Any]]:
    """The lens the edits use, and what the record says of it: refitted to the injected model
    (over its corpus and the injection sentences) when it is a fitted lens and `model: injected`."""
    if fit.model == "base" or not isinstance(ctx.lens, Refits):
        why = "lens_fit.model: base" if fit.model == "base" else "its units are the model's own: nothing to refit"
        return ctx.lens, {"model": fit.model, "refitted": False, "why": why, "lens": ctx.lens.config()}
    texts = tuple(f"{f.prompt} {f.answer}" for f in facts)
    lens = ctx.lens.refit(injected, RefitData(texts, ctx.data_dir, fit.tokens, seed))
    info = {"model": "injected", "refitted": True, "tokens": fit.tokens, "sentences": len(texts)}
    return lens, info | {"lens": lens.config(), "base_lens": ctx.lens.config()}


@dataclass(frozen=True)
class _TargetEdit:
    """What every method's edit of one target is computed from."""

    ctx: TaskContext
    config: PrivacyErasureConfig
    setup: ErasureSetup
    target: PrivateFact
    index: int  # within its half: perplexity is measured on the first `perplexity.edits` edits
    ppl_task: tuple[str, Any]


def _edit_row(job: _TargetEdit, methods: dict[str, ErasureMethod]) -> dict[str, Any]:
    """Every method's edit of one target. Methods that never use the lens's units (the neuron
    baselines) give the same results under every lens at a layer: they are computed once and
    cached, and a second lens's run reads them."""
    shared = {label: m for label, m in methods.items() if not m.uses_lens}
    own = {label: m for label, m in methods.items() if m.uses_lens}
    results = _shared_results(job, shared) if shared else {}
    results |= _results(job, own)
    return {
        "id": job.target.fact.id,
        "relation": job.target.fact.relation,
        "methods": {label: results[label] for label in methods},
    }


def _shared_results(job: _TargetEdit, methods: dict[str, ErasureMethod]) -> dict[str, dict[str, Any]]:
    """`_results` of lens-independent methods, cached by everything they depend on (the injected
    model's weights, the target and its probes, the methods' options and searched sites, and the
    attribution, scoring and perplexity settings); a lock makes a concurrent run wait for them."""
    setup, config, target = job.setup, job.config, job.target
    probe = [setup.attribution_prompts[target.fact.id], setup.gen_prompts[target.fact.id]]
    shared = methods.items()
    identity = [
        setup.model.weights_sha256,
        str(setup.model.dtype),
        [[(f.id, f.prompt, f.answer) for f in facts] for facts in probe],
        [f.id for f in setup.locality_facts(target, config)],
        {label: [m.name, m.model_dump(), [u.site for u in m.searched(setup.model, setup.lens)]] for label, m in shared},
        config.attribution.model_dump(),
        config.erased_below,
        job.index < config.perplexity.edits and [config.perplexity.model_dump(), job.ppl_task[0]],
    ]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]
    path = cache_dir() / "privacy_shared_edits" / f"{key}.json"
    with file_lock(path.with_suffix(".lock")):
        if not path.exists():
            write_json_atomic(path, _results(job, methods))
        return json.loads(path.read_text())


def _results(job: _TargetEdit, methods: dict[str, ErasureMethod]) -> dict[str, dict[str, Any]]:
    """Per method variant: attribute the target over the units it searches, edit, rescore."""
    if not methods:
        return {}
    ctx, config, setup, target = job.ctx, job.config, job.setup, job.target
    model, lens = setup.model, setup.lens
    prompts = encode(model.tokenizer, setup.attribution_prompts[target.fact.id])
    # one clean-prefix cache for every block a method searches (knowledge neurons and DEPN search all)
    prefixes = CleanPrefixes(model, prompts, ctx.batch_size) if ctx.reuse_clean else None
    steps = config.attribution.ig_steps
    # methods that attribute the same way over the same units share the scores
    keys, attributions = {}, {}
    for label, method in methods.items():
        searched = method.searched(model, lens)
        keys[label] = (method.attribution, tuple(unit_lens.site for unit_lens in searched))
        if keys[label] not in attributions:
            # integrated gradients start from the value an edit sets a unit to
            baselines = [setup.reference(ctx, config.attribution, unit_lens) for unit_lens in searched]
            scores = [
                attribute(
                    model,
                    unit_lens,
                    prompts,
                    method.attribution,
                    steps,
                    ctx.batch_size,
                    prefixes=prefixes,
                    reuse_clean=ctx.reuse_clean,
                    baseline=value,
                    positions=config.attribution.positions,
                    objective=config.attribution.objective,
                )
                for unit_lens, value in zip(searched, baselines, strict=True)
            ]
            attributions[keys[label]] = torch.cat(scores, dim=1)
    gen, loc = setup.gen_prompts[target.fact.id], setup.locality_facts(target, config)
    probe = [target.fact, *gen, *loc]
    before = [setup.before[f.id] for f in probe]
    results = {}
    for label, method in methods.items():
        values = [setup.reference(ctx, config.attribution, unit_lens) for unit_lens in method.edited(model, lens)]
        with method.erase(model, lens, attributions[keys[label]], values) as edit:
            after = score_facts(model, probe, ctx.batch_size)
            ppl = None
            if job.index < config.perplexity.edits:
                ppl = word_perplexity(model, job.ppl_task, config.perplexity.max_length, ctx.batch_size)
        results[label] = {
            "rel": share_erased(before[:1], after[:1], config.erased_below),
            "gen": share_erased(before[1 : 1 + len(gen)], after[1 : 1 + len(gen)], config.erased_below),
            "loc": share_kept(before[1 + len(gen) :], after[1 + len(gen) :]),
            "p_before": before[0].prob,
            "p_after": after[0].prob,
            "perplexity": ppl,
            "edit": edit,
        }
    return results


def _summarize(
    config: PrivacyErasureConfig, rows: list[dict[str, Any]], methods: dict[str, ErasureMethod], ppl_before: float
) -> dict[str, dict[str, Any]]:
    """Metrics named `<metric>.<method variant>`: the leaderboard makes one row per variant."""
    resamples, seed = config.bootstrap.resamples, config.seed
    relations = [row["relation"] for row in rows]
    metrics = {}
    for label in methods:
        results = [row["methods"][label] for row in rows]
        for name in ("rel", "gen", "loc"):
            kept = [(r[name], rel) for r, rel in zip(results, relations, strict=True) if r[name] is not None]
            if kept:
                metrics[f"{name}.{label}"] = mean_se([v for v, _ in kept], resamples, seed, [c for _, c in kept])
        ppl = [r["perplexity"] for r in results if r["perplexity"] is not None]
        if ppl:
            metrics[f"delta_ppl.{label}"] = mean_se([p - ppl_before for p in ppl], resamples, seed)
            metrics[f"ppl_ratio.{label}"] = mean_se([p / ppl_before for p in ppl], resamples, seed)
    return metrics


def choose_variants(
    metrics: dict[str, dict[str, Any]], methods: dict[str, ErasureMethod], budget: BudgetConfig
) -> dict[str, str | None]:
    """Per method, its variant with the best mean Rel among those whose mean Loc and PPL ratio
    are within budget (None when none is). Give it the dev half's metrics only."""
    best: dict[str, tuple[float, str] | None] = {m.name: None for m in methods.values()}
    for label, method in methods.items():
        loc, ppl = metrics.get(f"loc.{label}"), metrics.get(f"ppl_ratio.{label}")
        ok = (loc is None or loc["mean"] >= budget.min_loc) and (ppl is None or ppl["mean"] <= budget.max_ppl_ratio)
        rel = metrics.get(f"rel.{label}")
        current = best[method.name]
        if ok and rel is not None and (current is None or rel["mean"] > current[0]):
            best[method.name] = (rel["mean"], label)
    return {name: found[1] if found else None for name, found in best.items()}


def at_budget(metrics: dict[str, dict[str, Any]], chosen: dict[str, str | None]) -> dict[str, dict[str, Any]]:
    """Each method's chosen variant's Rel, Loc and PPL ratio (`<metric>_at_budget.<method>`), from
    the metrics given (the test half's). Rel is 0 where no variant was within budget: erasing
    nothing always is."""
    out: dict[str, dict[str, Any]] = {}
    for name, label in chosen.items():
        if label is None:
            out[f"rel_at_budget.{name}"] = {"mean": 0.0, "se": 0.0, "n": 0}
            continue
        for metric in ("rel", "loc", "ppl_ratio"):
            if f"{metric}.{label}" in metrics:
                out[f"{metric}_at_budget.{name}"] = metrics[f"{metric}.{label}"]
    return out


def paired_at_budget(
    rows: list[dict[str, Any]], chosen: dict[str, str | None], resamples: int, seed: int
) -> list[dict[str, Any]]:
    """Rel of every pair of methods at the budget over the same test targets: mean(A − B) with a
    bootstrap that resamples whole relations, Holm-adjusted over the pairs. A method with no
    variant within budget erases nothing (Rel 0 on every target), as in `at_budget`."""
    clusters = {row["id"]: row["relation"] for row in rows}
    rel = {
        name: {row["id"]: (row["methods"][label]["rel"] if label else 0.0) for row in rows}
        for name, label in chosen.items()
    }
    pairs = [
        {"a": a, "b": b} | paired_difference(rel[a], rel[b], clusters, resamples, seed)
        for a, b in itertools.combinations(chosen, 2)
    ]
    for pair, adjusted in zip(pairs, holm([pair["p"] for pair in pairs]), strict=True):
        pair["p_holm"] = adjusted
    return pairs


def _edits(
    ctx: TaskContext,
    config: PrivacyErasureConfig,
    setup: ErasureSetup,
    halves: dict[str, list[PrivateFact]],
    methods: dict[str, ErasureMethod],
    ppl_task: tuple[str, Any],
) -> dict[str, list[dict[str, Any]]]:
    """Every method's edit of every target, resumed from the rows already logged; per half."""
    done = {row["id"]: row for row in ctx.slot.done_items()}
    total = sum(len(targets) for targets in halves.values())
    bar = ctx.progress("edits", total, sum(t.fact.id in done for ts in halves.values() for t in ts))
    for half, targets in halves.items():
        for index, target in enumerate(targets):  # ΔPPL is measured on the first edits of each half
            if target.fact.id not in done:
                row = _edit_row(_TargetEdit(ctx, config, setup, target, index, ppl_task), methods)
                done[target.fact.id] = row | {"half": half}
                ctx.slot.log_items([done[target.fact.id]])
                bar.update(1)
    bar.close()
    return {half: [done[t.fact.id] for t in targets] for half, targets in halves.items()}


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, PrivacyErasureConfig)
    methods, skipped = _methods(config, ctx)
    setup = ErasureSetup(ctx, config)
    targets = choose_targets(setup.learnt, config.limit, config.targets.max_per_person, config.seed)
    dev, test = split_by_person(targets, config.seed)
    if not dev or not test:
        raise BenchError(
            f"the injected model learnt {len(setup.learnt)} of {len(setup.private)} private facts, from "
            f"{len({t.person for t in targets})} people; choosing variants on one half of the people and "
            "scoring them on the other needs targets from two at least: raise data.people, --limit, "
            "injection.max_epochs or injection.learning_rate."
        )
    ppl_task = write_task(ctx.data_dir, setup.model.tokenizer, config.perplexity.split, config.perplexity.max_tokens)
    ppl_base = cached_perplexity(ctx.loaded, ppl_task, config.perplexity, ctx.batch_size)
    ppl_injected = cached_perplexity(setup.model, ppl_task, config.perplexity, ctx.batch_size)
    rows = _edits(ctx, config, setup, {"dev": dev, "test": test}, methods, ppl_task)
    dev_metrics = _summarize(config, rows["dev"], methods, ppl_injected)
    test_metrics = _summarize(config, rows["test"], methods, ppl_injected)
    chosen = choose_variants(dev_metrics, methods, config.budget)
    return {
        "metrics": at_budget(test_metrics, chosen) | test_metrics,
        "budget": {
            "config": config.budget.model_dump(),
            "chosen": chosen,
            "chosen_on": "dev",
            "reported_on": "test",
            "paired_rel": paired_at_budget(rows["test"], chosen, config.bootstrap.resamples, config.seed),
        },
        "dev": {"people": sorted({t.person for t in dev}), "metrics": dev_metrics},
        "methods": {label: {"options": m.model_dump(), "attribution": m.attribution} for label, m in methods.items()},
        "methods_skipped": skipped,
        "clean_model": setup.clean,
        "injection": setup.injection,
        "lens_fit": setup.lens_fit,
        "perplexity": {
            "base": ppl_base,
            "injected": ppl_injected,
            "injection_ratio": ppl_injected / ppl_base,
            "lm_eval_task": ppl_task[0],
        },
        "splits": {
            "people": config.data.people,
            "facts": len(setup.private),
            "learnt": len(setup.learnt),
            "targets": len(targets),
            "dev_targets": len(dev),
            "test_targets": len(test),
            "people_targeted": len({t.person for t in targets}),
            "locality_pararel": len(setup.loc_pararel),
        },
        "items": rows["dev"] + rows["test"],
    }


TASK_TYPE = TaskType(
    name="privacy_erasure",
    description="Rel / Gen / Loc / ΔPPL of erasing injected private facts by editing a lens's units.",
    config_model=PrivacyErasureConfig,
    run=run,
    metrics=METRICS,
    record_model=PrivacyErasureRecord,
    family="Erasure",
    method_page="docs/methods/privacy_erasure.md",
    plot=frontier_plot,
    run_summary=run_summary,
    table_note=leaderboard_note,
    item_values=item_values,
)
