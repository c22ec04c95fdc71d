"""IS's metric table and record schema."""

from __future__ import annotations

from typing import Any

from bench.engine.records import Record
from bench.plugin.specs import MetricSpec

METRICS = (
    MetricSpec("is_sampled", "IS (sampled units)", headline=True),
    MetricSpec("is_attributed", "IS (fact units)"),
)


class InterpretabilityRecord(Record):
    judge: dict[str, Any]  # name and version: scores of different judges never share a column
    inactive_units: dict[str, Any]
    units: dict[str, Any]
