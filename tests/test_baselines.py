"""PCA, ICA and random-direction baseline lenses on a tiny model."""

from __future__ import annotations

import pytest
import torch

from bench.errors import BenchError
from bench.model.lens import lensed
from bench.model.sites import hooked
from bench.plugin.registry import plugins

SITE = "blocks.1.hook_resid_post"


@pytest.fixture
def data_env(corpus_dir, monkeypatch):
    monkeypatch.setenv("LENS_BENCH_DATA", str(corpus_dir))
    return corpus_dir


@pytest.mark.parametrize(("method", "n_units"), [("pca", 16), ("ica", 8), ("random", 16)])
def test_unedited_pass_is_exact_and_ablation_removes_one_projection(method, n_units, tiny_llama, data_env) -> None:
    options = {"n_units": 8} if method == "ica" else {}
    lens = plugins().lenses.get(method).build(tiny_llama, SITE, options)
    assert lens.n_units == n_units
    model, input_ids = tiny_llama.model, torch.tensor([[1, 4, 9, 2, 5]])
    seen: dict[str, torch.Tensor] = {}
    with torch.no_grad(), hooked(model, {SITE: lambda t: seen.__setitem__("h", t.clone())}):
        clean = model(input_ids).logits
    with torch.no_grad(), lensed(tiny_llama, lens, lambda f: f):
        torch.testing.assert_close(model(input_ids).logits, clean, rtol=1e-5, atol=1e-5)

    f = lens.encode({SITE: seen["h"]})
    keep = torch.ones(lens.n_units)
    keep[3] = 0
    after: dict[str, torch.Tensor] = {}
    with (
        torch.no_grad(),
        lensed(tiny_llama, lens, lambda units: units * keep),
        hooked(model, {"blocks.2.hook_resid_pre": lambda t: after.__setitem__("h", t.clone())}),
    ):
        model(input_ids)
    torch.testing.assert_close(after["h"], seen["h"] - f[..., 3:4] * lens.decoder[3], rtol=1e-4, atol=1e-5)
    if method in ("pca", "random"):  # orthonormal: removing a component zeroes exactly that projection
        torch.testing.assert_close(lens.encode({SITE: after["h"]})[..., 3], torch.zeros(1, 5), rtol=0, atol=1e-4)


@pytest.mark.parametrize("method", ["pca", "random"])
def test_pca_and_random_directions_are_orthonormal_and_centred(method, tiny_llama, data_env) -> None:
    lens = plugins().lenses.get(method).build(tiny_llama, SITE, {"n_units": 4})
    torch.testing.assert_close(lens.encoder @ lens.encoder.T, torch.eye(4), atol=1e-5, rtol=0)
    # every unit at 0 is the mean activation, not the origin: integrated gradients' baseline
    assert lens.center.norm() > 0


def test_zeroing_every_random_unit_gives_the_mean_activation(tiny_llama, data_env) -> None:
    lens = plugins().lenses.get("random").build(tiny_llama, SITE, {})
    h = torch.randn(1, 3, 16)
    units = lens.encode({SITE: h})
    torch.testing.assert_close(lens.patch({SITE: h}, units, torch.zeros_like(units)), lens.center.expand(1, 3, 16))


def test_bad_options_are_clear_errors(tiny_llama, data_env) -> None:
    with pytest.raises(BenchError, match="n_units must be between 1 and the site width 16"):
        plugins().lenses.get("pca").build(tiny_llama, SITE, {"n_units": 99})
    with pytest.raises(BenchError, match="n_units must be between 1 and the site width 16"):
        plugins().lenses.get("random").build(tiny_llama, SITE, {"n_units": 128})
    with pytest.raises(BenchError, match="takes the options n_units, fit_tokens and seed"):
        plugins().lenses.get("ica").build(tiny_llama, SITE, {"colour": "red"})
