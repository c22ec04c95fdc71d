"""Stream directions of a lens's units, spans and the answer's gradient, on a tiny model."""

from __future__ import annotations

import pytest
import torch

from bench.data.pararel import Fact
from bench.model.directions import answer_gradient, share_in_span, stream_directions
from bench.model.sites import hooked
from bench.plugin.registry import plugins
from tests.tiny import random_sae_lens


def test_share_in_span_is_one_inside_and_zero_outside() -> None:
    directions = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [3.0, 3.0, 0.0, 0.0]])  # rank 2
    assert share_in_span(directions, torch.tensor([5.0, -1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert share_in_span(directions, torch.tensor([0.0, 0.0, 1.0, 2.0])) == pytest.approx(0.0)
    assert share_in_span(directions, torch.tensor([1.0, 0.0, 1.0, 0.0])) == pytest.approx(0.5)


def test_neurons_write_their_down_projection_columns(tiny_llama) -> None:
    lens = plugins().lenses.get("mlp_neurons").build(tiny_llama, "blocks.1.mlp.hook_post", {})
    w_down = tiny_llama.model.model.layers[1].mlp.down_proj.weight.detach()  # [d_model, d_mlp]
    torch.testing.assert_close(stream_directions(tiny_llama, lens, [3, 7]), w_down[:, [3, 7]].T)


def test_basis_units_write_their_directions(tiny_llama, corpus_dir, monkeypatch) -> None:
    monkeypatch.setenv("LENS_BENCH_DATA", str(corpus_dir))
    lens = plugins().lenses.get("random").build(tiny_llama, "blocks.1.hook_resid_post", {"n_units": 4})
    torch.testing.assert_close(stream_directions(tiny_llama, lens, [0, 2]), lens.decoder[[0, 2]], atol=1e-5, rtol=0)


def test_answer_gradient_predicts_a_small_push_of_the_stream(tiny_llama) -> None:
    site = "blocks.1.hook_resid_post"
    fact = Fact("f", "P17", "Paris", "France", "Paris is located in", "[X] is located in [Y] .")
    x, g = answer_gradient(tiny_llama, site, fact)
    push = 1e-4 * torch.randn(x.shape[-1], generator=torch.Generator().manual_seed(0))

    def log_p(shift: torch.Tensor) -> float:
        x_ids = tiny_llama.tokenizer("Paris is located in France")["input_ids"]
        ids = torch.tensor([x_ids[:-1]])
        moved = {site: lambda t: torch.cat([t[:, :-1], t[:, -1:] + shift], 1) if t.shape[1] == ids.shape[1] else t}
        with torch.no_grad(), hooked(tiny_llama.model, moved):
            return float(tiny_llama.model(ids).logits[0, -1].float().log_softmax(-1)[x_ids[-1]])

    assert abs(log_p(push) - log_p(torch.zeros_like(push)) - float(g @ push)) < 1e-2 * abs(float(g @ push)) + 1e-6


def test_a_units_direction_does_not_depend_on_which_units_are_asked_for(tiny_llama) -> None:
    # scripts compute every unit's direction once and index rows: that must match asking per subset
    lens = random_sae_lens(tiny_llama, "blocks.1.hook_resid_post")
    every = stream_directions(tiny_llama, lens, list(range(lens.n_units)))
    torch.testing.assert_close(every[[5, 1, 9]], stream_directions(tiny_llama, lens, [5, 1, 9]))
