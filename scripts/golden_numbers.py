"""Rewrite tests/golden/leaderboard_numbers.csv after publishing new records.

tests/test_published_records.py checks that the compact published records still give the numbers
their full records gave. So the golden rows of newly published records are taken from the full
records (the run's output folder, `--full`), and every other row from the published records as
they are. Run it after `bench publish`, before committing:

    python scripts/golden_numbers.py --full bench-results
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.engine.records import load_records
from bench.paths import REPO_ROOT
from bench.plugin.registry import plugins
from bench.report.leaderboard import numbers

GOLDEN = REPO_ROOT / "tests" / "golden" / "leaderboard_numbers.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", type=Path, required=True, help="results folder the new records came from")
    parser.add_argument("--published", type=Path, default=REPO_ROOT / "leaderboard" / "records")
    args = parser.parse_args()
    if not args.full.is_dir():
        parser.error(f"--full {args.full} is not a folder: pass the results folder that bench publish read")
    task_types = plugins().task_types.by_name()
    full = {record["id"]: record for record in load_records(args.full, task_types)}
    published = list(load_records(args.published, task_types))
    records = [full.get(record["id"], record) for record in published]
    table = numbers(records)
    table.to_csv(GOLDEN, index=False, float_format="%.10g")
    replaced = sum(record["id"] in full for record in published)
    print(f"wrote {GOLDEN.relative_to(REPO_ROOT)}: {len(table)} rows, {replaced} records from {args.full}")


if __name__ == "__main__":
    main()
