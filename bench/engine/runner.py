"""Running one collected item: one record per (model, lens, site, task config), resumable, with provenance."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
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


@dataclass
class PreparedItem:
    """An item with its lens built (SAEs loaded and checked, bases fitted) and its record's slot."""

    item: Item
    config: TaskConfig
    lens: Lens
    lens_source: str
    slot: RecordSlot


def prepare_item(
    plugins: Plugins, loaded: LoadedModel, item: Item, config: TaskConfig, options: RunOptions
) -> PreparedItem:
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
    return PreparedItem(item, config, lens, lens_entry.source, RecordSlot(options.output_dir, identity))


def reusable(prepared: PreparedItem, options: RunOptions) -> CellResult | None:
    """The item's finished record, unless --force (which removes it and its partial log) or there is none.
    Call it holding the slot's lock."""
    slot = prepared.slot
    if options.force:
        slot.path.unlink(missing_ok=True)
        slot.log_path.unlink(missing_ok=True)
    finished = slot.read_finished(prepared.item.task.type)
    return None if finished is None else CellResult(prepared.item.site, slot.path, finished, skipped=True)


def write_record(prepared: PreparedItem, record: dict[str, Any]) -> CellResult:
    """Validate and write a computed record atomically (its partial log goes)."""
    prepared.slot.finish(record, prepared.item.task.type)
    return CellResult(prepared.item.site, prepared.slot.path, _read(prepared.slot.path), skipped=False)


def run_item(plugins: Plugins, loaded: LoadedModel, item: Item, config: TaskConfig, options: RunOptions) -> CellResult:
    prepared = prepare_item(plugins, loaded, item, config, options)
    # one computation per record at a time: a second identical run waits here, then reuses the record
    with prepared.slot.locked(on_wait=lambda: waiting(item)):
        cached = reusable(prepared, options)
        if cached is not None:
            return cached
        return write_record(prepared, compute_record(plugins, loaded, prepared, options))


def waiting(item: Item) -> None:
    print(f"{item.id}: another run is computing it; waiting", file=sys.stderr)


def _bar(item: Item) -> Callable[[str, int, int], object]:
    return lambda desc, total, initial: tqdm(total=total, initial=initial, desc=f"{item.id} {desc}", unit="item")


def compute_record(
    plugins: Plugins,
    loaded: LoadedModel,
    prepared: PreparedItem,
    options: RunOptions,
    progress: Callable[[str, int, int], object] | None = None,
) -> dict[str, Any]:
    """Run the item's task (resuming from its slot's partial log) and return the record, unwritten."""
    item, slot, lens = prepared.item, prepared.slot, prepared.lens
    resumed = len(slot.done_items())
    started, t0 = _now(), time.perf_counter()
    ctx = TaskContext(
        loaded=loaded,
        lens=lens,
        config=prepared.config,
        batch_size=options.batch_size,
        data_dir=options.data_dir,
        slot=slot,
        progress=progress or _bar(item),
        plugins=plugins,
    )
    outcome = item.task.type.run(ctx)
    return {
        "item_id": item.id,
        **outcome,
        **({"lens_diagnostics": diagnostics} if (diagnostics := lens.diagnostics()) else {}),
        "provenance": {
            **environment(),
            "model": loaded.describe(),
            "lens_source": prepared.lens_source,
            "task_file": str(item.task.path),
            "batch_size": options.batch_size,
            "resumed_items": resumed,
            "started": started,
            "finished": _now(),
            "wall_time_s": round(time.perf_counter() - t0, 2),
        },
    }


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
