"""Monosemanticity's metric table and record schema."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bench.engine.records import Record
from bench.plugin.specs import MetricSpec

METRICS = (
    MetricSpec("auroc", "AUROC", headline=True),
    MetricSpec("median_d", "median Cohen's d"),
    # what the units track (the fact's subject or its object), not a better or worse lens
    MetricSpec("auroc_paraphrase", "AUROC paraphrases", higher_is_better=None),
    MetricSpec("auroc_same_object", "AUROC same object", higher_is_better=None),
)


class MonosemanticityRecord(Record):
    distribution: dict[str, Any]
    skipped_facts: int
    artifacts: dict[str, str] = Field(default_factory=dict)  # file names next to the record (the mixing histogram)
