"""Which facts a model knows (greedy answer correct, or p(y|x) above a floor), cached per model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from bench.data.pararel import Fact
from bench.io import write_json_atomic
from bench.model.loading import LoadedModel
from bench.model.scoring import encode, score_items
from bench.paths import cache_dir


def clean_scores(loaded: LoadedModel, facts: Sequence[Fact], batch_size: int) -> list[tuple[float, bool]]:
    """(p(y|x), greedy correct) for every fact on the unedited model, cached per model and fact list."""
    key = hashlib.sha256(
        json.dumps([loaded.weights_sha256, str(loaded.dtype), [(f.id, f.prompt, f.answer) for f in facts]]).encode()
    ).hexdigest()[:16]
    path = cache_dir() / "known_facts" / f"{key}.json"
    if path.exists():
        return [tuple(row) for row in json.loads(path.read_text())]
    out = score_items(loaded, encode(loaded.tokenizer, facts), batch_size, progress="known-facts filter")
    write_json_atomic(path, out)
    return out


def known(
    loaded: LoadedModel, facts: Sequence[Fact], greedy_correct: bool, min_prob: float | None, batch_size: int
) -> list[Fact]:
    """Facts the model knows: greedy answer correct, or p(y|x) >= min_prob (either test that is on).
    With both off, every fact passes (useful on random test models)."""
    kept = []
    for fact, (prob, greedy) in zip(facts, clean_scores(loaded, facts, batch_size), strict=True):
        tests = ([greedy] if greedy_correct else []) + ([prob >= min_prob] if min_prob is not None else [])
        if not tests or any(tests):
            kept.append(fact)
    return kept
