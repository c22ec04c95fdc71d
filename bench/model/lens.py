"""The contract every lens implements, and how the harness runs a model through one.

A lens re-expresses the activation at one site as unit activations ``f = encode(acts)``
and can write edited units back: ``patch(acts, f, f_new)`` returns the site's new value,
with ``patch(acts, f, f) == acts[site]``. Ablation, integrated gradients and any other
intervention are edits of ``f``, so the harness needs nothing else from a lens:

- MLP neurons: ``f`` is the neuron layer itself and ``patch`` returns ``f_new``;
- SAE features: ``f = sae.encode(h)`` and ``patch`` adds ``(f_new - f) @ W_dec`` to ``h``,
  which keeps the SAE's error term;
- token-conditional units (a neuron split by which cluster a token falls in) read extra
  sites (``reads``) captured earlier in the same forward pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from bench.model.loading import LoadedModel
from bench.model.sites import Site, SiteFn, hooked, site_width

# An edit receives the unit activations [batch, pos, n_units] and returns edited ones.
UnitEdit = Callable[[torch.Tensor], torch.Tensor]


class Lens(ABC):
    site: str  # TransformerLens-style name of the site whose activation the units re-express
    reads: tuple[str, ...] = ()  # further sites encode() needs; they must run before `site`

    @property
    @abstractmethod
    def n_units(self) -> int: ...

    @abstractmethod
    def encode(self, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Unit activations [batch, pos, n_units] from ``acts[self.site]`` (and ``self.reads``)."""

    @abstractmethod
    def patch(self, acts: Mapping[str, torch.Tensor], units: torch.Tensor, new_units: torch.Tensor) -> torch.Tensor:
        """The site's new activation once ``units`` (from encode) are replaced by ``new_units``."""

    def config(self) -> dict[str, Any]:
        """What identifies this lens beyond its name and site (an SAE's id, a seed, ...)."""
        return {}

    def diagnostics(self) -> dict[str, Any]:
        """Measurements of the lens itself stored beside each record (an SAE's quality at its site);
        not part of what identifies the lens."""
        return {}


class SiteCoordinates(Lens):
    """The site's own coordinates as units (for measuring a site's reference activation)."""

    def __init__(self, site: str, width: int):
        self.site, self._n_units = site, width

    @property
    def n_units(self) -> int:
        return self._n_units

    def encode(self, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return acts[self.site]

    def patch(self, acts: Mapping[str, torch.Tensor], units: torch.Tensor, new_units: torch.Tensor) -> torch.Tensor:
        return new_units


class BlockNeurons(SiteCoordinates):
    """Every MLP neuron of one block, read at the input of the down projection; ablating a
    neuron sets it to 0 there. The mlp_neurons lens is this; knowledge neurons and DEPN use it
    to search every block whatever lens is under test."""

    def __init__(self, loaded: LoadedModel, layer: int):
        site = f"blocks.{layer}.mlp.hook_post"
        super().__init__(site, site_width(loaded.model, Site.parse(site)))
        self.layer = layer


@dataclass(frozen=True)
class RefitData:
    """What a fitted lens refits on when the model it was fitted on has been changed (privacy
    erasure's model with facts injected): the new model's activations over the lens's own corpus
    and over `texts`, sentences of the distribution the change was made on."""

    texts: tuple[str, ...]
    data_dir: Path | None
    tokens: int  # corpus tokens of the new model's activations to refit on
    seed: int = 0


@runtime_checkable
class Refits(Protocol):
    """An optional capability: lenses fitted to a model's activations (SAEs, PCA/ICA/random bases,
    neuron clusters) refit themselves to a changed model. Lenses made of the model's own units
    (MLP neurons) have nothing to refit."""

    def refit(self, loaded: LoadedModel, data: RefitData) -> Lens:
        """This lens, refitted (or fine-tuned) for `loaded`; its config() says from what."""
        ...


@runtime_checkable
class WritesDirections(Protocol):
    """An optional capability: lenses whose units are directions in the site's basis (SAE features).

    Weight-editing methods such as FeatureEdit use it to map units back to the model's basis.
    """

    def unit_directions(self, units: torch.Tensor) -> torch.Tensor:
        """[len(units), d_site]: the vector each unit adds to the site per unit of activation."""
        ...


@runtime_checkable
class ReadsInputs(Protocol):
    """An optional capability: lenses whose units have input weights (neurons; SAE encoder rows).

    The polysemanticity task embeds a unit's dataset examples as input ⊙ input weights.
    """

    def input_weights(self, model: torch.nn.Module) -> tuple[str, torch.Tensor]:
        """The site each unit reads, and its input weights [n_units, rows, d_site] (rows: gate and up, or 1)."""
        ...


# Sees the site's activation before and after an edit, both [batch, pos, d_site].
PatchObserver = Callable[[torch.Tensor, torch.Tensor], None]


@contextmanager
def lensed(loaded: LoadedModel, lens: Lens, edit: UnitEdit, observe: PatchObserver | None = None) -> Iterator[None]:
    """Every forward pass inside the context runs with ``edit`` applied to the lens's units;
    ``observe`` (optional) sees each site activation before and after the edit."""
    captured: dict[str, torch.Tensor] = {}

    def capture(name: str) -> SiteFn:
        def fn(tensor: torch.Tensor) -> None:
            captured[name] = tensor

        return fn

    def at_site(tensor: torch.Tensor) -> torch.Tensor:
        acts = {**captured, lens.site: tensor}
        units = lens.encode(acts)
        patched = lens.patch(acts, units, edit(units))
        if observe is not None:
            observe(tensor, patched)
        return patched

    fns: dict[str, SiteFn] = {name: capture(name) for name in lens.reads}
    fns[lens.site] = at_site
    with hooked(loaded.model, fns):
        yield
