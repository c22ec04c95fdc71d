"""Is a lens's IS over its sampled units apart from its site's random-direction null?

    python scripts/is_against_null.py <full interpretability record> [...]

The two are different units (the lens's sampled units, the null's random directions), so the
test is unpaired: a two-sided Mann–Whitney U over the per-unit IS of one record (dead units
score 0, as in the task's mean). It prints each mean, the counts and p; correct p for the
number of records compared. Needs full records (per-unit items), not compact published copies.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scipy.stats import mannwhitneyu

from bench.engine.records import record_items
from bench.tasks.interpretability.task import random_direction_id


def lens_and_null(record: dict) -> tuple[list[float], list[float]]:
    by_id = {item["id"]: item["is"] for item in record_items(record)}
    sampled = [by_id[str(unit)] for unit in record["units"]["sampled"]]
    n_null = record["task"]["config"]["units"]["random_directions"]
    return sampled, [by_id[random_direction_id(j)] for j in range(n_null)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", type=Path, nargs="+")
    args = parser.parse_args()
    for path in args.records:
        record = json.loads(path.read_text())
        sampled, null = lens_and_null(record)
        if len(sampled) < 2 or len(null) < 2:
            raise SystemExit(f"{path}: needs at least 2 sampled units and 2 null directions")
        p = mannwhitneyu(sampled, null, alternative="two-sided").pvalue
        print(
            f"{record['lens']['name']} ({record['lens']['site']}): IS {statistics.fmean(sampled):.3f} over "
            f"{len(sampled)} units, null {statistics.fmean(null):.3f} over {len(null)} directions, "
            f"Mann–Whitney p = {p:.2g}"
        )


if __name__ == "__main__":
    main()
