"""Leaderboard footnotes for polysemanticity distances that are low for mechanical reasons."""

from __future__ import annotations

import pandas as pd

_FEW_INPUT_DIMS = 0.5  # below this share of the widest-reading unit set at the site, distances shrink mechanically
_DISTANCES = {"n_clusters", "max_distance", "mean_distance"}


def distance_caveats(df: pd.DataFrame) -> dict[int, str]:
    """Cells (by frame index) whose distance is partly mechanical, with why: units that read few
    input dimensions, or units that are clusters of the very embeddings measured."""
    out = {}
    dims = df[df["base"] == "input_dims"].set_index(["model", "lens", "site", "sae"])["mean"]
    for i, row in df[df["base"].isin(_DISTANCES)].iterrows():
        if row["lens"] == "neuron_clusters":
            out[i] = "neuron_clusters' units are clusters of these very embeddings: low distances by construction"
            continue
        key = (row["model"], row["lens"], row["site"], row["sae"])
        peers = dims[[k[0] == row["model"] and k[2] == row["site"] for k in dims.index]]
        if key in dims.index and len(peers) > 1 and dims[key] < _FEW_INPUT_DIMS * peers.max():
            out[i] = (
                f"{row['label']} reads {dims[key]:.0f} input dims against up to {peers.max():.0f} at this site: "
                "embeddings x ⊙ w look alike whatever the inputs"
            )
    return out
