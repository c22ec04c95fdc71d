"""The erasure frontier the leaderboard draws from privacy-erasure records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report.labels import lens_label
from bench.report.plots import erasure_frontier


def frontier_plot(records: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Every record's sweep as Rel against side effects, with 95 % intervals (the test half's,
    for records that choose variants on a dev half); the budget of the newest record shaded."""
    rows, budget = [], {}
    for record in records:
        metrics, label = record["metrics"], f"{lens_label(record)} L{record['lens']['layer']}"
        budget = record.get("budget", {}).get("config", budget)
        # a second erasure task (e.g. FeatureEdit's other mode) must not extend the first one's lines
        task = record["task"]["name"]
        suffix = "" if task == record["task"]["type"] else f" ({task})"
        for variant in record.get("methods", {}):
            if f"rel.{variant}" not in metrics:
                continue
            base, _, swept = variant.partition("[")
            base += suffix
            row = {"lens": label, "method": base, "variant": swept.rstrip("]")}
            for name in ("rel", "loc", "ppl_ratio"):
                summary = metrics.get(f"{name}.{variant}", {})
                row[name], row[f"{name}_se"] = summary.get("mean"), summary.get("se")
            rows.append(row)
    if not rows:
        return []
    path = out_dir / "erasure_frontier.png"
    return [erasure_frontier(rows, budget.get("min_loc"), budget.get("max_ppl_ratio"), path)]
