"""`bench publish`: copy finished records into the leaderboard's committed folder, compactly.

A published record keeps what the leaderboard and its plots read (metrics with their SE and n,
the task's summary sections such as probing curves or the erasure sweep, provenance) and drops
the per-item detail, which stays in the run's own output folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.engine.records import load_records
from bench.io import write_json_atomic
from bench.plugin.specs import TaskType

DEFAULT_PUBLISHED = Path("leaderboard") / "records"


def compact(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in ("items", "_path")}


def publish(results_dir: Path, target: Path, task_types: Mapping[str, TaskType]) -> list[Path]:
    """Write every record under ``results_dir`` (and the files it names in ``artifacts``) into
    ``target`` at the same relative path; returns the written record paths."""
    written = []
    for record in load_records(results_dir, task_types):
        source = Path(record["_path"])
        destination = target / source.relative_to(results_dir)
        write_json_atomic(destination, compact(record))
        for artifact in record.get("artifacts", {}).values():
            if (source.parent / artifact).is_file():
                shutil.copy2(source.parent / artifact, destination.parent / artifact)
        written.append(destination)
    return written
