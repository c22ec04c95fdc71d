"""Collected items spread over Ray workers (`bench run ... --executor ray`), an optional extra.

The driver (this process) does what must happen once: it loads the model, builds every item's
lens (loading and checking SAEs, fitting bases: the fits land in the cache the workers read), and
reuses finished records as a local run does. Each remaining item goes to a Ray actor that loads
the model once and computes items into a scratch folder of its own, streaming back each batch of
finished facts and then the record; the driver appends the facts to the item's partial log and
writes the record atomically, so workers never write into the output folder, and an interrupted
run resumes from the facts already done, as a local one does. A failed item is reported and the
others finish; a worker that dies is replaced, and leaves no record behind.

Caches are files under $LENS_BENCH_CACHE: what lenses fit is in it before any worker starts, and
the known-fact screen (which runs inside a task) is computed by one worker while the others wait
on its file lock. On a cluster, point $LENS_BENCH_CACHE at a shared filesystem.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bench.engine.collection import Item
from bench.engine.records import RecordSlot
from bench.engine.runner import (
    CellResult,
    PreparedItem,
    RunOptions,
    compute_record,
    prepare_item,
    reusable,
    waiting,
    write_record,
)
from bench.engine.taskspec import TaskConfig
from bench.errors import BenchError
from bench.model.loading import load_model
from bench.paths import ALLOW_POOR_SAE_ENV, CACHE_ENV, DATA_ENV

# what a worker must see as the driver does: where caches and data are, and whether poor SAEs run
_FORWARDED_ENV = (CACHE_ENV, DATA_ENV, ALLOW_POOR_SAE_ENV)


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # an existing cluster ("auto", "ray://host:10001"); None starts a local one
    workers: int = 2
    num_cpus: float = 1
    num_gpus: float = 0


@dataclass(frozen=True)
class ItemFailed:
    """An item whose computation raised on its worker, or whose worker died."""

    message: str


class _StreamedSlot(RecordSlot):
    """A worker's scratch slot that also hands every batch of finished items to ``on_items``."""

    def __init__(self, slot: RecordSlot, on_items: Callable[[list[dict[str, Any]]], None]):
        super().__init__(slot.root, slot.identity)
        self.on_items = on_items

    def log_items(self, items: list[dict[str, Any]]) -> None:
        super().log_items(items)
        self.on_items(items)


class _Worker:
    """One model loaded once; computes items into its own scratch folder. ``run`` streams each
    batch of finished items, ("items", rows), as the task logs them, then ("record", record): the
    driver keeps the items in the item's partial log, so an interrupted run resumes from them."""

    def __init__(self, model_id: str, device: str, dtype: str):
        self.model_id, self.device, self.dtype = model_id, device, dtype
        self.loaded: Any = None
        self.scratch = Path(tempfile.mkdtemp(prefix="lens-bench-worker-"))

    def run(
        self,
        item: Item,
        config: TaskConfig,
        options: RunOptions,
        record_id: str,
        done: list[dict[str, Any]],
        env: dict[str, str],
    ) -> Iterator[tuple[str, Any]]:
        from bench.plugin.registry import plugins  # imported in the worker's process

        os.environ.update(env)
        if self.loaded is None:
            self.loaded = load_model(self.model_id, self.device, self.dtype)
        registry = plugins()
        prepared = prepare_item(registry, self.loaded, item, config, replace(options, output_dir=self.scratch))
        if prepared.slot.id != record_id:
            raise BenchError(
                f"{item.id}: the worker built a different lens or model than the driver (record "
                f"{prepared.slot.id}, driver {record_id}); install the same lens-bench, plugins and SAEs on every node."
            )
        prepared.slot.log_path.unlink(missing_ok=True)
        if done:  # the items an earlier run finished, from the driver's partial log
            prepared.slot.log_items(done)
        # the task runs in a thread and logs items through a callback; this generator yields them
        events: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        prepared.slot = _StreamedSlot(prepared.slot, lambda rows: events.put(("items", rows)))
        outcome: dict[str, Any] = {}

        def compute() -> None:
            try:
                outcome["record"] = compute_record(registry, self.loaded, prepared, options, progress=_silent)
            except BaseException as err:  # re-raised below, in the generator Ray runs
                outcome["error"] = err
            finally:
                events.put(None)

        threading.Thread(target=compute, daemon=True).start()
        try:
            while (event := events.get()) is not None:
                yield event
        finally:
            prepared.slot.log_path.unlink(missing_ok=True)
        if "error" in outcome:
            raise outcome["error"]
        yield "record", outcome["record"]


def _silent(desc: str, total: int, initial: int) -> object:
    return tqdm(total=total, initial=initial, disable=True)


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BenchError(
            "--executor ray needs Ray: pip install 'lens-bench[ray]' (or pip install ray); "
            "--executor local runs everything in this process."
        ) from None
    return ray


def run_on_ray(
    plugins: Any,
    loaded: Any,
    model: tuple[str, str, str],
    items: Sequence[tuple[Item, TaskConfig]],
    options: RunOptions,
    ray_options: RayOptions,
) -> Iterator[tuple[Item, CellResult | ItemFailed]]:
    """Each item's record (reused, or computed on a worker and written here) or its failure,
    in the order they finish."""
    ray = require_ray()
    pending: list[PreparedItem] = []
    for item, config in items:
        prepared = prepare_item(plugins, loaded, item, config, options)
        with prepared.slot.locked(on_wait=lambda item=item: waiting(item)):
            cached = reusable(prepared, options)
        if cached is not None:
            yield item, cached
        else:
            pending.append(prepared)
    if not pending:
        return
    started_here = not ray.is_initialized() and ray_options.address is None
    if not ray.is_initialized():
        ray.init(address=ray_options.address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield from _dispatch(ray, model, pending, options, ray_options)
    finally:
        if started_here:
            ray.shutdown()


def _dispatch(
    ray: Any, model: tuple[str, str, str], pending: list[PreparedItem], options: RunOptions, ray_options: RayOptions
) -> Iterator[tuple[Item, CellResult | ItemFailed]]:
    actor = ray.remote(_Worker).options(
        num_cpus=ray_options.num_cpus, num_gpus=ray_options.num_gpus, max_restarts=0, max_task_retries=0
    )
    workers = [actor.remote(*model) for _ in range(min(ray_options.workers, len(pending)))]
    env = {name: os.environ[name] for name in _FORWARDED_ENV if name in os.environ}
    queue_ = list(reversed(pending))
    in_flight: dict[Any, tuple[Any, PreparedItem]] = {}

    def submit(worker: Any) -> None:
        prepared = queue_.pop()
        slot = prepared.slot
        events = worker.run.options(num_returns="streaming").remote(
            prepared.item, prepared.config, options, slot.id, slot.done_items(), env
        )
        in_flight[events] = (worker, prepared)

    for worker in workers:
        if queue_:
            submit(worker)
    with tqdm(total=len(pending), desc=f"items on {len(workers)} Ray workers", unit="item") as bar:
        while in_flight:
            (events,), _ = ray.wait(list(in_flight), num_returns=1)
            worker, prepared = in_flight[events]
            outcome: CellResult | ItemFailed | None = None
            try:
                kind, payload = ray.get(next(events))
            except ray.exceptions.RayActorError as err:
                outcome = ItemFailed(_message(err))
                worker = actor.remote(*model)  # a dead worker is replaced, never handed another item
            except ray.exceptions.RayTaskError as err:
                outcome = ItemFailed(_message(err))
            else:
                if kind == "items":  # finished items of a running item: kept for a resumed run
                    prepared.slot.log_items(payload)
                    continue
                with prepared.slot.locked(on_wait=lambda item=prepared.item: waiting(item)):
                    outcome = write_record(prepared, payload)
            del in_flight[events]
            bar.update(1)
            if queue_:
                submit(worker)
            yield prepared.item, outcome


def _message(err: Exception) -> str:
    """The worker's own error message (a BenchError's text), or what happened to the worker."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BenchError):
        return str(cause)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return f"the worker died ({type(err).__name__}); nothing of the item was kept, rerun to compute it"
