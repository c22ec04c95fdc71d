"""Sparse probing (Gurnee et al. 2023): can k units linearly recover a labelled feature?

Token-level binary features from UD English-EWT (a word's label on its last sub-token, see
bench.ud; a word ending on the sequence's first token is left out by default) and
prompt-level ones (which ParaRel relation a prompt expresses, one versus rest, at the last
prompt token). Per feature: a balanced, capped sample; a 70/30 split with
a fixed seed; k units selected on the training part by mean difference (or by an L1
logistic regression); a class-balanced logistic-regression probe on those k; F1 of the
positive class (precision, recall, AUROC too) on the test part, for every k.
See METHODS.md, "Sparse probing".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.context import TaskContext
from bench.errors import BenchError
from bench.lens import lensed
from bench.pararel import load_facts
from bench.stats import mean_se
from bench.tasks.facts import BootstrapConfig, Section
from bench.taskspec import TaskConfig
from bench.ud import last_subtokens, load_sentences, word_label

PROMPT_PREFIX = "relation:"  # prompt-level feature names; token-level ones are "upos:NOUN" and the like


class TokenData(Section):
    split: Literal["dev", "test"] = "dev"
    max_sentences: int = Field(1500, ge=1)
    features: list[str] = Field(
        ["upos:NOUN", "upos:VERB", "upos:ADJ", "upos:PROPN", "feats:Tense=Past", "deprel:nsubj"]
    )
    # Position 0 is the attention sink: its residual stream is orders of magnitude larger than
    # elsewhere, and the SAEs never saw it (training drops it). Left in, its few huge
    # activations dominate the mean-difference selection of SAE features for every feature.
    skip_first_token: bool = Field(True, description="drop words whose last sub-token is the sequence's first")


class PromptData(Section):
    relations: list[str] = Field(["P17", "P19", "P36", "P101", "P103", "P1376"], min_length=2)
    prompts_per_relation: int = Field(60, ge=4)


class SparseProbingConfig(TaskConfig):
    type: Literal["sparse_probing"]
    tokens: TokenData = TokenData()
    prompts: PromptData | None = PromptData()
    max_per_class: int = Field(400, ge=10, description="cap on positives and on negatives per feature")
    selection: Literal["mean_difference", "l1"] = "mean_difference"
    k: list[int] = Field([1, 2, 4, 8, 16, 32, 64], min_length=1)
    test_fraction: float = Field(0.3, gt=0, lt=1)
    top_tokens: int = Field(10, ge=1, description="top-activating tokens shown for each 1-sparse probe's unit")
    bootstrap: BootstrapConfig = BootstrapConfig()


def _unit_rows(ctx: TaskContext, texts: Sequence[str], pick: Callable[[int, Any], list[int]]) -> list[np.ndarray]:
    """Unit activations at the positions `pick(i, encoding)` chooses in each text; [n_positions, n_units] per text."""
    tok, loaded = ctx.loaded.tokenizer, ctx.loaded
    out: list[np.ndarray] = []
    for start in range(0, len(texts), ctx.batch_size):
        batch = list(texts[start : start + ctx.batch_size])
        enc = tok(batch, return_offsets_mapping=True, padding=True, return_tensors="pt")
        seen: list[torch.Tensor] = []

        def keep(units: torch.Tensor, seen: list[torch.Tensor] = seen) -> torch.Tensor:
            seen.append(units.detach())
            return units

        with torch.no_grad(), lensed(loaded, ctx.lens, keep):
            loaded.model(
                input_ids=enc["input_ids"].to(loaded.device), attention_mask=enc["attention_mask"].to(loaded.device)
            )
        units = seen[0].float().cpu()
        for j in range(len(batch)):
            out.append(units[j, pick(start + j, enc[j])].numpy())
    return out


def token_dataset(ctx: TaskContext, config: SparseProbingConfig) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """Unit activations at every labelled word's last sub-token, the labels per feature, and the token texts."""
    sentences = load_sentences(ctx.data_dir, config.tokens.split, config.tokens.max_sentences)
    if not sentences:
        raise BenchError("no UD sentences were read; check the data directory.")
    aligned: list[list[tuple[int, int]]] = []  # per sentence: (word index, token index)

    first = 1 if config.tokens.skip_first_token else 0  # the first position a label may land on

    def pick(i: int, encoding: Any) -> list[int]:
        offsets = [tuple(o) for o in encoding.offsets]
        positions = last_subtokens(sentences[i].words, offsets)
        pairs = [(w, p) for w, p in enumerate(positions) if p is not None and p >= first]
        aligned.append(pairs)
        return [p for _, p in pairs]

    acts = np.concatenate(_unit_rows(ctx, [s.text for s in sentences], pick))
    words = [sentences[i].words[w] for i, pairs in enumerate(aligned) for w, _ in pairs]
    labels = {f: np.array([word_label(word, f) for word in words]) for f in config.tokens.features}
    return acts, labels, [word.form for word in words]


def prompt_dataset(
    ctx: TaskContext, config: SparseProbingConfig
) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    assert config.prompts is not None
    facts = load_facts(ctx.data_dir, config.prompts.relations, 1, config.prompts.prompts_per_relation, config.seed)
    acts = np.concatenate(
        _unit_rows(ctx, [f.prompt for f in facts], lambda i, enc: [int(np.flatnonzero(enc.attention_mask)[-1])])
    )
    labels = {f"{PROMPT_PREFIX}{r}": np.array([f.relation == r for f in facts]) for r in config.prompts.relations}
    return acts, labels, [f.prompt for f in facts]


def _select(x: np.ndarray, y: np.ndarray, k: int, method: str, seed: int) -> np.ndarray:
    if method == "mean_difference":
        score = np.abs(x[y].mean(0) - x[~y].mean(0))
    else:
        l1 = LogisticRegression(penalty="l1", solver="liblinear", C=0.1, class_weight="balanced", random_state=seed)
        score = np.abs(l1.fit(StandardScaler().fit_transform(x), y).coef_[0])
    return np.argsort(-score, kind="stable")[:k]


def probe_feature(x: np.ndarray, y: np.ndarray, config: SparseProbingConfig, seed: int) -> dict[str, Any]:
    """Balanced capped sample, split, and F1 / precision / recall / AUROC for each k."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    n = min(len(pos), len(neg), config.max_per_class)
    if n < 5:
        return {"skipped": f"only {len(pos)} positive / {len(neg)} negative examples"}
    rows = np.r_[rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)]
    x_train, x_test, y_train, y_test = train_test_split(
        x[rows], y[rows], test_size=config.test_fraction, random_state=seed, stratify=y[rows]
    )
    curve = {}
    for k in config.k:
        units = _select(x_train, y_train, min(k, x.shape[1]), config.selection, seed)
        probe = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
        probe.fit(x_train[:, units], y_train)
        predicted = probe.predict(x_test[:, units])
        curve[str(k)] = {
            "f1": float(f1_score(y_test, predicted, zero_division=0)),
            "precision": float(precision_score(y_test, predicted, zero_division=0)),
            "recall": float(recall_score(y_test, predicted, zero_division=0)),
            "auroc": float(roc_auc_score(y_test, probe.predict_proba(x_test[:, units])[:, 1])),
            "units": units.tolist(),
        }
    return {"n_per_class": int(n), "curve": curve}


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, SparseProbingConfig)
    datasets = [token_dataset(ctx, config)] + ([prompt_dataset(ctx, config)] if config.prompts else [])
    done = {row["id"]: row for row in ctx.slot.done_items()}
    features = [
        (name, acts, labels, texts) for acts, all_labels, texts in datasets for name, labels in all_labels.items()
    ]
    bar = ctx.progress("features", len(features), sum(name in done for name, *_ in features))
    for name, acts, labels, texts in features:
        if name in done:
            continue
        row = {"id": name, **probe_feature(acts, labels, config, config.seed)}
        if "curve" in row:  # the unit the 1-sparse probe uses, and its extreme tokens on the feature's side
            unit = row["curve"][str(min(config.k))]["units"][0]
            # mean difference picks units by |difference|: a unit lower on the feature's tokens
            # is read from its bottom, where the probe says "positive"
            sign = 1.0 if acts[labels, unit].mean() >= acts[~labels, unit].mean() else -1.0
            top = np.argsort(-sign * acts[:, unit], kind="stable")[: config.top_tokens]
            row["dedicated_unit"] = {
                "unit": int(unit),
                "direction": "higher" if sign > 0 else "lower",
                "top_tokens": [texts[i] for i in top],
            }
        ctx.slot.log_items([row])
        done[name] = row
        bar.update(1)
    bar.close()
    rows = [done[name] for name, *_ in features if "curve" in done[name]]
    if not rows:
        raise BenchError("every feature was skipped for lack of examples; raise tokens.max_sentences.")
    # over all features, and apart: the prompt-level relations are near 1 for every lens and
    # would hide differences on the token-level ones
    groups = {
        "f1": rows,
        "f1_tokens": [r for r in rows if not r["id"].startswith(PROMPT_PREFIX)],
        "f1_prompts": [r for r in rows if r["id"].startswith(PROMPT_PREFIX)],
    }
    metrics = {}
    for k in sorted({min(config.k), 16} & set(config.k)):
        for name, group in groups.items():
            if group:
                f1 = [r["curve"][str(k)]["f1"] for r in group]
                metrics[f"{name}@{k}"] = mean_se(f1, config.bootstrap.resamples, config.seed)
    curves = {r["id"]: {k: v["f1"] for k, v in r["curve"].items()} for r in rows}
    return {"metrics": metrics, "curves": curves, "items": [done[name] for name, *_ in features]}
