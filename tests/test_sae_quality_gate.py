"""The SAE quality gate: before a run uses an SAE, its variance explained, L0 and CE loss recovered
at the site are measured and stored; an SAE that explains too little is refused unless allowed."""

from __future__ import annotations

import json

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata

from bench.paths import ALLOW_POOR_SAE_ENV
from tests.conftest import run_cli

SITE = "blocks.1.hook_resid_post"


def save_sae(folder, d: int, faithful: bool):
    """faithful: encoder [I, -I] and decoder [I; -I], a ReLU SAE that reconstructs every activation
    exactly; otherwise random weights, which reconstruct nothing."""
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=2 * d, metadata=SAEMetadata(hook_name=SITE)))
    with torch.no_grad():
        eye = torch.eye(d)
        if faithful:
            sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
            sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
            sae.b_enc.zero_()
            sae.b_dec.zero_()
        else:
            for parameter in sae.parameters():
                parameter.copy_(torch.randn_like(parameter, generator=torch.Generator().manual_seed(3)) * 3)
    sae.save_model(folder)
    return folder


@pytest.fixture
def gate_on(monkeypatch) -> None:
    monkeypatch.delenv(ALLOW_POOR_SAE_ENV, raising=False)


def _run(model, task, data, out, sae, *extra):
    return run_cli(model, task, data, out, "--sae", str(sae), "--layers", "1", "--limit", "3", *extra,
                   units="sae_post_mlp")  # fmt: skip


def test_a_faithful_sae_passes_and_its_quality_is_in_the_record(
    gate_on, tiny_model_dirs, tiny_task, corpus_dir, tmp_path
):
    sae = save_sae(tmp_path / "good", 16, faithful=True)
    assert _run(tiny_model_dirs["llama"], tiny_task, corpus_dir, tmp_path / "out", sae) == 0
    (path,) = (tmp_path / "out").rglob("*.json")
    quality = json.loads(path.read_text())["lens_diagnostics"]["sae_quality"]
    assert quality["fraction_variance_explained"] > 0.999 and quality["ce_loss_recovered"] == pytest.approx(1, abs=1e-3)
    assert quality["l0"] > 0


def test_a_poor_sae_is_refused_before_any_task_work(gate_on, capsys, tiny_model_dirs, tiny_task, corpus_dir, tmp_path):
    sae = save_sae(tmp_path / "bad", 16, faithful=False)
    assert _run(tiny_model_dirs["llama"], tiny_task, corpus_dir, tmp_path / "out", sae) == 2
    err = capsys.readouterr().err
    assert "of the variance of blocks.1.hook_resid_post" in err and "pass --allow-poor-sae" in err
    assert not list((tmp_path / "out").rglob("*.partial.jsonl"))
    assert _run(tiny_model_dirs["llama"], tiny_task, corpus_dir, tmp_path / "out", sae, "--allow-poor-sae") == 0
    assert "running it anyway (--allow-poor-sae)" in capsys.readouterr().err
