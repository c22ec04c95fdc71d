"""Polysemanticity's metric table and record schema."""

from __future__ import annotations

from typing import Any

from bench.engine.records import Record
from bench.plugin.specs import MetricSpec

METRICS = (
    MetricSpec("n_clusters", "clusters", higher_is_better=False, headline=True),
    MetricSpec("max_distance", "max dist", higher_is_better=False),
    MetricSpec("mean_distance", "mean dist", higher_is_better=False),
    MetricSpec("intra", "intra-cluster", higher_is_better=None),
    MetricSpec("inter", "inter-cluster", higher_is_better=None),
    MetricSpec("input_dims", "input dims", higher_is_better=None),
    # the same measures on plain (unweighted) embeddings: a reference, not a score
    MetricSpec("n_clusters_plain", "clusters (plain)", higher_is_better=None, detail=False),
    MetricSpec("max_plain", "max dist (plain)", higher_is_better=None, detail=False),
    MetricSpec("mean_plain", "mean dist (plain)", higher_is_better=None, detail=False),
    MetricSpec("intra_plain", "intra (plain)", higher_is_better=None, detail=False),
    MetricSpec("inter_plain", "inter (plain)", higher_is_better=None, detail=False),
)


class PolysemanticityRecord(Record):
    medians: dict[str, Any]
    input_site: str
    units_scored: int
    units_without_examples: int
