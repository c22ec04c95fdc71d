"""Time per fact of one knowledge_ablation item, reference path against fast path, on the default
model, and what schema 3's controls cost against schema 2's settings.

    python benchmarks/knowledge_ablation_speed.py [--units mlp_neurons] [--layer 16] [--facts 10]

Controls: the fast path is also timed with schema 2's settings (k = 1, 5, 10, units set to 0, IG
from 0, no k sweep) beside the task's defaults (k = 1 ... 50, the mean rule, 10 same-relation
facts per fact, the last-token KL of the scored edit). Schema 2 had no same-relation control; the
task needs at least one, so "schema 2 settings" keeps one and slightly overstates the old cost.

Both paths run in this process on the same facts, lens and config. The reference path runs every
pass whole (``TaskContext.reuse_clean = False``); the fast one runs edits at the last prompt
token after cached clean prefixes and the KL passes from the site's block on. Printed: seconds
per fact, forward tokens per fact (token x block passes / blocks: full-model token
equivalents, padding included), their effective rate against a plain batched forward of the same
model (the floor), and the largest difference between the two paths' metrics (they must agree).
The known-fact screen is run first and not timed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate
from tqdm.auto import tqdm

from bench.data.corpus import wikitext_pages
from bench.engine.context import TaskContext
from bench.engine.records import RecordSlot
from bench.engine.runner import RunOptions, task_config
from bench.engine.taskspec import load_task
from bench.model.loading import DEFAULT_MODEL, load_model
from bench.model.sites import architecture_of, n_layers
from bench.paths import data_dir
from bench.plugin.registry import plugins


class TokenCounter:
    """Tokens through each block's MLP (padding included; a skipped block runs no MLP)."""

    def __init__(self, model: torch.nn.Module):
        arch = architecture_of(model)
        self.blocks = n_layers(model)
        self.count = 0
        self.handles = [
            block.get_submodule(arch.mlp).register_forward_pre_hook(self._add)
            for block in model.get_submodule(arch.blocks)
        ]

    def _add(self, _module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        self.count += args[0].shape[0] * args[0].shape[1]

    def model_tokens(self) -> float:
        return self.count / self.blocks


def floor_rate(loaded: Any, tokens: int = 64, rows: int = 32) -> float:
    """Tokens per second of a plain batched no-grad forward over WikiText-2 text."""
    ids: list[int] = []
    for page in wikitext_pages(data_dir(), "test"):
        ids.extend(loaded.tokenizer(page, add_special_tokens=False)["input_ids"])
        if len(ids) >= tokens * rows:
            break
    batch = torch.tensor(ids[: tokens * rows]).view(rows, tokens).to(loaded.device)
    with torch.no_grad():
        loaded.model(input_ids=batch[:2])  # warm-up
        start = time.perf_counter()
        loaded.model(input_ids=batch)
    return batch.numel() / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--units", default="mlp_neurons")
    parser.add_argument("--layer", type=int, default=16)
    parser.add_argument("--facts", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    loaded = load_model(args.model, args.device)
    registry = plugins()
    task = load_task(registry, "knowledge_ablation")
    options = RunOptions(limit=args.facts, batch_size=args.batch_size)
    config = task_config(task, options, [args.layer])
    spec = registry.lenses.get(args.units)
    lens = spec.build(loaded, spec.default_site.format(layer=args.layer), {})
    counter = TokenCounter(loaded.model)

    def timed(reuse: bool, config: Any = config) -> tuple[float, float, dict[str, Any]]:
        with tempfile.TemporaryDirectory() as out:
            slot = RecordSlot(
                Path(out),
                {
                    "task": {"name": "speed"},
                    "model": {"id": args.model},
                    "lens": {"name": args.units, "site": lens.site},
                },
            )
            ctx = TaskContext(
                loaded,
                lens,
                config,
                args.batch_size,
                data_dir(),
                slot,
                lambda d, t, i: tqdm(total=t, initial=i, desc=f"{'fast' if reuse else 'reference'} {d}"),
                registry,
                reuse_clean=reuse,
            )
            counter.count = 0
            start = time.perf_counter()
            outcome = task.type.run(ctx)
            seconds = time.perf_counter() - start
        n = outcome["sample"]["used"]
        return seconds / n, counter.model_tokens() / n, outcome["metrics"]

    # the known-fact screen (cached after the first run on this machine) and warm-up, not timed
    timed(True)
    floor = floor_rate(loaded)
    reference = timed(False)
    fast = timed(True)
    diff = max(abs(fast[2][key]["mean"] - reference[2][key]["mean"]) for key in reference[2])
    rows = [
        [name, f"{per_fact:.2f}", f"{tokens:,.0f}", f"{tokens / per_fact:,.0f}", f"{tokens / per_fact / floor:.2f}"]
        for name, (per_fact, tokens, _) in (("reference (whole passes)", reference), ("fast", fast))
    ]
    print(
        f"{args.units} at layer {args.layer}, {args.facts} facts, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads; plain forward floor {floor:,.0f} tokens/s"
    )
    headers = ["path", "s / fact", "forward tokens / fact", "tokens/s", "of floor"]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    print(f"speed-up per fact: {reference[0] / fast[0]:.2f}x; forward tokens: {reference[1] / fast[1]:.2f}x fewer")
    print(f"largest difference between the two paths' metric means: {diff:.2e}")

    before = config.model_copy(
        update={
            "selection": config.selection.model_copy(update={"k": [1, 5, 10]}),
            "ablation": config.ablation.model_copy(update={"value": "zero"}),
            "controls": config.controls.model_copy(update={"same_relation": 1}),
        }
    )
    old = timed(True, before)
    rows = [["schema 2 settings (k 1, 5, 10; zero; 1 same-relation fact)", f"{old[0]:.2f}", f"{old[1]:,.0f}"]]
    rows.append(["schema 3 defaults (k 1 ... 50; mean; 10 same-relation facts)", f"{fast[0]:.2f}", f"{fast[1]:,.0f}"])
    print(tabulate(rows, headers=["controls (fast path)", "s / fact", "forward tokens / fact"], tablefmt="github"))
    print(f"schema 3's controls cost {fast[0] / old[0]:.2f}x the time per fact")


if __name__ == "__main__":
    main()
