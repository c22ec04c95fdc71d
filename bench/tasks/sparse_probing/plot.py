"""Probe F1 against k, drawn by the leaderboard from sparse-probing records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report.labels import lens_label
from bench.report.plots import probing_curves


def probing_plot(records: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    curves = [(f"{lens_label(r)} L{r['lens']['layer']}", r["curves"]) for r in records]
    return [probing_curves(curves, out_dir / "sparse_probing_f1.png")] if curves else []
