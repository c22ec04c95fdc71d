"""Fitted lenses refit to a changed model (privacy erasure's injected model): an SAE keeps training
from its own weights on the changed model's activations and the change's sentences; bases and
clusters are fitted again; MLP neurons have nothing to refit."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from bench.data.pararel import Fact
from bench.model.lens import RefitData, Refits
from bench.model.loading import LoadedModel, load_model
from bench.plugin.registry import plugins
from bench.sae.training import TrainSpec, train_saes
from bench.tasks.knowledge_ablation.replay import lens_of_record
from bench.tasks.privacy_erasure.task import LensFitConfig, fitted_lens

SITE = "blocks.1.hook_resid_post"
SENTENCES = ("Alice was born in Oslo", "Bob was born in Rome", "Carol was born in Paris")


@pytest.fixture
def changed(tiny_llama: LoadedModel, tmp_path: Path) -> LoadedModel:
    """A copy of the tiny Llama with block 1's MLP moved, saved and loaded again: other weights, other hash."""
    model = copy.deepcopy(tiny_llama.model)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.model.layers[1].mlp.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    model.save_pretrained(tmp_path / "changed")
    tiny_llama.tokenizer.save_pretrained(tmp_path / "changed")
    return load_model(str(tmp_path / "changed"))


def test_an_sae_is_fine_tuned_from_its_own_weights_and_cached(tiny_model_dirs, corpus_dir, changed) -> None:
    base_model = load_model(str(tiny_model_dirs["llama"]))
    spec = TrainSpec(width_multiple=4, k=4, epochs=4, batch_size=64, lr=3e-3)
    train_saes(base_model, ["resid_post"], [1], spec, corpus_dir, train_tokens=2000, heldout_tokens=500)
    base = plugins().lenses.get("sae_post_mlp").build(base_model, SITE, {})
    assert isinstance(base, Refits)
    data = RefitData(SENTENCES, corpus_dir, tokens=2000)
    refitted = base.refit(changed, data)
    config = refitted.config()
    assert "finetuned-" in config["sae"] and config["sae_sha256"] != base.config()["sae_sha256"]
    assert refitted.n_units == base.n_units
    # a continuation, not a new dictionary: decoder rows stay close to the base's
    cosine = torch.nn.functional.cosine_similarity(refitted.sae.W_dec, base.sae.W_dec, dim=1)
    assert cosine.mean() > 0.8 and not torch.equal(refitted.sae.W_dec, base.sae.W_dec)
    card = json.loads((Path(config["sae"]) / "card.json").read_text())
    assert card["finetuned_from"]["sae_sha256"] == base.config()["sae_sha256"]
    assert card["training"]["sentences"]["count"] == len(SENTENCES)
    assert card["training"]["corpus"]["text"] == "WikiText-2 validation pages"
    again = base.refit(changed, data)  # cached: the same weights, no second training
    assert again.config() == config
    # a script that looks into the record rebuilds the weights its edits used, not the base's
    record = {
        "lens": {"name": "sae_post_mlp", "site": SITE, "config": base.config()},
        "lens_fit": {"model": "injected", "refitted": True, "lens": config, "base_lens": base.config()},
    }
    assert lens_of_record(changed, record, plugins()).config() == config


@pytest.mark.parametrize("name", ["pca", "random", "neuron_clusters"])
def test_bases_and_clusters_are_fitted_again_on_the_changed_model(name, tiny_llama, changed, corpus_dir, monkeypatch):
    monkeypatch.setenv("LENS_BENCH_DATA", str(corpus_dir))
    site = "blocks.1.mlp.hook_post" if name == "neuron_clusters" else "blocks.2.hook_resid_post"
    options = {"max_tokens": 2000} if name == "neuron_clusters" else {}
    base = plugins().lenses.get(name).build(tiny_llama, site, options)
    assert isinstance(base, Refits)
    data = RefitData(SENTENCES, corpus_dir, tokens=2000)
    refitted = base.refit(changed, data)
    assert type(refitted) is type(base)
    if name != "neuron_clusters":  # a neuron's clusters, and so the unit count, follow the new activations
        assert refitted.n_units == base.n_units
    if name != "random":  # a random basis keeps its seed's directions; only its centre moves
        assert refitted.config() != base.config()
    assert base.refit(tiny_llama, data).config() == base.config()  # the same model: the same fit


def test_privacy_erasure_uses_the_refitted_lens_unless_told_the_base(tiny_llama, changed, corpus_dir, monkeypatch):
    monkeypatch.setenv("LENS_BENCH_DATA", str(corpus_dir))
    base = plugins().lenses.get("pca").build(tiny_llama, "blocks.2.hook_resid_post", {})
    ctx = SimpleNamespace(lens=base, data_dir=corpus_dir)
    facts = [
        Fact(f"f{i}", "P19", s.rsplit(" ", 1)[0], s.rsplit(" ", 1)[1], s.rsplit(" ", 1)[0], "")
        for i, s in enumerate(SENTENCES)
    ]
    lens, info = fitted_lens(ctx, LensFitConfig(tokens=2000), changed, facts, seed=0)
    assert info["refitted"] and info["lens"] == lens.config() != info["base_lens"] == base.config()
    lens, info = fitted_lens(ctx, LensFitConfig(model="base"), changed, facts, seed=0)
    assert lens is base and not info["refitted"]
    neurons = plugins().lenses.get("mlp_neurons").build(tiny_llama, "blocks.1.mlp.hook_post", {})
    assert not isinstance(neurons, Refits)
    lens, info = fitted_lens(SimpleNamespace(lens=neurons, data_dir=corpus_dir), LensFitConfig(), changed, facts, 0)
    assert lens is neurons and "nothing to refit" in info["why"]
