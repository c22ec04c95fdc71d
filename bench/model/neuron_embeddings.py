"""Neuron embeddings and the clustering of a unit's dataset examples
("Tackling Polysemanticity with Neuron Embeddings", Foote 2024, sections 3 and 4; docs/methods/polysemanticity.md).

- Dataset examples of a unit: corpus positions whose activation is at least ``share`` (0.75)
  of the unit's maximum over the corpus, the first ``limit`` (100) in corpus order.
- Neuron embedding of an example: the input the unit reads at that token times the unit's
  input weights, elementwise; gated MLPs concatenate the gate and up products.
- Clustering: agglomerative, cosine distance, average linkage, cut at distance 0.5, with
  scipy (the full linkage matrix is kept, so a dendrogram can be drawn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform


def dataset_examples(acts: np.ndarray, share: float = 0.75, limit: int = 100) -> np.ndarray:
    """Indices (corpus order) of the first `limit` positions with activation >= share x max; none if max <= 0."""
    peak = float(acts.max()) if acts.size else 0.0
    if peak <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(acts >= share * peak)[:limit]


def effective_input_dims(weights: np.ndarray) -> float:
    """Participation ratio (Σw²)² / Σw⁴ of a unit's input weights: how many input coordinates
    its embeddings x ⊙ w effectively keep. Fewer make any two embeddings alike whatever the
    inputs, so distances are read beside it (the NE loss can lower them this way)."""
    w2 = np.square(weights, dtype=np.float64).ravel()
    return float(w2.sum() ** 2 / np.square(w2).sum())


def embed(inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[n, rows * d]: each input [n, d] times each row of the unit's input weights [rows, d]."""
    return (inputs[:, None, :] * weights[None, :, :]).reshape(len(inputs), -1)


@dataclass(frozen=True)
class Clustering:
    linkage: np.ndarray  # scipy linkage matrix [n - 1, 4]; empty for fewer than 2 points
    labels: np.ndarray  # cluster of each point, 0 .. n_clusters - 1
    distances: np.ndarray  # condensed pairwise cosine distances

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0

    def centroids(self, points: np.ndarray) -> np.ndarray:
        return np.stack([points[self.labels == c].mean(0) for c in range(self.n_clusters)])


def cluster(points: np.ndarray, threshold: float = 0.5) -> Clustering:
    if len(points) < 2:
        return Clustering(np.zeros((0, 4)), np.zeros(len(points), dtype=np.int64), np.zeros(0))
    distances = np.clip(pdist(points.astype(np.float64), metric="cosine"), 0.0, 2.0)
    tree = linkage(distances, method="average")
    labels = fcluster(tree, t=threshold, criterion="distance") - 1
    return Clustering(tree, labels.astype(np.int64), distances)


def cluster_metrics(clustering: Clustering) -> dict[str, float]:
    """Max and mean pairwise distance; mean distance between points of the same / different clusters.

    Intra (inter) is NaN when no pair of points shares (differs in) a cluster.
    """
    n = len(clustering.labels)
    if n < 2:
        nan = float("nan")
        return {"n_clusters": clustering.n_clusters, "max": nan, "mean": nan, "intra": nan, "inter": nan}
    square = squareform(clustering.distances)
    same = clustering.labels[:, None] == clustering.labels[None, :]
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    intra, inter = square[same & upper], square[~same & upper]
    return {
        "n_clusters": clustering.n_clusters,
        "max": float(clustering.distances.max()),
        "mean": float(clustering.distances.mean()),
        "intra": float(intra.mean()) if intra.size else float("nan"),
        "inter": float(inter.mean()) if inter.size else float("nan"),
    }
