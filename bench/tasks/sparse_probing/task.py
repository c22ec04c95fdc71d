"""Sparse probing (Gurnee et al. 2023): can k units linearly recover a labelled feature?

Token-level binary features from UD English-EWT (a word's label on its last sub-token, see
bench.data.ud; a word ending on the sequence's first token is left out by default) and
prompt-level ones (which ParaRel relation a prompt expresses, one versus rest, at the last
prompt token). The train/test split holds out whole groups, so no test example shares its
context with a training one: 30 % of the UD sentences (seeded), and for ParaRel 30 % of
each relation's patterns (each subject appears once, through one pattern), since a probe
tested on the training templates can learn the template instead of the relation. Per
feature: a balanced, capped sample on each side; k units selected on the training part by
mean difference (or by an L1 logistic regression); a class-balanced logistic-regression
probe on those k; F1 of the positive class (precision, recall, AUROC too) on the test part,
for every k. Beside every row, on the same examples and split: a floor, the same k-sparse probes
on a seeded random orthonormal basis of the site (what k arbitrary directions recover), and a
ceiling, a dense probe on the whole site (what is linearly there at all).
See docs/methods/sparse_probing.md.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from pydantic import Field
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.data.pararel import Fact, check_relations, load_relation
from bench.data.ud import last_subtokens, load_sentences, word_label
from bench.engine.context import TaskContext
from bench.engine.taskspec import TaskConfig
from bench.errors import BenchError
from bench.model.lens import lensed
from bench.plugin.specs import TaskType
from bench.stats import mean_se
from bench.tasks.facts import BootstrapConfig, Section
from bench.tasks.sparse_probing.outputs import METRICS, SparseProbingRecord
from bench.tasks.sparse_probing.plot import probing_plot

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
    prompts_per_relation: int = Field(60, ge=4, description="subjects per relation, spread over its patterns")


class SparseProbingConfig(TaskConfig):
    type: Literal["sparse_probing"]
    tokens: TokenData = TokenData()
    prompts: PromptData | None = PromptData()
    max_per_class: int = Field(400, ge=10, description="cap on positives and on negatives per feature")
    selection: Literal["mean_difference", "l1"] = "mean_difference"
    k: list[int] = Field([1, 2, 4, 8, 16, 32, 64], min_length=1)
    test_fraction: float = Field(0.3, gt=0, lt=1, description="share of sentences / of each relation's patterns")
    top_tokens: int = Field(10, ge=1, description="top-activating tokens shown for each 1-sparse probe's unit")
    bootstrap: BootstrapConfig = BootstrapConfig()


def _unit_rows(
    ctx: TaskContext, texts: Sequence[str], pick: Callable[[int, Any], list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Unit activations [n_positions, n_units] and site activations [n_positions, d_site] at the
    positions `pick(i, encoding)` chooses in each text."""
    tok, loaded = ctx.loaded.tokenizer, ctx.loaded
    out: list[np.ndarray] = []
    site_out: list[np.ndarray] = []
    for start in range(0, len(texts), ctx.batch_size):
        batch = list(texts[start : start + ctx.batch_size])
        enc = tok(batch, return_offsets_mapping=True, padding=True, return_tensors="pt")
        seen: list[torch.Tensor] = []
        site: list[torch.Tensor] = []

        def keep(units: torch.Tensor, seen: list[torch.Tensor] = seen) -> torch.Tensor:
            seen.append(units.detach())
            return units

        def observe(before: torch.Tensor, after: torch.Tensor, site: list[torch.Tensor] = site) -> None:
            site.append(before.detach())

        with torch.no_grad(), lensed(loaded, ctx.lens, keep, observe):
            loaded.model(
                input_ids=enc["input_ids"].to(loaded.device), attention_mask=enc["attention_mask"].to(loaded.device)
            )
        units, site_acts = seen[0].float().cpu(), site[0].float().cpu()
        for j in range(len(batch)):
            positions = pick(start + j, enc[j])
            out.append(units[j, positions].numpy())
            site_out.append(site_acts[j, positions].numpy())
    return np.concatenate(out), np.concatenate(site_out)


class Dataset(NamedTuple):
    acts: np.ndarray  # [n_examples, n_units]
    site: np.ndarray  # [n_examples, d_site]: the activations the units were read from
    labels: dict[str, np.ndarray]  # feature name -> [n_examples] bool
    texts: list[str]
    test: np.ndarray  # [n_examples] bool: held out (whole sentences or whole patterns)
    held_out: dict[str, Any]  # which groups were held out, for the record


def held_out_groups(groups: np.ndarray, fraction: float, seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """Test mask over examples that holds out a seeded `fraction` of whole groups.

    With `strata`, the fraction is taken within each stratum (each relation's patterns) and
    every stratum keeps at least one group on each side; sklearn's GroupShuffleSplit splits
    the groups globally and can leave a relation with no held-out pattern.
    """
    strata = np.zeros(len(groups), dtype=int) if strata is None else strata
    rng = np.random.default_rng(seed)
    test = np.zeros(len(groups), dtype=bool)
    for stratum in np.unique(strata):
        names = np.unique(groups[strata == stratum])
        if len(names) < 2:
            raise BenchError(f"{stratum!r} has a single group ({names[0]!r}): nothing to hold out.")
        n_test = min(max(1, round(fraction * len(names))), len(names) - 1)
        test |= (strata == stratum) & np.isin(groups, rng.permutation(names)[:n_test])
    return test


def token_dataset(ctx: TaskContext, config: SparseProbingConfig) -> Dataset:
    """Unit activations at every labelled word's last sub-token, the labels per feature, the
    token texts, and which rows belong to held-out sentences."""
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

    acts, site = _unit_rows(ctx, [s.text for s in sentences], pick)
    words = [sentences[i].words[w] for i, pairs in enumerate(aligned) for w, _ in pairs]
    sentence_of_row = np.array([i for i, pairs in enumerate(aligned) for _ in pairs])
    labels = {f: np.array([word_label(word, f) for word in words]) for f in config.tokens.features}
    test = held_out_groups(sentence_of_row, config.test_fraction, config.seed)
    held_out = {"sentences": len(np.unique(sentence_of_row[test])), "of": len(np.unique(sentence_of_row))}
    return Dataset(acts, site, labels, [word.form for word in words], test, held_out)


def relation_prompts(ctx: TaskContext, config: SparseProbingConfig) -> tuple[list[Fact], np.ndarray, list[str]]:
    """A seeded sample of each relation's subjects, each through one of its patterns in turn,
    the test mask holding out `test_fraction` of every relation's patterns, and those patterns."""
    assert config.prompts is not None
    rng = random.Random(config.seed)
    facts: list[Fact] = []
    for relation in map(lambda r: load_relation(ctx.data_dir, r), check_relations(config.prompts.relations)):
        if len(relation.patterns) < 2:
            raise BenchError(
                f"relation {relation.id} has {len(relation.patterns)} usable ParaRel pattern(s); holding out "
                "whole patterns needs at least 2. Drop it from prompts.relations."
            )
        rows = rng.sample(relation.tuples, min(config.prompts.prompts_per_relation, len(relation.tuples)))
        patterns = rng.sample(relation.patterns, len(relation.patterns))
        facts += [relation.fact(row, patterns[i % len(patterns)]) for i, row in enumerate(rows)]
    patterns_of = np.array([f"{f.relation}/{f.id.split('/')[1]}" for f in facts])
    test = held_out_groups(patterns_of, config.test_fraction, config.seed, np.array([f.relation for f in facts]))
    return facts, test, sorted(set(patterns_of[test]))


def prompt_dataset(ctx: TaskContext, config: SparseProbingConfig) -> Dataset:
    assert config.prompts is not None
    facts, test, held_out = relation_prompts(ctx, config)
    acts, site = _unit_rows(
        ctx, [f.prompt for f in facts], lambda i, enc: [int(np.flatnonzero(enc.attention_mask)[-1])]
    )
    labels = {f"{PROMPT_PREFIX}{r}": np.array([f.relation == r for f in facts]) for r in config.prompts.relations}
    return Dataset(acts, site, labels, [f.prompt for f in facts], test, {"patterns": held_out})


def _select(x: np.ndarray, y: np.ndarray, k: int, method: str, seed: int) -> np.ndarray:
    if method == "mean_difference":
        score = np.abs(x[y].mean(0) - x[~y].mean(0))
    else:
        l1 = LogisticRegression(penalty="l1", solver="liblinear", C=0.1, class_weight="balanced", random_state=seed)
        score = np.abs(l1.fit(StandardScaler().fit_transform(x), y).coef_[0])
    return np.argsort(-score, kind="stable")[:k]


def _probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A class-balanced logistic regression on standardized inputs: test predictions and P(positive)."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    probe.fit(x_train, y_train)
    return probe.predict(x_test), probe.predict_proba(x_test)[:, 1]


@functools.cache  # the same basis for every feature of a run: one QR per site width
def random_basis(d: int, seed: int) -> np.ndarray:
    """A seeded random orthonormal basis [d, d] of the site: the floor's k arbitrary directions."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    basis = q * np.sign(np.diag(r))  # Haar-distributed (QR's sign convention removed)
    basis.setflags(write=False)  # shared by every caller through the cache
    return basis


def probe_feature(
    x: np.ndarray,
    y: np.ndarray,
    test: np.ndarray,
    config: SparseProbingConfig,
    seed: int,
    site: np.ndarray | None = None,
) -> dict[str, Any]:
    """Balanced capped samples on each side of the held-out split, and F1 / precision /
    recall / AUROC for each k; with the ``site`` activations, the floor (F1 of the same k-sparse
    probes on a random basis of the site) and the ceiling (F1 of a dense probe on the site)."""
    rng = np.random.default_rng(seed)

    def balanced(side: np.ndarray, cap: int) -> np.ndarray:
        pos, neg = np.flatnonzero(y & side), np.flatnonzero(~y & side)
        n = min(len(pos), len(neg), cap)
        return np.r_[rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)]

    train = balanced(~test, round(config.max_per_class * (1 - config.test_fraction)))
    held = balanced(test, round(config.max_per_class * config.test_fraction))
    if len(train) < 8 or len(held) < 4:
        return {"skipped": f"{len(train) // 2} train / {len(held) // 2} test examples per class"}
    x_train, y_train, x_test, y_test = x[train], y[train], x[held], y[held]
    curve = {}
    for k in config.k:
        units = _select(x_train, y_train, min(k, x.shape[1]), config.selection, seed)
        predicted, p_positive = _probe(x_train[:, units], y_train, x_test[:, units])
        curve[str(k)] = {
            "f1": float(f1_score(y_test, predicted, zero_division=0)),
            "precision": float(precision_score(y_test, predicted, zero_division=0)),
            "recall": float(recall_score(y_test, predicted, zero_division=0)),
            "auroc": float(roc_auc_score(y_test, p_positive)),
            "units": units.tolist(),
        }
    row = {"n_train_per_class": len(train) // 2, "n_test_per_class": len(held) // 2, "curve": curve}
    if site is not None:
        basis = random_basis(site.shape[1], config.seed)  # one basis per site: every lens's floor is the same
        rotated_train, rotated_held = site[train] @ basis, site[held] @ basis  # the sampled rows only
        floor = {}
        for k in config.k:
            dims = _select(rotated_train, y_train, min(k, site.shape[1]), config.selection, seed)
            floor[str(k)] = float(
                f1_score(y_test, _probe(rotated_train[:, dims], y_train, rotated_held[:, dims])[0], zero_division=0)
            )
        row["f1_random_basis"] = floor
        row["f1_dense"] = float(f1_score(y_test, _probe(site[train], y_train, site[held])[0], zero_division=0))
    return row


def extreme_tokens(values: np.ndarray, texts: list[str], sign: float, n: int) -> dict[str, Any]:
    """The n tokens with the highest sign x value, their values, and how many tokens share the
    last value shown: an SAE feature is 0 on most tokens, so the bottom of a "lower" feature is
    a tie among thousands, and the tokens listed from it are an arbitrary pick."""
    top = np.argsort(-sign * values, kind="stable")[:n]
    return {
        "top_tokens": [texts[i] for i in top],
        "top_values": [float(values[i]) for i in top],
        "tied_with_last": int(np.sum(values == values[top[-1]])),
    }


def run(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.config
    assert isinstance(config, SparseProbingConfig)
    datasets = [token_dataset(ctx, config)] + ([prompt_dataset(ctx, config)] if config.prompts else [])
    done = {row["id"]: row for row in ctx.slot.done_items()}
    features = [(name, data, labels) for data in datasets for name, labels in data.labels.items()]
    bar = ctx.progress("features", len(features), sum(name in done for name, *_ in features))
    for name, data, labels in features:
        if name in done:
            continue
        acts, texts = data.acts, data.texts
        row = {"id": name, **probe_feature(acts, labels, data.test, config, config.seed, data.site)}
        if "curve" in row:  # the unit the 1-sparse probe uses, and its extreme tokens on the feature's side
            unit = row["curve"][str(min(config.k))]["units"][0]
            # mean difference picks units by |difference|: a unit lower on the feature's tokens
            # is read from its bottom, where the probe says "positive"
            sign = 1.0 if acts[labels, unit].mean() >= acts[~labels, unit].mean() else -1.0
            row["dedicated_unit"] = {
                "unit": int(unit),
                "direction": "higher" if sign > 0 else "lower",
                **extreme_tokens(acts[:, unit], texts, sign, config.top_tokens),
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
    # floor and ceiling over all features, read beside the lens's F1
    for k in sorted({min(config.k), 16} & set(config.k)):
        floor = [r["f1_random_basis"][str(k)] for r in rows]
        metrics[f"f1_random_basis@{k}"] = mean_se(floor, config.bootstrap.resamples, config.seed)
    metrics["f1_dense"] = mean_se([r["f1_dense"] for r in rows], config.bootstrap.resamples, config.seed)
    curves = {r["id"]: {k: v["f1"] for k, v in r["curve"].items()} for r in rows}
    held_out = {key: value for data in datasets for key, value in data.held_out.items()}
    return {"metrics": metrics, "curves": curves, "held_out": held_out, "items": [done[name] for name, *_ in features]}


TASK_TYPE = TaskType(
    name="sparse_probing",
    description="Probe F1 of k units (k = 1..64) for UD token features and ParaRel relations.",
    config_model=SparseProbingConfig,
    run=run,
    metrics=METRICS,
    record_model=SparseProbingRecord,
    family="Probing",
    method_page="docs/methods/sparse_probing.md",
    plot=probing_plot,
)
