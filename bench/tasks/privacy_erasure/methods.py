"""Erasure methods: how a fact's attributed units are turned into an edit of the model.

A method is a pydantic model (its fields are the options a task YAML may set) with a
``name``, the attribution it needs, ``unsupported(lens)`` saying why it cannot edit a lens,
and ``erase(...)``: a context manager inside which the model is edited, restored on exit.
Methods are plugins (hook ``bench_erasure_methods``), so a new lens can ship its own.

Built in (docs/methods/privacy_erasure.md):
- ``feature_edit``: FeatureEdit, for lenses whose units are directions (SAEs): their
  directions removed from what writes the site, or from everything that reads the residual
  stream after it (or the paper's row zeroing, ``mode: zero_rows``);
- ``knowledge_neurons``: Dai et al.'s erasure, output-weight columns of IG neurons zeroed;
- ``depn``: DEPN's privacy neurons (integrated gradients, as its paper), activations set to 0;
  both search the MLP neurons of every block, as their papers do (``layers: lens`` keeps
  them at the lens's block), whatever the lens under test, so every lens is compared with them;
- ``ablate_top_k``: any lens, its top-k attributed units set to their reference value (the
  attribution's baseline: the WikiText mean by default, or 0) at every position but the first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from bench.model.directions import orthonormal_basis
from bench.model.interventions import unit_mask, units_ablated_at
from bench.model.lens import BlockNeurons, Lens, SiteCoordinates, WritesDirections
from bench.model.loading import LoadedModel
from bench.model.sites import Site, n_layers, neuron_output_weight, site_width, stream_read_without, writer_weight


class ErasureMethod(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: ClassVar[str]
    description: ClassVar[str]
    attribution: ClassVar[str] = "integrated_gradients"
    # False for methods that never read the lens's units (they search the model's own neurons):
    # their results are the same under every lens at a layer, and the task computes them once
    uses_lens: ClassVar[bool] = True

    def unsupported(self, lens: Lens) -> str | None:
        """Why this method cannot edit `lens`, or None when it can."""
        return None

    def searched(self, loaded: LoadedModel, lens: Lens) -> Sequence[Lens]:
        """The lenses whose units the method attributes and picks from, scores concatenated
        in this order: the lens under test unless the method searches more (every block's neurons)."""
        return [lens]

    def edited(self, loaded: LoadedModel, lens: Lens) -> Sequence[Lens]:
        """The lenses whose reference values `erase` receives as `values`, in this order: the
        searched units by default (they are what the edit sets to their reference)."""
        return self.searched(loaded, lens)

    @abstractmethod
    def erase(
        self, loaded: LoadedModel, lens: Lens, scores: torch.Tensor, values: Sequence[torch.Tensor] | None = None
    ) -> AbstractContextManager[dict[str, Any]]:
        """Edit the model for one fact; `scores` [n_prompts, n_units] are its attributions over
        the units of `searched(loaded, lens)`, side by side. `values`: per lens of
        `edited(loaded, lens)`, the reference value [n_units] of its units (the attribution's
        baseline, which a removed unit is set to; None: 0).

        Yields what was edited (units, weights zeroed) for the record.
        """


def top_units(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k units with the highest attribution averaged over the fact's prompts."""
    return scores.mean(0).topk(min(k, scores.shape[1])).indices


@contextmanager
def zeroed(weight: torch.Tensor, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> Iterator[int]:
    """Zero rows or columns of a weight (in place, through views), restoring them on exit; yields the count."""
    with torch.no_grad():
        index = (rows, slice(None)) if rows is not None else (slice(None), cols)
        saved = weight[index].clone()
        weight[index] = 0
    try:
        yield saved.numel()
    finally:
        with torch.no_grad():
            weight[index] = saved


class AblateTopK(ErasureMethod):
    name: ClassVar[str] = "ablate_top_k"
    description: ClassVar[str] = (
        "any lens: the fact's top-k IG units set to their reference value, all positions but the first"
    )
    top_k: int = Field(5, ge=1)

    @contextmanager
    def erase(
        self, loaded: LoadedModel, lens: Lens, scores: torch.Tensor, values: Sequence[torch.Tensor] | None = None
    ) -> Iterator[dict[str, Any]]:
        units = top_units(scores, self.top_k)
        # every position but the first (the attention sink, which no lens was fitted on and whose
        # edits break the model rather than erase a fact), in every pass while the edit holds
        value = values[0] if values else None
        with units_ablated_at(loaded, lens, unit_mask(lens.n_units, units), "all_but_first", value):
            yield {"units": units.tolist()}


@contextmanager
def replaced(weights: list[torch.Tensor], new: list[torch.Tensor]) -> Iterator[None]:
    """Weights overwritten in place (through views) with new values, restored on exit."""
    saved = [w.detach().clone() for w in weights]
    with torch.no_grad():
        for weight, value in zip(weights, new, strict=True):
            weight.copy_(value.to(weight.dtype))
    try:
        yield
    finally:
        with torch.no_grad():
            for weight, value in zip(weights, saved, strict=True):
                weight.copy_(value)


def _projected_out_of_writer(weight: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """W ← (I − QQᵀ)W: the block can no longer write any direction of the span."""
    w = weight.detach().float()
    q = basis.to(w.device)
    return w - q @ (q.T @ w)


def _relative_change(weight: torch.Tensor, new: torch.Tensor) -> float:
    """‖W' − W‖ / ‖W‖."""
    w = weight.detach().float()
    return float((w - new.to(w.device)).norm() / w.norm())


class FeatureEdit(ErasureMethod):
    """FeatureEdit: the fact's top-k feature directions (decoder rows) removed from the model.

    - ``project`` (default): at mlp_out / attn_out the matrix that writes the site loses the
      directions, W ← (I − QQᵀ)W; at resid_post (written by every block before it) every later
      reader of the stream (each later block's attention and MLP, and the unembedding) stops
      reading them: where each later norm takes the stream in, its component in their span is set
      to the site's reference value (the attribution baseline, the harness's one ablation rule:
      the WikiText mean by default; ``baseline: zero`` projects it out), at every position but
      the first. Whoever wrote the direction, nothing downstream reads what it varies with.
      Projecting to 0 instead removes the stream's mean along the direction too, which a
      decoder direction shares with most tokens: on the default model that alone multiplied
      perplexity by 5-20.
    - ``zero_rows``: the paper's rule, rows of the writing matrix zeroed where a unit-norm
      direction's |coordinate| > tau / √d. tau is in units of 1/√d, the typical coordinate of
      a random unit vector, so it means the same at every width.
    """

    name: ClassVar[str] = "feature_edit"
    description: ClassVar[str] = "SAE lenses: the top-k features' decoder directions no longer written or read"
    top_k: int = Field(5, ge=1)
    mode: Literal["project", "zero_rows"] = "project"
    tau: float = Field(3.0, gt=0, description="zero_rows: threshold in units of 1/sqrt(d)")

    def unsupported(self, lens: Lens) -> str | None:
        if not isinstance(lens, WritesDirections):
            return "its units are not directions in the model's basis (no unit_directions)"
        hook = Site.parse(lens.site).hook
        writable = ("hook_resid_post", "hook_mlp_out", "hook_attn_out")
        return None if hook in writable else f"its site {hook} has no writing weight (needs one of {writable})"

    def edited(self, loaded: LoadedModel, lens: Lens) -> list[Lens]:
        # only a project edit at resid_post sets something to a reference value: the stream's
        # component, so its reference is the stream's own (coordinates); weight edits need none
        site = Site.parse(lens.site)
        if self.mode != "project" or site.hook != "hook_resid_post":
            return []
        return [SiteCoordinates(lens.site, site_width(loaded.model, site))]

    @contextmanager
    def erase(
        self, loaded: LoadedModel, lens: Lens, scores: torch.Tensor, values: Sequence[torch.Tensor] | None = None
    ) -> Iterator[dict[str, Any]]:
        assert isinstance(lens, WritesDirections)
        units = top_units(scores, self.top_k)
        directions = lens.unit_directions(units).float()
        directions = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        site = Site.parse(lens.site)
        if self.mode == "zero_rows":
            threshold = self.tau / directions.shape[1] ** 0.5
            rows = (directions.abs() > threshold).any(0).nonzero().squeeze(1).to(loaded.device)
            with zeroed(writer_weight(loaded.model, site), rows=rows) as count:
                yield {"units": units.tolist(), "rows": rows.tolist(), "weights_zeroed": count}
            return
        basis = orthonormal_basis(directions)
        if site.hook == "hook_resid_post":
            centre = values[0] if values else None
            with stream_read_without(loaded.model, site.layer, basis, centre) as norms:
                yield {"units": units.tolist(), "norms_blinded": norms}
            return
        weight = writer_weight(loaded.model, site)
        new = _projected_out_of_writer(weight, basis)
        changed = _relative_change(weight, new)
        with replaced([weight], [new]):
            yield {"units": units.tolist(), "matrices": 1, "relative_change": changed}


class NeuronSearch(ErasureMethod, ABC):
    """Neuron-based baselines: they search MLP neurons at every block (``layers: all``, as the
    knowledge-neuron and DEPN papers do) or at the lens's block only (``layers: lens``). They
    never use the lens's own units, so they run beside every lens: a record of any lens shows
    them next to its own methods, on the same injected model and targets."""

    uses_lens: ClassVar[bool] = False
    layers: Literal["all", "lens"] = "all"

    def searched(self, loaded: LoadedModel, lens: Lens) -> list[BlockNeurons]:
        if self.layers == "lens":
            return [BlockNeurons(loaded, Site.parse(lens.site).layer)]
        return [BlockNeurons(loaded, layer) for layer in range(n_layers(loaded.model))]

    @staticmethod
    def by_block(blocks: list[BlockNeurons], flat: torch.Tensor) -> dict[BlockNeurons, torch.Tensor]:
        """Indices into the concatenated scores, as neuron indices per block (blocks with none left out)."""
        offsets = torch.tensor([0] + [b.n_units for b in blocks]).cumsum(0)
        out: dict[BlockNeurons, torch.Tensor] = {}
        for i, block in enumerate(blocks):
            mine = flat[(flat >= offsets[i]) & (flat < offsets[i + 1])] - offsets[i]
            if len(mine):
                out[block] = mine
        return out


def _neurons(per_block: dict[BlockNeurons, torch.Tensor]) -> list[str]:
    return [f"{block.layer}:{int(n)}" for block, neurons in per_block.items() for n in neurons]


class KnowledgeNeurons(NeuronSearch):
    """Dai et al. (2022): per prompt, neurons with IG >= threshold x the prompt's max over every
    searched neuron; with several prompts (refinement), those found in at least `refine_share`
    of them; at most `max_neurons`."""

    name: ClassVar[str] = "knowledge_neurons"
    description: ClassVar[str] = "MLP neurons of every block: IG knowledge neurons, their output-weight columns zeroed"
    threshold: float = Field(0.2, gt=0, le=1)
    refine_share: float = Field(0.7, gt=0, le=1)
    max_neurons: int = Field(20, ge=1)

    def select(self, scores: torch.Tensor) -> torch.Tensor:
        found = scores >= self.threshold * scores.max(dim=1, keepdim=True).values.clamp_min(1e-12)
        shared = found.float().mean(0) >= self.refine_share
        candidates = shared.nonzero().squeeze(1)
        order = scores.mean(0)[candidates].argsort(descending=True)
        return candidates[order][: self.max_neurons]

    @contextmanager
    def erase(
        self, loaded: LoadedModel, lens: Lens, scores: torch.Tensor, values: Sequence[torch.Tensor] | None = None
    ) -> Iterator[dict[str, Any]]:
        per_block = self.by_block(self.searched(loaded, lens), self.select(scores))
        with ExitStack() as stack:
            count = sum(
                stack.enter_context(
                    zeroed(neuron_output_weight(loaded.model, block.layer), cols=neurons.to(loaded.device))
                )
                for block, neurons in per_block.items()
            )
            yield {"neurons": _neurons(per_block), "weights_zeroed": count}


class DEPN(NeuronSearch):
    """DEPN (Wu et al., 2023): privacy neurons by integrated gradients, as in its paper, deactivated (set to 0)."""

    name: ClassVar[str] = "depn"
    description: ClassVar[str] = (
        "MLP neurons of every block: IG-attributed privacy neurons set to their reference value"
    )
    top_k: int = Field(5, ge=1)

    @contextmanager
    def erase(
        self, loaded: LoadedModel, lens: Lens, scores: torch.Tensor, values: Sequence[torch.Tensor] | None = None
    ) -> Iterator[dict[str, Any]]:
        blocks = self.searched(loaded, lens)
        value_of = dict(zip(blocks, values, strict=True)) if values else {}
        per_block = self.by_block(blocks, top_units(scores, self.top_k))
        with ExitStack() as stack:
            for block, neurons in per_block.items():
                mask = unit_mask(block.n_units, neurons)
                stack.enter_context(units_ablated_at(loaded, block, mask, "all_but_first", value_of.get(block)))
            yield {"neurons": _neurons(per_block)}


BUILTIN_METHODS: list[type[ErasureMethod]] = [FeatureEdit, KnowledgeNeurons, DEPN, AblateTopK]
