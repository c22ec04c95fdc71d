"""Polysemanticity from neuron embeddings (neuron-embeddings paper, sections 3-4; docs/methods/polysemanticity.md).

For every unit of a lens that has input weights (MLP neurons; SAE features, whose encoder
row is the input weight): its dataset examples over the shared corpus pass, embedded as
input ⊙ input weights and clustered (cosine, average linkage, cut at 0.5). Per unit: number
of clusters, max and mean pairwise distance, mean intra- and inter-cluster distance; and the
same clustering of the plain inputs (the paper's "pre-MLP embeddings", its Table 1), and the
number of input coordinates the unit's weights effectively read (distances depend on it).
Units with fewer than two dataset examples are counted and skipped.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from bench.engine.context import TaskContext
from bench.engine.taskspec import TaskConfig
from bench.errors import BenchError
from bench.model.activations import ActivationSpec, collect
from bench.model.lens import ReadsInputs
from bench.model.neuron_embeddings import cluster, cluster_metrics, dataset_examples, effective_input_dims, embed
from bench.plugin.specs import TaskType
from bench.stats import mean_se
from bench.tasks.facts import BootstrapConfig, Section
from bench.tasks.interpretability.task import CorpusConfig, unit_activations
from bench.tasks.polysemanticity.caveats import distance_caveats
from bench.tasks.polysemanticity.outputs import METRICS, PolysemanticityRecord

CLUSTER_MEASURES = ("n_clusters", "max", "mean", "intra", "inter")


class ExamplesConfig(Section):
    share: float = Field(0.75, gt=0, le=1, description="dataset examples: activation >= share x the unit's max")
    limit: int = Field(100, ge=2, description="the first this many, in corpus order")


class PolysemanticityConfig(TaskConfig):
    type: Literal["polysemanticity"]
    corpus: CorpusConfig = CorpusConfig()
    examples: ExamplesConfig = ExamplesConfig()
    threshold: float = Field(0.5, gt=0, lt=2, description="cosine distance at which the hierarchy is cut")
    units: int | None = Field(None, ge=1, description="a seeded sample of units; all when null")
    bootstrap: BootstrapConfig = BootstrapConfig()


def unit_row(unit: int, inputs: np.ndarray, weights: np.ndarray, threshold: float) -> dict[str, Any]:
    """Cluster metrics of one unit's examples, with neuron embeddings and with plain inputs."""
    neuron = cluster_metrics(cluster(embed(inputs, weights), threshold))
    plain = cluster_metrics(cluster(inputs, threshold))
    return {
        "id": str(unit),
        "unit": unit,
        "examples": len(inputs),
        "input_dims": effective_input_dims(weights),
        **neuron,
        **{f"{k}_plain": plain[k] for k in CLUSTER_MEASURES},
    }


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else value


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, PolysemanticityConfig)
    lens = ctx.lens
    if not isinstance(lens, ReadsInputs):
        raise BenchError(
            f"lens at {lens.site} has no input weights (input_weights()), which neuron embeddings need; "
            "polysemanticity runs on mlp_neurons and the SAE lenses."
        )
    input_site, weights = lens.input_weights(ctx.loaded.model)
    weights = weights.float().cpu().numpy()
    spec = ActivationSpec(config.corpus.name, config.corpus.context_size, config.corpus.max_tokens)
    site_acts = collect(ctx.loaded, list(dict.fromkeys([lens.site, *lens.reads, input_site])), spec, ctx.data_dir)
    inputs = site_acts[input_site]
    units = list(range(lens.n_units))
    if config.units:
        units = sorted(np.random.default_rng(config.seed).permutation(lens.n_units)[: config.units].tolist())
    done = {row["id"]: row for row in ctx.slot.done_items()}
    todo = [u for u in units if str(u) not in done]
    bar = ctx.progress("units", len(units), len(units) - len(todo))
    lens_acts = {name: site_acts[name] for name in (lens.site, *lens.reads)}
    for start in range(0, len(todo), 512):  # one pass over the cached activations per 512 units
        chunk = todo[start : start + 512]
        with torch.no_grad():
            acts = unit_activations(lens, lens_acts, chunk)
        rows = []
        for j, unit in enumerate(chunk):
            examples = dataset_examples(acts[:, j], config.examples.share, config.examples.limit)
            if len(examples) < 2:
                rows.append({"id": str(unit), "unit": unit, "examples": len(examples)})
                continue
            row = unit_row(unit, np.asarray(inputs[examples], dtype=np.float32), weights[unit], config.threshold)
            rows.append({k: _clean(v) if isinstance(v, float) else v for k, v in row.items()})
        ctx.slot.log_items(rows)
        done.update((row["id"], row) for row in rows)
        bar.update(len(rows))
    bar.close()
    scored = [done[str(u)] for u in units if "n_clusters" in done[str(u)]]
    if not scored:
        raise BenchError("no unit had two dataset examples on the corpus; raise corpus.max_tokens.")
    metrics, medians = {}, {}
    for name in (*CLUSTER_MEASURES, *(f"{m}_plain" for m in CLUSTER_MEASURES), "input_dims"):
        values = [row[name] for row in scored if row.get(name) is not None]
        if values:
            key = {"max": "max_distance", "mean": "mean_distance"}.get(name, name)
            metrics[key] = mean_se(values, config.bootstrap.resamples, config.seed)
            medians[key] = float(np.median(values))
    return {
        "metrics": metrics,
        "medians": medians,
        "input_site": input_site,
        "units_scored": len(scored),
        "units_without_examples": len(units) - len(scored),
        "items": [done[str(u)] for u in units],
    }


TASK_TYPE = TaskType(
    name="polysemanticity",
    description="Clusters of each unit's neuron-embedded dataset examples: count, spread, intra/inter.",
    config_model=PolysemanticityConfig,
    run=run,
    metrics=METRICS,
    record_model=PolysemanticityRecord,
    family="Interpretability",
    method_page="docs/methods/polysemanticity.md",
    caveats=distance_caveats,
)
