"""Where lens-bench keeps caches and finds data, each overridable by flag or environment."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "LENS_BENCH_CACHE"
DATA_ENV = "LENS_BENCH_DATA"
# set by `bench run --allow-poor-sae`; read by the SAE lenses' quality gate
ALLOW_POOR_SAE_ENV = "LENS_BENCH_ALLOW_POOR_SAE"
REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lens-bench"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(explicit: str | Path | None = None) -> Path | None:
    """The local data directory, or None to fetch from the public sources.

    Order: the --data-dir flag, $LENS_BENCH_DATA, then a ``shared/data`` folder beside the
    checkout (how this project's machines are laid out).
    """
    for candidate in (explicit, os.environ.get(DATA_ENV)):
        if candidate:
            return Path(candidate)
    beside = REPO_ROOT.parent / "shared" / "data"
    return beside if beside.is_dir() else None
