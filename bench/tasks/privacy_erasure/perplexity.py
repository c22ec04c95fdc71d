"""WikiText-2 perplexity through lm-eval (``loglikelihood_rolling``), for ΔPPL of an edit.

The harness writes a local lm-eval task (YAML plus a JSON-lines file of pages) instead of
using lm-eval's ``wikitext`` task, which downloads its data from the hub: the pages come
from the data directory, cut to a token budget that is the same for every method.
lm-eval's ``HFLM`` wraps the (edited) model object itself, so weight edits and forward
hooks active around the call are what gets measured.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from bench.data.corpus import wikitext_pages
from bench.errors import BenchError
from bench.io import write_atomic
from bench.model.loading import LoadedModel
from bench.paths import cache_dir

_TASK_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {pages}
output_type: loglikelihood_rolling
test_split: test
doc_to_text: ""
doc_to_target: "{{{{page}}}}"
metric_list:
  - {{metric: word_perplexity, aggregation: weighted_perplexity, higher_is_better: false}}
  - {{metric: byte_perplexity, aggregation: weighted_perplexity, higher_is_better: false}}
  - {{metric: bits_per_byte, aggregation: bits_per_byte, higher_is_better: false}}
metadata:
  version: 1.0
"""


def budget_pages(pages: list[str], tokenizer: PreTrainedTokenizerBase, max_tokens: int) -> list[str]:
    """Pages in order until `max_tokens` tokens, the last one cut at a token boundary."""
    out, used = [], 0
    for page in pages:
        ids = tokenizer(page, add_special_tokens=False)["input_ids"]
        if used + len(ids) >= max_tokens:
            out.append(tokenizer.decode(ids[: max_tokens - used]))
            return out
        out.append(page)
        used += len(ids)
    return out


def write_task(
    data_dir: Path | None, tokenizer: PreTrainedTokenizerBase, split: str, max_tokens: int
) -> tuple[str, Path]:
    """The lm-eval task's name and the folder holding it (written once per data and budget)."""
    pages = budget_pages(wikitext_pages(data_dir, split), tokenizer, max_tokens)
    if not pages:
        raise BenchError(f"WikiText-2 {split} has no pages; check the data directory.")
    key = hashlib.sha256(json.dumps([pages, tokenizer.name_or_path]).encode()).hexdigest()[:12]
    name = f"lens_bench_wikitext2_{split}_{key}"
    folder = cache_dir() / "lm_eval_tasks" / name
    if not (folder / "task.yaml").exists():
        write_atomic(folder / "pages.jsonl", "".join(json.dumps({"page": p}) + "\n" for p in pages))
        write_atomic(folder / "task.yaml", _TASK_YAML.format(name=name, pages=folder / "pages.jsonl"))
    return name, folder


def word_perplexity(loaded: LoadedModel, task: tuple[str, Path], max_length: int, batch_size: int) -> float:
    """lm-eval's word perplexity of the model, as it is now (edits and hooks included), on the task."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    name, folder = task
    logging.getLogger("lm_eval").setLevel(logging.WARNING)  # its per-call INFO lines would bury the progress bars
    lm = HFLM(
        pretrained=loaded.model,
        tokenizer=loaded.tokenizer,
        batch_size=batch_size,
        max_length=max_length,
        device=str(loaded.device),
    )
    results = simple_evaluate(
        model=lm,
        tasks=[name],
        # include_defaults=False: indexing lm-eval's thousands of built-in task files takes ~15 s a call
        task_manager=TaskManager(include_path=str(folder), include_defaults=False),
        log_samples=False,
        verbosity="WARNING",
    )
    value = float(results["results"][name]["word_perplexity,none"])
    if value != value:  # NaN
        raise BenchError("lm-eval returned a NaN perplexity; the edited model produces NaN log-probabilities.")
    return value
