"""Is a ΔProb record's ablation specific to its fact, or to the fact's relation?

A ``knowledge_ablation`` record's specificity control ablates a fact's units on known facts of
*other* relations, so a unit that carries a relation or an answer type ("the answer is a
language") is charged nothing for the other facts of that relation it also removes. This script
ablates each fact's top-k units (the record's own, the same way, at the same positions) on the
record's other facts of the *same* relation with a *different* answer, and prints, per relation
and overall (bootstrap SE over relations):
- ``ΔProb``: the record's drop of the fact itself;
- ``other rel.``: the record's control, facts of other relations;
- ``same rel.``: the new control, the mean drop of the same relation's other facts.
The record's own ablations are replayed first, and must give back its ΔProb.

    python scripts/same_relation_control.py bench-results/knowledge_ablation/.../<site>-<id>.json --k 5
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from bench.engine.records import record_items
from bench.model.loading import load_model
from bench.paths import data_dir
from bench.plugin.registry import plugins
from bench.stats import mean_se
from bench.tasks.knowledge_ablation.replay import facts_of_record, lens_of_record, replayed_drops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path)
    parser.add_argument("--k", default="5", help="the selection to replay (a key of the record's per-k metrics)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    items = record_items(record)
    facts = facts_of_record(record, data_dir(args.data_dir))
    pairs = [
        (i, j)
        for i, a in enumerate(facts)
        for j, b in enumerate(facts)
        if i != j and a.relation == b.relation and a.answer != b.answer
    ]
    torch.set_grad_enabled(False)
    loaded = load_model(record["model"]["id"])
    lens = lens_of_record(loaded, record, plugins())
    same_drops: dict[int, list[float]] = defaultdict(list)
    own = [(i, i) for i in range(len(facts))]  # replayed as a check: they must give the record's ΔProb
    drops = replayed_drops(loaded, lens, record, facts, own + pairs, int(args.k), args.batch_size)
    off = max(abs(d - item["delta_prob"][args.k]) for d, item in zip(drops[: len(own)], items, strict=True))
    if off > 1e-3:
        raise SystemExit(f"the replay does not reproduce the record (ΔProb off by up to {off:.4f}); not comparable")
    for (i, _), d in zip(pairs, drops[len(own) :], strict=True):
        same_drops[i].append(d)
    rows = [
        (item["relation"], item["delta_prob"][args.k], item["delta_prob_unrelated"][args.k], sum(d) / len(d))
        for i, item in enumerate(items)
        if (d := same_drops[i])
    ]
    print(f"{record['lens']['name']} at {record['lens']['site']}, k = {args.k}: {len(rows)} of {len(items)} facts have")
    print("another fact of their relation with another answer in the record\n")
    print(f"{'relation':10s} {'facts':>5s} {'ΔProb':>7s} {'other rel.':>10s} {'same rel.':>9s}")
    for relation in sorted({r for r, *_ in rows}):
        part = [row for row in rows if row[0] == relation]
        prob, other, same = (sum(col) / len(part) for col in list(zip(*part, strict=True))[1:])
        print(f"{relation:10s} {len(part):5d} {prob:7.3f} {other:10.3f} {same:9.3f}")
    relations = [r for r, *_ in rows]
    print()
    for name, col in (("ΔProb", 1), ("other rel.", 2), ("same rel.", 3), ("ΔProb − same rel.", None)):
        values = [row[1] - row[3] if col is None else row[col] for row in rows]
        stat = mean_se(values, 1000, 0, relations)
        print(f"{name:18s} {stat['mean']:.3f} ± {stat['se']:.3f}")


if __name__ == "__main__":
    main()
