"""What the harness hands a task type's ``run``: one (model, lens, site, task) cell to compute."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from bench.engine.records import RecordSlot
from bench.engine.taskspec import TaskConfig
from bench.model.lens import Lens
from bench.model.loading import LoadedModel

if TYPE_CHECKING:
    from bench.plugin.registry import Plugins


@dataclass
class TaskContext:
    loaded: LoadedModel
    lens: Lens
    config: TaskConfig  # with the run's --limit, --seed and --layers already applied
    batch_size: int
    data_dir: Path | None
    slot: RecordSlot  # done_items() to resume from, log_items() as work finishes
    progress: Callable[[str, int, int], object]  # (description, total, initial) -> a tqdm-like bar
    plugins: Plugins  # judges, erasure methods: a task never looks up the global registry
    # Tasks skip computation whose result an edit cannot change (clean prefixes, blocks before the
    # site). False runs every pass whole: the reference path, for tests and benchmarks of the fast one.
    reuse_clean: bool = True

    @classmethod
    @contextmanager
    def outside_a_run(
        cls,
        loaded: LoadedModel,
        lens: Lens,
        config: TaskConfig,
        data_dir: Path | None,
        plugins: Plugins,
        batch_size: int = 32,
    ) -> Iterator[TaskContext]:
        """A context for a script that calls a task's parts by hand: its record slot is a fresh
        temporary folder, removed on exit, so nothing resumes from or lands among real results."""
        identity = {
            "task": {"name": type(config).__name__},
            "model": {"id": loaded.model_id},
            "lens": {"name": "script", "site": lens.site},
        }

        def progress(description: str, total: int, initial: int) -> tqdm:
            return tqdm(desc=description, total=total, initial=initial)

        with tempfile.TemporaryDirectory(prefix="lens-bench-script-") as folder:
            slot = RecordSlot(Path(folder), identity)
            yield cls(loaded, lens, config, batch_size, data_dir, slot, progress, plugins)
