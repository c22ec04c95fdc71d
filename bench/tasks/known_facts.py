"""Which facts a model knows (greedy answer correct, or p(y|x) above a floor), cached per model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from bench.data.pararel import Fact
from bench.io import append_jsonl, file_lock, read_jsonl_repairing, write_json_atomic
from bench.model.loading import LoadedModel
from bench.model.scoring import encode, score_items
from bench.paths import cache_dir

SCREEN_CHUNK = 256  # prompts scored between two checkpoints of the screen


def screen_paths(loaded: LoadedModel, facts: Sequence[Fact]) -> tuple[Path, Path]:
    """The screen's finished cache file and its in-progress log, keyed by model and fact list."""
    key = hashlib.sha256(
        json.dumps([loaded.weights_sha256, str(loaded.dtype), [(f.id, f.prompt, f.answer) for f in facts]]).encode()
    ).hexdigest()[:16]
    path = cache_dir() / "known_facts" / f"{key}.json"
    return path, path.with_suffix(".partial.jsonl")


def clean_scores(loaded: LoadedModel, facts: Sequence[Fact], batch_size: int) -> list[tuple[float, bool]]:
    """(p(y|x), greedy correct) for every fact on the unedited model, cached per model and fact list.

    The screen appends each chunk's scores to a log as it goes, so an interrupted screen resumes
    where it stopped instead of starting again (the first run's screen takes minutes on a CPU)."""
    path, log = screen_paths(loaded, facts)
    with file_lock(path.with_suffix(".lock")):  # two runs sharing a cache screen once, not into one log
        return _screen(loaded, facts, batch_size, path, log)


def _screen(
    loaded: LoadedModel, facts: Sequence[Fact], batch_size: int, path: Path, log: Path
) -> list[tuple[float, bool]]:
    if path.exists():
        return [tuple(row) for row in json.loads(path.read_text())]
    done: list[tuple[float, bool]] = [tuple(row) for row in read_jsonl_repairing(log)][: len(facts)]
    encoded = encode(loaded.tokenizer, facts)
    with tqdm(total=len(facts), initial=len(done), desc="known-facts screen", unit="prompt") as bar:
        for start in range(len(done), len(facts), SCREEN_CHUNK):
            chunk = score_items(loaded, encoded[start : start + SCREEN_CHUNK], batch_size)
            append_jsonl(log, [list(row) for row in chunk])
            done.extend(chunk)
            bar.update(len(chunk))
    write_json_atomic(path, done)
    log.unlink(missing_ok=True)
    return done


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
