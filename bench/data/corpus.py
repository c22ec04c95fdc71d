"""Plain-text corpora for activation passes: WikiText-2 pages and UD English-EWT sentences.

Read from the data directory (``wikitext-2/{valid,test}.txt``,
``ud-english-ewt/en_ewt-ud-{dev,test}.conllu``); without one, the same splits come from the
Hugging Face hub through ``datasets`` (needs network).
"""

from __future__ import annotations

import re
from pathlib import Path

from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer

from bench.errors import BenchError

# A page starts at a level-1 heading line " = Title = " (level 2 is " = = Section = = ").
_PAGE_HEADING = re.compile(r"^ = [^=].* = $")
_WIKITEXT_SPLITS = {"valid": "validation", "test": "test"}
_UD_SPLITS = {"dev": "validation", "test": "test"}


def wikitext_pages(data_dir: Path | None, split: str) -> list[str]:
    """Detokenized WikiText-2 pages (lm-eval's detokenizer, as its wikitext task uses)."""
    if split not in _WIKITEXT_SPLITS:
        raise BenchError(f"WikiText-2 split {split!r} is not available; use one of {sorted(_WIKITEXT_SPLITS)}.")
    if data_dir is not None:
        path = data_dir / "wikitext-2" / f"{split}.txt"
        if not path.exists():
            raise BenchError(f"{path} is missing; --data-dir must hold wikitext-2/{split}.txt.")
        lines = path.read_text(encoding="utf-8").splitlines()
    else:
        lines = [row["text"].rstrip("\n") for row in _hub("wikitext", "wikitext-2-v1", _WIKITEXT_SPLITS[split])]
    pages, current = [], []
    for line in lines:
        if _PAGE_HEADING.match(line) and current:
            pages.append("\n".join(current))
            current = []
        current.append(line)
    if current:
        pages.append("\n".join(current))
    return [text for page in pages if (text := wikitext_detokenizer({"page": page}).strip())]


def ud_sentences(data_dir: Path | None, split: str) -> list[str]:
    """The `# text =` line of every sentence of a UD English-EWT split."""
    if split not in _UD_SPLITS:
        raise BenchError(f"UD English-EWT split {split!r} is not available; use one of {sorted(_UD_SPLITS)}.")
    if data_dir is None:
        return [row["text"] for row in _hub("universal_dependencies", "en_ewt", _UD_SPLITS[split])]
    path = data_dir / "ud-english-ewt" / f"en_ewt-ud-{split}.conllu"
    if not path.exists():
        raise BenchError(f"{path} is missing; --data-dir must hold ud-english-ewt/en_ewt-ud-{split}.conllu.")
    prefix = "# text = "
    return [line[len(prefix) :] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith(prefix)]


def _hub(name: str, config: str, split: str) -> list[dict[str, str]]:
    from datasets import load_dataset

    try:
        return list(load_dataset(name, config, split=split))
    except Exception as err:  # datasets raises many types for "offline" / "not found"
        raise BenchError(
            f"no local data directory and loading {name}/{config} from the hub failed ({err}). "
            "Pass --data-dir or set $LENS_BENCH_DATA."
        ) from err


CORPORA = {
    "train": "WikiText-2 validation pages + UD English-EWT dev and test sentences",
    "heldout": "WikiText-2 test pages",
}


def corpus_texts(data_dir: Path | None, name: str) -> list[str]:
    """Named corpora: 'train' for fitting SAEs and baselines, 'heldout' for evaluating them."""
    if name == "train":
        return wikitext_pages(data_dir, "valid") + ud_sentences(data_dir, "dev") + ud_sentences(data_dir, "test")
    if name == "heldout":
        return wikitext_pages(data_dir, "test")
    raise BenchError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}.")
