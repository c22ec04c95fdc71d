"""Summary statistics with error bars: every reported mean carries a bootstrap standard error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from bench.errors import BenchError


def mean_se(
    values: Sequence[float], resamples: int, seed: int, clusters: Sequence[str] | None = None
) -> dict[str, float | int]:
    """Mean, bootstrap standard error of the mean, and n.

    With ``clusters`` (one label per value, e.g. the fact's relation) the bootstrap resamples
    whole clusters, since values within a cluster are not independent; scipy.stats.bootstrap
    resamples single observations only, hence the few lines of numpy for that case.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise BenchError("no values to summarize: the task kept no items (check the data filter and --limit).")
    if not np.isfinite(data).all():
        raise BenchError("a metric came out NaN or infinite; refusing to average it.")
    if clusters is not None:
        return _clustered(data, list(clusters), resamples, seed)
    if data.size == 1 or np.ptp(data) == 0:
        se = 0.0  # scipy's bootstrap is undefined for degenerate samples; the spread is truly zero
    else:
        result = stats.bootstrap(
            (data,), np.mean, n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed)
        )
        se = float(result.standard_error)
    return {"mean": float(data.mean()), "se": se, "n": int(data.size)}


def _clustered(data: np.ndarray, clusters: list[str], resamples: int, seed: int) -> dict[str, float | int]:
    if len(clusters) != data.size:
        raise BenchError(f"{len(clusters)} cluster labels for {data.size} values.")
    labels = sorted(set(clusters))
    index = np.array([labels.index(c) for c in clusters])
    sums = np.bincount(index, weights=data, minlength=len(labels))
    counts = np.bincount(index, minlength=len(labels)).astype(float)
    draws = np.random.default_rng(seed).integers(0, len(labels), size=(resamples, len(labels)))
    # the mean over every value of the drawn clusters (a cluster drawn twice counts twice)
    means = sums[draws].sum(1) / counts[draws].sum(1)
    se = float(means.std(ddof=1)) if len(labels) > 1 else 0.0
    return {"mean": float(data.mean()), "se": se, "n": int(data.size), "clusters": len(labels)}
