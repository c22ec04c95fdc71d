"""UD English-EWT sentences with word-level labels, aligned onto a model's tokens.

Alignment rule: a word's label goes to the **last model token that overlaps the word's
characters** (the token where the whole word has been read); other sub-tokens of the word
and tokens of unlabelled text are not used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import conllu

from bench.errors import BenchError


@dataclass(frozen=True)
class Word:
    form: str
    start: int  # character span in the sentence text
    end: int
    upos: str
    feats: dict[str, str]
    deprel: str


@dataclass(frozen=True)
class Sentence:
    text: str
    words: tuple[Word, ...]


def load_sentences(data_dir: Path | None, split: str, limit: int | None = None) -> list[Sentence]:
    if data_dir is None:
        raise BenchError("sparse probing reads UD English-EWT from the data directory; pass --data-dir.")
    path = data_dir / "ud-english-ewt" / f"en_ewt-ud-{split}.conllu"
    if not path.exists():
        raise BenchError(f"{path} is missing; --data-dir must hold ud-english-ewt/en_ewt-ud-{split}.conllu.")
    sentences = []
    for tokens in conllu.parse_incr(path.open(encoding="utf-8")):
        text = tokens.metadata.get("text")
        if not text:
            continue
        words, cursor = [], 0
        for token in tokens:
            if not isinstance(token["id"], int):  # multi-word token ranges and empty nodes
                continue
            start = text.find(token["form"], cursor)
            if start < 0:
                break  # the form is not verbatim in the text (rare normalizations): keep the words before it
            cursor = start + len(token["form"])
            feats = {k: str(v) for k, v in (token["feats"] or {}).items()}
            words.append(Word(token["form"], start, cursor, token["upos"], feats, token["deprel"]))
        sentences.append(Sentence(text, tuple(words)))
        if limit and len(sentences) >= limit:
            break
    return sentences


def last_subtokens(words: Sequence[Word], offsets: Sequence[tuple[int, int]]) -> list[int | None]:
    """For each word, the index of the last token overlapping its span (None if no token does)."""
    out = []
    for word in words:
        overlapping = [i for i, (a, b) in enumerate(offsets) if b > a and a < word.end and b > word.start]
        out.append(overlapping[-1] if overlapping else None)
    return out


def word_label(word: Word, feature: str) -> bool:
    """Feature names: 'upos:NOUN', 'feats:Tense=Past', 'deprel:nsubj'."""
    kind, _, value = feature.partition(":")
    if kind == "upos":
        return word.upos == value
    if kind == "deprel":
        return word.deprel == value
    if kind == "feats":
        key, _, val = value.partition("=")
        return word.feats.get(key) == val
    raise BenchError(f"unknown token feature {feature!r}; use upos:<UPOS>, feats:<Key>=<Value> or deprel:<rel>.")
