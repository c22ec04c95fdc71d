"""What `bench sae train` trains: the hyper-parameters of one SAE and the folder suffix they give.

Kept apart from bench.sae.training (which imports sae-lens) so the CLI can show these
defaults without that import.
"""

from __future__ import annotations

from dataclasses import dataclass

ARCHITECTURES = ("topk", "standard", "standard_ne")  # standard_ne: L1 plus the neuron-embedding loss


@dataclass(frozen=True)
class TrainSpec:
    width_multiple: int = 8  # d_sae = width_multiple x d_in
    k: int = 32  # TopK: active features per token
    epochs: float = 3.0  # passes over the cached training activations
    batch_size: int = 1024
    lr: float = 5e-4
    seed: int = 0
    architecture: str = "topk"
    l1_coefficient: float = 5.0  # standard, standard_ne: λ1
    # standard_ne: λ2. L_N is summed over active features, MSE over input dimensions (both
    # averaged over the batch): on SmolLM2 L16 mlp_out a TopK SAE gives L_N ≈ 22 and MSE ≈ 185
    # per token, so λ2 = 1 makes L_N about a tenth of the loss; the paper leaves λ2 unstated.
    ne_coefficient: float = 1.0
    ne_warm_up_steps: int = 100  # standard_ne: steps before L_N is switched on

    @property
    def variant(self) -> str:
        """Folder suffix. TopK SAEs keep the bare site name (the lenses' default); other losses are
        named with any loss coefficient that is not the default, e.g. "standard_ne-ne_0.1", so
        two such settings never share a folder. Other settings of one loss share it (--force)."""
        if self.architecture == "topk":
            return ""
        default = TrainSpec()
        changed = [
            f"{_SHORT[f]}_{getattr(self, f):g}"
            for f in _LOSS_FIELDS.get(self.architecture, ())
            if getattr(self, f) != getattr(default, f)
        ]
        return "-".join([self.architecture, *changed])


_SHORT = {"l1_coefficient": "l1", "ne_coefficient": "ne", "ne_warm_up_steps": "warm"}
_LOSS_FIELDS = {
    "standard": ("l1_coefficient",),
    "standard_ne": ("l1_coefficient", "ne_coefficient", "ne_warm_up_steps"),
}
