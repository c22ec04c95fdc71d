"""SAE training with the neuron-embedding loss (neuron-embeddings paper, section 3.3.2).

    L = MSE + λ1·L1 + λ2·L_N,   L_N = Σ_b Σ_{j active on x_b} 1 − cos(h_avg,j ⊙ w_j, x_b ⊙ w_j)

where w_j is feature j's encoder column and h_avg,j a momentum average (m = 0.9) of the
inputs that activated it. Built on sae-lens's extension points: a ``StandardTrainingSAE``
subclass whose ``calculate_aux_loss`` adds L_N, its coefficient declared through
``get_coefficients`` and the class registered with ``register_sae_training_class``, so
sae-lens's own ``SAETrainer`` trains it. The saved inference SAE is a plain "standard" SAE.

Two choices the paper leaves open, stated here: L_N is averaged over the batch (sae-lens
averages MSE and L1 the same way) rather than summed, and each step moves h_avg,j towards
the mean of that step's inputs that activated j (one momentum update per step, not per
input). L_N is switched on after ``ne_warm_up_steps`` steps, once the averages mean something.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY, register_sae_training_class
from sae_lens.saes.sae import SAEConfig, TrainCoefficientConfig, TrainStepInput
from sae_lens.saes.standard_sae import StandardSAEConfig, StandardTrainingSAE, StandardTrainingSAEConfig

from bench.sae.spec import TrainSpec

ARCHITECTURE = "standard_neuron_embedding"


def neuron_embedding_loss(
    x: torch.Tensor, feature_acts: torch.Tensor, w_enc: torch.Tensor, h_avg: torch.Tensor, seen: torch.Tensor
) -> torch.Tensor:
    """Mean over the batch of Σ_j [active and seen] (1 − cos(h_avg,j ⊙ w_j, x_b ⊙ w_j)).

    x [B, d_in], feature_acts [B, d_sae], w_enc [d_in, d_sae], h_avg [d_sae, d_in], seen [d_sae].
    Computed densely: cos = x·(h_avg ⊙ w²) / (|x ⊙ w| |h_avg ⊙ w|), two matmuls like the encoder.
    """
    w2 = w_enc.T.pow(2)  # [d_sae, d_in]
    numerator = x @ (h_avg * w2).T
    norm_x = (x.pow(2) @ w2.T).clamp_min(1e-12).sqrt()
    norm_avg = (h_avg.pow(2) * w2).sum(-1).clamp_min(1e-12).sqrt()
    cos = numerator / (norm_x * norm_avg)
    mask = (feature_acts > 0) & seen[None, :]
    return ((1 - cos) * mask).sum() / x.shape[0]


@torch.no_grad()
def update_averages(
    x: torch.Tensor, feature_acts: torch.Tensor, h_avg: torch.Tensor, seen: torch.Tensor, momentum: float
) -> None:
    """h_avg,j ← m·h_avg,j + (1 − m)·mean of this batch's inputs that activated j (first time: that mean)."""
    active = (feature_acts > 0).to(x.dtype)  # [B, d_sae]
    counts = active.sum(0)
    fired = counts > 0
    batch_mean = (active.T @ x) / counts.clamp_min(1)[:, None]
    blended = torch.where(seen[:, None], momentum * h_avg + (1 - momentum) * batch_mean, batch_mean)
    h_avg[fired] = blended[fired]
    seen |= fired


@dataclass
class NeuronEmbeddingTrainingSAEConfig(StandardTrainingSAEConfig):
    ne_coefficient: float = TrainSpec.ne_coefficient  # λ2 (TrainSpec says why this scale)
    ne_momentum: float = 0.9  # m
    ne_warm_up_steps: int = TrainSpec.ne_warm_up_steps  # steps before L_N counts (the averages are still updated)

    @classmethod
    def architecture(cls) -> str:
        return ARCHITECTURE

    def get_inference_config_class(self) -> type[SAEConfig]:
        return StandardSAEConfig  # the trained SAE is used as a plain standard SAE


class NeuronEmbeddingTrainingSAE(StandardTrainingSAE):
    cfg: NeuronEmbeddingTrainingSAEConfig  # type: ignore[assignment]

    def __init__(self, cfg: NeuronEmbeddingTrainingSAEConfig, use_error_term: bool = False):
        super().__init__(cfg, use_error_term)
        self.register_buffer("h_avg", torch.zeros(cfg.d_sae, cfg.d_in))
        self.register_buffer("seen", torch.zeros(cfg.d_sae, dtype=torch.bool))
        self.register_buffer("ne_steps", torch.zeros((), dtype=torch.long))

    def get_coefficients(self) -> dict[str, float | TrainCoefficientConfig]:
        ne = TrainCoefficientConfig(value=self.cfg.ne_coefficient, warm_up_steps=0)  # switched on by ne_steps
        return {**super().get_coefficients(), "ne": ne}

    def process_state_dict_for_saving_inference(self, state_dict: dict[str, Any]) -> None:
        super().process_state_dict_for_saving_inference(state_dict)
        for training_only in ("h_avg", "seen", "ne_steps"):  # checkpoints keep them, the inference SAE does not
            state_dict.pop(training_only, None)

    def calculate_aux_loss(
        self, step_input: TrainStepInput, feature_acts: torch.Tensor, hidden_pre: torch.Tensor, sae_out: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        losses: dict[str, Any] = dict(super().calculate_aux_loss(step_input, feature_acts, hidden_pre, sae_out))
        x = step_input.sae_in
        # a snapshot: the averages are updated in place below, after the loss has used them
        loss = neuron_embedding_loss(x, feature_acts, self.W_enc, self.h_avg.clone(), self.seen.clone())
        switched_on = bool(self.ne_steps >= self.cfg.ne_warm_up_steps)
        losses["ne_loss"] = step_input.coefficients["ne"] * loss * switched_on
        if self.training:
            update_averages(x.detach(), feature_acts.detach(), self.h_avg, self.seen, self.cfg.ne_momentum)
            self.ne_steps += 1
        return losses


if ARCHITECTURE not in SAE_TRAINING_CLASS_REGISTRY:
    register_sae_training_class(ARCHITECTURE, NeuronEmbeddingTrainingSAE, NeuronEmbeddingTrainingSAEConfig)
