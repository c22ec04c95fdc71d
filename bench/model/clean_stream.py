"""The residual stream entering a block, computed once on fixed inputs, so that edited passes over
the same inputs run only that block and the ones after it.

An edit at layer L changes nothing before block L: the KL control's WikiText windows are run
clean once, block L-1's output is kept, and each edited pass replaces blocks 0 .. L-1 with that
kept output (their ``forward`` is swapped for the duration of the pass; their hooks, names and
attributes stay, so the model's own loop over its blocks is untouched).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from bench.model.loading import LoadedModel
from bench.model.sites import Site, architecture_of


def first_edited_block(sites: tuple[str, ...]) -> int:
    """The first block whose computation an edit reading or writing these sites can change."""
    return min(Site.parse(name).layer for name in sites)


def _repeat(output: Any, times: int) -> Any:
    """A block's output (a tensor, or a tuple whose first item is the hidden state) repeated over the batch."""
    if isinstance(output, tuple):
        return (output[0].repeat(times, 1, 1), *output[1:])
    return output.repeat(times, 1, 1)


class CleanStream:
    """Block ``layer - 1``'s clean output on some inputs, kept while ``capturing()`` a clean pass
    over them; ``skipping(times)`` then runs later passes on those inputs, repeated ``times`` over
    the batch, from block ``layer`` on."""

    def __init__(self, loaded: LoadedModel, layer: int):
        self.blocks = loaded.model.get_submodule(architecture_of(loaded.model).blocks)[:layer]
        self.output: Any = None

    @contextmanager
    def capturing(self) -> Iterator[None]:
        if not self.blocks:  # nothing to skip
            yield
            return

        def keep(_module: torch.nn.Module, _args: Any, output: Any) -> None:
            self.output = output

        handle = self.blocks[-1].register_forward_hook(keep)
        try:
            yield
        finally:
            handle.remove()

    @contextmanager
    def skipping(self, times: int) -> Iterator[None]:
        if self.output is None:
            yield
            return
        repeated = _repeat(self.output, times)
        with ExitStack() as stack:
            for block in self.blocks:
                stack.callback(_restore_forward, block, block.__dict__.get("forward"))
                block.forward = lambda *_args, **_kwargs: repeated
            yield


def _restore_forward(block: torch.nn.Module, previous: Any) -> None:
    """Put back the block's own forward: an instance attribute some wrappers (accelerate) set, or the class's."""
    if previous is None:
        del block.forward
    else:
        block.forward = previous
