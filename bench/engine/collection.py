"""Run items, collected like pytest parametrization: task × lens × layer, each with a stable id.

An item's id is ``<task>[<lens>-<site>]``, e.g. ``knowledge_ablation[mlp_neurons-blocks.8.mlp.hook_post]``;
it is printed, stored in the record, and what ``-k`` expressions match against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# pytest's own -k expression language (and/or/not, parentheses, substring matching), so that
# `bench run -k` selects exactly as `pytest -k` would. It lives in a private module of pytest.
from _pytest.mark.expression import Expression

from bench.engine.taskspec import Task
from bench.errors import BenchError
from bench.plugin.registry import Plugins


@dataclass(frozen=True)
class Item:
    task: Task
    lens: str
    layer: int
    site: str

    @property
    def id(self) -> str:
        return f"{self.task.name}[{self.lens}-{self.site}]"


def resolve_layers(layers: list[int], total: int) -> list[int]:
    resolved = []
    for layer in layers:
        index = layer + total if layer < 0 else layer
        if not 0 <= index < total:
            raise BenchError(f"layer {layer} is out of range: the model has {total} layers (0..{total - 1}).")
        resolved.append(index)
    return resolved


def collect(
    plugins: Plugins,
    tasks: list[Task],
    lenses: list[str],
    layers: list[int] | None,
    total: int,
    lens_options: Mapping[str, Any] | None = None,
) -> list[Item]:
    """task × lens × layer. Layers: the run's, else those the lens's options pin it to (an SAE
    named without {layer}), else the task's."""
    items = []
    for task in tasks:
        for lens in lenses:
            spec = plugins.lenses.get(lens)
            pinned = spec.pinned_layers(lens_options or {}) if spec.pinned_layers else None
            for layer in resolve_layers(layers or pinned or list(task.config.layers), total):
                items.append(Item(task, lens, layer, spec.default_site.format(layer=layer)))
    return items


def select(items: list[Item], expression: str | None) -> list[Item]:
    """Items whose id matches a pytest-style -k expression (case-insensitive substrings)."""
    if not expression:
        return items
    try:
        compiled = Expression.compile(expression)
    except SyntaxError as err:
        raise BenchError(f"-k {expression!r} is not a valid expression: {err}") from None

    def matches(item: Item) -> bool:
        return compiled.evaluate(lambda name, **_kwargs: name.lower() in item.id.lower())

    return [item for item in items if matches(item)]
