"""The corpus readers and the shared, cached activation pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bench.model.activations as activations
from bench.data.corpus import corpus_texts, wikitext_pages
from bench.errors import BenchError
from bench.model.activations import ActivationSpec, collect, contexts, site_activations, token_ids


def test_corpus_readers(corpus_dir) -> None:
    pages = wikitext_pages(corpus_dir, "valid")
    assert len(pages) == 30 and pages[0].startswith("= Page 0 =")
    assert " , " not in pages[0]  # lm-eval's detokenizer ran
    # SAEs train on WikiText-2 validation only: nothing a task scores on (test split, UD) is in it
    assert corpus_texts(corpus_dir, "train") == pages
    with pytest.raises(BenchError, match="split 'train' is not available"):
        wikitext_pages(corpus_dir, "train")
    with pytest.raises(BenchError, match="unknown corpus"):
        corpus_texts(corpus_dir, "books")


def test_collected_activations_match_a_direct_forward_pass(tiny_llama, corpus_dir, monkeypatch) -> None:
    spec = ActivationSpec("train", context_size=16, max_tokens=300)
    sites = ["blocks.0.hook_resid_post", "blocks.1.mlp.hook_post"]
    acts = collect(tiny_llama, sites, spec, corpus_dir, batch_size=4)
    ctx = contexts(tiny_llama, corpus_texts(corpus_dir, "train"), spec)
    assert acts[sites[1]].shape == (ctx.shape[0] * 15, 24)
    assert acts[sites[0]].shape[0] >= 300
    np.testing.assert_array_equal(token_ids(tiny_llama, spec), ctx[:, 1:].reshape(-1).numpy())

    direct = site_activations(tiny_llama, sites[1], ctx[2:3])  # the uncached pass of the diagnostics
    assert direct.shape == (1, 16, 24) and direct.dtype == torch.float32
    np.testing.assert_allclose(acts[sites[1]][2 * 15 : 3 * 15], direct[0, 1:].numpy(), rtol=1e-3, atol=1e-3)

    # A second request is served from the cache; only a new site triggers a pass, for that site alone.
    passes = []
    original = activations._collect
    monkeypatch.setattr(
        activations, "_collect", lambda loaded, todo, *a: (passes.append(todo), original(loaded, todo, *a))
    )
    collect(tiny_llama, sites, spec, corpus_dir, batch_size=4)
    collect(tiny_llama, [*sites, "blocks.1.hook_attn_out"], spec, corpus_dir, batch_size=4)
    assert passes == [["blocks.1.hook_attn_out"]]
