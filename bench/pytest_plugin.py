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
    parser.addini("bench_collect_tasks", "collect task YAML files as test items", type="bool", default=False)


def _opted_in(config: pytest.Config) -> bool:
    return bool(config.getoption("--bench-tasks") or config.getini("bench_collect_tasks"))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".yaml" and _opted_in(parent.config):
        return TaskFile.from_parent(parent, path=file_path)
    return None


class _Session:
    """Per-session state: the model (loaded once), options, and the output folder."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self._loaded: Any = None

    @property
    def model_id(self) -> str:
        from bench.models import DEFAULT_MODEL

        return self.config.getoption("--bench-model") or DEFAULT_MODEL

    def loaded(self) -> Any:
        if self._loaded is None:
            from bench.models import load_model

            self._loaded = load_model(self.model_id)
        return self._loaded

    def options(self) -> Any:
        from bench.paths import data_dir
        from bench.runner import RunOptions

        out = self.config.getoption("--bench-output-dir")
        layers = self.config.getoption("--bench-layers")
        return RunOptions(
            layers=[int(x) for x in layers.split(",")] if layers else None,
            limit=self.config.getoption("--bench-limit"),
            output_dir=Path(out) if out else self.config._tmp_path_factory.getbasetemp() / "bench-results",  # type: ignore[attr-defined]
            data_dir=data_dir(self.config.getoption("--bench-data-dir")),
        )


def _session(config: pytest.Config) -> _Session:
    if not hasattr(config, "_bench_session"):
        config._bench_session = _Session(config)  # type: ignore[attr-defined]
    return config._bench_session  # type: ignore[attr-defined]


class TaskFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from bench.collection import collect
        from bench.errors import BenchError
        from bench.models import layer_count
        from bench.registry import plugins
        from bench.taskspec import parse_task

        state = _session(self.config)
        try:
            task = parse_task(plugins(), self.path)
            options = state.options()
            lenses = self.config.getoption("--bench-units").split(",")
            items = collect(plugins(), [task], lenses, options.layers, layer_count(state.model_id))
        except BenchError as err:
            raise self.CollectError(str(err)) from None
        layers = sorted({item.layer for item in items})
        for item in items:
            yield TaskItem.from_parent(self, name=item.id, bench_item=item, layers=layers)


class TaskItem(pytest.Item):
    def __init__(self, *, bench_item: Any, layers: list[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.bench_item = bench_item
        self.layers = layers

    def runtest(self) -> None:
        from bench.expectations import evaluate
        from bench.registry import plugins
        from bench.runner import run_item, task_config

        state = _session(self.config)
        options = state.options()
        task = self.bench_item.task
        cell = run_item(plugins(), state.loaded(), self.bench_item, task_config(task, options, self.layers), options)
        self.user_properties.append(("record", str(cell.path)))
        failed = [
            o
            for o in evaluate(task.name, list(task.config.expect), [(self.bench_item, cell.record)])
            if o.status == "failed"
        ]
        if failed:
            raise ExpectationFailed(failed)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ExpectationFailed):
            return "\n".join(
                f"expectation failed: {o.expectation} [{o.subject}: {o.detail}]" for o in excinfo.value.args[0]
            )
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"bench task item: {self.bench_item.id}"


class ExpectationFailed(Exception):
    """A task's expectation did not hold for this item."""


@pytest.fixture(scope="session")
def bench_results_dir(pytestconfig: pytest.Config) -> Path:
    return _session(pytestconfig).options().output_dir


@pytest.fixture(scope="session")
def bench_model(pytestconfig: pytest.Config) -> Any:
    """The LoadedModel of --bench-model (default: the embedded model), loaded once per session."""
    return _session(pytestconfig).loaded()


@pytest.fixture
def bench_task() -> Callable[[str], Any]:
    """bench_task(name_or_path) -> Task, validated against its type."""
    from bench.registry import plugins
    from bench.taskspec import load_task

    return lambda name: load_task(plugins(), name)


@pytest.fixture
def bench_lens(bench_model: Any) -> Callable[..., Any]:
    """bench_lens(name, layer, **options) -> Lens at the lens's default site for that layer."""
    from bench.registry import plugins

    def build(name: str, layer: int, **options: Any) -> Any:
        spec = plugins().lenses.get(name)
        return spec.build(bench_model, spec.default_site.format(layer=layer), options)

    return build


@pytest.fixture
def bench_run(pytestconfig: pytest.Config, bench_model: Any, bench_task: Callable[[str], Any]) -> Callable[..., dict]:
    """bench_run(task, lens, layer, limit=None) -> the finished record (reused if already on disk)."""
    from bench.collection import Item
    from bench.registry import plugins
    from bench.runner import run_item, task_config

    def run(task_name: str, lens: str, layer: int, limit: int | None = None) -> dict:
        options = _session(pytestconfig).options()
        if limit is not None:
            options.limit = limit
        task = bench_task(task_name)
        site = plugins().lenses.get(lens).default_site.format(layer=layer)
        return run_item(
            plugins(), bench_model, Item(task, lens, layer, site), task_config(task, options, [layer]), options
        ).record

    return run
