"""Plugin discovery: one pluggy manager, entry points, and name -> object registries."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from bench.errors import BenchError
from bench.plugin import hookspecs
from bench.plugin.specs import LensSpec, TaskType

if TYPE_CHECKING:
    from bench.tasks.interpretability.judges import JudgeSpec
    from bench.tasks.privacy_erasure.methods import ErasureMethod

# Comma-separated plugin names; when set, only these entry points load (keeps runs hermetic).
PLUGINS_ENV = "LENS_BENCH_PLUGINS"
BUILTIN_PLUGIN = "bench.plugin.builtin"


T = TypeVar("T")


@dataclass(frozen=True)
class Registered(Generic[T]):
    name: str
    obj: T
    source: str  # "built-in" or "<distribution> <version>"


class Registry(Generic[T]):
    """Everything one collecting hook returned, by name, with the plugin each came from."""

    def __init__(self, kind: str, entries: list[Registered[T]]):
        self.kind = kind
        self._entries: dict[str, Registered[T]] = {}
        for entry in entries:
            if entry.name in self._entries:
                raise BenchError(
                    f"{kind} {entry.name!r} is registered twice ({self._entries[entry.name].source} and "
                    f"{entry.source}); uninstall one of the two packages."
                )
            self._entries[entry.name] = entry

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Registered[T]:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise BenchError(
                f"unknown {self.kind} {name!r}. Known: {known}. `bench list` shows them; "
                f"a {self.kind} from another package appears once that package is installed."
            )
        return self._entries[name]

    def by_name(self) -> dict[str, T]:
        return {entry.name: entry.obj for entry in self}  # sorted by name, as iteration is

    def __iter__(self) -> Iterator[Registered[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __contains__(self, name: object) -> bool:
        return name in self._entries


class Plugins:
    """The loaded plugin manager and the registries built from it."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.lenses: Registry[LensSpec] = self._collect("lens", "bench_lenses")
        self.task_types: Registry[TaskType] = self._collect("task type", "bench_task_types")
        self.judges: Registry[JudgeSpec] = self._collect("judge", "bench_judges")
        self.erasure_methods: Registry[type[ErasureMethod]] = self._collect("erasure method", "bench_erasure_methods")

    def task_dirs(self) -> list[Path]:
        return [Path(d) for dirs in self.pm.hook.bench_task_dirs() for d in dirs]

    def _collect(self, kind: str, hook_name: str) -> Registry[Any]:
        sources = {plugin: f"{dist.project_name} {dist.version}" for plugin, dist in self.pm.list_plugin_distinfo()}
        entries = []
        # Called per implementation (not through pm.hook) so each object keeps the plugin it came from.
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            for obj in impl.function():
                entries.append(Registered(obj.name, obj, sources.get(impl.plugin, "built-in")))
        return Registry(kind, entries)


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    # the harness's own task types, registered like pytest's default plugins: by module name, so the
    # registry does not import the tasks (which receive the registry through their context)
    pm.register(importlib.import_module(BUILTIN_PLUGIN), name=BUILTIN_PLUGIN)
    wanted = os.environ.get(PLUGINS_ENV)
    if wanted is None:
        pm.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP)
    else:
        for name in filter(None, (n.strip() for n in wanted.split(","))):
            pm.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP, name=name)
    return pm


@cache
def plugins() -> Plugins:
    return Plugins(make_plugin_manager())
