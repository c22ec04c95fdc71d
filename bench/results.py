"""Result records on disk: one JSON file per (model, lens, site, task, config), plus an
append-only log of finished items while a record is in progress, so that an interrupted
run resumes where it stopped and finished work is never lost or corrupted."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.io import append_jsonl, read_jsonl_repairing, write_json_atomic

# A task type's version goes up whenever what its records mean changes (a metric's definition,
# its controls, the facts it samples). Records of another version are neither reused nor shown,
# so old and new definitions never mix in one leaderboard.
SCHEMA_VERSIONS = {
    "knowledge_ablation": 2,  # ablation at the attributed positions, controls, capped fact sampling
    "privacy_erasure": 3,  # sweeps, FeatureEdit by projection, Rel at a budget; KN and DEPN over every block
    "interpretability": 2,  # explanation and held-out windows from disjoint contexts
    "monosemanticity": 3,  # same-relation negatives, floored pooled SD, median d; AUROC by related kind
    "sparse_probing": 2,  # whole UD sentences and whole ParaRel patterns held out
}


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
        self.identity = identity
        self.id = record_id(identity)
        folder = (
            root / _slug(identity["task"]["name"]) / _slug(identity["model"]["id"]) / _slug(identity["lens"]["name"])
        )
        stem = f"{_slug(identity['lens']['site'])}-{self.id}"
        self.path = folder / f"{stem}.json"
        self.log_path = folder / f"{stem}.partial.jsonl"

    def finished(self) -> bool:
        return self.path.exists()

    def done_items(self) -> list[dict[str, Any]]:
        return read_jsonl_repairing(self.log_path)

    def log_items(self, items: list[dict[str, Any]]) -> None:
        append_jsonl(self.log_path, items)

    def finish(self, record: dict[str, Any]) -> None:
        version = schema_version(self.identity["task"].get("type", ""))
        write_json_atomic(self.path, {"schema": version, "id": self.id, **self.identity, **record})
        self.log_path.unlink(missing_ok=True)


def load_records(root: Path) -> Iterator[dict[str, Any]]:
    """Every finished record under root."""
    for path in sorted(root.rglob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise BenchError(f"{path} is not valid JSON ({err}); delete it and rerun its task.") from err
        if (
            isinstance(record, dict)
            and "task" in record
            and record.get("schema") == schema_version(record["task"].get("type", ""))
        ):
            record["_path"] = str(path)
            yield record
