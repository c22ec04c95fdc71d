"""Directions in the residual stream: what a lens's units write there, how much of a vector a set
of directions spans, and the stream direction that raises a fact's answer.

Shared by the erasure methods (FeatureEdit projects spans out) and the diagnostic scripts that ask
whether a lens's chosen units line up with the answer's read-out or the fact's own deviation.
"""

from __future__ import annotations

import torch

from bench.data.pararel import Fact
from bench.model.lens import Lens
from bench.model.loading import LoadedModel
from bench.model.scoring import encode
from bench.model.sites import Site, hooked, neuron_output_weight, site_width


def orthonormal_basis(directions: torch.Tensor) -> torch.Tensor:
    """[d, r]: an orthonormal basis of the span of the rows of `directions` [n, d]."""
    q, r = torch.linalg.qr(directions.T.double())
    keep = r.diagonal().abs() > 1e-8 * r.diagonal().abs().max().clamp_min(1e-30)
    return q[:, keep].float()


def share_in_span(directions: torch.Tensor, vector: torch.Tensor) -> float:
    """‖Π v̂‖²: the share of the unit vector v̂ inside the span of the rows of `directions`."""
    basis = orthonormal_basis(directions)
    unit = vector / vector.norm()
    return float((basis.T @ unit).pow(2).sum())


def stream_directions(loaded: LoadedModel, lens: Lens, units: list[int]) -> torch.Tensor:
    """[len(units), d_model]: what raising each unit by 1 adds to the residual stream, read off the
    lens's own patch (so it holds for any linear decoder); MLP neurons through the down projection."""
    site = Site.parse(lens.site)
    h = torch.zeros(1, len(units), site_width(loaded.model, site))
    before = lens.encode({lens.site: h})
    after = before.clone()
    after[0, torch.arange(len(units)), torch.tensor(units)] += 1.0
    moved = (lens.patch({lens.site: h}, before, after) - h)[0]
    if site.hook == "mlp.hook_post":
        moved = moved @ neuron_output_weight(loaded.model, site.layer).detach().T.float()
    return moved.float()


def answer_gradient(loaded: LoadedModel, site: str, fact: Fact) -> tuple[torch.Tensor, torch.Tensor]:
    """The site's activation x and ∂ log p(answer) / ∂x at the last prompt token (the whole answer
    teacher-forced, as the tasks score it)."""
    (encoded,) = encode(loaded.tokenizer, [fact])
    ids = torch.tensor([encoded.prompt_ids + encoded.answer_ids[:-1]], device=loaded.device)
    last = len(encoded.prompt_ids) - 1
    leaves: list[torch.Tensor] = []

    def leaf(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().requires_grad_(True)
        leaves.append(x)
        return x

    with torch.enable_grad(), hooked(loaded.model, {site: leaf}):
        logp = loaded.model(ids).logits[0].float().log_softmax(-1)
        targets = torch.tensor(encoded.answer_ids, device=loaded.device)
        logp[last + torch.arange(len(targets), device=loaded.device), targets].sum().backward()
    return leaves[0][0, last].detach().float(), leaves[0].grad[0, last].float()
