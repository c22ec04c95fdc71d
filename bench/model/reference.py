"""What "removing a unit" sets it to: one rule for every lens.

A unit is removed by setting it to a reference value measured on ordinary text (WikiText-2
validation tokens, every position but the first, the attention sink), the same way for neurons,
SAE features, clusters and bases:

- ``mean``: the unit's mean activation there (default). A unit that is always on keeps its
  typical value, so removing it removes what is specific to the input, not a constant offset;
- ``zero``: 0, the knowledge-neuron and SAE papers' rule (a dense unit then looks important);
- ``resample``: the unit's value at a reference token drawn per row (a causal-scrubbing style
  ablation that keeps the unit's marginal distribution).

Integrated gradients integrate from the same reference value (``baseline``), so attribution and
ablation agree on what "absent" means: a constant unit scores 0 under ``mean`` and removing it
changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from bench.errors import BenchError
from bench.model.lens import Lens, lensed
from bench.model.loading import LoadedModel
from bench.model.text_kl import wikitext_tokens

AblationValue = Literal["mean", "zero", "resample"]


class UnitReference:
    """Each unit's reference activations on WikiText-2 validation text."""

    def __init__(self, rule: AblationValue, mean: torch.Tensor, samples: torch.Tensor | None = None):
        self.rule, self.mean, self.samples = rule, mean, samples

    @classmethod
    def measure(
        cls,
        loaded: LoadedModel,
        lens: Lens,
        rule: AblationValue,
        data_dir: Path | None,
        windows: int = 16,
        tokens: int = 128,
    ) -> UnitReference:
        if rule == "zero":
            return cls(rule, torch.zeros(lens.n_units))
        config = loaded.model.config  # a window never exceeds the model's context
        tokens = min(tokens, getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", tokens))
        ids = wikitext_tokens(data_dir, loaded.tokenizer, windows * tokens, "valid")
        if len(ids) < 2:
            raise BenchError("WikiText-2 validation is empty: the units' reference values need its text.")
        # whole windows, or one shorter window where the split is small (a test corpus)
        ids = ids[: len(ids) // tokens * tokens].view(-1, tokens) if len(ids) >= tokens else ids[None]
        seen: list[torch.Tensor] = []

        def keep(units: torch.Tensor) -> torch.Tensor:
            seen.append(units[:, 1:].detach().float().flatten(0, 1).cpu())  # position 0 is the sink
            return units

        with torch.no_grad(), lensed(loaded, lens, keep):
            for start in range(0, len(ids), 4):
                loaded.model(input_ids=ids[start : start + 4].to(loaded.device), logits_to_keep=1)
        acts = torch.cat(seen)
        return cls(rule, acts.mean(0), acts if rule == "resample" else None)

    def values(self, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """[n_units] (mean, zero), or [len(seeds), n_units] for resample: each row's draw from its seed."""
        if self.rule != "resample":
            return self.mean
        assert self.samples is not None and seeds is not None, "resample draws per row: pass the rows' seeds"
        picks = [int(torch.randint(len(self.samples), (1,), generator=torch.Generator().manual_seed(s))) for s in seeds]
        return self.samples[picks]

    def describe(self) -> dict[str, object]:
        """What the record says about the rule."""
        return {"value": self.rule, "reference": "WikiText-2 validation, positions >= 1"}
