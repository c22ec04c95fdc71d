"""Summary statistics with error bars: every reported mean carries a bootstrap standard error."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

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
    data = _checked(values)
    if clusters is not None:
        return _clustered(data, list(clusters), resamples, seed, np.mean)
    return {"mean": float(data.mean()), "se": _se(data, resamples, seed, np.mean), "n": int(data.size)}


def median_se(
    values: Sequence[float], resamples: int, seed: int, clusters: Sequence[str] | None = None
) -> dict[str, float | int]:
    """Median, its bootstrap standard error, and n (for heavy-tailed metrics such as Cohen's d).

    The value sits under "mean" like every other summary, so tables and plots read it the
    same way; "statistic" says it is a median.
    """
    data = _checked(values)
    if clusters is not None:
        summary = _clustered(data, list(clusters), resamples, seed, np.median)
    else:
        summary = {"mean": float(np.median(data)), "se": _se(data, resamples, seed, np.median), "n": int(data.size)}
    return {**summary, "statistic": "median"}


def _checked(values: Sequence[float]) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise BenchError("no values to summarize: the task kept no items (check the data filter and --limit).")
    if not np.isfinite(data).all():
        raise BenchError("a metric came out NaN or infinite; refusing to average it.")
    return data


def _se(data: np.ndarray, resamples: int, seed: int, statistic: Callable[..., Any]) -> float:
    if data.size == 1 or np.ptp(data) == 0:
        return 0.0  # scipy's bootstrap is undefined for degenerate samples; the spread is truly zero
    result = stats.bootstrap(
        (data,), statistic, n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed)
    )
    return float(result.standard_error)


def _clustered(
    data: np.ndarray, clusters: list[str], resamples: int, seed: int, statistic: Callable[..., Any]
) -> dict[str, float | int]:
    if len(clusters) != data.size:
        raise BenchError(f"{len(clusters)} cluster labels for {data.size} values.")
    labels = sorted(set(clusters))
    index = np.array([labels.index(c) for c in clusters])
    members = [data[index == i] for i in range(len(labels))]
    draws = np.random.default_rng(seed).integers(0, len(labels), size=(resamples, len(labels)))
    # the statistic over every value of the drawn clusters (a cluster drawn twice counts twice)
    values = [statistic(np.concatenate([members[i] for i in draw])) for draw in draws]
    se = float(np.std(values, ddof=1)) if len(labels) > 1 else 0.0
    return {"mean": float(statistic(data)), "se": se, "n": int(data.size), "clusters": len(labels)}


def paired_difference(
    a: Mapping[str, float], b: Mapping[str, float], clusters: Mapping[str, str], resamples: int, seed: int
) -> dict[str, float | int]:
    """mean(a − b) over the items both have, with a bootstrap that resamples whole clusters of
    paired differences (facts of one relation together): a 95 % percentile interval and a
    two-sided p-value, twice the smaller share of resampled means on either side of 0.

    Pairing removes what the items share (an easy fact is easy for every lens), so it detects
    differences that two unpaired intervals hide; identical inputs give a difference of 0 and p = 1.
    scipy.stats.bootstrap pairs samples but resamples single items, not clusters."""
    common = sorted(set(a) & set(b))
    if not common:
        raise BenchError("no items in common: a paired comparison needs records of the same facts.")
    diffs = _checked([a[i] - b[i] for i in common])
    labels = sorted({clusters[i] for i in common})
    index = np.array([labels.index(clusters[i]) for i in common])
    sums = np.bincount(index, weights=diffs, minlength=len(labels))
    counts = np.bincount(index, minlength=len(labels))
    draws = np.random.default_rng(seed).integers(0, len(labels), size=(resamples, len(labels)))
    # a drawn cluster contributes all its items (a cluster drawn twice counts twice)
    means = sums[draws].sum(1) / counts[draws].sum(1)
    p = min(1.0, 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    low, high = np.percentile(means, [2.5, 97.5])
    return {"diff": float(diffs.mean()), "low": float(low), "high": float(high), "p": p, "n": len(common)}


def describe_difference(result: Mapping[str, float | int], resamples: int) -> str:
    """A paired_difference result as the findings quote it: '+0.012 [-0.033, +0.059], p = 0.58'
    (a bootstrap p of 0 is 'p < 1/resamples', the resolution it has)."""
    p = f"p = {result['p']:.3g}" if result["p"] > 0 else f"p < {1 / resamples:g}"
    return f"{result['diff']:+.3f} [{result['low']:+.3f}, {result['high']:+.3f}], {p}"


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (family-wise error control over a table's comparisons), in input order.
    scipy offers only false-discovery-rate control (stats.false_discovery_control), hence these lines."""
    order = np.argsort(pvalues, kind="stable")
    m = len(pvalues)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()
