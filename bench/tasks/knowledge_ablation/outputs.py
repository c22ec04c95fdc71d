"""ΔProb's metric table and record schema."""

from __future__ import annotations

from typing import Any

from bench.engine.records import Record
from bench.plugin.specs import MetricSpec

METRICS = (
    # ranked: selectivity at a next-token KL budget on the lens's frontier of k (frontier.py)
    MetricSpec("selectivity_at_kl", "selectivity at KL budget", headline=True, shown_at="all"),
    MetricSpec("selectivity", "selectivity (ΔProb − max(same relation, unrelated))"),  # every k: its plot
    MetricSpec("specificity", "specificity (ΔProb − unrelated)"),
    MetricSpec("delta_prob", "ΔProb (raw)", higher_is_better=None),
    MetricSpec("delta_prob_same_relation", "ΔProb same relation", higher_is_better=None),
    MetricSpec("delta_prob_unrelated", "ΔProb unrelated", higher_is_better=None),
    MetricSpec("delta_prob_random", "ΔProb random edit", higher_is_better=None),
    MetricSpec("kl_last", "KL next token (scored edit)", higher_is_better=None),
    MetricSpec("kl", "KL WikiText (all positions)", higher_is_better=None),
    MetricSpec("edit_norm", "‖Δh‖/‖h‖", higher_is_better=None),
    MetricSpec("p_clean", "P(answer)", higher_is_better=None, detail=False),
)


class KnowledgeAblationRecord(Record):
    sample: dict[str, Any]  # how the facts were drawn (caps, dropped facts, facts without a same-relation partner)
    ablation: dict[str, Any]  # the rule a removed unit follows and the reference it was measured on
    frontier: dict[str, Any]  # per KL budget: the weights on each k that reach it, and whether k = min fits


def item_values(record: dict[str, Any], key: str) -> dict[str, tuple[str, float]] | None:
    """Each fact's value of ``key`` (``selectivity_at_kl@0.05``, ``specificity@5``, ``p_clean``),
    clustered by relation, over the facts that have one; None for a record without its items (a
    compact published copy)."""
    name, _, k = key.partition("@")
    items = record.get("items")
    if not items:
        return None
    # a fact without a same-relation partner has no selectivity at any k or budget
    values = {item["id"]: (item["relation"], item[name].get(k) if k else item[name]) for item in items}
    return {item: (relation, float(value)) for item, (relation, value) in values.items() if value is not None}
