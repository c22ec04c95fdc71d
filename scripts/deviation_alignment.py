"""Do a monosemanticity record's top units lean towards the fact's deviation from the mean?

    python scripts/deviation_alignment.py <full monosemanticity record>

For every scored fact of the record: d = x_fact − μ at the site and the fact's last prompt
token (μ: the task's IG baseline and ablation reference, WikiText means), and the stream
directions of the fact's top units as the lens writes them. It prints the mean share of d̂
inside the span of the top units (‖Π d̂‖²) against the share inside the span of as many random
units of the lens (chance), and the Spearman correlation over all units between a unit's AUROC
in the record and |cos(unit, d)|. Units that lean towards d and score higher the more they do
are similarity detectors of the fact's whole representation: that is what the reading of
random directions' monosemanticity at layer 24 in docs/findings.md predicts. Stream lenses
only (a unit's direction is read off the lens's own patch, as scripts/readout_alignment.py does).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import torch
from scipy.stats import spearmanr

from bench.data.pararel import load_facts
from bench.engine.records import record_items
from bench.model.attribution import attribute
from bench.model.directions import share_in_span, stream_directions
from bench.model.lens import SiteCoordinates
from bench.model.loading import load_model
from bench.model.reference import UnitReference
from bench.model.scoring import encode
from bench.model.sites import Site, site_width
from bench.paths import data_dir
from bench.plugin.registry import plugins
from bench.tasks.knowledge_ablation.replay import lens_of_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path, help="a full monosemanticity record (bench run --output-dir)")
    parser.add_argument("--draws", type=int, default=20, help="random unit subsets per fact for chance")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    record = json.loads(args.record.read_text())
    loaded = load_model(record["model"]["id"])
    lens = lens_of_record(loaded, record, plugins())
    site = Site.parse(lens.site)
    if site.hook != "hook_resid_post":
        raise SystemExit(f"{lens.site}: the deviation is read on the residual stream; pass a resid_post record")
    stream = SiteCoordinates(lens.site, site_width(loaded.model, site))
    windows = record["task"]["config"]["attribution"]["reference_windows"]
    mean = UnitReference.measure(loaded, stream, "mean", data_dir(args.data_dir), windows).mean
    data = record["task"]["config"]["data"]  # the record's own facts, by id
    facts = load_facts(
        data_dir(args.data_dir),
        data["relations"],
        data["patterns_per_relation"],
        data["tuples_per_relation"],
        record["task"]["config"]["seed"],
    )
    fact_by_id = {fact.id: fact for fact in facts}
    every_direction = stream_directions(loaded, lens, list(range(lens.n_units)))  # [n_units, d_model], once
    rng = random.Random(0)
    shares, chance, aurocs, cosines = [], [], [], []
    for item in record_items(record):
        if "skipped" in item:
            continue
        fact = fact_by_id[item["id"]]
        (state,) = attribute(loaded, stream, encode(loaded.tokenizer, [fact]), "activation", 1, 1)
        deviation = state - mean
        directions = every_direction[item["units"]]
        shares.append(share_in_span(directions, deviation))
        subsets = [rng.sample(range(lens.n_units), len(item["units"])) for _ in range(args.draws)]
        chance.append(statistics.fmean(share_in_span(every_direction[s], deviation) for s in subsets))
        cosines += torch.cosine_similarity(directions, deviation[None], dim=1).abs().tolist()
        aurocs += item["auroc"]
    rho = spearmanr(cosines, aurocs)
    print(
        f"{record['lens']['name']} at {lens.site}, {len(shares)} facts: share of d̂ in the top units' span "
        f"{statistics.fmean(shares):.3f} (random units {statistics.fmean(chance):.3f}); "
        f"Spearman(|cos(unit, d)|, unit AUROC) = {rho.statistic:.3f} (p = {rho.pvalue:.2g}, {len(aurocs)} units)"
    )


if __name__ == "__main__":
    main()
