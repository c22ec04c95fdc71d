"""The headline's rank groups: a paired, relation-clustered bootstrap over the same facts, Holm-corrected."""

from __future__ import annotations

import numpy as np
import pytest

from bench.report.leaderboard import frame, headline, leading_group
from bench.stats import describe_difference, holm, paired_difference

SITE = "blocks.2.hook_resid_post"


def record(lens: str, per_fact: list[float], rid: str) -> dict:
    """A knowledge_ablation record with its items: fact i belongs to relation i % 6."""
    items = [
        {"id": f"f{i}", "relation": f"P{i % 6}", "selectivity_at_kl": {"0.05": v}, "p_clean": 0.5}
        for i, v in enumerate(per_fact)
    ]
    mean = float(np.mean(per_fact))
    return {
        "schema": 3,
        "id": rid,
        "model": {"id": "tiny", "weights_sha256": "ab" * 32, "dtype": "float32"},
        "lens": {"name": lens, "site": SITE, "layer": 2, "n_units": 24, "config": {}},
        "task": {"name": "knowledge_ablation", "type": "knowledge_ablation", "config": {"seed": 0}},
        "metrics": {"selectivity_at_kl@0.05": {"mean": mean, "se": float(np.std(per_fact) / 6), "n": len(per_fact)}},
        "items": items,
        "provenance": {"finished": "2026-01-01"},
    }


def bold_lenses(records: list[dict]) -> set[str]:
    top = headline(frame(records))
    return {top.loc[i, "lens"] for i in leading_group(top)}


def test_two_identical_records_are_a_tie_with_p_one() -> None:
    values = list(np.random.default_rng(0).uniform(0, 1, 60))
    assert bold_lenses([record("a", values, "r1"), record("b", values, "r2")]) == set()
    test = paired_difference(dict(enumerate(values)), dict(enumerate(values)), {i: "x" for i in range(60)}, 500, 0)
    assert test["diff"] == 0 and test["p"] == 1


def test_a_small_consistent_difference_is_found_where_intervals_overlap() -> None:
    """Facts vary a lot (shared by both lenses); one lens is better by 0.05 on every fact. The
    unpaired intervals overlap; the paired test separates them."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 60)
    better, worse = record("better", list(base + 0.05), "r1"), record("worse", list(base), "r2")
    assert bold_lenses([better, worse]) == {"better"}
    compact = [{**r, "items": []} for r in (better, worse)]  # no per-fact values: the interval rule
    assert bold_lenses(compact) == {"better", "worse"}


def test_noise_is_a_tie_and_a_clear_loser_is_left_out() -> None:
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 1, 60)
    records = [
        record("a", list(base + rng.normal(0, 0.01, 60)), "r1"),
        record("b", list(base + rng.normal(0, 0.01, 60)), "r2"),
        record("c", list(base - 0.3), "r3"),
    ]
    assert bold_lenses(records) == {"a", "b"}
    assert bold_lenses(records[:2]) == set()  # two lenses inside each other's noise: nobody leads


def test_clusters_are_resampled_whole() -> None:
    """A difference carried by one relation out of six is not significant once relations are resampled."""
    a = {f"f{i}": (1.0 if i % 6 == 0 else 0.0) for i in range(60)}
    b = dict.fromkeys(a, 0.0)
    by_relation = {f"f{i}": f"P{i % 6}" for i in range(60)}
    by_fact = {f"f{i}": f"f{i}" for i in range(60)}
    assert paired_difference(a, b, by_relation, 2000, 0)["p"] > 0.05
    assert paired_difference(a, b, by_fact, 2000, 0)["p"] < 0.05


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_minimal_detectable_difference_comes_from_the_two_ses() -> None:
    from bench.report.leaderboard import minimal_detectable

    a, b = record("a", [0.1] * 30 + [0.5] * 30, "r1"), record("b", [0.2] * 60, "r2")
    a["metrics"]["selectivity_at_kl@0.05"]["se"], b["metrics"]["selectivity_at_kl@0.05"]["se"] = 0.03, 0.04
    top = headline(frame([a, b]))
    assert minimal_detectable(top) == {"knowledge_ablation": pytest.approx(2.8 * 0.05)}


def test_a_difference_is_described_with_its_interval_and_the_resolution_of_its_p() -> None:
    result = {"diff": 0.0123, "low": -0.033, "high": 0.0591, "p": 0.58, "n": 10}
    assert describe_difference(result, 10_000) == "+0.012 [-0.033, +0.059], p = 0.58"
    assert describe_difference(result | {"p": 0.0}, 10_000).endswith("p < 0.0001")
