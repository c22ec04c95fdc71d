"""ΔProb's side-effect frontier, drawn by the leaderboard from knowledge_ablation records.

Selectivity rises with the size of an edit, so one k is not a fair point of comparison: each
lens is drawn at every k it was run at, against the side effect of that very edit (the KL of the
next token at the last token of held-out prompts), and lenses are compared where their lines
reach the same KL; the dotted verticals are the budgets the headline reads them at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from bench.report.labels import Z95, lens_label
from bench.report.plots import distinct_colors, distinct_styles, save_figure


def frontier_points(records: list[dict[str, Any]]) -> dict[tuple[int, str], list[tuple[float, float, float]]]:
    """{(layer, lens label): [(KL, selectivity, selectivity SE), ...] by increasing k}."""
    out: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
    for record in records:
        metrics = record["metrics"]
        ks = sorted(
            int(k) for key in metrics if key.startswith("selectivity@") and (k := key.partition("@")[2]).isdigit()
        )
        points = [
            (metrics[f"kl_last@{k}"]["mean"], metrics[f"selectivity@{k}"]["mean"], metrics[f"selectivity@{k}"]["se"])
            for k in ks
            if f"kl_last@{k}" in metrics
        ]
        if points:
            out[(int(record["lens"]["layer"]), lens_label(record))] = points
    return out


def budgets(records: list[dict[str, Any]]) -> list[float]:
    return sorted(
        {float(key.partition("@")[2]) for r in records for key in r["metrics"] if key.startswith("selectivity_at_kl@")}
    )


def frontier_plot(records: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One PNG per layer, one line per lens (lenses at different sites share a layer's panel: the
    KL axis is the same next-token distribution for all)."""
    points = frontier_points(records)
    labels = sorted({label for _, label in points})
    colors, styles = distinct_colors(len(labels)), distinct_styles(len(labels))
    paths = []
    for layer in sorted({layer for layer, _ in points}):
        fig, ax = plt.subplots(figsize=(6.2, 3.8))
        for i, label in enumerate(labels):
            if (layer, label) in points:
                kl, spec, se = zip(*points[(layer, label)], strict=True)
                marker, line = styles[i]
                ax.errorbar(
                    kl, spec, yerr=[Z95 * s for s in se], color=colors[i], marker=marker, linestyle=line,
                    capsize=2, markersize=4, label=label,
                )  # fmt: skip
        for budget in budgets(records):
            ax.axvline(budget, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xscale("log")
        ax.set_xlabel("KL of the next token, held-out prompts, under the scored edit (nats)", fontsize=8)
        ax.set_ylabel("selectivity (95 % interval)", fontsize=8)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_title(f"ΔProb frontier, layer {layer}: one point per k; dotted: the KL budgets", fontsize=9)
        fig.tight_layout()
        paths.append(save_figure(fig, out_dir / f"knowledge_ablation_frontier_layer{layer}.png"))
    return paths
