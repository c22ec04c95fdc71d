"""Injecting private facts into a copy of the model by fine-tuning, cached on disk.

By default only the MLP weights of a few blocks around the lens's block are trained, so the
facts are stored where the lens looks and the rest of the model (and its perplexity) is left
as it was; ``trainable: all`` fine-tunes every parameter instead.

The cache key covers the base weights, the facts and every training setting, so every
erasure method (and every lens) starts from the same injected model, and a rerun with
the same data loads it instead of training again.

A plain loop rather than transformers' Trainer: the stopping rule (stop once every fact's
greedy answer is right, checked each epoch) and answer-only loss are a few lines here,
and would each need a custom callback or collator there.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm.auto import tqdm

from bench.data.pararel import Fact
from bench.errors import BenchError
from bench.io import file_lock, write_json_atomic
from bench.model.loading import LoadedModel, load_model
from bench.model.scoring import Encoded, collate, encode, score, score_items
from bench.model.sites import architecture_of, n_layers
from bench.model.text_kl import wikitext_windows
from bench.paths import cache_dir


class InjectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    trainable: Literal["mlp", "blocks", "all"] = Field(
        "mlp",
        description="mlp: the MLP weights of the window's blocks; blocks: all their weights; all: every parameter",
    )
    window: int | None = Field(2, ge=0, description="blocks within this many of the lens's block; null: every block")
    learning_rate: float = Field(5e-4, gt=0)
    # Fitting 144 random facts moves the weights far: unregularized, WikiText perplexity rose by a
    # third on the default model. A KL term to the base model on other text keeps it in place
    # (weight 10, 8 windows a step, five templates a fact: perplexity x1.02, 134 of 144 facts learnt
    # in 7 epochs).
    retain_weight: float = Field(10.0, ge=0, description="weight of KL(base || injected) on WikiText-2 valid; 0: off")
    retain_windows: int = Field(8, ge=1, description="WikiText-2 valid windows per training step")
    retain_length: int = Field(64, ge=8, description="tokens per retain window")
    retain_pool: int = Field(256, ge=1, description="distinct windows the steps cycle through (at most)")
    batch_size: int = Field(16, ge=1)
    max_epochs: int = Field(30, ge=1)
    # constant-lr fine-tuning oscillates around the last few facts rather than converging on them;
    # the facts not learnt are simply not erasure targets
    stop_when_learnt: float = Field(0.9, gt=0, le=1, description="stop once this share of facts is greedy-correct")
    seed: int = 0


@dataclass(frozen=True)
class Injected:
    loaded: LoadedModel
    report: dict[str, Any]  # learnt count, epochs, seconds, where it is cached


def trained_blocks(model: nn.Module, config: InjectionConfig, layer: int) -> list[int]:
    """The blocks whose weights the injection trains (every block for ``trainable: all``)."""
    n = n_layers(model)
    if config.trainable == "all" or config.window is None:
        return list(range(n))
    return list(range(max(0, layer - config.window), min(n, layer + config.window + 1)))


def trainable_parameters(model: nn.Module, config: InjectionConfig, layer: int) -> list[nn.Parameter]:
    if config.trainable == "all":
        return list(model.parameters())
    arch = architecture_of(model)
    blocks = model.get_submodule(arch.blocks)
    modules = [
        blocks[i] if config.trainable == "blocks" else blocks[i].get_submodule(arch.mlp)
        for i in trained_blocks(model, config, layer)
    ]
    return [p for module in modules for p in module.parameters()]


def injection_key(
    loaded: LoadedModel, facts: Sequence[Fact], config: InjectionConfig, blocks: Sequence[int], retain: torch.Tensor
) -> str:
    payload = [loaded.weights_sha256, str(loaded.dtype), [(f.prompt, f.answer) for f in facts], config.model_dump()]
    payload += [list(blocks), hashlib.sha256(retain.numpy().tobytes()).hexdigest()]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def greedy_correct(loaded: LoadedModel, items: Sequence[Encoded], batch_size: int) -> list[bool]:
    return [greedy for _, greedy in score_items(loaded, items, batch_size)]


def retain_text(loaded: LoadedModel, config: InjectionConfig, data_dir: Path | None) -> torch.Tensor:
    """[≤ pool, length] WikiText-2 *valid* windows for the KL term (perplexity is measured on the
    test split, so the regularizer never sees it); empty when off."""
    if config.retain_weight == 0:
        return torch.empty(0, config.retain_length, dtype=torch.long)
    return wikitext_windows(data_dir, loaded.tokenizer, config.retain_pool, config.retain_length, "valid", up_to=True)


def retain_kl(base: LoadedModel, student: LoadedModel, windows: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of KL(base ‖ student) between next-token distributions."""
    ids = windows.to(student.device)
    with torch.no_grad():
        reference = torch.log_softmax(base.model(input_ids=ids).logits.float(), -1)
    current = torch.log_softmax(student.model(input_ids=ids).logits.float(), -1)
    return torch.nn.functional.kl_div(current, reference, log_target=True, reduction="none").sum(-1).mean()


def _train(
    loaded: LoadedModel, items: list[Encoded], config: InjectionConfig, layer: int, retain: torch.Tensor
) -> tuple[LoadedModel, dict[str, Any]]:
    model = copy.deepcopy(loaded.model)
    model.requires_grad_(False)
    trained = trainable_parameters(model, config, layer)
    for parameter in trained:
        parameter.requires_grad_(True)
    model.train()
    student = replace(loaded, model=model)
    optimizer = torch.optim.AdamW(trained, lr=config.learning_rate, weight_decay=0.0)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    started, history, drawn = time.perf_counter(), [], 0
    bar = tqdm(range(config.max_epochs), desc="injecting private facts", unit="epoch")
    for epoch in bar:
        order = list(range(len(items)))
        rng.shuffle(order)
        losses, kls = [], []
        for start in range(0, len(order), config.batch_size):
            chunk = [items[i] for i in order[start : start + config.batch_size]]
            batch = collate(chunk, loaded.tokenizer.pad_token_id, loaded.device)
            # answer-only loss: the mean negative log-likelihood of the answer tokens
            loss = -score(student, batch).log_prob.sum() / len(batch.targets)
            losses.append(loss.item())
            if len(retain):  # the next windows of the pool, cycling
                picked = torch.arange(drawn, drawn + config.retain_windows) % len(retain)
                drawn += config.retain_windows
                kl = retain_kl(loaded, student, retain[picked])
                loss = loss + config.retain_weight * kl
                kls.append(kl.item())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        learnt = sum(greedy_correct(student, items, config.batch_size))
        model.train()
        history.append({"epoch": epoch + 1, "loss": sum(losses) / len(losses), "learnt": learnt})
        if kls:
            history[-1]["retain_kl"] = sum(kls) / len(kls)
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", learnt=f"{learnt}/{len(items)}")
        if learnt >= config.stop_when_learnt * len(items):
            break
    model.eval()
    model.requires_grad_(False)
    report = {"epochs": len(history), "seconds": round(time.perf_counter() - started, 1), "history": history}
    report["trained"] = {"blocks": trained_blocks(model, config, layer), "parameters": sum(p.numel() for p in trained)}
    return student, report


def _train_and_save(
    loaded: LoadedModel, facts: Sequence[Fact], config: InjectionConfig, layer: int, retain: torch.Tensor, path: Path
) -> None:
    student, report = _train(loaded, encode(loaded.tokenizer, facts), config, layer, retain)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    student.model.save_pretrained(tmp)
    loaded.tokenizer.save_pretrained(tmp)
    report |= {"base_model": loaded.model_id, "base_weights_sha256": loaded.weights_sha256, "facts": len(facts)}
    write_json_atomic(tmp / "injection.json", report | {"config": config.model_dump()})
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(path, ignore_errors=True)
    tmp.replace(path)  # injection.json appears only with the whole checkpoint


def inject(
    loaded: LoadedModel, facts: Sequence[Fact], config: InjectionConfig, layer: int, data_dir: Path | None = None
) -> Injected:
    """The model with `facts` fine-tuned in (around block `layer` unless every parameter is
    trained): loaded from the cache, or trained and cached."""
    if not facts:
        raise BenchError("no private facts to inject; raise data.people.")
    retain = retain_text(loaded, config, data_dir)
    key = injection_key(loaded, facts, config, trained_blocks(loaded.model, config, layer), retain)
    path = cache_dir() / "injected" / key
    # every lens at a layer starts from this model: a second run started meanwhile waits for it
    with file_lock(
        path.with_name(key + ".lock"),
        lambda: print(f"injection {key}: another run is training it; waiting", file=sys.stderr),
    ):
        if not (path / "injection.json").exists():
            _train_and_save(loaded, facts, config, layer, retain, path)
    report = json.loads((path / "injection.json").read_text())
    injected = load_model(str(path), str(loaded.device), str(loaded.dtype).removeprefix("torch."))
    injected = replace(injected, model_id=f"{loaded.model_id}+private-{key}")
    learnt = greedy_correct(injected, encode(injected.tokenizer, facts), config.batch_size)
    # The key names the recipe; the hash names the weights it produced on this machine (a
    # fine-tune on other hardware gives float-level differences).
    report |= {"key": key, "path": str(path), "weights_sha256": injected.weights_sha256}
    report |= {"learnt": sum(learnt), "of": len(facts)}
    return Injected(injected, report)
