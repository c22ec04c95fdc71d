"""Running one collected item: one record per (model, lens, site, task config), resumable, with provenance."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm.auto import tqdm

from bench.engine.collection import Item
from bench.engine.context import TaskContext
from bench.engine.provenance import environment
from bench.engine.records import RecordSlot
from bench.engine.taskspec import Task, TaskConfig
from bench.errors import BenchError
from bench.model.lens import Lens
from bench.model.loading import LoadedModel
from bench.plugin.registry import Plugins

# Not tracked by git (.gitignore): results a user computes never land in the repository's tree.
# The published leaderboard's records live in leaderboard/records/, written there on purpose.
DEFAULT_OUTPUT_DIR = Path("bench-results")


@dataclass
class RunOptions:
    layers: list[int] | None = None
    limit: int | None = None
    seed: int | None = None
    batch_size: int = 32
    output_dir: Path = DEFAULT_OUTPUT_DIR
    data_dir: Path | None = None
    force: bool = False
    lens_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellResult:
    site: str
    path: Path
    record: dict[str, Any]
    skipped: bool  # already on disk from an earlier run


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def task_config(task: Task, options: RunOptions, layers: list[int]) -> TaskConfig:
    """The task's config with this run's --limit, --seed and resolved layers applied."""
    overrides: dict[str, Any] = {"layers": layers}
    if options.limit is not None:
        overrides["limit"] = options.limit
    if options.seed is not None:
        overrides["seed"] = options.seed
    # validated again (model_copy would not): --limit 0 must be an error, not "no limit"
    try:
        return type(task.config).model_validate(task.config.model_dump() | overrides)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in err.errors()
        )
        raise BenchError(f"task {task.name}: the run's options are not valid for it: {problems}.") from None


def run_item(plugins: Plugins, loaded: LoadedModel, item: Item, config: TaskConfig, options: RunOptions) -> CellResult:
    lens_entry = plugins.lenses.entry(item.lens)
    lens = lens_entry.obj.build(loaded, item.site, options.lens_options)
    identity = {
        "model": {"id": loaded.model_id, "weights_sha256": loaded.weights_sha256, "dtype": loaded.describe()["dtype"]},
        "lens": {
            "name": item.lens,
            "site": item.site,
            "layer": item.layer,
            "n_units": lens.n_units,
            "config": lens.config(),
        },
        # expectations are checks on results, not part of what was computed
        "task": {
            "name": item.task.name,
            "type": item.task.type.name,
            "config": config.model_dump(mode="json", exclude={"expect"}),
        },
    }
    slot = RecordSlot(options.output_dir, identity)
    # one computation per record at a time: a second identical run waits here, then reuses the record
    with slot.locked(on_wait=lambda: print(f"{item.id}: another run is computing it; waiting", file=sys.stderr)):
        if options.force:
            slot.path.unlink(missing_ok=True)
            slot.log_path.unlink(missing_ok=True)
        finished = slot.read_finished(item.task.type)
        if finished is not None:
            return CellResult(item.site, slot.path, finished, skipped=True)
        return _compute(plugins, loaded, item, config, options, lens, lens_entry.source, slot)


def _compute(
    plugins: Plugins,
    loaded: LoadedModel,
    item: Item,
    config: TaskConfig,
    options: RunOptions,
    lens: Lens,
    lens_source: str,
    slot: RecordSlot,
) -> CellResult:
    resumed = len(slot.done_items())
    started, t0 = _now(), time.perf_counter()
    ctx = TaskContext(
        loaded=loaded,
        lens=lens,
        config=config,
        batch_size=options.batch_size,
        data_dir=options.data_dir,
        slot=slot,
        progress=lambda desc, total, initial: tqdm(total=total, initial=initial, desc=f"{item.id} {desc}", unit="item"),
        plugins=plugins,
    )
    outcome = item.task.type.run(ctx)
    record = {
        "item_id": item.id,
        **outcome,
        **({"lens_diagnostics": diagnostics} if (diagnostics := lens.diagnostics()) else {}),
        "provenance": {
            **environment(),
            "model": loaded.describe(),
            "lens_source": lens_source,
            "task_file": str(item.task.path),
            "batch_size": options.batch_size,
            "resumed_items": resumed,
            "started": started,
            "finished": _now(),
            "wall_time_s": round(time.perf_counter() - t0, 2),
        },
    }
    slot.finish(record, item.task.type)
    return CellResult(item.site, slot.path, _read(slot.path), skipped=False)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
