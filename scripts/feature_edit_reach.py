"""How much more than the feature does FeatureEdit remove at a residual-stream site?

FeatureEdit at ``hook_resid_post`` hides a feature's decoder direction d from every later reader
of the stream, so they lose the stream's whole variation along d, not only the feature's share
of it. For each feature a privacy-erasure record chose (``--variant``, default the top-1
sweep point), this prints on WikiText-2 test tokens of the model that record edited:
- ``component``: the share of ‖h‖² along d (what the readers stop seeing);
- ``own``: the share of that component the feature itself writes (activation × ‖d‖);
- ``fires``: the share of tokens the feature is active on.

    python scripts/feature_edit_reach.py bench-results/privacy_erasure/.../blocks.16.hook_resid_post-<id>.json
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--variant", default="feature_edit[top_k=1]")
    parser.add_argument("--tokens", type=int, default=512, help="WikiText tokens, in windows of 256")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    site = record["lens"]["site"]
    torch.set_grad_enabled(False)
    loaded = load_model(record["injection"]["path"])  # the fine-tuned model the edits were made on
    lens = lens_of_record(loaded, record, plugins())  # checks the lens is the one the record used
    ids = wikitext_windows(data_dir(args.data_dir), loaded.tokenizer, args.tokens // 256, 256)
    h_all = site_activations(loaded, site, ids)
    h = h_all[:, 1:]  # position 0, the attention sink, left out
    features = lens.encode({site: h_all})[:, 1:]
    units = sorted({unit for item in record_items(record) for unit in item["methods"][args.variant]["edit"]["units"]})
    print(f"{site}, {args.variant}: {len(units)} features, {h.shape[0] * h.shape[1]} tokens")
    for unit in units:
        decoder = lens.unit_directions(torch.tensor([unit]))[0].float()
        along = h @ (decoder / decoder.norm())
        own = features[..., unit] * decoder.norm()
        print(
            f"feature {unit:5d}: component {float(along.square().sum() / h.square().sum()):.3f}  "
            f"own {float(own.square().sum() / along.square().sum()):.3f}  "
            f"fires {float((features[..., unit] > 0).float().mean()):.3f}"
        )


if __name__ == "__main__":
    main()
