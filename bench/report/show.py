"""`bench show neuron`: one MLP neuron's dataset examples, their clusters and a dendrogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.model.activations import ActivationSpec, collect, token_ids
from bench.model.loading import load_model
from bench.model.neuron_embeddings import cluster, cluster_metrics, dataset_examples, embed
from bench.model.sites import neuron_input_weights
from bench.report.plots import dendrogram_plot


def _context(texts: list[str], row: int, per_context: int, width: int = 8) -> str:
    """The tokens before `row` in its context, the activating token in brackets."""
    start = max(row - width, row - row % per_context)
    return ("".join(texts[start:row]) + f"[{texts[row]}]").replace("\n", "⏎")


def show_neuron(
    model_id: str, layer: int, index: int, out: Path, data_dir: Path | None, threshold: float = 0.5
) -> tuple[Path, str]:
    """Write the dendrogram PNG and return it with a text summary of the clusters."""
    loaded = load_model(model_id)
    spec = ActivationSpec("train", 128, 100_000)
    post, normalized = f"blocks.{layer}.mlp.hook_post", f"blocks.{layer}.ln2.hook_normalized"
    acts = collect(loaded, [post, normalized], spec, data_dir)
    if not 0 <= index < acts[post].shape[1]:
        raise BenchError(f"neuron {index} is out of range: layer {layer} has {acts[post].shape[1]} neurons.")
    rows = dataset_examples(np.asarray(acts[post][:, index], dtype=np.float32))
    if len(rows) < 2:
        raise BenchError(f"neuron {layer}/{index} has fewer than two dataset examples on the corpus.")
    weights = neuron_input_weights(loaded.model, layer)[index].float().cpu().numpy()
    points = embed(np.asarray(acts[normalized][rows], dtype=np.float32), weights)
    found = cluster(points, threshold)
    ids = token_ids(loaded, spec)
    vocab = {int(i): loaded.tokenizer.decode([int(i)]) for i in np.unique(ids[max(0, rows[0] - 8) : rows[-1] + 1])}
    texts = [vocab.get(int(i), "") for i in ids[: rows[-1] + 1]]
    contexts = [_context(texts, int(r), spec.context_size - 1) for r in rows]
    labels = [f"c{c} {text[-60:]}" for c, text in zip(found.labels, contexts, strict=True)]
    path = dendrogram_plot(found.linkage, labels, threshold, f"layer {layer} neuron {index}", out)
    metrics = cluster_metrics(found)
    lines = [f"layer {layer} neuron {index}: {len(rows)} dataset examples, {found.n_clusters} clusters; {metrics}"]
    for c in range(found.n_clusters):
        members = [contexts[i] for i in np.flatnonzero(found.labels == c)]
        lines.append(f"cluster {c} ({len(members)}): " + " | ".join(members[:5]))
    return path, "\n".join(lines)
