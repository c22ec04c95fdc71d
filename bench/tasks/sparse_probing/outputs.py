"""Sparse probing's metric table and record schema."""

from __future__ import annotations

from typing import Any

from bench.engine.records import Record
from bench.plugin.specs import MetricSpec

METRICS = (
    MetricSpec("f1", "mean F1", headline=True, shown_at="all"),
    MetricSpec("f1_tokens", "F1 UD tokens", shown_at="all"),
    MetricSpec("f1_prompts", "F1 ParaRel relations", shown_at="all"),
    # floor and ceiling at the lens's site: k random orthonormal directions, and a dense probe
    MetricSpec("f1_random_basis", "floor: F1 of a random basis", higher_is_better=None, shown_at="all"),
    MetricSpec("f1_dense", "ceiling: F1 of a dense probe", higher_is_better=None),
)


class SparseProbingRecord(Record):
    curves: dict[str, Any]  # F1 against k per feature: the probing plot
    held_out: dict[str, Any]
