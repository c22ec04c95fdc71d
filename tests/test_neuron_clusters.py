"""Neuron embeddings, their clustering, and the neuron_clusters lens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_neuron_clusters import ClusterSettings, ClusterTable, NeuronClusters, fit_clusters

from bench.model.loading import LoadedModel
from bench.model.neuron_embeddings import cluster, cluster_metrics, dataset_examples, effective_input_dims, embed
from bench.model.sites import hooked, neuron_input_weights
from tests.conftest import run_cli


def test_two_planted_directions_give_two_clusters() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal([5, 0, 0, 0], 0.2, (20, 4))
    b = rng.normal([0, 0, 5, 0], 0.2, (12, 4))
    found = cluster(np.r_[a, b], threshold=0.5)
    assert found.n_clusters == 2
    assert len(set(found.labels[:20])) == 1 and len(set(found.labels[20:])) == 1
    metrics = cluster_metrics(found)
    assert metrics["intra"] < 0.05 and metrics["inter"] == pytest.approx(1.0, abs=0.05)
    assert found.linkage.shape == (31, 4)  # the whole hierarchy is kept


def test_dataset_examples_are_the_first_near_maximal_positions() -> None:
    acts = np.array([1.0, 8.0, 7.9, 2.0, 10.0, 7.5, 9.0])
    assert dataset_examples(acts, 0.75, 100).tolist() == [1, 2, 4, 5, 6]
    assert dataset_examples(acts, 0.75, 3).tolist() == [1, 2, 4]
    assert dataset_examples(-acts).size == 0


def test_embedding_multiplies_the_input_by_each_weight_row() -> None:
    inputs = np.array([[1.0, 2.0], [3.0, 4.0]])
    weights = np.array([[10.0, 0.0], [0.0, -1.0]])  # gate and up rows
    assert embed(inputs, weights).tolist() == [[10.0, 0.0, 0.0, -2.0], [30.0, 0.0, 0.0, -4.0]]


def test_effective_input_dims_counts_the_coordinates_the_weights_read() -> None:
    assert effective_input_dims(np.array([[3.0, 0.0, 0.0, 0.0]])) == pytest.approx(1.0)
    assert effective_input_dims(np.array([[1.0, -1.0], [1.0, 1.0]])) == pytest.approx(4.0)  # gate and up rows
    assert 1 < effective_input_dims(np.array([[2.0, 1.0, 0.0]])) < 2


def _lens(loaded: LoadedModel) -> NeuronClusters:
    """Neuron 0 of layer 1 with two clusters; neuron 3 with one."""
    weights = neuron_input_weights(loaded.model, 1).float()
    rows, d = weights.shape[1], weights.shape[2]
    torch.manual_seed(1)
    centroids = torch.randn(3, rows, d).numpy()
    table = ClusterTable(np.array([0, 0, 3]), np.array([0, 1, 0]), centroids)
    return NeuronClusters("blocks.1.mlp.hook_post", table, weights, weights.shape[0], threshold=1.0)


def _site_acts(loaded: LoadedModel, lens: NeuronClusters) -> dict[str, torch.Tensor]:
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str):
        return lambda t: captured.__setitem__(name, t.detach())

    ids = loaded.tokenizer("Paris is located in France . Berlin is located in", return_tensors="pt")["input_ids"]
    with torch.no_grad(), hooked(loaded.model, {n: keep(n) for n in (lens.site, *lens.reads)}):
        loaded.model(ids)
    return captured


def test_ablating_a_cluster_unit_zeroes_its_neuron_on_assigned_tokens_only(tiny_llama: LoadedModel) -> None:
    lens = _lens(tiny_llama)
    acts = _site_acts(tiny_llama, lens)
    units = lens.encode(acts)
    assigned = lens.assigned(acts[lens.reads[0]])[0]
    assert assigned[:, :2].sum(1).le(1).all()  # a token belongs to at most one cluster of a neuron
    assert assigned[:, 0].any() and (~assigned[:, 0]).any()  # the case is not trivial
    post = acts[lens.site]
    assert torch.equal(lens.patch(acts, units, units), post)  # no edit, exact
    ablated = units.clone()
    ablated[..., 0] = 0
    new = lens.patch(acts, units, ablated)[0]
    changed = (new != post[0]).nonzero().tolist()
    expected = [[t, 0] for t in assigned[:, 0].nonzero().squeeze(1).tolist() if post[0, t, 0] != 0]
    assert changed == expected
    assert (new[assigned[:, 0], 0] == 0).all()


def test_fit_and_run_on_a_tiny_model(tmp_path: Path, tiny_model_dirs, tiny_task, corpus_dir, monkeypatch) -> None:
    monkeypatch.setenv("LENS_BENCH_DATA", str(corpus_dir))
    from bench.model.loading import load_model

    loaded = load_model(str(tiny_model_dirs["llama"]))
    table = fit_clusters(loaded, 1, ClusterSettings(max_tokens=2000))
    assert len(table.neuron) >= 1 and table.centroids.shape[1:] == (2, 16)  # gate and up rows
    assert (np.diff(table.neuron) >= 0).all()
    again = fit_clusters(loaded, 1, ClusterSettings(max_tokens=2000))  # from the cache
    assert np.array_equal(again.centroids, table.centroids)
    out = tmp_path / "out"
    code = run_cli(
        tiny_model_dirs["llama"], tiny_task, corpus_dir, out, "--layers", "1", "--limit", "3",
        "--lens-option", "max_tokens=2000", units="neuron_clusters",
    )  # fmt: skip
    assert code == 0
    [record] = [json.loads(p.read_text()) for p in out.rglob("*.json")]
    assert record["lens"]["n_units"] == len(table.neuron)
    assert 0 <= record["metrics"]["delta_prob@1"]["mean"] <= 1


IS_TASK = """\
type: interpretability
description: tiny IS
judge: {name: lexical}
corpus: {context_size: 16, max_tokens: 2000}
units: {sample: 4, attributed_facts: 2}
examples: {window: 4, explain: 4, heldout_top: 2, heldout_random: 2}
data: {relations: [P17, P19], tuples_per_relation: 10}
filter: {greedy_correct: false}
attribution: {method: gradient_x_activation}
layers: [1]
bootstrap: {resamples: 20}
"""


def test_cluster_units_run_the_other_tasks_unchanged(tmp_path: Path, tiny_model_dirs, corpus_dir) -> None:
    from tests.test_monosemanticity import TASK as MONO_TASK

    with (corpus_dir / "pararel" / "patterns" / "P17.jsonl").open("a") as f:  # related prompts for monosemanticity
        for pattern in ("[X] , which is located in [Y] .", "[X] is situated in [Y] ."):
            f.write(json.dumps({"pattern": pattern}) + "\n")
    for name, text in {"mono": MONO_TASK, "is": IS_TASK}.items():
        task = tmp_path / f"{name}.yaml"
        task.write_text(text)
        out = tmp_path / name
        code = run_cli(
            tiny_model_dirs["llama"], task, corpus_dir, out, "--lens-option", "max_tokens=2000", units="neuron_clusters"
        )
        assert code == 0, name
        [record] = [json.loads(p.read_text()) for p in out.rglob("*.json")]
        assert record["lens"]["name"] == "neuron_clusters" and record["metrics"], name


POLY_TASK = """\
type: polysemanticity
description: tiny polysemanticity
corpus: {max_tokens: 2000}
layers: [1]
bootstrap: {resamples: 50}
"""


@pytest.mark.parametrize("units", ["mlp_neurons", "neuron_clusters", "random"])
def test_polysemanticity_runs_on_lenses_with_input_weights_and_refuses_others(
    tmp_path: Path, tiny_model_dirs, corpus_dir, units: str, capsys
) -> None:
    task = tmp_path / "polysemanticity.yaml"
    task.write_text(POLY_TASK)
    out = tmp_path / "out"
    code = run_cli(
        tiny_model_dirs["llama"],
        task,
        corpus_dir,
        out,
        *(["--lens-option", "max_tokens=2000"] if units == "neuron_clusters" else []),
        units=units,
    )
    if units == "random":  # random directions in the residual stream read nothing
        assert code == 2 and "has no input weights" in capsys.readouterr().err
        return
    assert code == 0
    [record] = [json.loads(p.read_text()) for p in out.rglob("*.json")]
    assert record["input_site"] == "blocks.1.ln2.hook_normalized"
    assert record["units_scored"] + record["units_without_examples"] == record["lens"]["n_units"]
    assert record["metrics"]["n_clusters"]["mean"] >= 1
    assert {"intra_plain", "intra", "input_dims"} <= set(record["medians"])
    assert 1 <= record["metrics"]["input_dims"]["mean"] <= 2 * 16  # gate and up rows of a d_model = 16 input
    if units == "mlp_neurons":  # (cluster units of this tiny model are one cluster each: no inter distance)
        assert {"inter", "inter_plain"} <= set(record["medians"])


def test_cluster_units_read_through_their_neurons_weights(tiny_llama: LoadedModel) -> None:
    lens = _lens(tiny_llama)
    site, weights = lens.input_weights(tiny_llama.model)
    assert site == "blocks.1.ln2.hook_normalized"
    assert torch.equal(weights, neuron_input_weights(tiny_llama.model, 1).float()[lens.neuron])


def test_show_neuron_writes_a_dendrogram(tmp_path: Path, tiny_model_dirs, corpus_dir, capsys) -> None:
    from bench.cli import main
    from bench.model.activations import ActivationSpec, collect
    from bench.model.loading import load_model

    loaded = load_model(str(tiny_model_dirs["llama"]))
    acts = collect(loaded, ["blocks.1.mlp.hook_post"], ActivationSpec("train", 128, 100_000), corpus_dir)
    neuron = int(np.argmax([(a >= 0.75 * a.max()).sum() for a in np.asarray(acts["blocks.1.mlp.hook_post"]).T]))
    out = tmp_path / "neuron.png"
    args = ["show", "neuron", "--model", str(tiny_model_dirs["llama"]), "--layer", "1", "--index", str(neuron)]
    assert main([*args, "--output", str(out), "--data-dir", str(corpus_dir)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "dataset examples" in text and "cluster 0" in text and "[" in text
    assert main([*args[:-1], "999", "--data-dir", str(corpus_dir)]) == 2
