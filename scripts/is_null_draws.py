"""Is a residual lens's IS apart from the random-direction null, or two draws of one distribution?

    python scripts/is_null_draws.py --layer 8 --units 40

The interpretability task scores a basis lens's units read centred, (x − μ)·u, and its null's
random directions read through the origin, x·r. A constant offset changes neither a unit's top
windows nor a Pearson correlation, so for the ``random`` lens (itself random directions) the two
should agree. This scores, with the task file's judge, corpus, split and examples, the lens's
first ``--units`` units centred and through the origin (the lens's reading minus its reading of
0, which is x·u for an affine lens), and as many fresh random directions (another seed
than the task's null), and prints each mean ± SE.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from bench.engine.taskspec import load_task
from bench.model.activations import collect
from bench.model.loading import DEFAULT_MODEL, load_model
from bench.paths import data_dir
from bench.plugin.registry import plugins
from bench.tasks.interpretability.task import (
    InterpretabilityConfig,
    corpus_spec,
    random_direction_activations,
    score_unit,
    scoring_corpus,
    unit_activations,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--lens", default="random", help="a lens of the residual stream after the block")
    parser.add_argument("--units", type=int, default=40)
    parser.add_argument("--seed", type=int, default=12345, help="the fresh directions' seed")
    args = parser.parse_args()
    registry = plugins()
    config = load_task(registry, "interpretability").config
    assert isinstance(config, InterpretabilityConfig)
    loaded = load_model(args.model)
    site = f"blocks.{args.layer}.hook_resid_post"
    lens = registry.lenses.get(args.lens).build(loaded, site, {})
    spec = corpus_spec(config)
    acts = collect(loaded, [site], spec, data_dir(None))
    texts, context_len, halves = scoring_corpus(loaded, spec, config.seed)
    judge = registry.judges.get(config.judge.name).build(config.judge.options)

    def scores(columns: np.ndarray) -> list[float]:
        return [
            score_unit(judge, columns[:, j], texts, context_len, halves, config.examples, config.seed + j)["is"]
            for j in range(columns.shape[1])
        ]

    units = list(range(args.units))
    centred = unit_activations(lens, acts, units)
    # an affine lens's reading minus its reading of 0 is x·u: the same directions through the origin
    origin = unit_activations(lens, {site: np.zeros((1, np.shape(acts[site])[1]), dtype=np.float32)}, units)
    uncentred = centred - origin
    fresh = random_direction_activations(acts[site], args.units, args.seed)
    rows = {
        f"{args.lens} units 0–{args.units - 1}, centred": scores(centred),
        f"{args.lens} units 0–{args.units - 1}, through the origin": scores(uncentred),
        f"{args.units} fresh random directions": scores(fresh),
    }
    for name, values in rows.items():
        se = statistics.stdev(values) / len(values) ** 0.5
        print(f"{site} {name}: IS {statistics.fmean(values):.3f} ± {se:.3f}")


if __name__ == "__main__":
    main()
