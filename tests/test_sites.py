"""Each architecture's site mapping, checked against identities of the residual stream."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.errors import BenchError
from bench.model.loading import load_model
from bench.model.sites import Site, architecture_of, hooked, n_layers, site_width
from tests.tiny import ARCH_CONFIGS

HOOKS = [
    "hook_resid_pre",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
    "ln2.hook_normalized",
    "mlp.hook_post",
]


def capture(
    model: torch.nn.Module, input_ids: torch.Tensor
) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
    acts: dict[str, torch.Tensor] = {}

    def keep(name: str):
        return lambda t: acts.__setitem__(name, t.detach().clone())

    sites = {
        f"blocks.{layer}.{hook}": keep(f"blocks.{layer}.{hook}") for layer in range(n_layers(model)) for hook in HOOKS
    }
    with hooked(model, sites), torch.no_grad():
        out = model(input_ids, output_hidden_states=True)
    return acts, out.hidden_states


@pytest.mark.parametrize("arch", sorted(ARCH_CONFIGS))
def test_site_mapping_matches_residual_stream(arch: str, tiny_model_dirs: dict[str, Path]) -> None:
    model = load_model(str(tiny_model_dirs[arch])).model
    input_ids = torch.tensor([[1, 5, 7, 3, 2]])
    acts, hidden = capture(model, input_ids)
    layers = n_layers(model)
    arch_row = architecture_of(model)
    for layer in range(layers):
        site = lambda hook, layer=layer: acts[f"blocks.{layer}.{hook}"]  # noqa: E731
        # resid_pre is what the block receives: HF's hidden_states[layer]
        torch.testing.assert_close(site("hook_resid_pre"), hidden[layer])
        # a block adds exactly its attention and MLP contributions to the stream
        torch.testing.assert_close(
            site("hook_resid_post"), site("hook_resid_pre") + site("hook_attn_out") + site("hook_mlp_out")
        )
        if layer < layers - 1:  # HF's last hidden state has the final norm applied
            torch.testing.assert_close(site("hook_resid_post"), hidden[layer + 1])
        # the neuron layer, projected down (and post-normed where the architecture does), is the MLP output
        block = model.get_submodule(arch_row.blocks)[layer]
        with torch.no_grad():
            projected = block.get_submodule(arch_row.mlp_down)(site("mlp.hook_post"))
            if arch_row.mlp_out != arch_row.mlp:
                projected = block.get_submodule(arch_row.mlp_out)(projected)
            torch.testing.assert_close(projected, site("hook_mlp_out"))
            # the MLP reads ln2.hook_normalized
            mlp_out = block.get_submodule(arch_row.mlp)(site("ln2.hook_normalized"))
            if arch_row.mlp_out != arch_row.mlp:
                mlp_out = block.get_submodule(arch_row.mlp_out)(mlp_out)
            torch.testing.assert_close(mlp_out, site("hook_mlp_out"))
        assert site("mlp.hook_post").shape[-1] == site_width(model, Site.parse(f"blocks.{layer}.mlp.hook_post")) == 24
        assert site("hook_attn_out").shape[-1] == site_width(model, Site.parse(f"blocks.{layer}.hook_attn_out")) == 16


def test_replacing_a_site_changes_the_output(tiny_llama) -> None:
    model = tiny_llama.model
    input_ids = torch.tensor([[1, 5, 7]])
    with torch.no_grad():
        clean = model(input_ids).logits
        with hooked(model, {"blocks.1.hook_resid_post": lambda t: torch.zeros_like(t)}):
            zeroed = model(input_ids).logits
        again = model(input_ids).logits  # hooks are gone after the context
    assert not torch.allclose(clean, zeroed)
    torch.testing.assert_close(clean, again)


@pytest.mark.parametrize("name", ["blocks.0.hook_nonsense", "layers.0.hook_resid_post", "blocks.x.hook_mlp_out"])
def test_unknown_site_is_a_clear_error(name: str) -> None:
    with pytest.raises(BenchError, match="unknown site"):
        Site.parse(name)


def test_layer_out_of_range(tiny_llama) -> None:
    with (
        pytest.raises(BenchError, match="out of range"),
        hooked(tiny_llama.model, {"blocks.9.hook_mlp_out": lambda t: None}),
    ):
        pass


def test_unknown_architecture_is_a_clear_error(tiny_llama) -> None:
    tiny_llama.model.config.model_type = "mamba"
    with pytest.raises(BenchError, match=r"no site mapping.*bench/sites\.py"):
        architecture_of(tiny_llama.model)


@pytest.mark.parametrize(
    ("arch", "dtype"), [("gemma2", torch.bfloat16), ("gpt2", torch.float32), ("qwen2", torch.bfloat16)]
)
def test_auto_dtype_comes_from_the_adapter_table(arch: str, dtype: torch.dtype, tiny_model_dirs) -> None:
    assert load_model(str(tiny_model_dirs[arch]), dtype="auto").dtype == dtype
