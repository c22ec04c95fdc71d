"""Selectivity at a KL budget (bench/tasks/knowledge_ablation/frontier.py): matched side effects,
so a lens cannot buy a better score with a bigger edit."""

from __future__ import annotations

import math

import pytest

from bench.tasks.knowledge_ablation.frontier import at_budget


def path(points: list[tuple[float, float]]) -> list[tuple[str, float, float]]:
    return [(str(k), kl, value) for k, (kl, value) in zip((1, 2, 5, 10), points, strict=False)]


def test_the_budget_is_read_between_the_edits_around_it_in_root_kl() -> None:
    point = at_budget(path([(0.01, 0.2), (0.04, 0.4)]), 0.0225)  # √KL: 0.1 .. 0.2, budget √ 0.15
    assert point.value == pytest.approx(0.3) and point.weights == pytest.approx({"1": 0.5, "2": 0.5})
    assert point.smallest_edit_fits


def test_a_looser_budget_never_scores_lower() -> None:
    """Selectivity falls once edits grow too big; the budget's value is the best point within it."""
    p = path([(0.001, 0.1), (0.01, 0.3), (0.1, 0.05)])
    values = [at_budget(p, b).value for b in (0.001, 0.005, 0.01, 0.05, 1.0)]
    assert values == sorted(values) and values[-1] == pytest.approx(0.3)


def test_a_budget_below_the_smallest_edit_is_interpolated_towards_no_edit_and_flagged() -> None:
    point = at_budget(path([(0.04, 0.4), (0.09, 0.5)]), 0.01)
    assert point.value == pytest.approx(0.2) and not point.smallest_edit_fits


def test_doubling_an_edit_does_not_raise_its_value_at_a_budget() -> None:
    """A lens whose edits are twice as big: ΔProb (hence selectivity, for small edits) doubles and KL
    quadruples. At every k it scores higher; at a fixed KL budget it scores the same."""
    base = [(0.001 * k, 0.05 * math.sqrt(k)) for k in (1, 2, 5, 10)]
    doubled = [(4 * kl, 2 * value) for kl, value in base]
    assert all(d[1] > b[1] for b, d in zip(base, doubled, strict=True))
    for budget in (0.002, 0.005, 0.009):
        assert at_budget(path(doubled), budget).value <= at_budget(path(base), budget).value + 1e-12
    # past the base lens's largest edit the budget does not bind for it: a lower bound, flagged
    assert not at_budget(path(base), 0.02).binding and at_budget(path(doubled), 0.02).binding


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        at_budget(path([(0.01, 0.1)]), 0)


def test_facts_without_a_same_relation_partner_have_no_paired_value() -> None:
    from bench.tasks.knowledge_ablation.outputs import item_values

    items = [
        {"id": "a", "relation": "P17", "selectivity_at_kl": {"0.01": 0.3}, "selectivity": {"5": 0.2}},
        {"id": "b", "relation": "P19", "selectivity_at_kl": {}, "selectivity": {"5": None}},  # no partner
    ]
    record = {"items": items}
    assert item_values(record, "selectivity_at_kl@0.01") == {"a": ("P17", 0.3)}
    assert item_values(record, "selectivity@5") == {"a": ("P17", 0.2)}
