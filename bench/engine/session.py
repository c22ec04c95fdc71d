"""One run session: the model loaded once, items collected and run, expectations checked.

The CLI (`bench run`) and the pytest plugin both drive this class, so a record computed
either way is the same record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property

from bench.engine.collection import Item, collect
from bench.engine.expectations import Outcome, evaluate
from bench.engine.ray_executor import ItemFailed, RayOptions, run_on_ray
from bench.engine.runner import CellResult, RunOptions, run_item, task_config
from bench.engine.taskspec import Task, TaskConfig
from bench.model.loading import DEFAULT_MODEL, LoadedModel, layer_count, load_model
from bench.plugin.registry import Plugins


class Session:
    def __init__(
        self,
        plugins: Plugins,
        options: RunOptions,
        model_id: str = DEFAULT_MODEL,
        device: str = "cpu",
        dtype: str = "float32",
    ):
        self.plugins = plugins
        self.options = options
        self.model_id = model_id
        self.device = device
        self.dtype = dtype

    @cached_property
    def loaded(self) -> LoadedModel:
        return load_model(self.model_id, self.device, self.dtype)

    def collect(self, tasks: Sequence[Task], lenses: Sequence[str], layers: list[int] | None = None) -> list[Item]:
        """task × lens × layer, without loading the model (its config gives the layer count)."""
        total = layer_count(self.model_id)
        return collect(self.plugins, list(tasks), list(lenses), layers, total, self.options.lens_options)

    def item(self, task: Task, lens: str, layer: int) -> Item:
        site = self.plugins.lenses.get(lens).default_site.format(layer=layer)
        return Item(task, lens, layer, site)

    def configs(self, items: Sequence[Item], collected: Sequence[Item]) -> list[tuple[Item, TaskConfig]]:
        """Each item with its task's config for this run. A task's config names every layer collected
        for it, whatever -k selected, so selection never changes a record."""
        out = []
        for item in items:
            layers = sorted({other.layer for other in collected if other.task is item.task})
            out.append((item, task_config(item.task, self.options, layers)))
        return out

    def run(self, items: Sequence[Item], collected: Sequence[Item] | None = None) -> Iterator[tuple[Item, CellResult]]:
        """Each item's record, computed in this process or reused (``collected``: default ``items``)."""
        for item, config in self.configs(items, items if collected is None else collected):
            yield item, run_item(self.plugins, self.loaded, item, config, self.options)

    def run_on_ray(
        self, configs: Sequence[tuple[Item, TaskConfig]], ray_options: RayOptions
    ) -> Iterator[tuple[Item, CellResult | ItemFailed]]:
        """Each item's record (items with their configs: ``configs()``), reused or computed on a Ray
        worker, in the order they finish; or its failure."""
        model = (self.model_id, self.device, self.dtype)
        yield from run_on_ray(self.plugins, self.loaded, model, configs, self.options, ray_options)

    @staticmethod
    def check(results: Sequence[tuple[Item, CellResult]]) -> list[Outcome]:
        """Every expectation of the tasks in ``results``, over that task's records."""
        tasks = list({id(item.task): item.task for item, _ in results}.values())  # configs hold lists: not hashable
        return [
            outcome
            for task in tasks
            for outcome in evaluate(
                task.name, list(task.config.expect), [(i, c.record) for i, c in results if i.task is task]
            )
        ]
