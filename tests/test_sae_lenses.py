"""SAE lenses through sae-lens, and SAEs trained by the harness, on a tiny model."""

from __future__ import annotations

import pytest
import torch
from bench_sae_lenses import SAEFeatures
from sae_lens import SAE

from bench.cli import main
from bench.errors import BenchError
from bench.model.lens import lensed
from bench.model.sites import hooked
from bench.plugin.registry import plugins
from bench.sae.quality import reconstruction_stats
from bench.sae.training import TrainSpec, sae_path, train_saes

SPEC = TrainSpec(width_multiple=4, k=4, epochs=4, batch_size=64, lr=3e-3)
SITE = "blocks.1.hook_resid_post"


@pytest.fixture
def trained(tiny_llama, corpus_dir) -> list[dict]:
    return train_saes(
        tiny_llama, ["resid_post", "mlp_out"], [1], SPEC, corpus_dir, train_tokens=2000, heldout_tokens=500
    )


def build(loaded, lens: str, site: str, **options):
    return plugins().lenses.get(lens).build(loaded, site, options)


def test_training_writes_sae_and_card(trained, tiny_llama) -> None:
    card = trained[0]
    assert card["site"] == SITE
    assert card["training"]["d_sae"] == 64 and card["training"]["architecture"] == "topk"
    # the card names the text: fitted on WikiText-2 validation, scored on its test split
    assert card["training"]["corpus"]["text"] == "WikiText-2 validation pages"
    assert card["heldout"]["corpus"]["text"] == "WikiText-2 test pages"
    held = card["heldout"]
    assert held["l0"] <= SPEC.k + 1e-6
    assert 0 <= held["dead_fraction"] <= 1
    for key in ("fraction_variance_explained", "ce_loss_recovered", "ce_loss_clean", "ce_loss_with_sae"):
        assert isinstance(held[key], float)
    assert (sae_path(tiny_llama, SITE) / "cfg.json").exists()


def test_unedited_pass_is_exact_and_ablation_removes_one_decoder_row(trained, tiny_llama) -> None:
    lens = build(tiny_llama, "sae_post_mlp", SITE)
    model, input_ids = tiny_llama.model, torch.tensor([[1, 4, 9, 2, 5]])
    with torch.no_grad():
        clean = model(input_ids).logits
        with lensed(tiny_llama, lens, lambda f: f):
            same = model(input_ids).logits
    torch.testing.assert_close(same, clean, rtol=1e-5, atol=1e-6)

    seen: dict[str, torch.Tensor] = {}
    with torch.no_grad(), hooked(model, {SITE: lambda t: seen.__setitem__("h", t.clone())}):
        model(input_ids)
    features = lens.sae.encode(seen["h"])
    i = int(features[0, -1].argmax())
    keep = torch.ones(lens.n_units)
    keep[i] = 0
    patched: dict[str, torch.Tensor] = {}

    def after(units: torch.Tensor) -> torch.Tensor:
        return units * keep

    # read the stream just after the lens rewrote it: the next block's input
    next_block = {"blocks.2.hook_resid_pre": lambda t: patched.__setitem__("h", t.clone())}
    with torch.no_grad(), lensed(tiny_llama, lens, after), hooked(model, next_block):
        model(input_ids)
    expected = seen["h"] - features[..., i : i + 1] * lens.sae.W_dec[i]  # the error term stays in
    torch.testing.assert_close(patched["h"], expected, rtol=1e-5, atol=1e-5)


def test_knowledge_ablation_runs_with_sae_lens(trained, tmp_path, tiny_model_dirs, tiny_task, corpus_dir) -> None:
    code = main(
        [
            "run",
            "--model",
            str(tiny_model_dirs["llama"]),
            "--units",
            "sae_post_mlp,sae_mlp_out",
            "--task",
            str(tiny_task),
            "--data-dir",
            str(corpus_dir),
            "--output-dir",
            str(tmp_path / "r"),
        ]
    )
    assert code == 0
    assert len(list((tmp_path / "r").rglob("*.json"))) == 2


def test_local_directory_and_release_ids_go_through_sae_lens_loaders(trained, tiny_llama, tmp_path, monkeypatch):
    saved = tmp_path / "my_sae"
    SAE.load_from_disk(sae_path(tiny_llama, SITE)).save_model(saved)
    lens = build(tiny_llama, "sae_post_mlp", SITE, sae=str(saved))
    assert lens.n_units == 64 and lens.config()["sae"] == str(saved.resolve())

    calls = []

    def fake_from_pretrained(release, sae_id, device="cpu", **kwargs):
        calls.append((release, sae_id))
        return SAE.load_from_disk(saved)

    monkeypatch.setattr(SAE, "from_pretrained", fake_from_pretrained)
    build(tiny_llama, "sae_post_mlp", SITE, sae="gemma-scope-2b-pt-res-canonical/layer_{layer}/width_16k/canonical")
    assert calls == [("gemma-scope-2b-pt-res-canonical", "layer_1/width_16k/canonical")]


def test_mismatched_sae_is_rejected_before_any_forward_pass(trained, tiny_llama, monkeypatch) -> None:
    def no_forward(*args, **kwargs):
        raise AssertionError("a forward pass ran")

    monkeypatch.setattr(tiny_llama.model, "forward", no_forward)
    mlp_sae = str(sae_path(tiny_llama, "blocks.1.hook_mlp_out"))
    with pytest.raises(
        BenchError,
        match=r"trained on blocks\.1\.hook_mlp_out, but the lens reads blocks\.1\.hook_resid_post: use --units sae_mlp",
    ):
        build(tiny_llama, "sae_post_mlp", SITE, sae=mlp_sae)
    with pytest.raises(BenchError, match=r"has d_in = 16, but blocks\.1\.mlp\.hook_post .* has width 24"):
        SAEFeatures(tiny_llama, "blocks.1.mlp.hook_post", SAE.load_from_disk(mlp_sae), mlp_sae)


def test_missing_sae_names_the_command_that_builds_it(tiny_llama) -> None:
    with pytest.raises(BenchError, match=r"bench sae train --model .* --sites attn_out --layers 2"):
        build(tiny_llama, "sae_attn_out", "blocks.2.hook_attn_out")


def test_interrupted_training_resumes_from_the_last_checkpoint(tiny_llama, corpus_dir, monkeypatch) -> None:
    import bench.sae.training as training

    original = training.batches

    def interrupting(acts, batch_size, seed, skip):
        for i, batch in enumerate(original(acts, batch_size, seed, skip)):
            if skip == 0 and i == 20 + int(0.7 * SPEC.epochs * len(acts) // batch_size):  # 20 norm-estimate batches
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(training, "batches", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train_saes(tiny_llama, ["resid_post"], [1], SPEC, corpus_dir, train_tokens=2000, heldout_tokens=500)
    assert not (sae_path(tiny_llama, SITE) / "card.json").exists()
    (card,) = train_saes(tiny_llama, ["resid_post"], [1], SPEC, corpus_dir, train_tokens=2000, heldout_tokens=500)
    assert card["training"]["resumed_from_tokens"] > 0


def test_reconstruction_stats_match_a_direct_computation(trained, tiny_llama) -> None:
    sae = SAE.load_from_disk(sae_path(tiny_llama, SITE))
    acts = torch.randn(300, sae.cfg.d_in).numpy()
    stats = reconstruction_stats(sae, acts, batch_size=128)  # several batches
    x = torch.from_numpy(acts)
    with torch.no_grad():
        f = sae.encode(x)
        err = sae.decode(f) - x
    assert stats["mse"] == pytest.approx(float(err.pow(2).mean()), rel=1e-5)
    assert stats["l1"] == pytest.approx(float(f.abs().sum(1).mean()), rel=1e-5)
    assert stats["l0"] == pytest.approx(float((f != 0).sum(1).float().mean()), rel=1e-6)
    total = float((x - x.mean(0)).pow(2).sum())
    assert stats["fraction_variance_explained"] == pytest.approx(1 - float(err.pow(2).sum()) / total, rel=1e-4)


def test_a_hook_z_sae_reads_the_heads_outputs(tiny_llama, tmp_path) -> None:
    """sae-lens's hook_z SAEs (Gemma Scope's attention SAEs) read the heads' outputs before the output
    projection; the lens reads them there, flat, and an unedited pass is exact."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    site = "blocks.1.attn.hook_z"
    cfg = StandardSAEConfig(d_in=16, d_sae=32, reshape_activations="hook_z", metadata=SAEMetadata(hook_name=site))
    torch.manual_seed(0)
    StandardSAE(cfg).save_model(tmp_path / "z")
    lens = build(tiny_llama, "sae_attn_z", site, sae=str(tmp_path / "z"))
    model, input_ids = tiny_llama.model, torch.tensor([[1, 4, 9, 2, 5]])
    seen: dict[str, torch.Tensor] = {}
    with torch.no_grad(), hooked(model, {site: lambda t: seen.__setitem__("z", t.clone())}):
        clean = model(input_ids).logits
    heads = seen["z"].view(1, 5, 2, 8)  # two heads of 8: the order sae-lens flattens them in
    reference = SAE.load_from_disk(tmp_path / "z")
    torch.testing.assert_close(lens.encode({site: seen["z"]}), reference.encode(heads))
    with torch.no_grad(), lensed(tiny_llama, lens, lambda f: f):
        torch.testing.assert_close(model(input_ids).logits, clean, rtol=1e-5, atol=1e-6)
    with pytest.raises(
        BenchError, match=r"trained on blocks\.1\.attn\.hook_z, but the lens reads .*use --units sae_attn_z"
    ):
        build(tiny_llama, "sae_attn_out", "blocks.1.hook_attn_out", sae=str(tmp_path / "z"))
