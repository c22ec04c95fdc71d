"""scripts/findings_table.py: the findings' per-layer tables come from records, not by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "findings_table.py"


def _script():
    spec = importlib.util.spec_from_file_location("findings_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(name: str, selectivity: float, binding: bool) -> dict:
    metric = {"mean": selectivity, "se": 0.01}
    keys = ["selectivity@5", "specificity@5", "delta_prob@5", "delta_prob_same_relation@5"]
    keys += ["delta_prob_unrelated@5", "kl_last@1", "kl_last@5", "kl_last@50", "edit_norm@5"]
    metrics = {key: {"mean": 0.1, "se": 0.01} for key in keys}
    metrics |= {f"selectivity_at_kl@{budget}": metric for budget in ("0.005", "0.01", "0.02")}
    return {
        "lens": {"name": name, "site": "blocks.1.hook_resid_post", "layer": 1},
        "metrics": metrics,
        "frontier": {b: {"binding": binding, "smallest_edit_fits": b != "0.005"} for b in ("0.005", "0.01", "0.02")},
        "provenance": {"wall_time_s": 12.0, "resumed_items": 3 if name == "b" else 0},
    }


def test_rows_are_sorted_by_the_headline_and_unbinding_budgets_are_lower_bounds() -> None:
    lines = _script().table([_record("a", 0.1, True), _record("b", 0.3, False)], "knowledge_ablation").splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[2].count("|") == 14
    assert lines[2].startswith("| `b` ") and "≥ 0.300 [0.28, 0.32]" in lines[2] and "12 s (resumed)" in lines[2]
    assert lines[3].startswith("| `a` ") and "| 0.100 [0.08, 0.12] |" in lines[3] and "≥" not in lines[3]
    assert "| 0.100 [0.08, 0.12] † |" in lines[3]  # at 0.005 even k = 1 costs more than the budget
