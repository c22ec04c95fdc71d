"""`bench publish`: copy finished records into the leaderboard's committed folder, compactly.

A published record keeps what the leaderboard and its plots read (metrics with their SE and n,
the task's summary sections such as probing curves or the erasure sweep, provenance) and drops
the per-item detail, which stays in the run's own output folder.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.engine.records import load_records
from bench.io import write_json_atomic
from bench.paths import CACHE_ENV
from bench.plugin.specs import TaskType
from bench.report.labels import portable_argv

DEFAULT_PUBLISHED = Path("leaderboard") / "records"


# a path inside a lens-bench cache (a trained SAE, an injected model), whatever machine wrote it
_CACHE_PATH = re.compile(r"^/.*?/lens-bench/(?P<rest>.*)$")


def compact(record: dict[str, Any], task_type: TaskType | None = None) -> dict[str, Any]:
    """The record without per-item detail, and with nothing that names the machine it ran on: the
    command as portable_argv writes it, the task file by name, cache paths under $LENS_BENCH_CACHE.
    Each item's value of the ranked metric stays (``paired_values``), for paired tests between lenses.
    The record's id is kept: it names what was computed, and the leaderboard reads it as it is."""
    kept = {key: value for key, value in record.items() if key not in ("items", "_path")}
    paired = _paired_values(record, task_type)
    if paired:
        kept["paired_values"] = paired
    provenance = {
        **kept["provenance"],
        "command": portable_argv(record),
        "task_file": Path(kept["provenance"].get("task_file") or "").name,
    }
    return _portable({**kept, "provenance": provenance})


def _paired_values(record: dict[str, Any], task_type: TaskType | None) -> dict[str, Any]:
    if task_type is None or task_type.item_values is None or not record.get("items"):
        return record.get("paired_values") or {}
    out = {}
    for key in record["metrics"]:
        spec = task_type.metric(key)
        if spec is not None and spec.headline:
            values = task_type.item_values(record, key)
            if values:
                out[key] = {item: list(pair) for item, pair in values.items()}
    return out


def _portable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _portable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_portable(item) for item in value]
    if isinstance(value, str) and (match := _CACHE_PATH.match(value)):
        return f"${CACHE_ENV}/{match['rest']}"
    return value


def publish(results_dir: Path, target: Path, task_types: Mapping[str, TaskType]) -> list[Path]:
    """Write every record under ``results_dir`` (and the files it names in ``artifacts``) into
    ``target`` at the same relative path; returns the written record paths. Publishing a folder
    onto itself rewrites its records in place (compact() of a compact record is the same record)."""
    written = []
    for record in load_records(results_dir, task_types):
        source = Path(record["_path"])
        destination = target / source.relative_to(results_dir)
        write_json_atomic(destination, compact(record, task_types.get(record["task"]["type"])))
        for artifact in record.get("artifacts", {}).values():
            if (source.parent / artifact).is_file() and source.parent.resolve() != destination.parent.resolve():
                shutil.copy2(source.parent / artifact, destination.parent / artifact)
        written.append(destination)
    return written
