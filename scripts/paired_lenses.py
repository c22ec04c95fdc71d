"""Paired difference between two lenses' records over the facts both scored.

    python scripts/paired_lenses.py <record A> <record B> [--metric selectivity_at_kl@0.01]

The leaderboard pairs lenses at one site only; this compares any two records of the same task
and facts (e.g. neurons against the residual SAE at one layer: the KL budget is the same
next-token distribution for both; or two privacy-erasure records of the same targets, one
variant at a time: ``--metric rel.ablate_top_k[top_k=5]``). It prints mean(A − B) with the
95 % interval and p of the bootstrap that resamples whole relations
(bench.stats.paired_difference). Works on full records and on the compact published copies
(their `paired_values`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.plugin.registry import plugins
from bench.report.leaderboard import item_values
from bench.stats import describe_difference, paired_difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--metric", default=None, help="default: the task's ranked metric at its middle budget")
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    records = [json.loads(path.read_text()) for path in (args.a, args.b)]
    task_type = plugins().task_types.get(records[0]["task"]["type"])
    metric = args.metric or task_type.headline_key(records[0]["metrics"])
    values = [item_values(task_type, record, metric) for record in records]
    if any(v is None for v in values):
        raise SystemExit(f"a record has no per-item values of {metric} (a compact copy, or a metric without them)")
    a, b = ({item: value for item, (_, value) in v.items()} for v in values)
    clusters = {item: cluster for v in values for item, (cluster, _) in v.items()}
    result = paired_difference(a, b, clusters, args.resamples, seed=0)
    names = [f"{r['lens']['name']} ({r['lens']['site']}, {r['task']['name']})" for r in records]
    print(f"{metric}: {names[0]} − {names[1]} = {describe_difference(result, args.resamples)}, {result['n']} facts")


if __name__ == "__main__":
    main()
