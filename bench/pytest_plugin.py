"""pytest plugin (entry point `pytest11`): task YAML files as test items, and fixtures for users' tests.

Opt in to collecting tasks with `pytest --bench-tasks tasks/` (or `bench_collect_tasks = true`
in the ini file): every `*.yaml` task becomes a file of items, one per lens × layer, that
runs the task and fails when one of its expectations fails. The fixtures (`bench_model`,
`bench_lens`, `bench_task`, `bench_run`, `bench_results_dir`) serve hand-written
`test_*.py` files, with the model loaded once per session.

Imports of torch and the harness happen inside the hooks, so that pytest runs that use
none of this do not pay for them.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lens-bench")
    group.addoption("--bench-tasks", action="store_true", help="collect task YAML files as test items")
    group.addoption("--bench-model", default=None, help="model for task items and fixtures (default: embedded)")
    group.addoption("--bench-units", default="mlp_neurons", help="lenses for collected task items, comma-separated")
    group.addoption("--bench-layers", default=None, help="layers for collected task items (default: the task's)")
    group.addoption("--bench-limit", type=int, default=None, help="items (facts) per task run")
    group.addoption("--bench-data-dir", default=None, help="data directory (default: as `bench run`)")
    group.addoption("--bench-output-dir", default=None, help="where records go (default: a session temp dir)")
    group.addoption(
        "--bench-executor", default="local", choices=["local", "ray"], help="ray: task items computed on Ray workers"
    )
    group.addoption("--bench-workers", type=int, default=2, help="Ray workers (--bench-executor ray)")
    parser.addini("bench_collect_tasks", "collect task YAML files as test items", type="bool", default=False)


def _opted_in(config: pytest.Config) -> bool:
    return bool(config.getoption("--bench-tasks") or config.getini("bench_collect_tasks"))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".yaml" and _opted_in(parent.config):
        return TaskFile.from_parent(parent, path=file_path)
    return None


def _session(config: pytest.Config) -> Any:
    """The run session of this pytest session (bench.engine.session.Session, as `bench run` uses),
    made on first use; the model loads once, when an item or fixture first needs it."""
    if not hasattr(config, "_bench_session"):
        from bench.engine.runner import RunOptions
        from bench.engine.session import Session
        from bench.model.loading import DEFAULT_MODEL
        from bench.paths import DATA_ENV, data_dir
        from bench.plugin.registry import plugins

        out = config.getoption("--bench-output-dir")
        layers = config.getoption("--bench-layers")
        options = RunOptions(
            layers=[int(x) for x in layers.split(",")] if layers else None,
            limit=config.getoption("--bench-limit"),
            output_dir=Path(out) if out else config._tmp_path_factory.getbasetemp() / "bench-results",  # type: ignore[attr-defined]
            data_dir=data_dir(config.getoption("--bench-data-dir")),
        )
        if options.data_dir is not None:  # plugins (an SAE lens's quality gate) read the same folder, as in `bench run`
            os.environ[DATA_ENV] = str(options.data_dir)
        config._bench_session = Session(plugins(), options, config.getoption("--bench-model") or DEFAULT_MODEL)  # type: ignore[attr-defined]
    return config._bench_session  # type: ignore[attr-defined]


class TaskFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from bench.engine.taskspec import parse_task
        from bench.errors import BenchError

        session = _session(self.config)
        try:
            task = parse_task(session.plugins, self.path)
            lenses = self.config.getoption("--bench-units").split(",")
            items = session.collect([task], lenses, session.options.layers)
        except BenchError as err:
            raise self.CollectError(str(err)) from None
        for item in items:
            yield TaskItem.from_parent(self, name=item.id, bench_item=item, collected=items)


class TaskItem(pytest.Item):
    def __init__(self, *, bench_item: Any, collected: list[Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.bench_item = bench_item
        self.collected = collected  # the file's items: the task's config names all their layers

    def runtest(self) -> None:
        session = _session(self.config)
        if self.config.getoption("--bench-executor") == "ray":
            cell = _ray_results(self)[id(self.bench_item)]
            if not hasattr(cell, "record"):  # an ItemFailed
                raise ItemFailedOnWorker(cell.message)
            results = [(self.bench_item, cell)]
        else:
            results = list(session.run([self.bench_item], self.collected))
        self.user_properties.append(("record", str(results[0][1].path)))
        failed = [o for o in session.check(results) if o.status == "failed"]
        if failed:
            raise ExpectationFailed(failed)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ItemFailedOnWorker):
            return f"failed on a Ray worker: {excinfo.value}"
        if isinstance(excinfo.value, ExpectationFailed):
            return "\n".join(
                f"expectation failed: {o.expectation} [{o.subject}: {o.detail}]" for o in excinfo.value.args[0]
            )
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"bench task item: {self.bench_item.id}"


class ExpectationFailed(Exception):
    """A task's expectation did not hold for this item."""


class ItemFailedOnWorker(Exception):
    """The item's computation failed on its Ray worker."""


def _ray_results(item: TaskItem) -> dict[int, Any]:
    """Every task item of this pytest session computed at once on Ray (on the first item's call),
    keyed by the id of its bench item; each test item then reads its own."""
    config = item.config
    if not hasattr(config, "_bench_ray_results"):
        from bench.engine.ray_executor import RayOptions

        session = _session(config)
        task_items = [i for i in item.session.items if isinstance(i, TaskItem)]
        configs = [pair for i in task_items for pair in session.configs([i.bench_item], i.collected)]
        ray_options = RayOptions(workers=config.getoption("--bench-workers"))
        config._bench_ray_results = {id(it): cell for it, cell in session.run_on_ray(configs, ray_options)}  # type: ignore[attr-defined]
    return config._bench_ray_results  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def bench_results_dir(pytestconfig: pytest.Config) -> Path:
    return _session(pytestconfig).options.output_dir


@pytest.fixture(scope="session")
def bench_model(pytestconfig: pytest.Config) -> Any:
    """The LoadedModel of --bench-model (default: the embedded model), loaded once per session."""
    return _session(pytestconfig).loaded


@pytest.fixture
def bench_task(pytestconfig: pytest.Config) -> Callable[[str], Any]:
    """bench_task(name_or_path) -> Task, validated against its type."""
    from bench.engine.taskspec import load_task

    return lambda name: load_task(_session(pytestconfig).plugins, name)


@pytest.fixture
def bench_lens(pytestconfig: pytest.Config, bench_model: Any) -> Callable[..., Any]:
    """bench_lens(name, layer, **options) -> Lens at the lens's default site for that layer."""

    def build(name: str, layer: int, **options: Any) -> Any:
        spec = _session(pytestconfig).plugins.lenses.get(name)
        return spec.build(bench_model, spec.default_site.format(layer=layer), options)

    return build


@pytest.fixture
def bench_run(pytestconfig: pytest.Config, bench_task: Callable[[str], Any]) -> Callable[..., dict]:
    """bench_run(task, lens, layer, limit=None) -> the finished record (reused if already on disk)."""
    import dataclasses

    def run(task_name: str, lens: str, layer: int, limit: int | None = None) -> dict:
        session = _session(pytestconfig)
        if limit is not None:  # this call only: a copy of the session with another limit
            session = copy.copy(session)
            session.options = dataclasses.replace(session.options, limit=limit)
        item = session.item(bench_task(task_name), lens, layer)
        return next(session.run([item]))[1].record

    return run
