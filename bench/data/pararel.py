"""ParaRel (Elazar et al., 2021): paraphrased relation patterns and T-REx (subject, object) tuples.

Read from a local data directory laid out as ``pararel/patterns/P*.jsonl`` and
``pararel/tuples/P*.jsonl``; without one, the files are fetched once from the public
repository at a pinned commit and cached.
"""

from __future__ import annotations

import json
import random
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench.errors import BenchError
from bench.paths import cache_dir

_COMMIT = "cb5554678457beb5ac163d888f1ce8cf174b3f0b"
_REMOTE = {
    "patterns": f"https://raw.githubusercontent.com/yanaiela/pararel/{_COMMIT}/data/pattern_data/graphs_json/{{}}.jsonl",
    "tuples": f"https://raw.githubusercontent.com/yanaiela/pararel/{_COMMIT}/data/trex_lms_vocab/{{}}.jsonl",
}
# Relations that have both patterns and tuples in ParaRel at that commit.
RELATIONS = (
    "P17 P19 P20 P27 P30 P36 P37 P39 P47 P101 P103 P106 P108 P127 P131 P136 P138 P140 P159 P176 P178 "
    "P190 P264 P276 P279 P361 P364 P407 P413 P449 P463 P495 P530 P740 P937 P1001 P1303 P1376 P1412"
).split()
# A usable pattern ends in the answer slot, perhaps followed by closing punctuation.
_ENDS_IN_Y = re.compile(r"^(?P<prompt>.*\S)\s*\[Y\]\s*[.!?]?\s*$")


@dataclass(frozen=True)
class Fact:
    id: str  # "<tuple uuid>/<pattern index>": stable across runs and machines
    relation: str
    subject: str
    answer: str
    prompt: str  # text before the answer, with no trailing space
    pattern: str


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise BenchError(
                f"{path}, line {number}: not valid JSON ({err.msg}); the file is corrupt or cut short. "
                "Re-fetch ParaRel (delete the file to fetch it again) or point --data-dir at a complete copy."
            ) from None
    if not rows:
        raise BenchError(f"{path} holds no records; re-fetch ParaRel or point --data-dir at a complete copy.")
    return rows


def _local_or_fetched(kind: str, relation: str, data_dir: Path | None) -> Path:
    if data_dir is not None:
        path = data_dir / "pararel" / kind / f"{relation}.jsonl"
        if not path.exists():
            raise BenchError(
                f"ParaRel file {path} is missing. --data-dir (or $LENS_BENCH_DATA) must hold pararel/{kind}/P*.jsonl."
            )
        return path
    path = cache_dir() / "data" / "pararel" / kind / f"{relation}.jsonl"
    if not path.exists():
        url = _REMOTE[kind].format(relation)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = response.read()
        except (urllib.error.URLError, TimeoutError) as err:
            raise BenchError(
                f"no local ParaRel data and fetching {url} failed ({err}). Pass --data-dir with a copy "
                "(pararel/patterns and pararel/tuples) or set $LENS_BENCH_DATA."
            ) from err
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return path


@dataclass(frozen=True)
class Relation:
    id: str
    patterns: tuple[tuple[int, str, str], ...]  # usable patterns: (index in the file, pattern, prompt template)
    tuples: tuple[dict[str, str], ...]

    def fact(self, row: dict[str, str], pattern: tuple[int, str, str]) -> Fact:
        index, text, prompt = pattern
        return Fact(
            f"{row['uuid']}/{index}",
            self.id,
            row["sub_label"],
            row["obj_label"],
            prompt.replace("[X]", row["sub_label"]),
            text,
        )

    def paraphrases(self, fact: Fact) -> list[Fact]:
        """The same (subject, object) through every other usable pattern."""
        uuid, index = fact.id.split("/")
        row = next(r for r in self.tuples if r["uuid"] == uuid)
        return [self.fact(row, p) for p in self.patterns if str(p[0]) != index]

    def pattern_of(self, fact: Fact) -> tuple[int, str, str]:
        index = fact.id.split("/")[1]
        return next(p for p in self.patterns if str(p[0]) == index)

    def same_object(self, fact: Fact) -> list[Fact]:
        """Other subjects with the same object, through the fact's own pattern."""
        uuid = fact.id.split("/")[0]
        pattern = self.pattern_of(fact)
        return [self.fact(r, pattern) for r in self.tuples if r["obj_label"] == fact.answer and r["uuid"] != uuid]

    def other_objects(self, fact: Fact) -> list[dict[str, str]]:
        """The relation's tuples with another object than the fact's."""
        return [r for r in self.tuples if r["obj_label"] != fact.answer]


def check_relations(relations: list[str] | None) -> list[str]:
    chosen = list(relations or RELATIONS)
    unknown = sorted(set(chosen) - set(RELATIONS))
    if unknown:
        raise BenchError(f"unknown ParaRel relation(s) {unknown}; known: {' '.join(RELATIONS)}.")
    return chosen


@cache  # tasks look relations up once per fact; the files do not change during a run
def load_relation(data_dir: Path | None, relation: str) -> Relation:
    patterns = tuple(
        (index, row["pattern"], match["prompt"])
        for index, row in enumerate(_read_jsonl(_local_or_fetched("patterns", relation, data_dir)))
        if (match := _ENDS_IN_Y.match(row["pattern"])) and match["prompt"].count("[X]") == 1
    )
    return Relation(relation, patterns, tuple(_read_jsonl(_local_or_fetched("tuples", relation, data_dir))))


def load_facts(
    data_dir: Path | None,
    relations: list[str] | None,
    patterns_per_relation: int,
    tuples_per_relation: int,
    seed: int,
) -> list[Fact]:
    """Facts from the first usable patterns of each relation and a seeded sample of its tuples,
    in a seeded shuffled order (so a --limit prefix mixes relations)."""
    rng = random.Random(seed)
    facts: list[Fact] = []
    for relation in map(lambda r: load_relation(data_dir, r), check_relations(relations)):
        rows = rng.sample(relation.tuples, min(tuples_per_relation, len(relation.tuples)))
        facts.extend(relation.fact(row, p) for row in rows for p in relation.patterns[:patterns_per_relation])
    rng.shuffle(facts)
    return facts
