"""Plain-text corpora for activation passes: WikiText-2 pages.

Read from the data directory (``wikitext-2/{valid,test}.txt``); without one, the same splits come
from the Hugging Face hub through ``datasets`` (needs network).

SAEs and fitted bases train on the validation split only; everything they are evaluated on is
elsewhere: the test split (held-out quality, the IS corpus, the KL control) and UD English-EWT
(sparse probing), so no score reads text a lens was fitted on.
"""

from __future__ import annotations

import re
from pathlib import Path

from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer

from bench.errors import BenchError

# A page starts at a level-1 heading line " = Title = " (level 2 is " = = Section = = ").
_PAGE_HEADING = re.compile(r"^ = [^=].* = $")
_WIKITEXT_SPLITS = {"valid": "validation", "test": "test"}


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


def _hub(name: str, config: str, split: str) -> list[dict[str, str]]:
    from datasets import load_dataset

    try:
        return list(load_dataset(name, config, split=split))
    except Exception as err:  # datasets raises many types for "offline" / "not found"
        raise BenchError(
            f"no local data directory and loading {name}/{config} from the hub failed ({err}). "
            "Pass --data-dir or set $LENS_BENCH_DATA."
        ) from err


# The description is part of the activation cache key (ActivationSpec.key): changing what a corpus
# holds changes the key, so SAEs and bases fitted on the old text are never reused for the new.
CORPORA = {
    "train": "WikiText-2 validation pages",
    "heldout": "WikiText-2 test pages",
}


def corpus_texts(data_dir: Path | None, name: str) -> list[str]:
    """Named corpora: 'train' for fitting SAEs and baselines, 'heldout' for evaluating them."""
    if name == "train":
        return wikitext_pages(data_dir, "valid")
    if name == "heldout":
        return wikitext_pages(data_dir, "test")
    raise BenchError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}.")
