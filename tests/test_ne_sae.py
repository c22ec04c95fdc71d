"""The neuron-embedding SAE loss against a direct computation of the paper's formula."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sae_lens.saes.sae import TrainStepInput

from bench.model.loading import LoadedModel
from bench.sae.ne_sae import (
    NeuronEmbeddingTrainingSAE,
    NeuronEmbeddingTrainingSAEConfig,
    neuron_embedding_loss,
    update_averages,
)
from bench.sae.training import TrainSpec, sae_path, train_saes


def _direct(x: np.ndarray, acts: np.ndarray, w_enc: np.ndarray, h_avg: np.ndarray, seen: np.ndarray) -> float:
    total = 0.0
    for b in range(len(x)):
        for j in range(acts.shape[1]):
            if acts[b, j] > 0 and seen[j]:
                e_avg, e_b = h_avg[j] * w_enc[:, j], x[b] * w_enc[:, j]
                total += 1 - e_avg @ e_b / (np.linalg.norm(e_avg) * np.linalg.norm(e_b))
    return total / len(x)


def test_loss_matches_the_formula_on_a_tiny_batch() -> None:
    rng = np.random.default_rng(0)
    x, w_enc, h_avg = rng.normal(size=(5, 4)), rng.normal(size=(4, 6)), rng.normal(size=(6, 4))
    acts = np.maximum(rng.normal(size=(5, 6)), 0)
    seen = np.array([True, True, False, True, True, True])
    t = {k: torch.tensor(v) for k, v in dict(x=x, acts=acts, w=w_enc, h=h_avg).items()}
    got = neuron_embedding_loss(t["x"], t["acts"], t["w"], t["h"], torch.tensor(seen))
    assert np.isclose(got.item(), _direct(x, acts, w_enc, h_avg, seen), rtol=1e-9)


def test_momentum_update() -> None:
    x = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    acts = torch.tensor([[1.0, 0.0, 0.0], [1.0, 2.0, 0.0]])
    h_avg = torch.tensor([[10.0, 10.0], [0.0, 0.0], [5.0, 5.0]])
    seen = torch.tensor([True, False, True])
    update_averages(x, acts, h_avg, seen, momentum=0.9)
    # unit 0 seen: 0.9 * (10, 10) + 0.1 * mean((1,0), (3,2)) = (9.2, 9.1); unit 1 first time: (3, 2); unit 2 idle
    assert torch.allclose(h_avg, torch.tensor([[9.2, 9.1], [3.0, 2.0], [5.0, 5.0]]))
    assert seen.tolist() == [True, True, True]


def test_training_sae_adds_the_loss_after_warm_up() -> None:
    torch.manual_seed(0)
    cfg = NeuronEmbeddingTrainingSAEConfig(d_in=4, d_sae=8, ne_coefficient=0.5, ne_warm_up_steps=1)
    sae = NeuronEmbeddingTrainingSAE(cfg)
    sae.train()
    x = torch.randn(16, 4)
    step = TrainStepInput(
        sae_in=x, coefficients={"l1": 1.0, "ne": 0.5}, dead_neuron_mask=None, n_training_steps=0, is_logging_step=False
    )
    first = sae.training_forward_pass(step)
    assert first.losses["ne_loss"].item() == 0  # warm-up: averages collected, loss off
    h_avg, seen = sae.h_avg.clone(), sae.seen.clone()
    assert seen.any()
    second = sae.training_forward_pass(step)
    feature_acts, _ = sae.encode_with_hidden_pre(x)
    expected = 0.5 * neuron_embedding_loss(x, feature_acts, sae.W_enc, h_avg, seen)
    assert second.losses["ne_loss"].item() > 0
    assert torch.isclose(second.losses["ne_loss"], expected)
    second.loss.backward()
    assert sae.W_enc.grad is not None and sae.W_enc.grad.abs().sum() > 0


def test_bench_sae_train_trains_the_ne_variant_beside_the_default(tiny_llama: LoadedModel, corpus_dir: Path) -> None:
    spec = TrainSpec(width_multiple=2, epochs=2, batch_size=64, lr=3e-3, architecture="standard_ne", ne_warm_up_steps=2)
    (card,) = train_saes(tiny_llama, ["mlp_out"], [1], spec, corpus_dir, train_tokens=2000, heldout_tokens=500)
    assert card["training"]["architecture"] == "standard_ne"
    assert card["training"]["ne_coefficient"] == TrainSpec.ne_coefficient
    path = sae_path(tiny_llama, "blocks.1.hook_mlp_out", "standard_ne-warm_2")
    assert path.name == "blocks.1.hook_mlp_out+standard_ne-warm_2" and (path / "card.json").exists()
    assert json_architecture(path) == "standard"  # used as a plain standard SAE
    assert not sae_path(tiny_llama, "blocks.1.hook_mlp_out").exists()
    (plain,) = train_saes(
        tiny_llama, ["mlp_out"], [1], replace(spec, architecture="standard"), corpus_dir, train_tokens=2000,
        heldout_tokens=500,
    )  # fmt: skip
    assert plain["training"]["architecture"] == "standard"


def json_architecture(path: Path) -> str:
    return json.loads((path / "cfg.json").read_text())["architecture"]


def test_bench_sae_train_cli_passes_options_and_prints_aligned_table(tiny_model_dirs, corpus_dir, capsys) -> None:
    from bench.cli import main

    argv = ["sae", "train", "--model", str(tiny_model_dirs["llama"]), "--sites", "mlp_out", "--layers", "1"]
    argv += ["--architecture", "standard", "--l1", "2.5", "--width", "2", "--epochs", "1", "--batch-size", "64"]
    assert main([*argv, "--train-tokens", "1000", "--data-dir", str(corpus_dir)]) == 0
    header, _, row = (line.strip("|").split("|") for line in capsys.readouterr().out.strip().splitlines()[-3:])
    table = dict(zip((h.strip() for h in header), (v.strip() for v in row), strict=True))
    assert table["site"] == "blocks.1.hook_mlp_out" and table["architecture"] == "standard" and "MSE" in table
    card = json.loads((next(Path(os.environ["LENS_BENCH_CACHE"]).rglob("card.json"))).read_text())
    assert card["training"]["l1_coefficient"] == 2.5 and card["training"]["width_multiple"] == 2
    assert card["training"]["ne_coefficient"] == TrainSpec.ne_coefficient  # unset options keep TrainSpec's


def test_variants_name_the_loss_and_its_non_default_coefficients() -> None:
    assert TrainSpec(k=64, lr=1e-3).variant == ""  # TopK SAEs are the lenses' default folder
    assert TrainSpec(architecture="standard").variant == "standard"
    assert TrainSpec(architecture="standard_ne", ne_coefficient=0.1).variant == "standard_ne-ne_0.1"
    assert TrainSpec(architecture="standard", l1_coefficient=2, ne_coefficient=0.1).variant == "standard-l1_2"
