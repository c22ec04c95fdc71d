"""Training SAEs for a model that has none, with sae-lens's own trainer.

Activations come from the shared cached activation pass (bench.model.activations) rather than
sae-lens's ActivationsStore, because that store drives a TransformerLens HookedTransformer
and our models are plain Hugging Face modules hooked through bench.model.sites. Everything past
the data (the TopK training SAE, AuxK loss, Adam, LR schedule, dead-feature tracking,
activation-norm scaling, checkpoints) is sae-lens's `SAETrainer`.

A run is resumable: sae-lens checkpoints (weights + trainer state) are written during
training and the latest is picked up again; the finished SAE is moved into place, with its
card, only once it is complete.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sae_lens import SAE
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.sae import SAEMetadata, TrainingSAE, TrainingSAEConfig
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer

from bench.data.corpus import CORPORA
from bench.engine.provenance import environment
from bench.errors import BenchError
from bench.io import write_json_atomic
from bench.model.activations import ActivationSpec, collect
from bench.model.loading import LoadedModel
from bench.paths import cache_dir
from bench.sae.ne_sae import NeuronEmbeddingTrainingSAE, NeuronEmbeddingTrainingSAEConfig
from bench.sae.quality import ce_loss_recovered, reconstruction_stats
from bench.sae.spec import ARCHITECTURES, TrainSpec


def _training_sae(spec: TrainSpec, d_in: int, common: dict[str, Any]) -> tuple[TrainingSAE[Any], TrainingSAEConfig]:
    d_sae = spec.width_multiple * d_in
    if spec.architecture == "topk":
        cfg: TrainingSAEConfig = TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=spec.k, **common)
        return TopKTrainingSAE(cfg), cfg
    l1 = {"l1_coefficient": spec.l1_coefficient}
    if spec.architecture == "standard":
        cfg = StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, **l1, **common)
        return StandardTrainingSAE(cfg), cfg
    if spec.architecture == "standard_ne":
        ne = {"ne_coefficient": spec.ne_coefficient, "ne_warm_up_steps": spec.ne_warm_up_steps}
        cfg = NeuronEmbeddingTrainingSAEConfig(d_in=d_in, d_sae=d_sae, **l1, **ne, **common)
        return NeuronEmbeddingTrainingSAE(cfg), cfg
    raise BenchError(f"unknown SAE architecture {spec.architecture!r}; choose one of {', '.join(ARCHITECTURES)}.")


def trainer_config(total: int, batch_size: int, lr: float, device: str, work: Path) -> SAETrainerConfig:
    """sae-lens's trainer settings for `total` samples: warm-up over the first 5 %, decay to lr/10
    over the last 20 %, four checkpoints in `work`; windows scaled to the run's length."""
    steps = total // batch_size
    return SAETrainerConfig(
        total_training_samples=total,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr / 10,
        lr_warm_up_steps=max(1, steps // 20),
        lr_decay_steps=steps // 5,
        device=device,
        n_checkpoints=4,
        checkpoint_path=str(work),
        dead_feature_window=max(50, steps // 10),
        feature_sampling_window=max(100, steps // 5),
        n_batches_for_norm_estimate=20,
    )


def fitted_inference_sae(trainer: SAETrainer[Any, Any], work: Path, device: str) -> SAE[Any]:
    """Run the trainer to the end and return its SAE as sae-lens's inference SAE (activation
    scaling folded into the weights), through a folder beside `work` that is removed after."""
    trained = trainer.fit()
    out = work.with_name(work.name.removesuffix(".training") + ".final")
    trained.save_inference_model(out)
    inference = SAE.load_from_disk(out, device=device)
    shutil.rmtree(out)
    return inference


def sae_root(loaded: LoadedModel) -> Path:
    """Where harness-trained SAEs of this model live: keyed by the weights, not the name."""
    return cache_dir() / "saes" / loaded.weights_sha256[:16]


def sae_path(loaded: LoadedModel, site: str, variant: str = "") -> Path:
    return sae_root(loaded) / (f"{site}+{variant}" if variant else site)


def batches(acts: np.ndarray, batch_size: int, seed: int, skip: int) -> Iterator[torch.Tensor]:
    """Seeded shuffled batches, epoch after epoch; the first `skip` samples are passed over (resume)."""
    n, seen, epoch = len(acts), 0, 0
    while True:
        order = np.random.default_rng(seed + epoch).permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            seen += batch_size
            if seen > skip:
                yield torch.from_numpy(acts[np.sort(order[start : start + batch_size])].astype(np.float32))
        epoch += 1


def _latest_checkpoint(folder: Path) -> Path | None:
    done = [p for p in folder.glob("*") if p.name.isdigit() and (p / "trainer_state.pt").exists()]
    return max(done, key=lambda p: int(p.name), default=None)


def train_sae(
    loaded: LoadedModel, site: str, acts: np.ndarray, spec: TrainSpec, device: str = "cpu"
) -> tuple[SAE[Any], dict[str, Any]]:
    """Train (or resume training) an SAE on cached activations; returns it with its training facts."""
    d_in = acts.shape[1]
    final = sae_path(loaded, site, spec.variant)
    work = final.with_name(final.name + ".training")
    total = int(spec.epochs * len(acts)) // spec.batch_size * spec.batch_size
    torch.manual_seed(spec.seed)
    common = {
        "device": device,
        "normalize_activations": "expected_average_only_in",
        "metadata": SAEMetadata(model_name=loaded.model_id, hook_name=site),
    }
    sae, cfg = _training_sae(spec, d_in, common)
    trainer_cfg = trainer_config(total, spec.batch_size, spec.lr, device, work)
    resume = _latest_checkpoint(work)
    skip = 0
    if resume is not None:
        sae.load_weights_from_checkpoint(resume)
    trainer = SAETrainer(trainer_cfg, sae, batches(acts, spec.batch_size, spec.seed, 0))
    if resume is not None:
        trainer.load_trainer_state(resume)
        skip = trainer.n_training_samples
        trainer.data_provider = batches(acts, spec.batch_size, spec.seed, skip)
        trainer.checkpoint_thresholds = [t for t in trainer.checkpoint_thresholds if t > skip]
    started = time.perf_counter()
    inference = fitted_inference_sae(trainer, work, device)
    facts = {
        **asdict(spec),
        "d_in": d_in,
        "d_sae": cfg.d_sae,
        "device": device,  # kernels differ: the same seed trains a slightly different SAE on a GPU
        "training_tokens": total,
        "unique_tokens": len(acts),
        "resumed_from_tokens": skip,
        "train_wall_time_s": round(time.perf_counter() - started, 1),
    }
    return inference, facts


def save_sae(loaded: LoadedModel, site: str, sae: SAE[Any], card: dict[str, Any], variant: str = "") -> Path:
    """Save an SAE with its card; the folder appears whole or not at all."""
    final = sae_path(loaded, site, variant)
    tmp = final.with_name(final.name + ".saving")
    shutil.rmtree(tmp, ignore_errors=True)
    sae.save_model(tmp)
    write_json_atomic(tmp / "card.json", card)
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    shutil.rmtree(final.with_name(final.name + ".training"), ignore_errors=True)
    return final


SITE_KINDS = {"resid_post": "hook_resid_post", "mlp_out": "hook_mlp_out", "attn_out": "hook_attn_out"}


def train_saes(
    loaded: LoadedModel,
    kinds: list[str],
    layers: list[int],
    spec: TrainSpec,
    data_dir: Path | None,
    device: str = "cpu",
    force: bool = False,
    train_tokens: int = 300_000,
    heldout_tokens: int = 100_000,
) -> list[dict[str, Any]]:
    """Train every (site kind, layer) SAE that does not exist yet; return all their cards."""
    unknown = sorted(set(kinds) - set(SITE_KINDS))
    if unknown:
        raise BenchError(f"unknown SAE site kind(s) {unknown}; choose from {', '.join(SITE_KINDS)}.")
    sites = [f"blocks.{layer}.{SITE_KINDS[kind]}" for layer in layers for kind in kinds]
    todo = [site for site in sites if force or not (sae_path(loaded, site, spec.variant) / "card.json").exists()]
    train_spec = ActivationSpec("train", max_tokens=train_tokens)
    heldout_spec = ActivationSpec("heldout", max_tokens=heldout_tokens)
    if todo:
        train_acts = collect(loaded, todo, train_spec, data_dir)
        heldout_acts = collect(loaded, todo, heldout_spec, data_dir)
    for i, site in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] training SAE for {site}")
        sae, facts = train_sae(loaded, site, np.asarray(train_acts[site]), spec, device)
        card = {
            "model": loaded.describe(),
            "site": site,
            # the card says which text: what the SAE was fitted on must stay out of what it is scored on
            "training": {**facts, "corpus": {**train_spec.__dict__, "text": CORPORA[train_spec.corpus]}},
            "heldout": {
                "corpus": {**heldout_spec.__dict__, "text": CORPORA[heldout_spec.corpus]},
                **reconstruction_stats(sae, heldout_acts[site]),
                **ce_loss_recovered(loaded, sae, site, heldout_spec, data_dir),
            },
            "provenance": environment(),
        }
        save_sae(loaded, site, sae, card, spec.variant)
    return [json_card(sae_path(loaded, site, spec.variant)) for site in sites]


def json_card(path: Path) -> dict[str, Any]:
    return json.loads((path / "card.json").read_text(encoding="utf-8"))
