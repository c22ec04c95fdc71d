"""Quality of an SAE on held-out text: L0, L1, MSE, fraction of variance explained, dead features,
and the cross-entropy loss recovered when its reconstruction replaces the activation.

sae-lens's own `run_evals` needs a TransformerLens HookedTransformer and its activation
store; these are the same standard definitions, computed on our hooked HF model instead.
CE loss recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean), with the site zero-ablated
for CE_zero. Position 0 of each context is left untouched throughout, as in training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.data.corpus import corpus_texts
from bench.model.activations import ActivationSpec, contexts
from bench.model.loading import LoadedModel
from bench.model.sites import hooked


@torch.no_grad()
def reconstruction_stats(sae: Any, acts: np.ndarray, batch_size: int = 4096) -> dict[str, float]:
    n, d_sae = len(acts), sae.cfg.d_sae
    fired = torch.zeros(d_sae, dtype=torch.bool)
    l0_sum, l1_sum, sq_err, sum_x, sum_x2 = 0.0, 0.0, 0.0, torch.zeros(acts.shape[1], dtype=torch.float64), 0.0
    for start in range(0, n, batch_size):
        x = torch.from_numpy(acts[start : start + batch_size].astype(np.float32)).to(sae.device)
        f = sae.encode(x)
        active = f != 0
        fired |= active.any(0).cpu()
        l0_sum += float(active.sum())
        l1_sum += float(f.abs().sum())
        sq_err += float(((sae.decode(f) - x) ** 2).sum())
        sum_x += x.double().sum(0).cpu()
        sum_x2 += float((x.double() ** 2).sum())
    total_var = sum_x2 - float((sum_x**2).sum()) / n
    return {
        "l0": l0_sum / n,
        "l1": l1_sum / n,  # per token, as the paper's Table 2
        "mse": sq_err / (n * acts.shape[1]),  # per element, in the site's own units
        "fraction_variance_explained": 1 - sq_err / total_var,
        "dead_fraction": float((~fired).float().mean()),
        "eval_tokens": n,
    }


@torch.no_grad()
def ce_loss_recovered(
    loaded: LoadedModel, sae: Any, site: str, spec: ActivationSpec, data_dir: Any, n_contexts: int = 64
) -> dict[str, float]:
    ctx = contexts(loaded, corpus_texts(data_dir, spec.corpus), spec)[:n_contexts].to(loaded.device)

    def loss(replace: Any) -> float:
        total = 0.0
        for start in range(0, len(ctx), 16):
            batch = ctx[start : start + 16]
            fns = {} if replace is None else {site: replace}
            with hooked(loaded.model, fns):
                total += float(loaded.model(input_ids=batch, labels=batch).loss) * len(batch)
        return total / len(ctx)

    def spliced(h: torch.Tensor) -> torch.Tensor:
        out = h.clone()
        out[:, 1:] = sae.decode(sae.encode(h[:, 1:].to(sae.dtype))).to(h.dtype)
        return out

    def zeroed(h: torch.Tensor) -> torch.Tensor:
        out = h.clone()
        out[:, 1:] = 0
        return out

    clean, with_sae, zero = loss(None), loss(spliced), loss(zeroed)
    return {
        "ce_loss_clean": clean,
        "ce_loss_with_sae": with_sae,
        "ce_loss_zero_ablation": zero,
        "ce_loss_recovered": (zero - with_sae) / (zero - clean),
    }
