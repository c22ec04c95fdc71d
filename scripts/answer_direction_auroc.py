"""Does the answer's own gradient direction pass the monosemanticity test?

The monosemanticity task reads a fact's top units on its related prompts (paraphrases, other
subjects with the same object: every one shares the fact's answer) and on negatives (the same
relation and templates, other answers). A direction that only tracks which answer is coming
separates the two sets without storing anything. This script scores such a direction on the
task's own prompt sets: per fact, g = ∂ log p(answer) / ∂x at the site and the fact's last prompt
token (as scripts/first_order_share.py computes it), read as x·ĝ on every prompt, oriented to the
fact and compared by AUROC, next to random unit directions read the same way (the floor: the
mean over ``--draws`` directions per fact). Means with SEs that resample whole relations.

It also scores the fact's own deviation from the stream's mean, d = x_fact − μ (μ: the task's
IG baseline and ablation reference, WikiText means), read as (x − μ)·d̂. Attributed over a
complete basis centred on μ, a fact's top units are the directions where d and the answer's
gradient are both large, so their reading is close to a similarity to the fact's whole prompt
representation; if d alone separates related prompts from negatives as well as random
directions' attributed units do, that explains their monosemanticity without any unit meaning.

And it asks which part of a unit's selection makes it pass: ``random direction, centred`` reads
random directions as a centred lens's units are read (x − μ, oriented by the fact's own reading
d·r, where ``random direction`` orients by x_fact·r); over one complete random orthonormal basis
(what the ``random`` lens is), ``top 5 by |deviation|`` takes the 5 units where the fact's own
reading |d·u| is largest, with no attribution at all, and ``top 5 by deviation x gradient`` the 5
with the largest (d·u)(g·u), gradient × activation (the task's IG integrates g along the path
from μ; this takes it at the fact).

    python scripts/answer_direction_auroc.py --layer 24 --limit 150 [--patterns-per-relation 1]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.data.pararel import Fact
from bench.engine.context import TaskContext
from bench.engine.taskspec import load_task
from bench.model.attribution import attribute
from bench.model.directions import answer_gradient
from bench.model.lens import SiteCoordinates
from bench.model.loading import load_model
from bench.model.scoring import encode
from bench.model.sites import Site, site_width
from bench.paths import data_dir
from bench.plugin.registry import plugins
from bench.stats import mean_se
from bench.tasks.facts import fact_sample, ig_baseline
from bench.tasks.monosemanticity.task import MonosemanticityConfig, auroc, prompt_sets


def oriented_auroc(states: torch.Tensor, n_related: int, direction: torch.Tensor) -> float:
    """AUROC of related prompts (rows 1..n_related) against negatives (the rest) read along the
    direction, oriented to the fact's own reading (row 0) as the task orients a unit."""
    read = (states @ (direction / direction.norm())).numpy()
    read = read[1:] * (1.0 if read[0] >= 0 else -1.0)
    return auroc(np.asarray(read[:n_related]), np.asarray(read[n_related:]))


def score_facts(ctx: TaskContext, site: str, draws_per_fact: int) -> tuple[dict[str, list[float]], list[str]]:
    """Each direction's AUROC per fact with enough related prompts and negatives, and the facts' relations."""
    loaded, lens, config = ctx.loaded, ctx.lens, ctx.config
    assert isinstance(config, MonosemanticityConfig)
    known, pool, facts = fact_sample(ctx, config.data, config.filter, config.sampling, config.limit, config.seed)
    known_tuples = {(f.relation, f.subject, f.answer) for f in known}
    mean = ig_baseline(ctx, config.attribution)  # μ in the stream's coordinates

    def keep(candidates: list[Fact], limit: int | None) -> list[Fact]:  # the task's known-fact filter
        return [f for f in candidates if (f.relation, f.subject, f.answer) in known_tuples][:limit]

    rng = torch.Generator().manual_seed(0)
    # one complete orthonormal basis for the run, as the random lens has one
    basis = torch.linalg.qr(torch.randn(lens.n_units, lens.n_units, generator=rng))[0].T
    scores: dict[str, list[float]] = {
        "answer gradient": [],
        "random direction": [],
        "random direction, centred": [],
        "deviation from the mean": [],
        "basis, top 5 by |deviation|": [],
        "basis, top 5 by deviation x gradient": [],
    }
    relations = []
    for fact in tqdm(facts, desc="facts"):
        sets = prompt_sets(ctx, config, fact, pool, keep)
        if len(sets.related) < config.related.min_related or len(sets.negatives) < 2:
            continue  # skipped by the task too
        # the site read at each prompt's last token, as the task reads a lens's units
        prompts = encode(loaded.tokenizer, [fact, *sets.related, *sets.negatives])
        states = attribute(loaded, lens, prompts, "activation", 1, ctx.batch_size)
        _, g = answer_gradient(loaded, site, fact)
        n = len(sets.related)
        scores["answer gradient"].append(oriented_auroc(states, n, g))
        draws = [oriented_auroc(states, n, torch.randn(g.shape, generator=rng)) for _ in range(draws_per_fact)]
        scores["random direction"].append(statistics.fmean(draws))
        centred = states - (mean if mean is not None else 0.0)
        draws = [oriented_auroc(centred, n, torch.randn(g.shape, generator=rng)) for _ in range(draws_per_fact)]
        scores["random direction, centred"].append(statistics.fmean(draws))
        scores["deviation from the mean"].append(oriented_auroc(centred, n, centred[0]))
        deviation, gradient = basis @ centred[0], basis @ g
        for name, ranking in (("|deviation|", deviation.abs()), ("deviation x gradient", deviation * gradient)):
            top = [oriented_auroc(centred, n, basis[u]) for u in ranking.topk(5).indices]
            scores[f"basis, top 5 by {name}"].append(statistics.fmean(top))
        relations.append(fact.relation)
    return scores, relations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--layer", type=int, default=24)
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("--draws", type=int, default=20, help="random directions per fact")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--patterns-per-relation", type=int, default=None, help="default: the task file's")
    args = parser.parse_args()
    loaded = load_model(args.model)
    site = f"blocks.{args.layer}.hook_resid_post"
    config = load_task(plugins(), "monosemanticity").config
    assert isinstance(config, MonosemanticityConfig)
    patterns = args.patterns_per_relation or config.data.patterns_per_relation
    data = config.data.model_copy(update={"patterns_per_relation": patterns})
    config = config.model_copy(update={"limit": args.limit, "data": data})
    lens = SiteCoordinates(site, site_width(loaded.model, Site.parse(site)))  # the stream's own coordinates
    with TaskContext.outside_a_run(loaded, lens, config, data_dir(args.data_dir), plugins()) as ctx:
        scores, relations = score_facts(ctx, site, args.draws)
    for name, values in scores.items():
        summary = mean_se(values, 2000, 0, relations)
        print(f"{site} {name}: mean AUROC {summary['mean']:.3f} ± {summary['se']:.3f} over {summary['n']} facts")


if __name__ == "__main__":
    main()
