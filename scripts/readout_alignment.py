"""Do a ΔProb record's chosen units remove the answer token's own read-out direction?

Late in the stream, the logit of the answer token `a` reads the residual stream along
r_a = γ ⊙ W_U[a] (the final norm's gain times a's unembedding row; the norm's 1/rms only scales
it). A lens whose chosen units span r_a lowers p(a) by cutting its read-out rather than by
finding where the fact is stored, and that edit is selective for the answer by construction.
For each fact of a full ``knowledge_ablation`` record this measures, over the answer's first token:

- ``share@k``: ‖Π r̂_a‖², the share of the unit read-out vector inside the span of the stream
  directions the fact's top-k units write (an SAE's decoder rows, a basis's directions, a neuron's
  down-projection column);
- ``chance@k``: the same for k units of the lens drawn at random (mean of 20 draws);
- ``partner``: mean |cos(r_a, r_b)| over the record's facts b of the same relation with another
  answer (small: cutting r_a spares b, which is what selectivity rewards).

    python scripts/readout_alignment.py bench-results/knowledge_ablation/.../random/blocks.24.hook_resid_post-<id>.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import torch

from bench.engine.records import record_items
from bench.model.lens import Lens
from bench.model.loading import LoadedModel, load_model
from bench.model.sites import Site, architecture_of, neuron_output_weight, site_width
from bench.plugin.registry import plugins
from bench.tasks.knowledge_ablation.replay import lens_of_record
from bench.tasks.privacy_erasure.methods import orthonormal_basis


def stream_directions(loaded: LoadedModel, lens: Lens, units: list[int]) -> torch.Tensor:
    """[len(units), d_model]: what raising each unit by 1 adds to the residual stream, read off the
    lens's own patch (so it holds for any linear decoder); MLP neurons through the down projection."""
    site = Site.parse(lens.site)
    h = torch.zeros(1, len(units), site_width(loaded.model, site))
    before = lens.encode({lens.site: h})
    after = before.clone()
    after[0, torch.arange(len(units)), torch.tensor(units)] += 1.0
    moved = (lens.patch({lens.site: h}, before, after) - h)[0]
    if site.hook == "mlp.hook_post":
        moved = moved @ neuron_output_weight(loaded.model, site.layer).detach().T.float()
    return moved.float()


def read_out(loaded: LoadedModel, answer: str) -> torch.Tensor:
    """r_a for the answer's first token: the final norm's gain times its unembedding row."""
    token = loaded.tokenizer(" " + answer, add_special_tokens=False)["input_ids"][0]
    gain = loaded.model.get_submodule(architecture_of(loaded.model).final_norm).weight.detach().float()
    return gain * loaded.model.get_output_embeddings().weight[token].detach().float()


def captured(directions: torch.Tensor, vector: torch.Tensor) -> float:
    """‖Π v̂‖²: the share of the unit vector v̂ inside the span of `directions`."""
    basis = orthonormal_basis(directions)
    unit = vector / vector.norm()
    return float((basis.T @ unit).pow(2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path, nargs="+", help="full knowledge_ablation records (with items)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--draws", type=int, default=20, help="random k-subsets per fact for chance@k")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    loaded = None
    print("| lens | site | facts | " + " | ".join(f"share@{k} | chance@{k}" for k in args.k) + " | partner |")
    print("|---|---|---" + "|---|---" * len(args.k) + "|---|")
    for path in args.records:
        record = json.loads(path.read_text())
        loaded = loaded or load_model(record["model"]["id"])
        lens = lens_of_record(loaded, record, plugins())
        items = record_items(record)
        rng = random.Random(0)
        shares: dict[int, list[float]] = {k: [] for k in args.k}
        chance: dict[int, list[float]] = {k: [] for k in args.k}
        partner = []
        for item in items:
            r = read_out(loaded, item["answer"])
            for k in args.k:
                shares[k].append(captured(stream_directions(loaded, lens, item["top_units"][:k]), r))
                draws = [rng.sample(range(lens.n_units), k) for _ in range(args.draws)]
                chance[k].append(statistics.fmean(captured(stream_directions(loaded, lens, d), r) for d in draws))
            others = [
                read_out(loaded, o["answer"])
                for o in items
                if o["relation"] == item["relation"] and o["answer"] != item["answer"]
            ]
            partner += [float(torch.cosine_similarity(r, o, dim=0).abs()) for o in others]
        cells = " | ".join(f"{statistics.fmean(shares[k]):.3f} | {statistics.fmean(chance[k]):.4f}" for k in args.k)
        mean_partner = f"{statistics.fmean(partner):.3f}" if partner else "n/a"
        print(f"| `{record['lens']['name']}` | `{record['lens']['site']}` | {len(items)} | {cells} | {mean_partner} |")


if __name__ == "__main__":
    main()
