"""Result records on disk: one JSON file per (model, lens, site, task, config), plus an
append-only log of finished items while a record is in progress, so that an interrupted
run resumes where it stopped and finished work is never lost or corrupted."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BenchError, warn
from bench.io import append_jsonl, file_lock, read_jsonl_repairing, write_json_atomic

if TYPE_CHECKING:
    from bench.plugin.specs import TaskType

# A task type's version goes up whenever what its records mean changes (a metric's definition,
# its controls, the facts it samples). Records of another version are neither reused nor shown,
# so old and new definitions never mix in one leaderboard.
SCHEMA_VERSIONS = {
    "knowledge_ablation": 3,  # one ablation rule (reference value), selectivity, k sweep, KL of the scored edit
    "privacy_erasure": 4,  # FeatureEdit blinds every later reader; MLP-window injection; dev/test variant choice
    "interpretability": 3,  # WikiText-2 test split by page; nulls; dead units score 0; ΔProb's facts
    "monosemanticity": 4,  # ΔProb's fact sample and IG baseline; related prompts and negatives the model knows
    "sparse_probing": 3,  # whole sentences and patterns held out; random-basis floor and dense ceiling
}


class Metric(BaseModel):
    """One reported summary: the value (a mean, or a median when ``statistic`` says so), its
    bootstrap SE and n; ``clusters`` when whole clusters (relations) were resampled."""

    model_config = ConfigDict(extra="forbid")

    mean: float
    se: float
    n: int
    clusters: int | None = None
    statistic: str | None = None


class Record(BaseModel):
    """What every record holds. A task type's own schema subclasses it with its extra sections;
    unknown top-level keys are errors, so a record is always what its task says it is."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = Field(alias="schema")
    id: str
    item_id: str
    model: dict[str, Any]
    lens: dict[str, Any]
    task: dict[str, Any]
    metrics: dict[str, Metric]
    provenance: dict[str, Any]
    # per-item detail; the published leaderboard's compact records leave it out
    items: list[dict[str, Any]] | None = None
    # a compact record's per-item values of its ranked metric, {metric: {item id: [cluster, value]}},
    # kept so that lenses can still be compared item by item
    paired_values: dict[str, dict[str, tuple[str, float]]] | None = None
    lens_diagnostics: dict[str, Any] | None = None  # e.g. an SAE's quality at its site


def validate_record(record: dict[str, Any], task_type: TaskType, where: str) -> None:
    """Check a record against its task type's schema and metric table; BenchError naming the problem."""
    model = task_type.record_model or Record
    try:
        model.model_validate({k: v for k, v in record.items() if k != "_path"})
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:5])
        raise BenchError(f"{where}: not a valid {task_type.name} record ({problems}).") from None
    if task_type.metrics:
        unknown = sorted(k for k in record["metrics"] if task_type.metric(k) is None)
        if unknown:
            declared = ", ".join(m.name for m in task_type.metrics)
            raise BenchError(
                f"{where}: metrics {unknown} are not in {task_type.name}'s metric table ({declared}); "
                "declare them in the task type's `metrics`."
            )


def record_items(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A record's per-item detail; a clear error for a compact (published) copy, which has none."""
    if record.get("items") is None:
        raise BenchError(
            f"record {record.get('id')} is a compact published copy without per-item detail; run the command "
            "the leaderboard shows for it to get the full record (in ./bench-results)."
        )
    return record["items"]


def lens_weights(record: dict[str, Any]) -> dict[str, Any]:
    """The lens's configuration with the weights the task actually used: a task that refits the
    lens (privacy erasure fine-tunes an SAE on the model it edits) records them under `lens_fit.lens`."""
    config = record["lens"]["config"]
    refitted = record.get("lens_fit") or {}
    return {**config, **refitted["lens"]} if refitted.get("refitted") and refitted.get("lens") else config


def schema_version(task_type: str) -> int:
    return SCHEMA_VERSIONS.get(task_type, 1)


def record_id(identity: dict[str, Any]) -> str:
    """Stable id of what was computed (model weights, lens, site, task config, schema version);
    not of when or where. Version-1 records predate versioning, so their ids leave it out."""
    version = schema_version(identity["task"].get("type", ""))
    keyed = identity if version == 1 else {**identity, "schema": version}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "_"


class RecordSlot:
    """Where one record lives: its final JSON and its in-progress item log."""

    def __init__(self, root: Path, identity: dict[str, Any]):
        self.root, self.identity = root, identity
        self.id = record_id(identity)
        folder = (
            root / _slug(identity["task"]["name"]) / _slug(identity["model"]["id"]) / _slug(identity["lens"]["name"])
        )
        stem = f"{_slug(identity['lens']['site'])}-{self.id}"
        self.path = folder / f"{stem}.json"
        self.log_path = folder / f"{stem}.partial.jsonl"

    def read_finished(self, task_type: TaskType) -> dict[str, Any] | None:
        """The finished record, or None to compute it. A record that does not parse or does not fit
        its schema (a disk full, a copy cut short) is moved aside as ``*.corrupt``, with a warning."""
        if not self.path.exists():
            return None
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
            validate_record(record, task_type, str(self.path))
            return record
        except (json.JSONDecodeError, UnicodeDecodeError, BenchError) as err:
            aside = self.path.with_suffix(".json.corrupt")
            os.replace(self.path, aside)
            warn(f"{self.path} was unreadable ({err}); moved to {aside.name}, recomputing it.")
            return None

    def locked(self, on_wait: Callable[[], object] = lambda: None) -> AbstractContextManager[None]:
        """This record's lock (``*.lock`` beside it): one process computes a record at a time."""
        return file_lock(self.path.with_suffix(".lock"), on_wait)

    def done_items(self) -> list[dict[str, Any]]:
        return read_jsonl_repairing(self.log_path)

    def log_items(self, items: list[dict[str, Any]]) -> None:
        append_jsonl(self.log_path, items)

    def finish(self, record: dict[str, Any], task_type: TaskType) -> None:
        version = schema_version(self.identity["task"].get("type", ""))
        full = {"schema": version, "id": self.id, **self.identity, **record}
        validate_record(full, task_type, f"the {task_type.name} task's result")  # before it can be reused
        write_json_atomic(self.path, full)
        self.log_path.unlink(missing_ok=True)


def load_records(root: Path, task_types: Mapping[str, TaskType] | None = None) -> Iterator[dict[str, Any]]:
    """Every finished record under root of the current schema version; with ``task_types``, each
    record of a known type is validated against its schema. A file that is not a record (another
    JSON file, a corrupt or invalid record) is skipped with a warning naming it."""
    for path in sorted(root.rglob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            warn(f"skipped {path}: not valid JSON ({err}); rerun its task to recompute it.")
            continue
        task = record.get("task") if isinstance(record, dict) else None
        if not isinstance(task, dict) or not isinstance(task.get("type"), str) or "metrics" not in record:
            warn(f"skipped {path}: not a lens-bench record.")
            continue
        if record.get("schema") != schema_version(task["type"]):
            continue  # another definition of its task: never mixed with the current one
        task_type = (task_types or {}).get(task["type"])
        if task_type is not None:
            try:
                validate_record(record, task_type, str(path))
            except BenchError as err:
                warn(f"skipped {err}")
                continue
        record["_path"] = str(path)
        yield record
