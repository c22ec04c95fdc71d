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
    points = frontier_points(records)
    if not points:
        return []
    layers = sorted({layer for layer, _ in points})
    labels = sorted({label for _, label in points})
    colors, styles = distinct_colors(len(labels)), distinct_styles(len(labels))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.8 * len(layers), 3.4), sharey=True, squeeze=False)
    for ax, layer in zip(axes[0], layers, strict=True):
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
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_xlabel("KL of the next token, held-out prompts,\nunder the scored edit (nats)", fontsize=8)
        ax.axhline(0, color="grey", linewidth=0.6)
    axes[0][0].set_ylabel("selectivity (95 % interval)")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    handles = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("ΔProb frontier: selectivity against side effect, one point per k", fontsize=10)
    return [save_figure(fig, out_dir / "knowledge_ablation_frontier.png")]
