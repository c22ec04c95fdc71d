"""`bench run`: one record per (model, lens, site, task config), resumable, with provenance."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bench.context import TaskContext
from bench.errors import BenchError
from bench.models import LoadedModel
from bench.provenance import environment
from bench.registry import Plugins
from bench.results import RecordSlot
from bench.sites import n_layers
from bench.taskspec import Task


@dataclass
class RunOptions:
    layers: list[int] | None = None
    limit: int | None = None
    seed: int | None = None
    batch_size: int = 32
    output_dir: Path = Path("results")
    data_dir: Path | None = None
    force: bool = False
    lens_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellResult:
    site: str
    path: Path
    record: dict[str, Any]
    skipped: bool  # already on disk from an earlier run


def resolve_layers(layers: list[int], total: int) -> list[int]:
    resolved = []
    for layer in layers:
        index = layer + total if layer < 0 else layer
        if not 0 <= index < total:
            raise BenchError(f"layer {layer} is out of range: the model has {total} layers (0..{total - 1}).")
        resolved.append(index)
    return resolved


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_task(plugins: Plugins, loaded: LoadedModel, task: Task, units: str, options: RunOptions) -> list[CellResult]:
    lens_entry = plugins.lenses.entry(units)
    overrides: dict[str, Any] = {}
    if options.limit is not None:
        overrides["limit"] = options.limit
    if options.seed is not None:
        overrides["seed"] = options.seed
    overrides["layers"] = resolve_layers(options.layers or list(task.config.layers), n_layers(loaded.model))
    config = task.config.model_copy(update=overrides)
    cells = []
    for layer in config.layers:
        site = lens_entry.obj.default_site.format(layer=layer)
        lens = lens_entry.obj.build(loaded, site, options.lens_options)
        identity = {
            "model": {
                "id": loaded.model_id,
                "weights_sha256": loaded.weights_sha256,
                "dtype": loaded.describe()["dtype"],
            },
            "lens": {
                "name": units,
                "site": site,
                "layer": layer,
                "n_units": lens.n_units,
                "config": lens.config(),
            },
            "task": {"name": task.name, "type": task.type.name, "config": config.model_dump(mode="json")},
        }
        slot = RecordSlot(options.output_dir, identity)
        if options.force:
            slot.path.unlink(missing_ok=True)
            slot.log_path.unlink(missing_ok=True)
        if slot.finished():
            cells.append(CellResult(site, slot.path, _read(slot.path), skipped=True))
            continue
        resumed = len(slot.done_items())
        started, t0 = _now(), time.perf_counter()
        ctx = TaskContext(
            loaded=loaded,
            lens=lens,
            config=config,
            batch_size=options.batch_size,
            data_dir=options.data_dir,
            slot=slot,
            progress=lambda desc, total, initial, site=site: tqdm(
                total=total, initial=initial, desc=f"{task.name}[{units}:{site}] {desc}", unit="item"
            ),
        )
        outcome = task.type.run(ctx)
        record = {
            **outcome,
            "provenance": {
                **environment(),
                "model": loaded.describe(),
                "lens_source": lens_entry.source,
                "task_file": str(task.path),
                "batch_size": options.batch_size,
                "resumed_items": resumed,
                "started": started,
                "finished": _now(),
                "wall_time_s": round(time.perf_counter() - t0, 2),
            },
        }
        slot.finish(record)
        cells.append(CellResult(site, slot.path, _read(slot.path), skipped=False))
    return cells


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
