"""A lens's sparse-probe F1 against its site's random-basis floor, paired over the same features.

    python scripts/probe_against_floor.py <full sparse_probing record> [...] [--k 1 16]

Each record holds, per labelled feature, the lens's F1 with its k best units and the F1 of k
directions of a random orthonormal basis of the same site (the floor). Unpaired intervals of the
two means overlap easily with 12 features; pairing by feature removes what the features share
(an easy feature is easy for every basis). Prints mean(lens − floor) with the 95 % interval and
p of the bootstrap over features (bench.stats.paired_difference, each feature its own cluster),
and p Holm-adjusted over every comparison printed. With 12 features the percentile bootstrap is
a little narrow; read p near 0.05 as a tie.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.engine.records import record_items
from bench.stats import describe_difference, holm, paired_difference


def lens_and_floor(record: dict, k: int) -> tuple[dict[str, float], dict[str, float]]:
    lens, floor = {}, {}
    for item in record_items(record):
        if str(k) in item["curve"] and str(k) in item["f1_random_basis"]:
            lens[item["id"]] = item["curve"][str(k)]["f1"]
            floor[item["id"]] = item["f1_random_basis"][str(k)]
    return lens, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", type=Path, nargs="+")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    rows = []
    for path in args.records:
        record = json.loads(path.read_text())
        name = f"{record['lens']['name']} ({record['lens']['site']})"
        for k in args.k:
            lens, floor = lens_and_floor(record, k)
            if not lens:
                raise SystemExit(f"{path}: no feature was probed with k = {k}")
            if lens == floor:  # the random lens is the floor's construction: nothing to test
                print(f"{name} k = {k}: is the floor")
                continue
            rows.append((name, k, paired_difference(lens, floor, {f: f for f in lens}, args.resamples, seed=0)))
    # a bootstrap p of 0 means "below 1/resamples": adjust that bound, not 0
    adjusted = holm([max(result["p"], 1 / args.resamples) for _, _, result in rows])
    for (name, k, result), p_holm in zip(rows, adjusted, strict=True):
        print(
            f"{name} k = {k}: lens − floor {describe_difference(result, args.resamples)}, "
            f"Holm over the {len(rows)} comparisons {p_holm:.2g}, {result['n']} features"
        )


if __name__ == "__main__":
    main()
