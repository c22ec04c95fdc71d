"""Sparse probing's metric table and record schema."""

from __future__ import annotations

from typing import Any

from bench.engine.records import Record
from bench.plugin.specs import MetricSpec

METRICS = (
    MetricSpec("f1", "mean F1", headline=True, shown_at="all"),
    MetricSpec("f1_tokens", "F1 UD tokens", shown_at="all"),
    MetricSpec("f1_prompts", "F1 ParaRel relations", shown_at="all"),
)


class SparseProbingRecord(Record):
    curves: dict[str, Any]  # F1 against k per feature: the probing plot
    held_out: dict[str, Any]
