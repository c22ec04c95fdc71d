"""What a plugin hands the harness: lenses, task types and the metric table of a task type.

Plain dataclasses with no harness imports, so that a plugin, the registry and the report can
all depend on them without depending on each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from pydantic import BaseModel

    from bench.model.lens import Lens
    from bench.model.loading import LoadedModel


# A record's metric key: base name, then optionally ``@`` a selection (a k, a threshold ``thr0.3``,
# a budget ``0.05``), then optionally ``.`` a method (``rel.feature_edit[top_k=5]``). A dot followed
# by digits belongs to the number before it.
_KEY = re.compile(r"^(?P<base>[^@.]+)(?:@(?P<k>[^.]*(?:\.\d+)?))?(?:\.(?P<method>.+))?$")


def split_key(key: str) -> tuple[str, str, str]:
    """(base, selection, method) of a metric key, '' for the parts it lacks."""
    match = _KEY.match(key)
    if match is None:
        raise ValueError(f"not a metric key: {key!r}")
    return match["base"], match["k"] or "", match["method"] or ""


@dataclass(frozen=True)
class LensSpec:
    name: str
    description: str
    default_site: str  # e.g. "blocks.{layer}.mlp.hook_post"
    build: Callable[[LoadedModel, str, Mapping[str, Any]], Lens]
    # the layers the lens's options pin it to (an SAE named without {layer} runs at its own layer);
    # used when the run gives no --layers
    pinned_layers: Callable[[Mapping[str, Any]], list[int] | None] | None = None


@dataclass(frozen=True)
class MetricSpec:
    """One metric a task reports, as lm-eval's ``metric_list`` declares them.

    Record keys are the name itself (``auroc``), the name at a k (``specificity@5``) or the name
    for one method of a task that compares several (``rel.feature_edit``).
    """

    name: str
    label: str
    # True / False: which way is better; None: descriptive (a control, a count), never ranked or bold
    higher_is_better: bool | None = True
    headline: bool = False  # the task's ranked metric: its column in the headline table (at the middle k)
    # for metrics at several k: "middle" shows the middle k in the markdown detail table, "all" every k
    # (csv and json always keep every k)
    shown_at: str = "middle"
    detail: bool = True  # shown in the markdown detail table (csv and json always have every metric)

    @property
    def ranked(self) -> bool:
        return self.higher_is_better is not None


@dataclass(frozen=True)
class TaskType:
    name: str
    description: str
    config_model: type[BaseModel]
    run: Callable[..., Any]
    metrics: tuple[MetricSpec, ...] = ()
    # the record's typed schema (a subclass of bench.engine.records.Record); None: the base schema
    record_model: type[BaseModel] | None = None
    family: str = "Other"  # the leaderboard section it is shown in
    # leaderboard extras: plots drawn from this type's records, and footnotes for cells of its frame
    plot: Callable[[list[dict[str, Any]], Path], list[Path]] | None = None
    caveats: Callable[[pd.DataFrame], dict[int, str]] | None = None
    method_page: str | None = None  # docs/methods/<task>.md, relative to the repository
    # per-item values behind a metric of a record, {item id: (cluster, value)}, for paired tests
    # between lenses over the same items; None (or a None result): only unpaired intervals
    item_values: Callable[[dict[str, Any], str], dict[str, tuple[str, float]] | None] | None = None
    # what `bench run` prints for one record in place of the generic row of every metric (for
    # tasks with too many metrics for one row); None: the generic row
    run_summary: Callable[[dict[str, Any]], str] | None = None
    # markdown under the task's table on the leaderboard, from its records (e.g. paired comparisons
    # of the methods inside each record); None: nothing
    table_note: Callable[[list[dict[str, Any]]], str] | None = None

    def metric(self, key: str) -> MetricSpec | None:
        """The spec of a record key such as ``specificity@5`` or ``rel.feature_edit[top_k=5]``."""
        return self._by_name.get(split_key(key)[0])

    @property
    def _by_name(self) -> dict[str, MetricSpec]:
        return {m.name: m for m in self.metrics}

    def headline(self) -> MetricSpec | None:
        return next((m for m in self.metrics if m.headline), None)

    def headline_key(self, metrics: Mapping[str, Any]) -> str | None:
        """The record key of the ranked metric, at its middle k or budget (as the leaderboard
        shows it); None when the record lacks it."""
        spec = self.headline()
        keys = [key for key in metrics if spec is not None and split_key(key)[0] == spec.name]
        numeric = sorted((key for key in keys if is_number(split_key(key)[1])), key=lambda k: float(split_key(k)[1]))
        if numeric:
            return numeric[len(numeric) // 2]
        return keys[0] if keys else None


def is_number(text: str) -> bool:
    """A metric key's selection that is a number: a k (``@5``) or a budget (``@0.05``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


__all__ = ["LensSpec", "MetricSpec", "TaskType", "is_number", "split_key"]
