"""Do a ΔProb record's chosen units remove the answer token's own read-out direction?

A lens whose chosen units span the direction along which the stream raises the answer's
log-probability lowers p(answer) by cutting its read-out rather than by finding where the fact
is stored, and that edit is selective for the answer by construction. For each fact of a full
``knowledge_ablation`` record, two read-out directions of the answer's first token `a`:

- ``direct``: the unembedding's, γ ⊙ (W_U[a] − mean_v W_U[v]) (the final norm's gain; the mean
  over the vocabulary taken out because softmax ignores what every logit shares);
- ``effective``: ∂ log p(a) / ∂h at the site and the last prompt position, through every later
  block (what the attribution itself follows);

and for each, over the fact's top-k units:

- ``share@k``: ‖Π r̂‖², the share of the unit read-out vector inside the span of the stream
  directions the units write (an SAE's decoder rows, a basis's directions, a neuron's
  down-projection column);
- ``chance@k``: the same for k units of the lens drawn at random (mean of 20 draws).

``partner``: mean |cos| of the direct read-outs of facts of the same relation with another answer.

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
from bench.model.directions import share_in_span, stream_directions
from bench.model.loading import LoadedModel, load_model
from bench.model.sites import Site, architecture_of, hooked
from bench.plugin.registry import plugins
from bench.tasks.knowledge_ablation.replay import lens_of_record


def read_out(loaded: LoadedModel, answer: str) -> torch.Tensor:
    """The direct read-out of the answer's first token, centred over the vocabulary."""
    token = _first_token(loaded, answer)
    gain = loaded.model.get_submodule(architecture_of(loaded.model).final_norm).weight.detach().float()
    unembedding = loaded.model.get_output_embeddings().weight.detach().float()
    return gain * (unembedding[token] - unembedding.mean(0))


def effective_read_out(loaded: LoadedModel, site: str, prompt: str, answer: str) -> torch.Tensor:
    """∂ log p(first answer token) / ∂(the residual stream at the site's block output), last position."""
    layer = Site.parse(site).layer
    captured_h: list[torch.Tensor] = []

    def leaf(h: torch.Tensor) -> torch.Tensor:
        h = h.detach().requires_grad_(True)
        captured_h.append(h)
        return h

    ids = torch.tensor([loaded.tokenizer(prompt)["input_ids"]], device=loaded.device)
    with torch.enable_grad(), hooked(loaded.model, {f"blocks.{layer}.hook_resid_post": leaf}):
        logits = loaded.model(ids).logits[0, -1].float()
        logits.log_softmax(-1)[_first_token(loaded, answer)].backward()
    return captured_h[0].grad[0, -1].float()


def _first_token(loaded: LoadedModel, answer: str) -> int:
    return loaded.tokenizer(" " + answer, add_special_tokens=False)["input_ids"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path, nargs="+", help="full knowledge_ablation records (with items)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--draws", type=int, default=20, help="random k-subsets per fact for chance@k")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    loaded = None
    kinds = ("direct", "effective")
    header = " | ".join(f"{kind} share@{k} | chance@{k}" for kind in kinds for k in args.k)
    print(f"| lens | site | facts | {header} | partner |")
    print("|---|---|---" + "|---|---" * len(args.k) * len(kinds) + "|---|")
    for path in args.records:
        record = json.loads(path.read_text())
        loaded = loaded or load_model(record["model"]["id"])
        lens = lens_of_record(loaded, record, plugins())
        items = record_items(record)
        every_direction = stream_directions(loaded, lens, list(range(lens.n_units)))  # [n_units, d_model], once
        rng = random.Random(0)
        shares = {(kind, k): [] for kind in kinds for k in args.k}
        chance = {(kind, k): [] for kind in kinds for k in args.k}
        partner = []
        for item in items:
            vectors = {
                "direct": read_out(loaded, item["answer"]),
                "effective": effective_read_out(loaded, lens.site, item["prompt"], item["answer"]),
            }
            for k in args.k:
                chosen = every_direction[item["top_units"][:k]]
                draws = [every_direction[rng.sample(range(lens.n_units), k)] for _ in range(args.draws)]
                for kind, vector in vectors.items():
                    shares[kind, k].append(share_in_span(chosen, vector))
                    chance[kind, k].append(statistics.fmean(share_in_span(d, vector) for d in draws))
            others = [
                read_out(loaded, o["answer"])
                for o in items
                if o["relation"] == item["relation"] and o["answer"] != item["answer"]
            ]
            partner += [float(torch.cosine_similarity(vectors["direct"], o, dim=0).abs()) for o in others]
        cells = " | ".join(
            f"{statistics.fmean(shares[key]):.3f} | {statistics.fmean(chance[key]):.4f}" for key in shares
        )
        mean_partner = f"{statistics.fmean(partner):.3f}" if partner else "n/a"
        print(f"| `{record['lens']['name']}` | `{record['lens']['site']}` | {len(items)} | {cells} | {mean_partner} |")


if __name__ == "__main__":
    main()
