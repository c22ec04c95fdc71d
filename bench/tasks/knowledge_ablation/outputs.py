"""ΔProb's metric table and record schema."""

from __future__ import annotations

from typing import Any

from bench.engine.records import Record
from bench.plugin.specs import MetricSpec

METRICS = (
    MetricSpec("specificity", "specificity (ΔProb − unrelated)", headline=True),  # every k: its plot
    MetricSpec("delta_prob", "ΔProb (raw)", higher_is_better=None),
    MetricSpec("delta_prob_unrelated", "ΔProb unrelated", higher_is_better=None),
    MetricSpec("delta_prob_random", "ΔProb random edit", higher_is_better=None),
    MetricSpec("kl", "KL WikiText", higher_is_better=None),
    MetricSpec("edit_norm", "‖Δh‖/‖h‖", higher_is_better=None),
    MetricSpec("p_clean", "P(answer)", higher_is_better=None, detail=False),
)


class KnowledgeAblationRecord(Record):
    sample: dict[str, Any]  # how the facts were drawn (caps, dropped facts)


def item_values(record: dict[str, Any], key: str) -> dict[str, tuple[str, float]] | None:
    """Each fact's value of ``key`` (``specificity@5``, ``p_clean``), clustered by relation; None
    for a record without its items (a compact published copy)."""
    name, _, k = key.partition("@")
    items = record.get("items")
    if not items:
        return None
    return {item["id"]: (item["relation"], float(item[name][k] if k else item[name])) for item in items}
