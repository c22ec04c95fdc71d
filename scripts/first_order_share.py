"""How much of a fact's answer does its top-k edit remove at first order, and how much of a
same-relation partner's?

A ΔProb record ablates a fact's top-k units at its last prompt token and checks the same edit on
facts of its relation with another answer. This script linearises both around the clean pass: at
the site and the last prompt token, x the site's activation and g = ∂ log p(answer) / ∂x (the
whole answer teacher-forced, as the task scores it), the edit moves x by Δ (the lens's own patch
with the units set to the record's ablation value, their WikiText mean by default) and
log p(answer) by ≈ g·Δ. Per lens and k, over the facts of a full ``knowledge_ablation`` record
(means):

- ``own g·Δ``: the first-order change of the fact's own log p(answer), next to ``own actual``,
  the change the record measured (log p_ablated − log p_clean); ``linear`` is their ratio, the
  share of the measured change the linear picture carries;
- ``partner g·Δ``: the same edit's first-order change of the partner's log p(its answer), over
  the record's other facts of the relation with another answer (at most 3 a fact);
  ``partner / own`` is its ratio to the own change (0: the edit touches only its own answer);
- ``‖Δ‖ / ‖x − μ‖``: the edit's size against the site's distance from its mean.

A lens is selective at first order when ``own`` is large and ``partner`` small; comparing lenses
says whether their selectivity is already in that linear picture or comes from what it leaves out.

    python scripts/first_order_share.py bench-results/knowledge_ablation/.../random/blocks.24.hook_resid_post-<id>.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

import torch

from bench.data.pararel import Fact
from bench.engine.records import record_items
from bench.model.directions import answer_gradient
from bench.model.lens import Lens, SiteCoordinates, lensed
from bench.model.loading import LoadedModel, load_model
from bench.model.reference import UnitReference
from bench.model.sites import Site, site_width
from bench.paths import data_dir
from bench.plugin.registry import plugins
from bench.tasks.knowledge_ablation.replay import lens_of_record


def fact_of(item: dict[str, Any]) -> Fact:
    """A record item's prompt and answer as a fact (what scoring encodes)."""
    return Fact(item["id"], item["relation"], "", item["answer"], item["prompt"], "")


def edited_site(
    loaded: LoadedModel, lens: Lens, item: dict[str, Any], units: list[int], mean: torch.Tensor
) -> torch.Tensor:
    """The site's activation at the last prompt token with `units` set to their mean (the lens's own patch)."""
    ids = torch.tensor([loaded.tokenizer(item["prompt"])["input_ids"]], device=loaded.device)
    chosen = torch.tensor(units)
    seen: list[torch.Tensor] = []

    def edit(acts: torch.Tensor) -> torch.Tensor:
        out = acts.clone()
        out[..., chosen] = mean[chosen].to(out)
        return out

    with torch.no_grad(), lensed(loaded, lens, edit, observe=lambda _before, after: seen.append(after)):
        loaded.model(ids)
    return seen[0][0, -1].float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path, nargs="+", help="full knowledge_ablation records (with items)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--partners", type=int, default=3, help="same-relation facts per fact (at most)")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    loaded = None
    print("| lens | site | k | facts | own g·Δ | own actual | linear | partner g·Δ | partner / own | ‖Δ‖ / ‖x − μ‖ |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in args.records:
        record = json.loads(path.read_text())
        loaded = loaded or load_model(record["model"]["id"])
        lens = lens_of_record(loaded, record, plugins())
        items = record_items(record)
        rule = record["ablation"]["value"]
        if rule not in ("mean", "zero"):
            raise SystemExit(f"{path.name}: ablation rule {rule!r} draws per row; this script takes mean or zero")
        unit_value = UnitReference.measure(loaded, lens, rule, data_dir(args.data_dir)).mean
        coordinates = SiteCoordinates(lens.site, site_width(loaded.model, Site.parse(lens.site)))
        site_mean = UnitReference.measure(loaded, coordinates, "mean", data_dir(args.data_dir)).mean
        clean = {item["id"]: answer_gradient(loaded, lens.site, fact_of(item)) for item in items}
        for k in args.k:
            own, actual, partner, size = [], [], [], []
            for item in items:
                x, g = clean[item["id"]]
                delta = edited_site(loaded, lens, item, item["top_units"][:k], unit_value) - x
                own.append(float(g @ delta))
                actual.append(math.log(max(item["p_ablated"][str(k)], 1e-30)) - math.log(item["p_clean"]))
                size.append(float(delta.norm() / (x - site_mean).norm()))
                others = [o for o in items if o["relation"] == item["relation"] and o["answer"] != item["answer"]]
                for other in others[: args.partners]:
                    x_o, g_o = clean[other["id"]]
                    partner.append(
                        float(g_o @ (edited_site(loaded, lens, other, item["top_units"][:k], unit_value) - x_o))
                    )
            o, a, p, z = (statistics.fmean(v) if v else float("nan") for v in (own, actual, partner, size))
            print(
                f"| `{record['lens']['name']}` | `{lens.site}` | {k} | {len(items)} | {o:+.3f} | {a:+.3f} | "
                f"{o / a:.2f} | {p:+.3f} | {p / o:.2f} | {z:.3f} |"
            )


if __name__ == "__main__":
    main()
