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

SCHEMA_VERSION = 1


def record_id(identity: dict[str, Any]) -> str:
    """Stable id of what was computed (model weights, lens, site, task config); not of when or where."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


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
        write_json_atomic(self.path, {"schema": SCHEMA_VERSION, "id": self.id, **self.identity, **record})
        self.log_path.unlink(missing_ok=True)


def load_records(root: Path) -> Iterator[dict[str, Any]]:
    """Every finished record under root."""
    for path in sorted(root.rglob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise BenchError(f"{path} is not valid JSON ({err}); delete it and rerun its task.") from err
        if isinstance(record, dict) and record.get("schema") == SCHEMA_VERSION:
            record["_path"] = str(path)
            yield record
