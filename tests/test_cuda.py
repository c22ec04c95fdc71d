"""`--device cuda` gives the CPU's results: each task end to end on a tiny model, once with
`--device cpu` and once on the GPU, in float32 and through one cache, so that what a run fits or
trains (bases, clusters, SAEs, the injected model) is fitted once and both runs score the same lens.
Kernels differ, so values agree within a tolerance; unit choices and counts agree exactly.

CI has no GPU and skips this file; on a GPU machine: `pytest tests/test_cuda.py`.
`LENS_BENCH_TEST_DEVICE=cpu` runs the same comparisons CPU against CPU (a check of the checks)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.cli import main
from bench.model.lens import RefitData
from bench.model.loading import load_model
from bench.plugin.registry import plugins
from bench.sae.training import TrainSpec, train_saes
from tests.conftest import TINY_TASK, run_cli
from tests.test_hub_offline import _add_second_patterns, probing_task  # noqa: F401  (probing_task: the fixture)
from tests.test_monosemanticity import TASK as MONOSEMANTICITY_TASK
from tests.test_monosemanticity import _with_related_prompts
from tests.test_neuron_clusters import POLY_TASK
from tests.test_privacy_erasure import TINY_TASK as PRIVACY_TASK
from tests.test_privacy_erasure import _char_model
from tests.test_sparse_probing import ud_dir  # noqa: F401  (the fixture: UD sentences with labels)

DEVICE = os.environ.get("LENS_BENCH_TEST_DEVICE", "cuda")
needs_device = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs a CUDA device (CI has none)"
)

# where the two runs may differ: timings, the device itself, and the versions/host it ran on
VOLATILE = {"seconds", "provenance", "device", "created", "wall_s", "elapsed_s", "timing", "artifacts"}
REL, ABS = 1e-3, 1e-4
SAE_SPEC = TrainSpec(width_multiple=4, k=4, epochs=4, batch_size=64, lr=3e-3)

# the default task's controls and mean rule, small enough for the tiny corpus
ABLATION_TASK = TINY_TASK.replace("ablation: {value: zero}", "ablation: {value: mean, reference_windows: 2}").replace(
    "controls: {unrelated: 3, kl_windows: 0}", "controls: {unrelated: 3, kl_windows: 1, kl_window_tokens: 16}"
)
INTERPRETABILITY_TASK = """\
type: interpretability
description: tiny IS
judge: {name: lexical}
corpus: {context_size: 16, max_tokens: 3000}
units: {sample: 6, attributed_facts: 0, random_directions: 2}
examples: {window: 4, explain: 6, heldout_top: 4, heldout_random: 4}
layers: [1]
bootstrap: {resamples: 50}
"""


def differences(cpu: Any, other: Any, where: str = "") -> list[str]:
    """Every place two records' JSON disagree: floats beyond the tolerance, anything else not equal."""
    if isinstance(cpu, dict) and isinstance(other, dict):
        if set(cpu) != set(other):
            return [f"{where}: keys {sorted(set(cpu) ^ set(other))} in one run only"]
        return [d for key in cpu if key not in VOLATILE for d in differences(cpu[key], other[key], f"{where}.{key}")]
    if isinstance(cpu, list) and isinstance(other, list):
        if len(cpu) != len(other):
            return [f"{where}: {len(cpu)} entries on the CPU, {len(other)} on {DEVICE}"]
        return [d for i, (a, b) in enumerate(zip(cpu, other, strict=True)) for d in differences(a, b, f"{where}[{i}]")]
    if isinstance(cpu, float) or isinstance(other, float):
        if isinstance(cpu, bool | str | None) or isinstance(other, bool | str | None):
            return [] if cpu == other else [f"{where}: {cpu!r} against {other!r}"]
        if math.isnan(cpu) and math.isnan(other):
            return []
        return [] if math.isclose(cpu, other, rel_tol=REL, abs_tol=ABS) else [f"{where}: {cpu} against {other}"]
    return [] if cpu == other else [f"{where}: {cpu!r} against {other!r}"]


def records(folder: Path) -> dict[str, dict]:
    """A folder's records by lens, site and task (their file names hash the run's settings)."""
    found = [json.loads(p.read_text()) for p in folder.rglob("*.json") if p.parent.name != "scratch"]
    return {f"{r['task']['name']}/{r['lens']['name']}/{r['lens']['site']}": r for r in found if "lens" in r}


def on_both(tmp_path: Path, model: Path, task_text: str, data: Path, *extra: str, units: str = "mlp_neurons") -> int:
    """Run one task on the CPU, then on the device; assert their records agree; return how many."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    task = tmp_path / "task.yaml"
    task.write_text(task_text)
    for device in ("cpu", DEVICE):
        assert run_cli(model, task, data, tmp_path / device, "--device", device, *extra, units=units) == 0
    cpu, other = records(tmp_path / "cpu"), records(tmp_path / DEVICE)
    assert cpu and set(cpu) == set(other)
    for name in cpu:
        assert other[name]["provenance"]["model"]["device"].startswith(DEVICE.split(":")[0])
        for part in ("metrics", "items"):
            found = differences(cpu[name][part], other[name][part], f"{name}:{part}")
            assert not found, "\n".join(found[:20])
    return len(cpu)


def test_the_comparison_names_every_disagreement_and_ignores_timings() -> None:
    cpu = {"metrics": {"a": {"mean": 0.5, "n": 3}}, "seconds": 1.0, "units": [1, 2]}
    assert differences(cpu, {**cpu, "seconds": 9.0}) == []
    assert differences(cpu, {**cpu, "metrics": {"a": {"mean": 0.50001, "n": 3}}}) == []
    other = {"metrics": {"a": {"mean": 0.6, "n": 4}}, "seconds": 1.0, "units": [2, 1]}
    expected = [".metrics.a.mean: 0.5 against 0.6", ".metrics.a.n: 3 against 4"]
    assert differences(cpu, other) == [*expected, ".units[0]: 1 against 2", ".units[1]: 2 against 1"]
    assert differences(cpu, {**cpu, "units": [1]}) == [f".units: 2 entries on the CPU, 1 on {DEVICE}"]


@needs_device
def test_knowledge_ablation_on_every_fitted_and_fixed_lens(tmp_path, tiny_model_dirs, corpus_dir) -> None:
    model = tiny_model_dirs["llama"]
    assert on_both(tmp_path / "fixed", model, ABLATION_TASK, corpus_dir, units="mlp_neurons,random,pca,ica") == 4
    clusters = ("--lens-option", "max_tokens=2000")
    assert on_both(tmp_path / "clusters", model, ABLATION_TASK, corpus_dir, *clusters, units="neuron_clusters") == 1


@needs_device
def test_knowledge_ablation_with_sae_lenses(tmp_path, tiny_model_dirs, tiny_llama, corpus_dir) -> None:
    kinds = ["resid_post", "mlp_out", "attn_out"]
    train_saes(tiny_llama, kinds, [1], SAE_SPEC, corpus_dir, train_tokens=2000, heldout_tokens=500)
    n = on_both(
        tmp_path, tiny_model_dirs["llama"], ABLATION_TASK, corpus_dir, units="sae_post_mlp,sae_mlp_out,sae_attn_out"
    )
    assert n == 3


@needs_device
def test_an_sae_trained_on_the_device_runs_on_the_cpu(tmp_path, tiny_model_dirs, corpus_dir, isolated_cache) -> None:
    model = tiny_model_dirs["llama"]
    command = ["sae", "train", "--model", str(model), "--sites", "resid_post", "--layers", "1", "--device", DEVICE]
    options = ["--width", "4", "--k", "4", "--epochs", "2", "--train-tokens", "2000", "--data-dir", str(corpus_dir)]
    assert main([*command, *options]) == 0
    (card,) = [json.loads(p.read_text()) for p in isolated_cache.rglob("card.json")]
    assert card["training"]["device"] == DEVICE and math.isfinite(card["heldout"]["fraction_variance_explained"])
    task = tmp_path / "task.yaml"
    task.write_text(ABLATION_TASK)
    assert run_cli(model, task, corpus_dir, tmp_path / "out", "--device", "cpu", units="sae_post_mlp") == 0


@needs_device
def test_fitted_lenses_fit_on_the_device(tmp_path, tiny_model_dirs, corpus_dir) -> None:
    """The comparisons above fit on the CPU first; here the device run fits (bases, clusters) itself."""
    model, clusters = tiny_model_dirs["llama"], ("--lens-option", "max_tokens=2000")
    runs = [(ABLATION_TASK, "pca,ica", ()), (ABLATION_TASK, "neuron_clusters", clusters)]
    runs.append((POLY_TASK, "neuron_clusters", clusters))  # neuron embeddings: lenses with input weights
    for i, (text, units, extra) in enumerate(runs):
        task = tmp_path / f"task{i}.yaml"
        task.write_text(text)
        assert run_cli(model, task, corpus_dir, tmp_path / "out", "--device", DEVICE, *extra, units=units) == 0
    found = records(tmp_path / "out").values()
    assert len(found) == 4
    assert all(math.isfinite(m["mean"]) for r in found for m in r["metrics"].values() if m.get("mean") is not None)


@needs_device
def test_an_sae_is_fine_tuned_on_the_device(tmp_path, tiny_model_dirs, corpus_dir) -> None:
    site = "blocks.1.hook_resid_post"
    base_model = load_model(str(tiny_model_dirs["llama"]), DEVICE)
    train_saes(base_model, ["resid_post"], [1], SAE_SPEC, corpus_dir, DEVICE, train_tokens=2000, heldout_tokens=500)
    changed = base_model.model.cpu()
    with torch.no_grad():
        for parameter in changed.model.layers[1].mlp.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter, generator=torch.Generator().manual_seed(1)))
    changed.save_pretrained(tmp_path / "changed")
    base_model.tokenizer.save_pretrained(tmp_path / "changed")
    base = plugins().lenses.get("sae_post_mlp").build(load_model(str(tiny_model_dirs["llama"]), DEVICE), site, {})
    sentences = ("Alice was born in Oslo", "Bob was born in Rome")
    refitted = base.refit(load_model(str(tmp_path / "changed"), DEVICE), RefitData(sentences, corpus_dir, 2000))
    card = json.loads((Path(refitted.config()["sae"]) / "card.json").read_text())
    assert card["training"]["device"] == DEVICE
    cosine = torch.nn.functional.cosine_similarity(refitted.sae.W_dec, base.sae.W_dec, dim=1)
    assert cosine.mean() > 0.8 and not torch.equal(refitted.sae.W_dec, base.sae.W_dec)


@needs_device
def test_monosemanticity(tmp_path, tiny_model_dirs, corpus_dir) -> None:
    _with_related_prompts(corpus_dir)
    assert on_both(tmp_path, tiny_model_dirs["llama"], MONOSEMANTICITY_TASK, corpus_dir) == 1


@needs_device
def test_polysemanticity(tmp_path, tiny_model_dirs, corpus_dir) -> None:
    model, clusters = tiny_model_dirs["llama"], ("--lens-option", "max_tokens=2000")
    assert on_both(tmp_path / "neurons", model, POLY_TASK, corpus_dir) == 1
    assert on_both(tmp_path / "clusters", model, POLY_TASK, corpus_dir, *clusters, units="neuron_clusters") == 1


@needs_device
def test_interpretability(tmp_path, tiny_model_dirs, corpus_dir) -> None:
    assert on_both(tmp_path, tiny_model_dirs["llama"], INTERPRETABILITY_TASK, corpus_dir) == 1


@needs_device
def test_sparse_probing(tmp_path, tiny_model_dirs, ud_dir, probing_task) -> None:  # noqa: F811
    _add_second_patterns(ud_dir)
    assert on_both(tmp_path / "run", tiny_model_dirs["llama"], probing_task.read_text(), ud_dir) == 1


@needs_device
def test_privacy_erasure_edits_the_same_injected_model_alike(tmp_path, corpus_dir) -> None:
    """The CPU run injects the facts and caches the injected model; the device run edits that model."""
    model = _char_model(tmp_path / "model")
    assert on_both(tmp_path, model, PRIVACY_TASK, corpus_dir) == 1


@needs_device
def test_privacy_erasure_injects_on_the_device(tmp_path, corpus_dir) -> None:
    model = _char_model(tmp_path / "model")
    task = tmp_path / "privacy.yaml"
    task.write_text(PRIVACY_TASK)
    assert run_cli(model, task, corpus_dir, tmp_path / "out", "--device", DEVICE) == 0
    (record,) = records(tmp_path / "out").values()
    assert record["injection"]["learnt"] > 0
    assert all(math.isfinite(m["mean"]) for m in record["metrics"].values() if m.get("mean") is not None)


@needs_device
def test_privacy_erasure_with_a_refitted_sae_on_the_device(tmp_path, corpus_dir) -> None:
    """The project's main command on a GPU: inject, fine-tune the SAE on the injected model, FeatureEdit."""
    model = _char_model(tmp_path / "model")
    train_saes(load_model(str(model)), ["resid_post"], [1], SAE_SPEC, corpus_dir, train_tokens=2000)
    task = tmp_path / "privacy.yaml"
    methods = "methods:\n  feature_edit: {top_k: [1, 2], mode: project}\n"
    task.write_text(PRIVACY_TASK.replace("methods:\n", methods).replace("layers:", "lens_fit: {tokens: 2000}\nlayers:"))
    assert run_cli(model, task, corpus_dir, tmp_path / "out", "--device", DEVICE, units="sae_post_mlp") == 0
    (record,) = records(tmp_path / "out").values()
    assert record["lens_fit"]["refitted"] and "feature_edit" in " ".join(record["methods"])
    assert all(math.isfinite(m["mean"]) for m in record["metrics"].values() if m.get("mean") is not None)


@needs_device
def test_bfloat16_runs_and_stays_finite(tmp_path, tiny_model_dirs, corpus_dir) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(ABLATION_TASK)
    extra = ("--device", DEVICE, "--dtype", "bfloat16")
    assert run_cli(tiny_model_dirs["llama"], task, corpus_dir, tmp_path / "out", *extra) == 0
    (record,) = records(tmp_path / "out").values()
    assert record["provenance"]["model"]["dtype"] == "bfloat16"
    assert all(math.isfinite(m["mean"]) for m in record["metrics"].values() if m.get("mean") is not None)
