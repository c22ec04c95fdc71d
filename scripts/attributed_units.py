"""Which units does a ΔProb record's attribution keep choosing, and how generic are they?

A lens whose top IG units are the same few "hub" units for most facts ablates the same thing
for every fact, and its specificity control (the same ablation on unrelated facts) falls.
For the units chosen most often in a ``knowledge_ablation`` record this prints:
- ``top1`` / ``top5``: for how many facts the unit is the first / among the first five;
- ``fires``: the share of WikiText-2 test tokens it is active on (> 0; position 0 left out;
  meant for non-negative units such as SAE features);
- ``writes``: for lenses with unit directions (SAEs), the mean share of ‖h‖ the unit's
  activation × ‖d‖ makes up on the tokens it fires on.

    python scripts/attributed_units.py bench-results/knowledge_ablation/.../blocks.24.hook_resid_post-<id>.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from bench.engine.records import record_items
from bench.model.activations import site_activations
from bench.model.loading import load_model
from bench.model.text_kl import wikitext_windows
from bench.paths import data_dir
from bench.plugin.registry import plugins
from bench.tasks.knowledge_ablation.replay import lens_of_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path)
    parser.add_argument("--show", type=int, default=8, help="how many of the most chosen units to show")
    parser.add_argument("--tokens", type=int, default=512, help="WikiText tokens, in windows of 256")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    site, items = record["lens"]["site"], record_items(record)
    top1 = Counter(item["top_units"][0] for item in items)
    top5 = Counter(unit for item in items for unit in item["top_units"][:5])
    torch.set_grad_enabled(False)
    loaded = load_model(record["model"]["id"])
    lens = lens_of_record(loaded, record, plugins())
    ids = wikitext_windows(data_dir(args.data_dir), loaded.tokenizer, args.tokens // 256, 256)
    h_all = site_activations(loaded, site, ids)
    norms = h_all[:, 1:].norm(dim=-1)  # position 0, the attention sink, left out
    units = lens.encode({site: h_all})[:, 1:]
    directions = getattr(lens, "unit_directions", None)
    print(f"{site}, {record['lens']['name']}: {len(items)} facts, {units.shape[0] * units.shape[1]} WikiText tokens")
    for unit, count in top5.most_common(args.show):
        active = units[..., unit] > 0
        line = f"unit {unit:5d}: top1 {top1[unit]:3d}  top5 {count:3d}  fires {float(active.float().mean()):.3f}"
        if directions is not None and active.any():
            size = directions(torch.tensor([unit]))[0].float().norm()
            line += f"  writes {float((units[..., unit] * size / norms)[active].mean()):.3f} of ‖h‖"
        print(line)


if __name__ == "__main__":
    main()
