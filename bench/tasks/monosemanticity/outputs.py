"""Monosemanticity's metric table and record schema."""

from __future__ import annotations

from typing import Any

import numpy as np
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


# each metric's per-unit values in an item, and how one fact's units are summarised
_UNIT_VALUES = {
    "auroc": (lambda item: item["auroc"], np.mean),
    "median_d": (lambda item: item["cohens_d"], np.median),
    "auroc_paraphrase": (lambda item: item["auroc_by_kind"].get("paraphrase"), np.mean),
    "auroc_same_object": (lambda item: item["auroc_by_kind"].get("same_object"), np.mean),
}


def item_values(record: dict[str, Any], key: str) -> dict[str, tuple[str, float]] | None:
    """Each fact's value of ``key`` over its top units (mean AUROC, median d), clustered by
    relation: every lens is scored on the same facts, so two lenses pair fact by fact. None for
    a record without its items (a compact published copy) or a key without per-unit values."""
    items = record.get("items")
    if not items or key not in _UNIT_VALUES:
        return None
    values, summary = _UNIT_VALUES[key]
    scored = [item for item in items if "skipped" not in item and values(item)]
    return {item["id"]: (item["relation"], float(summary(values(item)))) for item in scored}
