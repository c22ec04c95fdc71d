"""lens-bench lens: MLP neurons.

Units are the MLP's hidden layer at one block (after the activation function; for gated
MLPs ``act(gate(x)) * up(x)``), read at the input of the down projection. Ablating a
neuron sets it to 0 before the down projection.

This package is written as any third-party lens would be: it depends only on the public
``bench`` API and registers itself through the ``lens_bench`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from bench import hookimpl
from bench.errors import BenchError
from bench.model.lens import BlockNeurons, Lens
from bench.model.loading import LoadedModel
from bench.model.sites import Site, neuron_input_weights
from bench.plugin.specs import LensSpec


class MLPNeurons(BlockNeurons):
    def __init__(self, loaded: LoadedModel, site: str):
        parsed = Site.parse(site)
        if parsed.hook != "mlp.hook_post":
            raise BenchError(f"mlp_neurons reads the MLP's hidden layer (blocks.L.mlp.hook_post), not {site!r}.")
        super().__init__(loaded, parsed.layer)

    def input_weights(self, model: torch.nn.Module) -> tuple[str, torch.Tensor]:
        """Neurons read the MLP's normalized input through their gate and up rows (or one input row)."""
        return f"blocks.{self.layer}.ln2.hook_normalized", neuron_input_weights(model, self.layer)


def _build(loaded: LoadedModel, site: str, options: Mapping[str, Any]) -> Lens:
    if options:
        raise BenchError(f"mlp_neurons takes no options, got {sorted(options)}.")
    return MLPNeurons(loaded, site)


@hookimpl
def bench_lenses() -> list[LensSpec]:
    return [
        LensSpec(
            name="mlp_neurons",
            description="MLP neurons: the hidden layer of each block's MLP (knowledge-neuron units).",
            default_site="blocks.{layer}.mlp.hook_post",
            build=_build,
        )
    ]
