"""TransformerLens-style site names mapped onto Hugging Face modules, one adapter per architecture.

A site is ``blocks.{L}.{hook}``. Each hook is read either at a module's output or at a
module's input; the adapter table below is the only place that knows module names, so a
new architecture is one row (SAEBench's lesson: keep per-architecture knowledge in one table).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from bench.errors import BenchError


@dataclass(frozen=True)
class Architecture:
    blocks: str  # path from the CausalLM to the ModuleList of transformer blocks
    attn_out: str  # module (inside a block) whose output is what the block adds from attention
    mlp_out: str  # module whose output is what the block adds from the MLP
    mlp: str  # the MLP module: its input is the normalized residual the MLP reads
    mlp_down: str  # the MLP's output projection: its input is the neuron layer
    attn_proj: str  # attention's output projection: what writes the attention output
    mlp_in: tuple[str, ...]  # the MLP's input projections (gate and up for gated MLPs): neuron input weights
    d_mlp_attr: tuple[str, ...]  # config attributes that may hold the MLP width, first found wins
    # what reads the residual stream inside a block: (norm, the projections reading its output)
    readers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    norm_offset: float = 0.0  # Gemma's RMSNorm scales by 1 + weight
    final_norm: str = "model.norm"  # path from the CausalLM to the norm the unembedding reads
    native_dtype: str = "float32"  # what the family's checkpoints are trained and shipped in (`--dtype auto`)


_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
_LLAMA = Architecture(
    "model.layers",
    "self_attn",
    "mlp",
    "mlp",
    "mlp.down_proj",
    "self_attn.o_proj",
    ("mlp.gate_proj", "mlp.up_proj"),
    ("intermediate_size",),
    (("input_layernorm", _QKV), ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"))),
    native_dtype="bfloat16",
)

ARCHITECTURES: dict[str, Architecture] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    # Gemma-2 normalizes each sublayer's output before adding it to the residual stream;
    # TransformerLens's hook_attn_out / hook_mlp_out sit after those norms, and so do we.
    "gemma2": Architecture(
        "model.layers",
        "post_attention_layernorm",
        "post_feedforward_layernorm",
        "mlp",
        "mlp.down_proj",
        "self_attn.o_proj",
        ("mlp.gate_proj", "mlp.up_proj"),
        ("intermediate_size",),
        (("input_layernorm", _QKV), ("pre_feedforward_layernorm", ("mlp.gate_proj", "mlp.up_proj"))),
        norm_offset=1.0,
        native_dtype="bfloat16",  # float16 overflows in Gemma-2's activations
    ),
    "gpt2": Architecture(
        "transformer.h",
        "attn",
        "mlp",
        "mlp",
        "mlp.c_proj",
        "attn.c_proj",
        ("mlp.c_fc",),
        ("n_inner",),
        (("ln_1", ("attn.c_attn",)), ("ln_2", ("mlp.c_fc",))),
        final_norm="transformer.ln_f",
    ),
    "gpt_neox": Architecture(
        "gpt_neox.layers",
        "attention",
        "mlp",
        "mlp",
        "mlp.dense_4h_to_h",
        "attention.dense",
        ("mlp.dense_h_to_4h",),
        ("intermediate_size",),
        (("input_layernorm", ("attention.query_key_value",)), ("post_attention_layernorm", ("mlp.dense_h_to_4h",))),
        native_dtype="float16",
        final_norm="gpt_neox.final_layer_norm",
    ),
}

Port = Literal["input", "output"]
# hook name -> (which module of the adapter, read at its input or output)
HOOKS: dict[str, tuple[str, Port]] = {
    "hook_resid_pre": ("block", "input"),
    "hook_resid_post": ("block", "output"),
    "hook_attn_out": ("attn_out", "output"),
    # the heads' outputs concatenated, before the output projection (sae-lens's hook_z SAEs, flattened)
    "attn.hook_z": ("attn_proj", "input"),
    "hook_mlp_out": ("mlp_out", "output"),
    "ln2.hook_normalized": ("mlp", "input"),
    "mlp.hook_post": ("mlp_down", "input"),
}

_SITE_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class Site:
    name: str
    layer: int
    hook: str

    @classmethod
    def parse(cls, name: str) -> Site:
        match = _SITE_RE.match(name)
        if not match or match.group(2) not in HOOKS:
            raise BenchError(
                f"unknown site {name!r}. Sites look like blocks.<layer>.<hook> with hook one of: "
                f"{', '.join(HOOKS)} (TransformerLens names)."
            )
        return cls(name, int(match.group(1)), match.group(2))


def architecture_of(model: nn.Module) -> Architecture:
    model_type = getattr(model.config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise BenchError(
            f"architecture {model_type!r} has no site mapping. "
            f"Supported: {', '.join(sorted(ARCHITECTURES))}. "
            "Add a row to ARCHITECTURES in bench/sites.py to support it."
        )
    return ARCHITECTURES[model_type]


def n_layers(model: nn.Module) -> int:
    return len(model.get_submodule(architecture_of(model).blocks))


def site_width(model: nn.Module, site: Site) -> int:
    """Width of the activation at a site, from the config alone (no forward pass)."""
    config = model.config
    if site.hook == "attn.hook_z":
        heads = int(getattr(config, "num_attention_heads", None) or config.n_head)
        return heads * int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    if site.hook != "mlp.hook_post":
        return int(config.hidden_size)
    for attr in architecture_of(model).d_mlp_attr:
        if getattr(config, attr, None):
            return int(getattr(config, attr))
    return 4 * int(config.hidden_size)  # GPT-2's convention when n_inner is None


def resolve(model: nn.Module, site: Site) -> tuple[nn.Module, Port]:
    arch = architecture_of(model)
    blocks = model.get_submodule(arch.blocks)
    if not 0 <= site.layer < len(blocks):
        raise BenchError(f"site {site.name!r}: layer {site.layer} is out of range; the model has {len(blocks)} layers.")
    which, port = HOOKS[site.hook]
    block = blocks[site.layer]
    module = block if which == "block" else block.get_submodule(getattr(arch, which))
    return module, port


# The weight matrix whose output is a site's activation (or, for the residual stream after a
# block, the last one written into it), for edits of the weights rather than the activations.
_WRITERS = {"hook_resid_post": "mlp_down", "hook_mlp_out": "mlp_down", "hook_attn_out": "attn_proj"}


def writer_weight(model: nn.Module, site: Site) -> torch.Tensor:
    """The writing weight as a view [d_site, d_in], shared with the module (edits write through).

    Gemma-2 normalizes sublayer outputs after this matrix, so there zeroing a row of it
    removes that dimension before the norm, not after.
    """
    if site.hook not in _WRITERS:
        raise BenchError(f"site {site.name!r} has no single writing weight matrix; editable: {', '.join(_WRITERS)}.")
    arch = architecture_of(model)
    block = model.get_submodule(arch.blocks)[site.layer]
    module = block.get_submodule(getattr(arch, _WRITERS[site.hook]))
    return out_by_in(module)


def out_by_in(module: nn.Module) -> torch.Tensor:
    """A projection's weight as [d_out, d_in]: nn.Linear stores it so, GPT-2's Conv1D transposed."""
    weight = module.weight
    return weight if isinstance(module, nn.Linear) else weight.T


def stream_reading_norms(model: nn.Module, after_layer: int) -> list[nn.Module]:
    """Every norm through which something reads the residual stream after block `after_layer`:
    the reading norms of each later block (attention's and the MLP's), then the final norm
    before the unembedding. Everything downstream sees the stream only through one of these."""
    arch = architecture_of(model)
    blocks = model.get_submodule(arch.blocks)
    if not 0 <= after_layer < len(blocks):
        raise BenchError(f"block {after_layer} is out of range; the model has {len(blocks)} layers.")
    if not arch.readers:
        raise BenchError(f"the {model.config.model_type} adapter in bench/model/sites.py lists no stream readers.")
    later = [blocks[i].get_submodule(norm) for i in range(after_layer + 1, len(blocks)) for norm, _ in arch.readers]
    return [*later, model.get_submodule(arch.final_norm)]


def neuron_output_weight(model: nn.Module, layer: int) -> torch.Tensor:
    """The MLP down projection of a block as [d_model, d_mlp]: column j is what neuron j writes."""
    arch = architecture_of(model)
    return out_by_in(model.get_submodule(arch.blocks)[layer].get_submodule(arch.mlp_down))


def neuron_input_weights(model: nn.Module, layer: int) -> torch.Tensor:
    """[d_mlp, n_projections, d_model]: each neuron's input weights (gate and up rows for gated MLPs)."""
    arch = architecture_of(model)
    block = model.get_submodule(arch.blocks)[layer]
    return torch.stack([out_by_in(block.get_submodule(name)) for name in arch.mlp_in], dim=1).detach()


# A site function sees the activation ([batch, pos, d]) and returns a replacement or None.
SiteFn = Callable[[torch.Tensor], torch.Tensor | None]


def _first_tensor_hook(fn: SiteFn, port: Port) -> Callable[..., Any]:
    """Adapt fn to a module hook whose first argument/output (a tensor or a tuple) is the activation."""

    def swap(value: Any) -> Any:
        tensor = value[0] if isinstance(value, tuple) else value
        new = fn(tensor)
        if new is None:
            return None
        return (new, *value[1:]) if isinstance(value, tuple) else new

    if port == "output":
        return lambda _module, _args, output: swap(output)

    def pre_hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args:
            new = swap(args)
            return None if new is None else (new, kwargs)
        new = fn(kwargs["hidden_states"])
        return None if new is None else (args, {**kwargs, "hidden_states": new})

    return pre_hook


@contextmanager
def hooked(model: nn.Module, fns: dict[str, SiteFn]) -> Iterator[None]:
    """Run fns at their sites during every forward pass inside the context."""
    with ExitStack() as stack:
        for name, fn in fns.items():
            module, port = resolve(model, Site.parse(name))
            hook = _first_tensor_hook(fn, port)
            if port == "output":
                handle = module.register_forward_hook(hook)
            else:
                handle = module.register_forward_pre_hook(hook, with_kwargs=True)
            stack.callback(handle.remove)
        yield


@contextmanager
def stream_read_without(
    model: nn.Module, after_layer: int, basis: torch.Tensor, centre: torch.Tensor | None = None
) -> Iterator[int]:
    """Inside the context, every reader of the stream after block `after_layer` sees it with its
    component in the span of `basis` [d_model, r] (orthonormal columns) set to that of `centre`
    [d_model] (0 when None: projected out), at every position but the first (the attention sink,
    which every edit of the harness leaves alone); the stream itself, carried by the skip
    connections, is unchanged. Yields the number of norms edited.

    The projection sits in front of each norm rather than folded into the readers' weights:
    RMSNorm's and LayerNorm's statistics are computed over the whole stream, so a weight edit
    leaves the direction able to rescale (or, for LayerNorm, shift) everything the norm passes on.
    """
    q = basis.detach()
    c = torch.zeros(q.shape[0]) if centre is None else centre.detach()

    def project(x: torch.Tensor) -> torch.Tensor:
        qx, cx = q.to(device=x.device, dtype=x.dtype), c.to(device=x.device, dtype=x.dtype)
        read = x - ((x - cx) @ qx) @ qx.T
        read[:, 0] = x[:, 0]
        return read

    with ExitStack() as stack:
        norms = stream_reading_norms(model, after_layer)
        for norm in norms:
            handle = norm.register_forward_pre_hook(_first_tensor_hook(project, "input"), with_kwargs=True)
            stack.callback(handle.remove)
        yield len(norms)
