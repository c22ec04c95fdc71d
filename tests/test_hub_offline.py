"""A hub model id and a public sae-lens release, run as a user types them, offline.

The test lays out a Hugging Face cache (HF_HUB_CACHE, HF_HUB_OFFLINE=1) holding small random
weights under the real ids: a tiny GPT-2 saved as `gpt2`, and an SAE in the repository and folder
that sae-lens's release table names for `gpt2-small-res-jb/blocks.2.hook_resid_pre` (its folder
carries its own cfg.json, so it can be tiny). The real loading code then runs end to end: the
release table, its config overrides (centred residuals) and the site mapping (resid_pre of block 2
is resid_post of block 1). The Gemma Scope path runs the same way with the real shapes that
sae-lens's gemma_2 loader fixes (d_in 2304, width 16k): a two-layer Gemma-2 of hidden size 2304
and a JumpReLU params.npz that is mostly zeros, so it compresses to almost nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sae_lens import SAE
from safetensors.torch import save_file

from bench.paths import ALLOW_POOR_SAE_ENV
from tests.test_sparse_probing import ud_dir  # noqa: F401  (the fixture: UD sentences with labels)
from tests.tiny import save_tiny_model

RELEASE, SAE_ID, REPO = "gpt2-small-res-jb", "blocks.2.hook_resid_pre", "jbloom/GPT2-Small-SAEs-Reformatted"
REVISION = "0" * 40


def _snapshot(hub: Path, repo: str) -> Path:
    folder = hub / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(REVISION)
    return folder / "snapshots" / REVISION


# cfg.json as the release's folders hold it: the pre-6.0 sae-lens format, which sae-lens converts on load
LEGACY_CFG = {
    "model_name": "gpt2-small", "hook_point": SAE_ID, "hook_point_layer": 2, "hook_point_head_index": None,
    "dataset_path": "Skylion007/openwebtext", "context_size": 128, "d_in": 16, "d_sae": 32, "dtype": "float32",
    "device": "cpu", "expansion_factor": 2, "l1_coefficient": 8e-05,
}  # fmt: skip


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hub = tmp_path_factory.mktemp("hub")
    save_tiny_model("gpt2", _snapshot(hub, "gpt2"))
    generator = torch.Generator().manual_seed(1)
    weights = {
        "W_enc": torch.randn(16, 32, generator=generator) * 0.3,
        "W_dec": torch.randn(32, 16, generator=generator) * 0.3,
        "b_enc": torch.randn(32, generator=generator) * 0.1,
        "b_dec": torch.randn(16, generator=generator) * 0.1,
    }
    folder = _snapshot(hub, REPO) / SAE_ID
    folder.mkdir(parents=True)
    (folder / "cfg.json").write_text(json.dumps(LEGACY_CFG))
    save_file(weights, folder / "sae_weights.safetensors")
    return hub


def _bench(hub: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], env=env, capture_output=True, text=True)


def _run(hub: Path, task: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    release = f"{RELEASE}/{SAE_ID}"
    return _bench(hub, "run", "--model", "gpt2", "--units", "sae_post_mlp", "--sae", release, "--task", str(task),
                  "--data-dir", str(data), "--output-dir", str(out), "--limit", "3", *extra)  # fmt: skip


@pytest.fixture
def probing_task(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_probe.yaml"
    path.write_text(
        "type: sparse_probing\ndescription: t\nlayers: [1]\nk: [1, 2]\nmax_per_class: 50\n"
        "tokens: {features: ['upos:PROPN', 'upos:ADP']}\nprompts: {relations: [P17, P19], prompts_per_relation: 6}\n"
    )
    return path


def _add_second_patterns(data: Path) -> None:
    """Probing holds whole patterns out, so each relation needs two."""
    for relation, pattern in (("P17", "[X] , which is located in [Y] ."), ("P19", "[X] is a native of [Y] .")):
        with (data / "pararel" / "patterns" / f"{relation}.jsonl").open("a") as f:
            f.write(json.dumps({"pattern": pattern}) + "\n")


def test_a_hub_model_and_a_public_release_run_offline(hub, tiny_task, probing_task, ud_dir, tmp_path) -> None:  # noqa: F811
    _add_second_patterns(ud_dir)
    for task in (tiny_task, probing_task):
        task.write_text(task.read_text().replace("layers: [1]", "layers: [2]"))  # the task's own layer is not the SAE's
        out = tmp_path / task.stem
        result = _run(hub, task, ud_dir, out)  # no --layers: the SAE's hook (resid_pre 2 = resid_post 1) decides
        assert result.returncode == 0, result.stderr[-2000:]
        (path,) = out.rglob("*.json")
        record = json.loads(path.read_text())
        assert record["model"]["id"] == "gpt2" and record["lens"]["site"] == "blocks.1.hook_resid_post"
        assert record["lens"]["config"]["sae"] == f"{RELEASE}/{SAE_ID}"
        assert record["lens"]["config"]["input"] == "centred over d_model"  # the release's config override


def test_the_wrong_layer_names_the_site_the_sae_was_trained_on(hub, tiny_task, corpus_dir, tmp_path) -> None:
    result = _run(hub, tiny_task, corpus_dir, tmp_path / "out", "--layers", "2")
    assert result.returncode == 2
    assert (
        f"was trained on {SAE_ID} (= blocks.1.hook_resid_post), but the lens reads blocks.2.hook_resid_post: "
        "run it with --layers 1" in result.stderr
    )


def test_a_release_missing_from_the_cache_is_a_clear_error(hub, tiny_task, corpus_dir, tmp_path) -> None:
    """Break the release table's repository on purpose: the SAE is no longer where the table says."""
    elsewhere = tmp_path / "hub"
    shutil.copytree(hub, elsewhere)
    shutil.rmtree(elsewhere / f"models--{REPO.replace('/', '--')}")
    result = _run(elsewhere, tiny_task, corpus_dir, tmp_path / "out", "--layers", "1")
    assert result.returncode == 2 and f"could not load SAE '{RELEASE}/{SAE_ID}' through sae-lens" in result.stderr


def test_centred_encoding_matches_transformer_lens(hub, monkeypatch) -> None:
    """Features of the hooked Hugging Face stream equal the SAE's features of TransformerLens's
    centred stream (center_writing_weights, as the release was trained); without the centring they do not."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    from bench.model.activations import site_activations
    from bench.model.loading import load_model

    loaded = load_model(str(_snapshot(hub, "gpt2")))
    hf = loaded.model.config
    cfg = HookedTransformerConfig(
        n_layers=hf.n_layer, d_model=hf.n_embd, n_ctx=hf.n_positions, d_head=hf.n_embd // hf.n_head,
        n_heads=hf.n_head, d_mlp=hf.n_inner, d_vocab=hf.vocab_size, act_fn="gelu_new", normalization_type="LN",
        device="cpu",  # TransformerLens would pick a GPU where there is one; the model above is on the CPU
    )  # fmt: skip
    tl = HookedTransformer(cfg)
    tl.load_and_process_state_dict(convert_gpt2_weights(loaded.model, cfg), center_writing_weights=True)
    env = {"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    with monkeypatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        import huggingface_hub.constants as hub_constants

        patch.setattr(hub_constants, "HF_HUB_CACHE", str(hub))  # read at import: point the loaded module there too
        patch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        sae = SAE.from_pretrained(RELEASE, SAE_ID)  # the release table, its overrides, the legacy cfg
    from bench_sae_lenses import SAEFeatures

    lens = SAEFeatures(loaded, "blocks.1.hook_resid_post", sae, "fake release")
    ids = torch.tensor([[loaded.tokenizer.convert_tokens_to_ids(w) for w in ["Paris", "is", "located", "in"]]])
    _, cache = tl.run_with_cache(ids)
    with torch.no_grad():
        h = site_activations(loaded, "blocks.1.hook_resid_post", ids)
        features = lens.encode({lens.site: h})
        expected = sae.encode(cache[SAE_ID])
        assert torch.allclose(features, expected, atol=1e-4)
        lens.centred = False  # break the centring on purpose
        assert not torch.allclose(lens.encode({lens.site: h}), expected, atol=1e-4)


GEMMA_RELEASE, GEMMA_ID = "gemma-scope-2b-pt-res-canonical", "layer_1/width_16k/canonical"
GEMMA_REPO, GEMMA_FOLDER = "google/gemma-scope-2b-pt-res", "layer_1/width_16k/average_l0_102"  # the table's path
GEMMA_D, GEMMA_WIDTH = 2304, 16384  # what sae-lens's gemma_2 loader fixes for a 2b release


@pytest.fixture(scope="module")
def gemma_hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma-2 under `google/gemma-2-2b` (hidden size 2304, two layers, the test vocabulary) and a
    Gemma Scope JumpReLU SAE of the real shapes, built to reconstruct its input exactly: encoder
    [I, -I, 0], decoder [I; -I; 0], thresholds 0. Mostly zeros, so the compressed params.npz is small."""
    import numpy as np
    from transformers import AutoModelForCausalLM, Gemma2Config

    from tests.tiny import make_tokenizer

    hub = tmp_path_factory.mktemp("gemma-hub")
    tokenizer = make_tokenizer()
    config = Gemma2Config(
        vocab_size=len(tokenizer), hidden_size=GEMMA_D, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    model_dir = _snapshot(hub, "google/gemma-2-2b")
    AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    eye = np.eye(GEMMA_D, dtype=np.float16)
    w_enc = np.zeros((GEMMA_D, GEMMA_WIDTH), dtype=np.float16)
    w_enc[:, :GEMMA_D], w_enc[:, GEMMA_D : 2 * GEMMA_D] = eye, -eye
    folder = _snapshot(hub, GEMMA_REPO) / GEMMA_FOLDER
    folder.mkdir(parents=True)
    np.savez_compressed(
        folder / "params.npz", w_enc=w_enc, w_dec=np.ascontiguousarray(w_enc.T), b_enc=np.zeros(GEMMA_WIDTH),
        b_dec=np.zeros(GEMMA_D), threshold=np.zeros(GEMMA_WIDTH),
    )  # fmt: skip
    return hub


def test_gemma_scope_by_hub_and_release_id(gemma_hub, tiny_task, probing_task, ud_dir, tmp_path, monkeypatch) -> None:  # noqa: F811
    """The Gemma Scope path as the Knowledge Microscope used it: a JumpReLU SAE whose layer comes
    from the release (no --layers), gated on how well it reconstructs the activations it is given."""
    monkeypatch.delenv(ALLOW_POOR_SAE_ENV)
    _add_second_patterns(ud_dir)
    for task in (tiny_task, probing_task):
        task.write_text(task.read_text().replace("layers: [1]", "layers: [0]"))  # the release decides: layer 1
        out = tmp_path / task.stem
        result = _bench(
            gemma_hub, "run", "--model", "google/gemma-2-2b", "--units", "sae_post_mlp", "--sae",
            f"{GEMMA_RELEASE}/{GEMMA_ID}", "--task", str(task), "--data-dir", str(ud_dir),
            "--output-dir", str(out), "--limit", "2",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        (path,) = out.rglob("*.json")
        record = json.loads(path.read_text())
        assert record["lens"]["site"] == "blocks.1.hook_resid_post" and record["lens"]["n_units"] == GEMMA_WIDTH
        assert record["lens"]["config"]["architecture"] == "jumprelu" and "input" not in record["lens"]["config"]
        assert record["lens_diagnostics"]["sae_quality"]["fraction_variance_explained"] > 0.999


def test_models_load_without_hub_kernels(tiny_llama) -> None:
    """transformers would swap layers for kernels fetched from the Hub on a GPU (see load_model)."""
    assert tiny_llama.model.use_kernels is False
