"""The harness's own plugin: its task types, erasure methods and the shipped task files.

Registered by bench.plugin.registry exactly like an entry-point plugin (pytest's default
plugins are the model); lenses are not here: every lens, built-in or not, comes through
entry points.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from bench.plugin.hookspecs import hookimpl
from bench.plugin.specs import TaskType
from bench.tasks.interpretability.task import TASK_TYPE as INTERPRETABILITY
from bench.tasks.knowledge_ablation.task import TASK_TYPE as KNOWLEDGE_ABLATION
from bench.tasks.monosemanticity.task import TASK_TYPE as MONOSEMANTICITY
from bench.tasks.polysemanticity.task import TASK_TYPE as POLYSEMANTICITY
from bench.tasks.privacy_erasure.methods import BUILTIN_METHODS, ErasureMethod
from bench.tasks.privacy_erasure.task import TASK_TYPE as PRIVACY_ERASURE
from bench.tasks.sparse_probing.task import TASK_TYPE as SPARSE_PROBING

# The repository's top-level tasks/ folder, shipped inside the package under this name
# (pyproject.toml maps it), so a wheel or a non-editable install finds the same files.
TASK_FILES_PACKAGE = "bench.task_files"


@hookimpl
def bench_task_types() -> list[TaskType]:
    return [
        KNOWLEDGE_ABLATION,
        MONOSEMANTICITY,
        INTERPRETABILITY,
        SPARSE_PROBING,
        POLYSEMANTICITY,
        PRIVACY_ERASURE,
    ]


@hookimpl
def bench_erasure_methods() -> list[type[ErasureMethod]]:
    return list(BUILTIN_METHODS)


def shipped_task_dir() -> Path:
    """The folder of the task files that come with lens-bench (a real folder for both a wheel
    and an editable checkout: setuptools installs package data as files)."""
    with as_file(files(TASK_FILES_PACKAGE)) as folder:
        return Path(folder)


@hookimpl
def bench_task_dirs() -> list[Path]:
    return [shipped_task_dir()]
