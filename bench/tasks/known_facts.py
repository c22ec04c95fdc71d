"""Which facts a model knows (greedy answer correct, or p(y|x) above a floor), cached per model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
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


def _screened(
    loaded: LoadedModel, facts: Sequence[Fact], batch_size: int, path: Path, log: Path, progress: bool = True
) -> Iterator[tuple[float, bool]]:
    """Each fact's scores in order, scoring only as far as the caller reads. Every chunk scored is
    appended to a log first, so an interrupted or stopped screen resumes where it left off; the
    finished cache file is written once every fact is scored."""
    if path.exists():
        yield from (tuple(row) for row in json.loads(path.read_text()))
        return
    done: list[tuple[float, bool]] = [tuple(row) for row in read_jsonl_repairing(log)][: len(facts)]
    # The finished file is written before the last scores are handed out: a caller that reads
    # exactly len(facts) scores never resumes this generator after its last yield.
    if len(done) == len(facts):
        _finish(path, log, done)
    yield from done
    encoded = encode(loaded.tokenizer, facts)
    bar = tqdm(total=len(facts), initial=len(done), desc="known-facts screen", unit="prompt", disable=not progress)
    for start in range(len(done), len(facts), SCREEN_CHUNK):
        chunk = score_items(loaded, encoded[start : start + SCREEN_CHUNK], batch_size)
        append_jsonl(log, [list(row) for row in chunk])
        done.extend(chunk)
        bar.update(len(chunk))
        if len(done) == len(facts):
            bar.close()
            _finish(path, log, done)
        yield from chunk
    bar.close()


def _finish(path: Path, log: Path, done: list[tuple[float, bool]]) -> None:
    write_json_atomic(path, done)
    log.unlink(missing_ok=True)


def known(
    loaded: LoadedModel,
    facts: Sequence[Fact],
    greedy_correct: bool,
    min_prob: float | None,
    batch_size: int,
    limit: int | None = None,
    progress: bool = True,
) -> list[Fact]:
    """Facts the model knows, in order: greedy answer correct, or p(y|x) >= min_prob (either test
    that is on; with both off every fact passes, for random test models). With ``limit``, the
    screen stops once that many are found: a `--limit 20` run does not score every ParaRel prompt.
    ``progress=False`` hides the bar (a task screening a few prompts per fact has its own)."""
    if not facts:
        return []
    path, log = screen_paths(loaded, facts)
    kept = []
    with file_lock(path.with_suffix(".lock")):
        for fact, (prob, greedy) in zip(facts, _screened(loaded, facts, batch_size, path, log, progress), strict=False):
            tests = ([greedy] if greedy_correct else []) + ([prob >= min_prob] if min_prob is not None else [])
            if not tests or any(tests):
                kept.append(fact)
                if limit is not None and len(kept) >= limit:
                    break
    return kept
