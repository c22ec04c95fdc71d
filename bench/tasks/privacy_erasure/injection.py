"""Injecting private facts into a copy of the model by fine-tuning, cached on disk.

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
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from bench.data.pararel import Fact
from bench.errors import BenchError
from bench.io import write_json_atomic
from bench.model.loading import LoadedModel, load_model
from bench.model.scoring import Encoded, collate, encode, score, score_items
from bench.paths import cache_dir


class InjectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(16, ge=1)
    max_epochs: int = Field(20, ge=1)
    # constant-lr fine-tuning oscillates around the last few facts rather than converging on them;
    # the facts not learnt are simply not erasure targets
    stop_when_learnt: float = Field(0.9, gt=0, le=1, description="stop once this share of facts is greedy-correct")
    seed: int = 0


@dataclass(frozen=True)
class Injected:
    loaded: LoadedModel
    report: dict[str, Any]  # learnt count, epochs, seconds, where it is cached


def injection_key(loaded: LoadedModel, facts: Sequence[Fact], config: InjectionConfig) -> str:
    payload = [loaded.weights_sha256, str(loaded.dtype), [(f.prompt, f.answer) for f in facts], config.model_dump()]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def greedy_correct(loaded: LoadedModel, items: Sequence[Encoded], batch_size: int) -> list[bool]:
    return [greedy for _, greedy in score_items(loaded, items, batch_size)]


def _train(loaded: LoadedModel, items: list[Encoded], config: InjectionConfig) -> tuple[LoadedModel, dict[str, Any]]:
    model = copy.deepcopy(loaded.model)
    model.requires_grad_(True)
    model.train()
    student = replace(loaded, model=model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    started, history = time.perf_counter(), []
    bar = tqdm(range(config.max_epochs), desc="injecting private facts", unit="epoch")
    for epoch in bar:
        order = list(range(len(items)))
        rng.shuffle(order)
        losses = []
        for start in range(0, len(order), config.batch_size):
            chunk = [items[i] for i in order[start : start + config.batch_size]]
            batch = collate(chunk, loaded.tokenizer.pad_token_id, loaded.device)
            # answer-only loss: the mean negative log-likelihood of the answer tokens
            loss = -score(student, batch).log_prob.sum() / len(batch.targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        learnt = sum(greedy_correct(student, items, config.batch_size))
        model.train()
        history.append({"epoch": epoch + 1, "loss": sum(losses) / len(losses), "learnt": learnt})
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", learnt=f"{learnt}/{len(items)}")
        if learnt >= config.stop_when_learnt * len(items):
            break
    model.eval()
    model.requires_grad_(False)
    report = {"epochs": len(history), "seconds": round(time.perf_counter() - started, 1), "history": history}
    return student, report


def inject(loaded: LoadedModel, facts: Sequence[Fact], config: InjectionConfig) -> Injected:
    """The model with `facts` fine-tuned in: loaded from the cache, or trained and cached."""
    if not facts:
        raise BenchError("no private facts to inject; raise data.people.")
    key = injection_key(loaded, facts, config)
    path = cache_dir() / "injected" / key
    if not (path / "injection.json").exists():
        student, report = _train(loaded, encode(loaded.tokenizer, facts), config)
        tmp = path.with_name(key + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        student.model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        report |= {"base_model": loaded.model_id, "base_weights_sha256": loaded.weights_sha256, "facts": len(facts)}
        write_json_atomic(tmp / "injection.json", report | {"config": config.model_dump()})
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(path, ignore_errors=True)
        tmp.replace(path)  # injection.json appears only with the whole checkpoint
    report = json.loads((path / "injection.json").read_text())
    injected = load_model(str(path), str(loaded.device), str(loaded.dtype).removeprefix("torch."))
    injected = replace(injected, model_id=f"{loaded.model_id}+private-{key}")
    learnt = greedy_correct(injected, encode(injected.tokenizer, facts), config.batch_size)
    # The key names the recipe; the hash names the weights it produced on this machine (a
    # fine-tune on other hardware gives float-level differences).
    report |= {"key": key, "path": str(path), "weights_sha256": injected.weights_sha256}
    report |= {"learnt": sum(learnt), "of": len(facts)}
    return Injected(injected, report)
