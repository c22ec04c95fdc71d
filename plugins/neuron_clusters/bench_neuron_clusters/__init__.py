"""lens-bench lens: clustered neuron embeddings (neuron-embeddings paper, section 4).

Each MLP neuron's dataset examples (corpus positions at >= 75 % of its maximum, the first
100) are embedded as ``[h ⊙ w_gate ; h ⊙ w_up]`` (h: the MLP's normalized input) and
clustered (cosine, average linkage, cut at 0.5). A unit is a (neuron, cluster) pair: on a
token, unit (j, c) carries neuron j's activation when the token's embedding for j is
nearest to cluster c's centroid (by cosine) and within the threshold, and 0 otherwise.
Ablating (j, c) zeroes neuron j on exactly those tokens; tokens no cluster claims keep the
neuron's activation (as an SAE's error term does).

Written as any third-party lens would be: only the public ``bench`` API, found through the
``lens_bench`` entry-point group.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bench import hookimpl
from bench.errors import BenchError
from bench.model.activations import ActivationSpec, collect
from bench.model.lens import Lens, RefitData
from bench.model.loading import LoadedModel
from bench.model.neuron_embeddings import cluster, dataset_examples, embed
from bench.model.sites import Site, neuron_input_weights
from bench.paths import cache_dir, data_dir
from bench.plugin.specs import LensSpec


@dataclass(frozen=True)
class ClusterSettings:
    share: float = 0.75  # dataset examples: activation >= share x the neuron's max
    examples: int = 100  # the first this many, in corpus order
    threshold: float = 0.5  # cosine distance cut, and the radius within which a token is assigned
    max_tokens: int = 100_000  # the shared activation pass (the interpretability task's)


@dataclass(frozen=True)
class ClusterTable:
    neuron: np.ndarray  # [n_units] the neuron of each unit
    cluster: np.ndarray  # [n_units] its cluster index within the neuron
    centroids: np.ndarray  # [n_units, rows, d] the cluster centroid in neuron-embedding space


def fit_clusters(loaded: LoadedModel, layer: int, settings: ClusterSettings) -> ClusterTable:
    """Cluster every neuron of a layer over the shared corpus pass (cached on disk)."""
    spec = ActivationSpec("train", 128, settings.max_tokens)
    post, normalized = f"blocks.{layer}.mlp.hook_post", f"blocks.{layer}.ln2.hook_normalized"
    key = hashlib.sha256(json.dumps([spec.key(loaded), layer, settings.__dict__]).encode()).hexdigest()[:16]
    path = cache_dir() / "neuron_clusters" / f"{key}.npz"
    if path.exists():
        with np.load(path) as saved:
            return ClusterTable(saved["neuron"], saved["cluster"], saved["centroids"])
    acts = collect(loaded, [post, normalized], spec, data_dir())
    neuron_acts, inputs = np.asarray(acts[post], dtype=np.float32), acts[normalized]
    weights = neuron_input_weights(loaded.model, layer).float().cpu().numpy()
    neurons, clusters, centroids = [], [], []
    for j in tqdm(range(neuron_acts.shape[1]), desc=f"clustering layer {layer} neurons", unit="neuron"):
        rows = dataset_examples(neuron_acts[:, j], settings.share, settings.examples)
        if rows.size == 0:
            continue  # never active on the corpus: no unit
        points = embed(np.asarray(inputs[rows], dtype=np.float32), weights[j])
        found = cluster(points, settings.threshold)
        for c, centroid in enumerate(found.centroids(points)):
            neurons.append(j)
            clusters.append(c)
            centroids.append(centroid.reshape(weights.shape[1], -1))
    table = ClusterTable(np.array(neurons), np.array(clusters), np.stack(centroids).astype(np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, neuron=table.neuron, cluster=table.cluster, centroids=table.centroids)
    tmp.replace(path)
    return table


class NeuronClusters(Lens):
    def __init__(
        self,
        site: str,
        table: ClusterTable,
        weights: torch.Tensor,
        n_neurons: int,
        threshold: float,
        settings: ClusterSettings | None = None,  # what it was fitted with, to refit it the same way
    ):
        layer = Site.parse(site).layer
        self.site, self.reads = site, (f"blocks.{layer}.ln2.hook_normalized",)
        self.table, self.n_neurons, self.threshold = table, n_neurons, threshold
        self.settings = settings or ClusterSettings(threshold=threshold)
        # on the model's device (the weights'); encode() also reads activations cached on the CPU
        self.neuron = torch.from_numpy(table.neuron).long().to(weights.device)
        w = weights[self.neuron]  # [units, rows, d]
        self.unit_weights = w
        mu = torch.from_numpy(table.centroids).to(weights.device)
        # cos(h ⊙ w, mu) over the concatenated rows = h·Σ_r(w_r ⊙ mu_r) / (sqrt(h²·Σ_r w_r²) · |mu|)
        self.numerator = (w * mu).sum(1)  # [units, d]
        self.norm_weights = (w * w).sum(1)  # [units, d]
        self.mu_norm = mu.flatten(1).norm(dim=1)  # [units]

    @property
    def n_units(self) -> int:
        return len(self.neuron)

    def assigned(self, h: torch.Tensor) -> torch.Tensor:
        """[..., units] bool: the token's embedding for the unit's neuron is nearest to the unit's centroid."""
        h = h.float()
        numerator, norm_weights, mu_norm = (t.to(h.device) for t in (self.numerator, self.norm_weights, self.mu_norm))
        cos = (h @ numerator.T) / ((h * h) @ norm_weights.T).sqrt().mul(mu_norm).clamp_min(1e-12)
        index = self.neuron.to(h.device).expand(*cos.shape[:-1], -1)
        best = torch.full((*cos.shape[:-1], self.n_neurons), -2.0, device=h.device).scatter_reduce(
            -1, index, cos, "amax"
        )
        return (cos >= best.gather(-1, index)) & (1 - cos <= self.threshold)

    def encode(self, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        post = acts[self.site]
        on = self.assigned(acts[self.reads[0]]).to(post.dtype)
        return post.gather(-1, self.neuron.to(post.device).expand(*post.shape[:-1], -1)) * on

    def patch(self, acts: Mapping[str, torch.Tensor], units: torch.Tensor, new_units: torch.Tensor) -> torch.Tensor:
        post = acts[self.site]
        index = self.neuron.to(post.device).expand(*post.shape[:-1], -1)
        return post + torch.zeros_like(post).scatter_add(-1, index, (new_units - units).to(post.dtype))

    def input_weights(self, model: torch.nn.Module) -> tuple[str, torch.Tensor]:
        """Each unit reads the MLP's normalized input through its neuron's gate and up rows."""
        return self.reads[0], self.unit_weights

    def config(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.table.centroids.tobytes() + self.table.neuron.tobytes()).hexdigest()
        return {"clusters_sha256": digest, "threshold": self.threshold, "neurons": self.n_neurons}

    def refit(self, loaded: LoadedModel, data: RefitData) -> Lens:
        """Clustered again from `loaded`'s neuron embeddings over the same corpus (cached by the weights)."""
        return _build(loaded, self.site, self.settings.__dict__)


def _build(loaded: LoadedModel, site: str, options: Mapping[str, Any]) -> Lens:
    parsed = Site.parse(site)
    if parsed.hook != "mlp.hook_post":
        raise BenchError(f"neuron_clusters splits MLP neurons (blocks.L.mlp.hook_post), not {site!r}.")
    known = set(ClusterSettings.__dataclass_fields__)
    if set(options) - known:
        raise BenchError(f"neuron_clusters options are {sorted(known)}, got {sorted(options)}.")
    settings = ClusterSettings(**{k: type(getattr(ClusterSettings, k))(v) for k, v in options.items()})
    table = fit_clusters(loaded, parsed.layer, settings)
    weights = neuron_input_weights(loaded.model, parsed.layer).float()
    return NeuronClusters(site, table, weights, weights.shape[0], settings.threshold, settings)


@hookimpl
def bench_lenses() -> list[LensSpec]:
    return [
        LensSpec(
            name="neuron_clusters",
            description="MLP neurons split by the clusters of their neuron embeddings: units are (neuron, cluster).",
            default_site="blocks.{layer}.mlp.hook_post",
            build=_build,
        )
    ]
