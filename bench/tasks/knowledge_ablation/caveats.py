"""Leaderboard footnotes for ΔProb's selectivity at a KL budget that does not bind."""

from __future__ import annotations

import pandas as pd

_LENS = ["model", "lens", "site", "sae"]


def budget_caveats(df: pd.DataFrame) -> dict[int, str]:
    """Cells (by frame index) of selectivity at a budget that every edit of the lens's k sweep
    stays under: the lens was never given an edit that costly, so the value is a lower bound."""
    out = {}
    costs = df[df["base"] == "kl_last"].groupby(_LENS, dropna=False)["mean"].max()
    for i, row in df[df["base"] == "selectivity_at_kl"].iterrows():
        key = tuple(row[c] for c in _LENS)
        if key in costs.index and costs[key] < float(row["k"]):
            out[i] = (
                f"lower bound: the lens's costliest edit (KL {costs[key]:.3g}) stays under this budget; "
                "larger k would be needed to reach it"
            )
    return out
