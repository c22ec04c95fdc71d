"""The whole plugin contract of lens-bench.

A plugin is any module or object with functions named like these hooks and marked with
``bench.hookimpl``. Third-party packages expose one through the ``lens_bench`` entry-point
group; the built-in lenses under ``plugins/`` are registered exactly the same way.

Extra metrics are meant to arrive the same way: one more collecting hook here and one
more ``Registry`` in ``bench.plugin.registry``.

Every hook here *collects*: it returns a list, and the harness merges the lists of all
plugins. A name registered twice is an error, so two plugins can never silently shadow
each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from bench.plugin.specs import LensSpec, TaskType
    from bench.tasks.interpretability.judges import JudgeSpec
    from bench.tasks.privacy_erasure.methods import ErasureMethod

PROJECT = "lens_bench"
ENTRY_POINT_GROUP = "lens_bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def bench_lenses() -> list[LensSpec]:
    """Lenses (unit providers) this plugin offers.

    Each ``LensSpec`` names the lens, says in one line what its units are, gives the
    default site (a TransformerLens-style template such as ``blocks.{layer}.mlp.hook_post``)
    and a ``build(model, site, options)`` callable that returns a ``bench.model.lens.Lens``.
    """


@hookspec
def bench_task_types() -> list[TaskType]:
    """Task implementations this plugin offers.

    A task type is the Python behind a task YAML's ``type:`` field: a pydantic config
    model (which validates the YAML) and a ``run`` callable. Adding a task that an
    existing type can express needs YAML only.
    """


@hookspec
def bench_task_dirs() -> list[Path]:
    """Folders holding task YAML files (``*.yaml``) this plugin ships."""


@hookspec
def bench_judges() -> list[JudgeSpec]:
    """Judges for the interpretability score: an explainer and a simulator
    (``bench.tasks.interpretability.judges.Judge``).

    The judge's name and version go into every interpretability record, and the
    leaderboard never puts two judges' scores in one column.
    """


@hookspec
def bench_erasure_methods() -> list[type[ErasureMethod]]:
    """Erasure methods for the privacy task (``bench.tasks.privacy_erasure.methods.ErasureMethod`` subclasses).

    A method says which lenses it can edit; a lens's plugin can ship a method made for it.
    """
