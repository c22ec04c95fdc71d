"""Privacy erasure's metric table and record schema."""

from __future__ import annotations

from typing import Any

from bench.engine.records import Record
from bench.plugin.specs import MetricSpec

METRICS = (
    MetricSpec("rel_at_budget", "Rel at budget", headline=True),
    MetricSpec("loc_at_budget", "Loc at budget"),
    MetricSpec("ppl_ratio_at_budget", "PPL ratio at budget", higher_is_better=False),
    MetricSpec("rel", "Rel"),
    MetricSpec("gen", "Gen"),
    MetricSpec("loc", "Loc"),
    MetricSpec("delta_ppl", "ΔPPL", higher_is_better=False),
    MetricSpec("ppl_ratio", "PPL ratio", higher_is_better=False),
)


class PrivacyErasureRecord(Record):
    budget: dict[str, Any]  # side-effect budget and the variant each method is reported at
    dev: dict[str, Any]  # the dev half's people and metrics, on which the variants were chosen
    methods: dict[str, Any]  # every swept variant: the erasure frontier plot
    methods_skipped: dict[str, str]
    clean_model: dict[str, Any]
    injection: dict[str, Any]
    lens_fit: dict[str, Any]  # which lens weights the edits used: refitted to the injected model, or the base's
    perplexity: dict[str, Any]
    splits: dict[str, Any]


def item_values(record: dict[str, Any], key: str) -> dict[str, tuple[str, float]] | None:
    """Each target's value of a per-target metric under one variant (``rel.feature_edit[top_k=1]``,
    ``gen.<variant>``, ``loc.<variant>``), clustered by relation, over every target that has one:
    both halves, since a fixed variant involves no choice. None for a compact copy and for the
    at-budget metrics, whose variant was chosen on the dev half."""
    metric, _, variant = key.partition(".")
    items = record.get("items")
    if not items or metric not in ("rel", "gen", "loc"):
        return None
    values = {item["id"]: (item["relation"], item["methods"].get(variant, {}).get(metric)) for item in items}
    return {target: (relation, float(value)) for target, (relation, value) in values.items() if value is not None}
