"""Figures written beside results (PNG, headless)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt


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
