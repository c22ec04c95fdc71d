"""The committed leaderboard records: valid under their task's schema, and the numbers they publish
are the ones computed before the records were moved and compacted (tests/golden/leaderboard_numbers.csv)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.engine.records import load_records, record_items
from bench.errors import BenchError
from bench.paths import REPO_ROOT
from bench.plugin.registry import plugins
from bench.report.leaderboard import NUMBER, numbers

PUBLISHED = REPO_ROOT / "leaderboard" / "records"
GOLDEN = Path(__file__).parent / "golden" / "leaderboard_numbers.csv"


@pytest.fixture(scope="module")
def published() -> list[dict]:
    return list(load_records(PUBLISHED, plugins().task_types.by_name()))  # validates each against its schema


def test_published_records_keep_every_number(published) -> None:
    now = numbers(published).fillna("")
    before = pd.read_csv(GOLDEN, keep_default_na=False, dtype={"sae": str, "method": str})
    merged = before.merge(now, on=NUMBER, how="outer", suffixes=("_before", "_now"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"][NUMBER].head().to_string()
    for column in ("mean", "se", "n"):
        assert merged[f"{column}_before"].astype(float).to_numpy() == pytest.approx(
            merged[f"{column}_now"].astype(float).to_numpy(), rel=1e-9, abs=1e-12
        ), column


def test_published_records_name_no_machine_path(published) -> None:
    """Commands, task files and cache paths as another machine would read them (bench publish)."""
    from bench.report.publish import compact

    for record in published:
        text = json.dumps(compact(record))
        assert not re.search(r'"(/root|/home|/work|/tmp)/', text), record["id"]
        assert compact(record) == {k: v for k, v in record.items() if k != "_path"}  # already published so


def test_published_records_are_compact(published) -> None:
    assert published and all("items" not in record for record in published)
    with pytest.raises(BenchError, match="compact published copy"):
        record_items(published[0])  # what the record scripts call: a clear error, not a KeyError
