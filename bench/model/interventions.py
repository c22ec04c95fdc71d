"""Edits of a lens's units at chosen positions, the size of each edit, and a random edit of the
same size at the same positions: the ablation behind ΔProb and its random-edit control.

Position 0 is the attention sink: its residual norm is ~150x that of other positions and no
SAE, PCA or ICA saw it in training, so editing it measures damage, not knowledge. The default
edits only the positions the attribution looked at (the last prompt token).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch

from bench.model.lens import Lens, lensed
from bench.model.loading import LoadedModel
from bench.model.scoring import Batch
from bench.model.sites import hooked

Positions = Literal["last", "all_but_first", "all"]


def position_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor, last: torch.Tensor | None, where: Positions):
    """[batch, pos] bool: the positions an edit touches ('last' needs each row's last prompt position)."""
    if where == "last":
        assert last is not None, "positions 'last' needs the last prompt token of each row"
        mask = torch.zeros_like(input_ids, dtype=torch.bool)
        mask[torch.arange(len(mask), device=mask.device), last] = True
        return mask
    mask = attention_mask.bool().clone()
    if where == "all_but_first":
        mask[:, 0] = False
    return mask


def batch_positions(batch: Batch, where: Positions) -> torch.Tensor:
    return position_mask(batch.input_ids, batch.attention_mask, batch.last_prompt, where)


@dataclass
class EditSize:
    """Filled during the edited pass: ‖Δh‖ at each position [batch, pos] and ‖Δh‖/‖h‖ per row
    over the edited positions (Frobenius norms)."""

    delta_norm: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    relative: torch.Tensor = field(default_factory=lambda: torch.empty(0))


def unit_mask(n_units: int, units: torch.Tensor) -> torch.Tensor:
    """[1, n_units] bool, True at the indices ``units``: the same units for every row of a pass."""
    mask = torch.zeros(1, n_units, dtype=torch.bool)
    mask[0, units] = True
    return mask


@contextmanager
def units_ablated_at(
    loaded: LoadedModel,
    lens: Lens,
    units: torch.Tensor,
    where: torch.Tensor | Positions,
    value: torch.Tensor | None = None,
) -> Iterator[EditSize]:
    """Units set to ``value`` where ``units`` [batch or 1, n_units] and ``where`` are both True.

    ``value``: the reference each unit is set to (bench.model.reference), [n_units] or one row per
    batch row [batch, n_units]; None sets units to 0.

    ``where`` is a [batch, pos] mask for known inputs, or "all" / "all_but_first" for every
    forward pass inside the context whatever its shape (an erasure edits the model for all the
    scoring and perplexity passes that follow). "last" needs the prompts, so only as a mask.
    """
    if isinstance(where, str) and where == "last":
        raise ValueError("positions 'last' needs the prompts: pass position_mask(...) instead")

    def positions(acts: torch.Tensor) -> torch.Tensor:
        if isinstance(where, torch.Tensor):
            return where.to(acts.device)
        mask = torch.ones(acts.shape[:2], dtype=torch.bool, device=acts.device)
        if where == "all_but_first":
            mask[:, 0] = False
        return mask

    size = EditSize()

    def edit(acts: torch.Tensor) -> torch.Tensor:
        drop = units.to(acts.device)[:, None, :] & positions(acts)[:, :, None]
        if value is None:
            return acts.masked_fill(drop, 0)
        reference = value.to(acts.device, acts.dtype)
        return torch.where(drop, reference[None, None, :] if reference.dim() == 1 else reference[:, None, :], acts)

    def observe(before: torch.Tensor, after: torch.Tensor) -> None:
        delta = (after - before).float().norm(dim=-1)  # zero wherever nothing was edited
        size.delta_norm = delta
        edited = positions(delta)
        h_norm = before.float().norm(dim=-1).masked_fill(~edited, 0)
        size.relative = delta.square().sum(1).sqrt() / h_norm.square().sum(1).sqrt().clamp_min(1e-12)

    with lensed(loaded, lens, edit, observe):
        yield size


@contextmanager
def random_edit(
    loaded: LoadedModel, site: str, norms: torch.Tensor, seeds: Sequence[int], offsets: torch.Tensor | None = None
) -> Iterator[None]:
    """Add to each row a random direction per position, scaled to ``norms`` [batch, pos] (0: no edit);
    row b's directions come from seed ``seeds[b]``, so the control is reproducible row by row.
    ``offsets`` [batch]: the position of column 0 in the whole sequence (a batch after cached
    prefixes), so a position gets the same direction whichever way it is run."""
    starts = [0] * len(seeds) if offsets is None else offsets.tolist()

    def add_noise(h: torch.Tensor) -> torch.Tensor:
        length, width = h.shape[1:]
        noise = torch.stack(
            [
                torch.randn(start + length, width, generator=torch.Generator().manual_seed(s))[start:]
                for s, start in zip(seeds, starts, strict=True)
            ]
        ).to(h.device)
        noise = noise / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12) * norms.to(h.device)[..., None]
        return h + noise.to(h.dtype)

    with hooked(loaded.model, {site: add_noise}):
        yield
