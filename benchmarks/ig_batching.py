"""Speed of batched integrated gradients against a one-step-at-a-time loop, on the default model.

    python benchmarks/ig_batching.py [--facts 8] [--layer 16] [--steps 20] [--batch-sizes 20,40,80]

Prints facts per second for each batch size (1 = one forward and backward pass per IG step)
and the speed-up over the loop. Both paths run the same code, so their attributions must agree.
"""

from __future__ import annotations

import argparse
import time

import torch
from tabulate import tabulate

from bench.data.pararel import load_facts
from bench.model.attribution import attribute
from bench.model.loading import DEFAULT_MODEL, load_model
from bench.model.scoring import encode
from bench.paths import data_dir
from bench.plugin.registry import plugins
from bench.tasks.known_facts import known


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--facts", type=int, default=8)
    parser.add_argument("--layer", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-sizes", default="20,40,80")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    loaded = load_model(args.model, args.device)
    candidates = load_facts(data_dir(), ["P17", "P36", "P103", "P1376"], 1, 50, seed=0)
    facts = known(loaded, candidates, greedy_correct=True, min_prob=None, batch_size=32)[: args.facts]
    items = encode(loaded.tokenizer, facts)
    lens = plugins().lenses.get("mlp_neurons").build(loaded, f"blocks.{args.layer}.mlp.hook_post", {})
    print(f"{len(items)} facts, layer {args.layer}, {args.steps} IG steps, {torch.get_num_threads()} threads")

    def timed(batch_size: int) -> tuple[float, torch.Tensor]:
        attribute(loaded, lens, items[:1], "integrated_gradients", args.steps, batch_size)  # warm-up
        start = time.perf_counter()
        scores = attribute(loaded, lens, items, "integrated_gradients", args.steps, batch_size)
        return len(items) / (time.perf_counter() - start), scores

    loop_rate, loop_scores = timed(1)
    rows = [["1 (one step per pass)", f"{loop_rate:.2f}", "1.00", "-"]]
    for batch_size in map(int, args.batch_sizes.split(",")):
        rate, scores = timed(batch_size)
        err = float((scores - loop_scores).abs().max() / loop_scores.abs().max())
        rows.append([batch_size, f"{rate:.2f}", f"{rate / loop_rate:.2f}", f"{err:.1e}"])
    print(tabulate(rows, headers=["batch size (rows)", "facts/s", "speed-up", "max rel. diff"], tablefmt="github"))


if __name__ == "__main__":
    main()
