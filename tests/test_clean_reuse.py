"""The fast path of ΔProb (cached clean prefixes, KL passes from the site's block on, the LM head
only where read) gives the records of the reference path, which runs every pass whole, for every
lens kind on every supported architecture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from bench_baselines import Directions
from bench_mlp_neurons import MLPNeurons
from bench_neuron_clusters import ClusterTable, NeuronClusters
from tqdm.auto import tqdm

from bench.engine.context import TaskContext
from bench.engine.records import RecordSlot
from bench.model.clean_stream import CleanStream
from bench.model.lens import Lens
from bench.model.loading import LoadedModel, load_model
from bench.model.prefix import CleanPrefixes
from bench.model.scoring import collate, encode, score
from bench.model.sites import neuron_input_weights
from bench.model.text_kl import CleanDistribution
from bench.plugin.registry import plugins
from bench.tasks.knowledge_ablation.task import KnowledgeAblationConfig, run
from tests.tiny import ARCH_CONFIGS, random_sae_lens

LAYER = 1
TASK = {
    "type": "knowledge_ablation",
    "description": "both paths",
    "data": {"relations": ["P17", "P19"], "tuples_per_relation": 10},
    "filter": {"greedy_correct": False, "min_prob": None},
    "attribution": {"method": "integrated_gradients", "ig_steps": 3},
    "selection": {"k": [1, 3]},
    "controls": {"unrelated": 3, "kl_windows": 2, "kl_window_tokens": 12},
    "layers": [LAYER],
    "bootstrap": {"resamples": 20},
}


def _basis(loaded: LoadedModel, site: str) -> Lens:
    d = loaded.model.config.hidden_size
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return Directions(site, rng.normal(size=d) * 0.1, q, q, {"basis": "random"})


def _clusters(loaded: LoadedModel) -> Lens:
    """Token-conditional units: they read the MLP's normalized input as well as the neurons."""
    weights = neuron_input_weights(loaded.model, LAYER).float()
    torch.manual_seed(1)
    table = ClusterTable(np.array([0, 0, 3]), np.array([0, 1, 0]), torch.randn(3, *weights.shape[1:]).numpy())
    return NeuronClusters(
        f"blocks.{LAYER}.mlp.hook_post", table, weights, weights.shape[0], threshold=2.0
    )  # every token on its nearest cluster


LENSES = {
    "mlp_neurons": lambda loaded: MLPNeurons(loaded, f"blocks.{LAYER}.mlp.hook_post"),
    "sae_resid_post": lambda loaded: random_sae_lens(loaded, f"blocks.{LAYER}.hook_resid_post"),
    "sae_attn_out": lambda loaded: random_sae_lens(loaded, f"blocks.{LAYER}.hook_attn_out"),
    "basis_resid_pre": lambda loaded: _basis(loaded, f"blocks.{LAYER}.hook_resid_pre"),
    "neuron_clusters": _clusters,
}


def _run(loaded: LoadedModel, lens: Lens, data: Path, out: Path, reuse: bool) -> dict[str, Any]:
    config = KnowledgeAblationConfig.model_validate(TASK)
    slot = RecordSlot(out, {"task": {"name": str(reuse)}, "model": {"id": "m"}, "lens": {"name": "l", "site": "s"}})
    ctx = TaskContext(
        loaded, lens, config, 5, data, slot, lambda d, t, i: tqdm(total=t, disable=True), plugins(), reuse_clean=reuse
    )
    return run(ctx)


@pytest.mark.parametrize("lens_kind", sorted(LENSES))
# qwen2 shares Llama's adapter row, and transformers loads its own tokenizer class for it, which
# the word-level test vocabulary does not survive
@pytest.mark.parametrize("arch", sorted(set(ARCH_CONFIGS) - {"qwen2"}))
def test_fast_path_gives_the_reference_records(tiny_model_dirs, corpus_dir, tmp_path, arch, lens_kind) -> None:
    loaded = load_model(str(tiny_model_dirs[arch]))
    lens = LENSES[lens_kind](loaded)
    fast = _run(loaded, lens, corpus_dir, tmp_path / "fast", reuse=True)
    reference = _run(loaded, lens, corpus_dir, tmp_path / "reference", reuse=False)
    assert len(fast["items"]) == len(reference["items"]) > 3
    for a, b in zip(fast["items"], reference["items"], strict=True):
        assert a["id"] == b["id"] and a["unrelated"] == b["unrelated"]
        assert a["p_clean"] == pytest.approx(b["p_clean"], rel=1e-4, abs=1e-6)
        assert a["top_scores"] == pytest.approx(b["top_scores"], rel=1e-3, abs=1e-6)
        for key in ("p_ablated", "delta_prob_unrelated", "delta_prob_random", "kl", "edit_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-5), key
    # the edits did something to compare
    assert any(abs(item["p_ablated"]["3"] - item["p_clean"]) > 1e-6 for item in fast["items"])


def test_prefix_batch_scores_like_the_whole_sequence(tiny_model_dirs, pararel_dir) -> None:
    """Rows of different prompt lengths, gathered in any order, score as their whole sequences do."""
    from bench.data.pararel import load_facts

    loaded = load_model(str(tiny_model_dirs["llama"]))
    facts = load_facts(pararel_dir, ["P17", "P19"], 1, 10, seed=0)
    items = encode(loaded.tokenizer, facts)
    prefixes = CleanPrefixes(loaded, items[::-1], batch_size=3)
    rows = [items[i] for i in (4, 0, 4, 7, 1)]
    with torch.no_grad():
        whole = score(loaded, collate(rows, loaded.tokenizer.pad_token_id, loaded.device)).log_prob
        after_prefix = score(loaded, prefixes.collate(loaded, rows)).log_prob
    torch.testing.assert_close(after_prefix, whole, rtol=1e-5, atol=1e-6)


def test_a_clean_stream_restores_the_blocks_it_skipped(tiny_model_dirs) -> None:
    loaded = load_model(str(tiny_model_dirs["gpt2"]))
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    stream = CleanStream(loaded, 2)
    with torch.no_grad():
        with stream.capturing():
            clean = loaded.model(input_ids=ids).logits
        with stream.skipping(3):
            skipped = loaded.model(input_ids=ids.repeat(3, 1)).logits
        after = loaded.model(input_ids=ids).logits
    torch.testing.assert_close(skipped, clean.repeat(3, 1, 1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(after, clean)
    assert all("forward" not in block.__dict__ for block in loaded.model.transformer.h)
    assert not any(block._forward_hooks for block in loaded.model.transformer.h)  # the capture hook is gone


def test_kl_control_is_exact_on_a_large_vocabulary() -> None:
    """The KL of a small edit over a 49k vocabulary, in float32, against float64."""
    generator = torch.Generator().manual_seed(0)
    clean = torch.randn(2, 8, 49152, generator=generator) * 4
    edited = clean + torch.randn(clean.shape, generator=generator) * 0.01
    exact = float(
        (clean.double().softmax(-1) * (clean.double().log_softmax(-1) - edited.double().log_softmax(-1))).sum(-1).mean()
    )
    assert CleanDistribution(clean).mean_kl(edited) == pytest.approx(exact, rel=1e-2)
    assert CleanDistribution(clean).mean_kl(clean) == 0


def test_one_token_prompts_have_an_empty_prefix(tiny_model_dirs) -> None:
    """A one-token prompt has nothing before its edited position: alone, and beside longer prompts."""
    from bench.model.scoring import Encoded

    loaded = load_model(str(tiny_model_dirs["llama"]))
    short, longer = Encoded((3,), (5, 6)), Encoded((3, 4, 7, 8), (5,))
    for rows in ([short], [short, longer, short]):
        prefixes = CleanPrefixes(loaded, rows, batch_size=2)
        with torch.no_grad():
            whole = score(loaded, collate(rows, loaded.tokenizer.pad_token_id, loaded.device)).log_prob
            after_prefix = score(loaded, prefixes.collate(loaded, rows)).log_prob
        torch.testing.assert_close(after_prefix, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lens_kind", ["mlp_neurons", "neuron_clusters", "sae_resid_post"])
def test_integrated_gradients_after_cached_prefixes_equal_whole_passes(tiny_model_dirs, pararel_dir, lens_kind) -> None:
    """What monosemanticity, IS and privacy erasure get from attribute(): the same scores either way."""
    from bench.data.pararel import load_facts
    from bench.model.attribution import attribute

    loaded = load_model(str(tiny_model_dirs["gpt2"]))
    lens = LENSES[lens_kind](loaded)
    items = encode(loaded.tokenizer, load_facts(pararel_dir, ["P17", "P19"], 1, 10, seed=0))
    fast = attribute(loaded, lens, items, "integrated_gradients", 5, 4)
    whole = attribute(loaded, lens, items, "integrated_gradients", 5, 4, reuse_clean=False)
    torch.testing.assert_close(fast, whole, rtol=1e-4, atol=1e-6)
    assert whole.abs().max() > 0
