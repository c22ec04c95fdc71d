"""Summary statistics with error bars: every reported mean carries a bootstrap standard error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from bench.errors import BenchError


def mean_se(values: Sequence[float], resamples: int, seed: int) -> dict[str, float | int]:
    """Mean, bootstrap standard error of the mean (scipy.stats.bootstrap), and n."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise BenchError("no values to summarize: the task kept no items (check the data filter and --limit).")
    if not np.isfinite(data).all():
        raise BenchError("a metric came out NaN or infinite; refusing to average it.")
    if data.size == 1 or np.ptp(data) == 0:
        se = 0.0  # scipy's bootstrap is undefined for degenerate samples; the spread is truly zero
    else:
        result = stats.bootstrap(
            (data,), np.mean, n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed)
        )
        se = float(result.standard_error)
    return {"mean": float(data.mean()), "se": se, "n": int(data.size)}
