"""Fine-tuning an SAE for a changed model (privacy erasure's model with facts injected).

An SAE trained before the facts existed may have no feature for them, so scoring it on the
changed model tests the set-up, not the method. The base SAE keeps training, from its own
weights, with sae-lens's `SAETrainer` on the changed model's activations: its training corpus
(WikiText-2 valid, cached like every activation pass) and the sentences of the change, repeated
to a configured share of the rows, so the change's distribution is in what it fits. The result
is cached like other SAEs (under the changed model's weights) with a card that says what it was
fine-tuned from and on.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sae_lens import SAE
from sae_lens.registry import get_sae_training_class
from sae_lens.training.sae_trainer import SAETrainer

from bench.data.corpus import CORPORA
from bench.engine.provenance import environment
from bench.errors import BenchError
from bench.model.activations import ActivationSpec, collect, site_activations
from bench.model.lens import RefitData
from bench.model.loading import LoadedModel
from bench.sae.training import batches, fitted_inference_sae, sae_path, save_sae, trainer_config

TEXT_SHARE = 0.1  # the change's sentences as a share of the rows fine-tuned on
LEARNING_RATE = 1e-4  # a fifth of training's: the dictionary moves to the change, it is not relearnt
BATCH_SIZE = 1024


def sentence_activations(
    loaded: LoadedModel, site: str, texts: Sequence[str], prepare: Callable[[torch.Tensor], torch.Tensor]
) -> np.ndarray:
    """[n_tokens, d] activations at `site` over each sentence, position 0 dropped as in the corpus pass."""
    rows = []
    for text in texts:
        ids = torch.tensor([loaded.tokenizer(text)["input_ids"]])
        rows.append(prepare(site_activations(loaded, site, ids)[0, 1:]).float().cpu())
    if not rows:
        raise BenchError("no sentences to fine-tune the SAE on.")
    return torch.cat(rows).numpy()


def mixed_rows(corpus: np.ndarray, sentences: np.ndarray, share: float, seed: int) -> np.ndarray:
    """The corpus rows plus the sentence rows repeated until they are `share` of the whole, shuffled."""
    wanted = round(share / (1 - share) * len(corpus))
    repeats = max(1, -(-wanted // len(sentences)))
    mixed = np.concatenate([corpus, np.tile(sentences, (repeats, 1))[: max(wanted, len(sentences))]])
    return mixed[np.random.default_rng(seed).permutation(len(mixed))].astype(np.float32)


def _training_copy(base: SAE[Any], device: str) -> Any:
    """A sae-lens training SAE of the base's architecture, starting from its weights. The base's
    activation scaling is folded into its weights already, so the copy reads raw activations."""
    try:
        training_class, config_class = get_sae_training_class(base.cfg.architecture())
    except (KeyError, ValueError) as err:
        raise BenchError(
            f"sae-lens has no training class for an SAE of architecture {base.cfg.architecture()!r}."
        ) from err
    config = config_class.from_dict({**base.cfg.to_dict(), "normalize_activations": "none", "device": device})
    sae = training_class(config)
    sae.load_state_dict(base.state_dict())
    return sae


def finetuned_sae(
    loaded: LoadedModel,
    site: str,
    base: SAE[Any],
    base_config: dict[str, Any],
    data: RefitData,
    prepare: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[SAE[Any], str]:
    """The base SAE (whose lens config is `base_config`) fine-tuned for `loaded` (cached), and where it is."""
    recipe = {"tokens": data.tokens, "text_share": TEXT_SHARE, "lr": LEARNING_RATE, "seed": data.seed}
    key = hashlib.sha256(
        json.dumps([base_config.get("sae_sha256"), loaded.weights_sha256, list(data.texts), recipe]).encode()
    ).hexdigest()[:12]
    variant = f"finetuned-{key}"
    path = sae_path(loaded, site, variant)
    if (path / "card.json").exists():
        return SAE.load_from_disk(path, device=str(loaded.device)), str(path)
    spec = ActivationSpec("train", max_tokens=data.tokens)
    corpus = np.asarray(collect(loaded, [site], spec, data.data_dir)[site], dtype=np.float32)
    corpus = prepare(torch.from_numpy(corpus)).float().numpy()
    sentences = sentence_activations(loaded, site, data.texts, prepare)
    rows = mixed_rows(corpus, sentences, TEXT_SHARE, data.seed)
    device = str(loaded.device)
    work = path.with_name(path.name + ".training")
    shutil.rmtree(work, ignore_errors=True)
    total = len(rows) // BATCH_SIZE * BATCH_SIZE
    if total == 0:
        raise BenchError(f"{len(rows)} activation rows are fewer than one SAE batch ({BATCH_SIZE}); raise the tokens.")
    torch.manual_seed(data.seed)
    started = time.perf_counter()
    trainer = SAETrainer(
        trainer_config(total, BATCH_SIZE, LEARNING_RATE, device, work),
        _training_copy(base, device),
        batches(rows, BATCH_SIZE, data.seed, 0),
    )
    sae = fitted_inference_sae(trainer, work, device)
    card = {
        "model": loaded.describe(),
        "site": site,
        "finetuned_from": base_config,
        "training": {
            **recipe,
            "samples": total,
            "device": device,
            "corpus": {**spec.__dict__, "text": CORPORA[spec.corpus], "rows": len(corpus)},
            "sentences": {"count": len(data.texts), "rows": len(sentences), "share_of_rows": TEXT_SHARE},
            "train_wall_time_s": round(time.perf_counter() - started, 1),
        },
        "provenance": environment(),
    }
    return sae, str(save_sae(loaded, site, sae, card, variant))
