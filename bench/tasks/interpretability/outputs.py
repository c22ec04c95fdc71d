"""IS's metric table and record schema."""

from __future__ import annotations

from typing import Any

from bench.engine.records import Record
from bench.plugin.specs import MetricSpec

METRICS = (
    MetricSpec("is_sampled", "IS (sampled units)", headline=True),
    MetricSpec("is_attributed", "IS (fact units)"),
    # the nulls every IS is read against: another unit's explanation, and random directions of the site
    MetricSpec("is_shuffled", "IS null: shuffled explanations", higher_is_better=None),
    MetricSpec("is_random_direction", "IS null: random directions", higher_is_better=None),
    MetricSpec("alive_sampled", "alive fraction (sampled units)", higher_is_better=None),
)


class InterpretabilityRecord(Record):
    judge: dict[str, Any]  # name and version: scores of different judges never share a column
    dead_units: dict[str, int]  # per group: units never active on the corpus (scored 0)
    units: dict[str, Any]
    shuffled_null: dict[str, float]  # per sampled unit: IS from another unit's explanation
