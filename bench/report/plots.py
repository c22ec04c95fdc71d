"""Figures written beside results (PNG, headless)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write atomically, as with results: a reader never sees half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def mixing_histograms(values: Mapping[str, Sequence[float]], title: str, path: Path) -> Path:
    """One histogram per share of related facts in the prompt set, on a shared axis."""
    fig, axes = plt.subplots(len(values), 1, figsize=(6, 1.4 * len(values)), sharex=True)
    for ax, (share, vals) in zip(list(axes), values.items(), strict=True):
        ax.hist(vals, bins=40, range=(-1, 1), color="tab:blue", alpha=0.8)
        ax.set_ylabel(f"{float(share):.0%}\nrelated", rotation=0, ha="right", va="center", fontsize=8)
        ax.set_yticks([])
    axes[-1].set_xlabel("activation of each fact's top unit / its max |activation| over the fact's prompts")
    axes[0].set_title(title, fontsize=9)
    return save_figure(fig, path)


def delta_prob_curves(rows: Sequence[Mapping[str, object]], path: Path, ylabel: str = "ΔProb") -> Path:
    """A ΔProb metric against k, one panel per layer, one line (with SE bars) per lens.

    rows: dicts with lens, layer, k, mean, se.
    """
    layers = sorted({int(r["layer"]) for r in rows})
    lenses = sorted({str(r["lens"]) for r in rows})
    fig, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers), 3.2), sharey=True, squeeze=False)
    for ax, layer in zip(axes[0], layers, strict=True):
        for lens in lenses:
            points = sorted(
                (int(r["k"]), float(r["mean"]), float(r["se"]))
                for r in rows
                if r["lens"] == lens and r["layer"] == layer
            )
            if points:
                ks, means, ses = zip(*points, strict=True)
                ax.errorbar(ks, means, yerr=ses, marker="o", capsize=3, label=lens)
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_xlabel("k (units ablated)")
        ax.set_xscale("log")
        ax.set_xticks(sorted({int(r["k"]) for r in rows}), labels=[str(k) for k in sorted({int(r["k"]) for r in rows})])
        ax.minorticks_off()
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_ylim(min(0.0, min(float(r["mean"]) - float(r["se"]) for r in rows) - 0.02), 1)
    axes[0][0].set_ylabel(f"{ylabel} (mean ± SE)")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    return save_figure(fig, path)


def metric_bars(df: Any, title: str, path: Path) -> Path:
    """One panel per metric of a task: a bar (mean ± SE) per (lens label, layer[, method]); a color per lens."""
    metrics = list(dict.fromkeys(df["metric"]))
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(4.0, 0.5 * len(df) / len(metrics) + 2) * len(metrics), 3.4), squeeze=False
    )
    colors = {lens: f"C{i % 10}" for i, lens in enumerate(dict.fromkeys(df["lens"]))}
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = df[df["metric"] == metric]
        labels = [f"{r.label}\nL{r.layer}" + (f"\n{r.method}" if r.method else "") for r in part.itertuples()]
        ax.bar(range(len(part)), part["mean"], yerr=part["se"], capsize=3, color=[colors[x] for x in part["lens"]])
        ax.set_xticks(range(len(part)), labels=labels, rotation=90, fontsize=7)
        ax.set_title(metric, fontsize=9)
    fig.suptitle(title, fontsize=10, y=1.03)
    return save_figure(fig, path)


_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_LINES = ("-", "--", ":", "-.")


def distinct_colors(n: int) -> list[Any]:
    """n colors, no two alike: the qualitative tab10 / tab20 while they last, then evenly spaced
    samples of a continuous map (neighbours then differ less, but never repeat)."""
    if n <= 20:
        cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
        return [cmap(i) for i in range(n)]
    return list(plt.get_cmap("turbo")(np.linspace(0.0, 1.0, n)))


def distinct_styles(n: int) -> list[tuple[str, Any]]:
    """n (marker, line style) pairs, no two alike: marker and line cycle at coprime periods (7, 4),
    so pairs repeat only after 28."""
    return [(_MARKERS[i % len(_MARKERS)], _LINES[i % len(_LINES)]) for i in range(n)]


def erasure_frontier(
    rows: Sequence[Mapping[str, Any]], min_loc: float | None, max_ppl_ratio: float | None, path: Path
) -> Path:
    """Rel against side effects (1 − Loc, and the perplexity ratio on a log axis), one line per
    (lens, method) through the points of its sweep, the side-effect budget shaded. A color per
    lens (and layer), a marker and line style per method, so a dozen lines stay apart; the swept
    values are written beside the points of the left panel only (the right one has the same order).

    rows: dicts with lens, method (base name), variant (the swept values), rel, loc, ppl_ratio (or None),
    and optionally their standard errors (rel_se, loc_se, ppl_ratio_se), drawn as 95 % intervals.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True, layout="constrained")
    lenses = list(dict.fromkeys(str(r["lens"]) for r in rows))
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    colors = distinct_colors(len(lenses))
    styles = distinct_styles(len(methods))
    for lens, method in dict.fromkeys((str(r["lens"]), str(r["method"])) for r in rows):
        points = [r for r in rows if r["lens"] == lens and r["method"] == method]
        marker, line = styles[methods.index(method)]
        style = {"marker": marker, "linestyle": line, "color": colors[lenses.index(lens)], "label": f"{lens}: {method}"}
        for ax, x_of, x_se in (
            (axes[0], lambda r: 1 - r["loc"], "loc_se"),
            (axes[1], lambda r: r["ppl_ratio"], "ppl_ratio_se"),
        ):
            drawn = [r for r in points if r["loc"] is not None and x_of(r) is not None]
            shown = sorted((x_of(r), r["rel"], r["variant"]) for r in drawn)
            if shown:
                ax.plot([x for x, _, _ in shown], [y for _, y, _ in shown], markersize=4, **style)
            with_se = [r for r in drawn if r.get("rel_se") is not None and r.get(x_se) is not None]
            if with_se:
                xs = [x_of(r) for r in with_se]
                half = [1.96 * r[x_se] for r in with_se]
                # on the log axis an interval reaching 0 or below is drawn down to a hundredth of its point
                below = [min(h, 0.99 * x) if ax is axes[1] else h for x, h in zip(xs, half, strict=True)]
                ax.errorbar(
                    xs,
                    [r["rel"] for r in with_se],
                    xerr=[below, half],
                    yerr=[1.96 * r["rel_se"] for r in with_se],
                    fmt="none",
                    ecolor=style["color"],
                    alpha=0.35,
                    linewidth=0.8,
                )
            if ax is axes[0]:
                for x, y, variant in shown:
                    value = variant.split("=")[-1] if variant.count("=") == 1 else variant  # "top_k=20" → "20"
                    ax.annotate(value, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if min_loc is not None:
        axes[0].axvspan(0, 1 - min_loc, color="green", alpha=0.08, label="within budget")
    if max_ppl_ratio is not None:
        axes[1].axvspan(1, max_ppl_ratio, color="green", alpha=0.08)
    axes[0].set_xlabel("1 − Loc (unrelated facts broken)")
    # a log axis: one swept edit can multiply perplexity by millions, the budget is a few percent
    axes[1].set_xscale("log")
    axes[1].set_xlabel("WikiText-2 perplexity after / before (log scale)")
    axes[0].set_ylabel("Rel (target facts erased)")
    for ax in axes:
        ax.set_ylim(-0.03, 1.03)
    handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(4, len(handles)), fontsize=8)
    fig.suptitle(
        "Privacy erasure: Rel against side effects, each method's sweep (labels: swept value; bars: 95 % intervals)",
        fontsize=10,
    )
    return save_figure(fig, path)


def probing_curves(curves: Sequence[tuple[str, Mapping[str, Mapping[str, float]]]], path: Path) -> Path:
    """F1 against k, one panel per feature, one line per (lens, layer) label.

    curves: (label, {feature: {k: f1}}) per record.
    """
    features = list(dict.fromkeys(f for _, by_feature in curves for f in by_feature))
    cols = min(4, len(features))
    rows = -(-len(features) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.4 * cols, 2.6 * rows + 0.6), sharey=True, squeeze=False, layout="constrained"
    )
    for ax, feature in zip(axes.flat, features, strict=False):
        for label, by_feature in curves:
            if feature in by_feature:
                points = sorted((int(k), f1) for k, f1 in by_feature[feature].items())
                ax.plot([k for k, _ in points], [f for _, f in points], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_title(feature, fontsize=9)
        ax.set_ylim(0, 1.03)
    for ax in axes.flat[len(features) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("test F1")
    for ax in axes[-1]:
        ax.set_xlabel("k (units in the probe)")
    legend = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=min(5, len(legend)), fontsize=8)
    return save_figure(fig, path)


def dendrogram_plot(tree: Any, leaf_labels: Sequence[str], threshold: float, title: str, path: Path) -> Path:
    """The full linkage hierarchy of one unit's dataset examples, cut line at `threshold`."""
    from scipy.cluster.hierarchy import dendrogram

    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.18 * len(leaf_labels))))
    dendrogram(tree, labels=list(leaf_labels), orientation="left", color_threshold=threshold, ax=ax, leaf_font_size=6)
    ax.axvline(threshold, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("cosine distance (average linkage)")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
