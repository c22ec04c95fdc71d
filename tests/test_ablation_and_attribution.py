"""Ablation and attribution through the lens interface, checked against hand computations."""

from __future__ import annotations

import pytest
import torch

from bench.model.attribution import attribute
from bench.model.interventions import position_mask, unit_mask, units_ablated_at
from bench.model.lens import lensed
from bench.model.scoring import Encoded, collate, score
from bench.model.sites import hooked
from bench.plugin.registry import plugins

SITE = "blocks.1.mlp.hook_post"


def neurons(loaded, site: str = SITE):
    return plugins().lenses.get("mlp_neurons").build(loaded, site, {})


def test_ablating_neuron_i_removes_exactly_its_down_projection(tiny_llama) -> None:
    model, lens, i = tiny_llama.model, neurons(tiny_llama), 5
    input_ids = torch.tensor([[1, 4, 9, 2]])
    seen: dict[str, torch.Tensor] = {}
    probes = {
        SITE: lambda t: seen.__setitem__("post", t.detach().clone()),
        "blocks.1.hook_mlp_out": lambda t: seen.__setitem__("mlp_out", t.detach().clone()),
    }
    with torch.no_grad(), hooked(model, probes):
        model(input_ids)
    clean_post, clean_out = seen["post"], seen["mlp_out"]

    keep = torch.ones(lens.n_units)
    keep[i] = 0
    with torch.no_grad(), lensed(tiny_llama, lens, lambda units: units * keep), hooked(model, probes):
        model(input_ids)
    # Hand computation: down_proj is linear without bias, so ablating neuron i subtracts act_i * W_down[:, i].
    w_down = model.model.layers[1].mlp.down_proj.weight  # [d_model, d_mlp]
    expected = clean_out - clean_post[..., i : i + 1] * w_down[:, i]
    torch.testing.assert_close(seen["mlp_out"], expected)
    assert torch.equal(
        seen["post"][..., torch.arange(lens.n_units) != i], clean_post[..., torch.arange(lens.n_units) != i]
    )


def test_identity_edit_leaves_the_output_unchanged(tiny_llama) -> None:
    input_ids = torch.tensor([[1, 4, 9, 2]])
    with torch.no_grad():
        clean = tiny_llama.model(input_ids).logits
        with lensed(tiny_llama, neurons(tiny_llama), lambda units: units):
            same = tiny_llama.model(input_ids).logits
    torch.testing.assert_close(clean, same, rtol=0, atol=0)


ITEMS = [Encoded((1, 4, 9), (3,)), Encoded((2, 7), (5, 6)), Encoded((8, 3, 3, 1), (10,))]


def _prob_with_last_token_units_scaled(loaded, lens, item: Encoded, alpha: float) -> float:
    batch = collate([item], loaded.tokenizer.pad_token_id, loaded.device)
    pos = len(item.prompt_ids) - 1

    def edit(units: torch.Tensor) -> torch.Tensor:
        units = units.clone()
        units[0, pos] *= alpha
        return units

    with torch.no_grad(), lensed(loaded, lens, edit):
        return float(score(loaded, batch).log_prob.exp()[0])


def test_integrated_gradients_satisfy_completeness(tiny_llama) -> None:
    """Sum of IG attributions = p(y|x) at full activation - p(y|x) with the units at 0 (to Riemann error)."""
    lens = neurons(tiny_llama)
    scores = attribute(tiny_llama, lens, ITEMS, "integrated_gradients", steps=400, batch_size=64)
    for item, row in zip(ITEMS, scores, strict=True):
        full = _prob_with_last_token_units_scaled(tiny_llama, lens, item, 1.0)
        empty = _prob_with_last_token_units_scaled(tiny_llama, lens, item, 0.0)
        assert abs(float(row.sum()) - (full - empty)) < 0.02 * max(abs(full - empty), 1e-4) + 1e-6


def _log_prob_with_answer_units_scaled(loaded, lens, item: Encoded, alpha: float) -> float:
    """log p(y|x) with the units at every answer-predicting position scaled by alpha."""
    batch = collate([item], loaded.tokenizer.pad_token_id, loaded.device)

    def edit(units: torch.Tensor) -> torch.Tensor:
        units = units.clone()
        units[batch.rows, batch.positions] *= alpha
        return units

    with torch.no_grad(), lensed(loaded, lens, edit):
        return float(score(loaded, batch).log_prob[0])


def test_ig_over_every_answer_position_satisfies_completeness_for_log_prob(tiny_llama) -> None:
    """positions='answer': the units of every answer-predicting position move together, so the
    scores sum to log p(y|x) at full activation minus with all of them at 0; a one-token answer
    scores as at the last prompt token."""
    lens = neurons(tiny_llama)
    long = [Encoded((3, 5, 7), (9, 11, 13)), Encoded((4, 6), (8, 10))]  # multi-token answers, ragged
    scores = attribute(
        tiny_llama,
        lens,
        long,
        "integrated_gradients",
        steps=400,
        batch_size=64,
        positions="answer",
        objective="log_prob",
    )
    for item, row in zip(long, scores, strict=True):
        full = _log_prob_with_answer_units_scaled(tiny_llama, lens, item, 1.0)
        empty = _log_prob_with_answer_units_scaled(tiny_llama, lens, item, 0.0)
        assert abs(float(row.sum()) - (full - empty)) < 0.02 * abs(full - empty) + 1e-5
    last = attribute(tiny_llama, lens, long, "integrated_gradients", steps=8, batch_size=64, objective="log_prob")
    assert not torch.allclose(
        last, attribute(tiny_llama, lens, long, "integrated_gradients", 8, 64, positions="answer", objective="log_prob")
    )
    one = [Encoded((3, 5, 7), (9,))]
    for method in ("integrated_gradients", "gradient_x_activation", "activation"):
        torch.testing.assert_close(
            attribute(tiny_llama, lens, one, method, 4, 8, positions="answer"),
            attribute(tiny_llama, lens, one, method, 4, 8),
        )
    # batched over several items and alphas, answer positions agree with one row at a time
    batched = attribute(tiny_llama, lens, long, "integrated_gradients", steps=6, batch_size=64, positions="answer")
    looped = attribute(tiny_llama, lens, long, "integrated_gradients", steps=6, batch_size=1, positions="answer")
    torch.testing.assert_close(batched, looped, rtol=1e-4, atol=1e-7)


def test_batched_ig_equals_one_step_at_a_time(tiny_llama) -> None:
    lens = neurons(tiny_llama)
    batched = attribute(tiny_llama, lens, ITEMS, "integrated_gradients", steps=8, batch_size=24)
    looped = attribute(tiny_llama, lens, ITEMS, "integrated_gradients", steps=8, batch_size=1)
    torch.testing.assert_close(batched, looped, rtol=1e-4, atol=1e-7)


def test_gradient_x_activation_and_activation(tiny_llama) -> None:
    lens = neurons(tiny_llama)
    item = ITEMS[0]
    acts = attribute(tiny_llama, lens, [item], "activation", steps=1, batch_size=8)[0]
    grad_x_act = attribute(tiny_llama, lens, [item], "gradient_x_activation", steps=1, batch_size=8)[0]
    # activation attribution is the neuron value at the last prompt token
    seen = {}
    with torch.no_grad(), hooked(tiny_llama.model, {SITE: lambda t: seen.__setitem__("post", t)}):
        tiny_llama.model(torch.tensor([item.prompt_ids]))
    torch.testing.assert_close(acts, seen["post"][0, -1])
    # gradient x activation, by finite differences on one neuron
    j, eps = int(grad_x_act.abs().argmax()), 1e-3
    batch = collate([item], tiny_llama.tokenizer.pad_token_id, tiny_llama.device)
    probs = []
    for delta in (eps, -eps):

        def bump(units: torch.Tensor, delta: float = delta) -> torch.Tensor:
            units = units.clone()
            units[0, len(item.prompt_ids) - 1, j] += delta
            return units

        with torch.no_grad(), lensed(tiny_llama, lens, bump):
            probs.append(float(score(tiny_llama, batch).log_prob.exp()[0]))
    numeric = (probs[0] - probs[1]) / (2 * eps)
    assert abs(float(grad_x_act[j]) - numeric * float(acts[j])) < 1e-3 * abs(float(grad_x_act[j])) + 1e-6


def test_multi_token_answer_is_a_product_of_teacher_forced_probs(tiny_llama) -> None:
    item = Encoded((2, 7), (5, 6))
    batch = collate([item, ITEMS[0]], tiny_llama.tokenizer.pad_token_id, tiny_llama.device)
    with torch.no_grad():
        got = score(tiny_llama, batch).log_prob[0]
        logp = tiny_llama.model(torch.tensor([[2, 7, 5]])).logits[0].log_softmax(-1)
    torch.testing.assert_close(got, logp[1, 5] + logp[2, 6])


def test_ablation_at_named_positions_covers_passes_of_any_shape(tiny_llama) -> None:
    model, lens = tiny_llama.model, neurons(tiny_llama)
    units = torch.tensor([3, 5])
    seen: list[torch.Tensor] = []
    ablated = units_ablated_at(tiny_llama, lens, unit_mask(lens.n_units, units), "all_but_first")
    with torch.no_grad(), ablated, hooked(model, {SITE: lambda t: seen.append(t.detach().clone())}):
        for length in (3, 6):  # the edit holds for every pass, whatever its length
            model(torch.arange(1, length + 1)[None])
    for post in seen:
        assert (post[0, 1:, units] == 0).all()  # hooks after the edit see the ablated units
        assert (post[0, 0, units] != 0).all()  # position 0, the attention sink, is never edited
    # the named positions equal the explicit mask
    ids = torch.tensor([[1, 4, 9, 2]])
    mask = position_mask(ids, torch.ones_like(ids), None, "all_but_first")
    outputs = []
    for where in ("all_but_first", mask):
        with torch.no_grad(), units_ablated_at(tiny_llama, lens, unit_mask(lens.n_units, units), where):
            outputs.append(model(ids).logits)
    torch.testing.assert_close(outputs[0], outputs[1])
    with (
        pytest.raises(ValueError, match="needs the prompts"),
        units_ablated_at(tiny_llama, lens, unit_mask(lens.n_units, units), "last"),
    ):
        pass
