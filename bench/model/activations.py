"""A cached activation pass over a text corpus, shared by everything that needs one
(SAE training and evaluation, PCA/ICA baselines, later top-activating contexts).

Texts are joined with EOS and cut into contexts of ``context_size`` tokens. The first
position of every context is dropped: its residual norm is an outlier (an attention sink)
that SAE training conventionally excludes. Each site is stored as a float16 ``.npy`` array
[n_tokens, d], written to a temporary name and renamed when complete, so a crash never
leaves a half-written array behind and a rerun collects only the missing sites.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.data.corpus import CORPORA, corpus_texts
from bench.errors import BenchError
from bench.io import write_json_atomic
from bench.model.loading import LoadedModel
from bench.model.sites import Site, hooked, site_width
from bench.paths import cache_dir


@dataclass(frozen=True)
class ActivationSpec:
    corpus: str = "train"
    context_size: int = 128
    max_tokens: int = 300_000

    def key(self, loaded: LoadedModel) -> str:
        corpus = CORPORA.get(self.corpus, self.corpus)
        raw = json.dumps([loaded.weights_sha256, str(loaded.dtype), corpus, self.context_size, self.max_tokens])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def contexts(loaded: LoadedModel, texts: Sequence[str], spec: ActivationSpec) -> torch.Tensor:
    """[n_contexts, context_size] token ids: the corpus joined with EOS, cut into equal contexts."""
    eos = loaded.tokenizer.eos_token_id
    ids: list[int] = []
    per_context = spec.context_size - 1  # tokens kept per context (position 0 is dropped)
    for text in texts:
        ids.extend(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(eos)
        if len(ids) >= (spec.max_tokens // per_context + 1) * spec.context_size:
            break
    n = min(len(ids) // spec.context_size, -(-spec.max_tokens // per_context))
    if n == 0:
        raise BenchError(f"corpus {spec.corpus!r} has fewer than {spec.context_size} tokens.")
    return torch.tensor(ids[: n * spec.context_size]).view(n, spec.context_size)


class _Stop(Exception):
    """Raised after the deepest site needed: the rest of the forward pass is wasted work."""


def activation_dir(loaded: LoadedModel, spec: ActivationSpec) -> Path:
    return cache_dir() / "activations" / spec.key(loaded)


def collect(
    loaded: LoadedModel, sites: Sequence[str], spec: ActivationSpec, data_dir: Path | None, batch_size: int = 16
) -> dict[str, np.ndarray]:
    """Activations [n_tokens, d] at each site (memory-mapped from the cache), collecting what is missing."""
    folder = activation_dir(loaded, spec)
    missing = [site for site in sites if not (folder / f"{site}.npy").exists()]
    if missing:
        _collect(loaded, missing, spec, data_dir, folder, batch_size)
    return {site: np.load(folder / f"{site}.npy", mmap_mode="r") for site in sites}


def token_ids(loaded: LoadedModel, spec: ActivationSpec) -> np.ndarray:
    """Token ids aligned with the rows of the cached activations, [n_tokens]."""
    return np.load(activation_dir(loaded, spec) / "tokens.npy")


def _collect(
    loaded: LoadedModel, sites: list[str], spec: ActivationSpec, data_dir: Path | None, folder: Path, batch_size: int
) -> None:
    ctx = contexts(loaded, corpus_texts(data_dir, spec.corpus), spec)
    keep = spec.context_size - 1
    n_tokens = ctx.shape[0] * keep
    folder.mkdir(parents=True, exist_ok=True)
    parsed = [Site.parse(site) for site in sites]
    tmp_paths = {site.name: folder / f"{site.name}.npy.tmp" for site in parsed}
    arrays = {
        site.name: np.lib.format.open_memmap(
            tmp_paths[site.name], mode="w+", dtype=np.float16, shape=(n_tokens, site_width(loaded.model, site))
        )
        for site in parsed
    }
    last_block = max(site.layer for site in parsed)
    row = 0

    def store(name: str):
        def fn(tensor: torch.Tensor) -> None:
            flat = tensor[:, 1:].reshape(-1, tensor.shape[-1]).float().cpu().numpy()
            arrays[name][row : row + flat.shape[0]] = flat

        return fn

    def stop(_tensor: torch.Tensor) -> None:
        raise _Stop

    fns = {site.name: store(site.name) for site in parsed}
    stop_site = f"blocks.{last_block}.hook_resid_post"
    chained = {**fns, stop_site: _then(fns.get(stop_site), stop)}
    with torch.no_grad():
        for start in tqdm(range(0, ctx.shape[0], batch_size), desc=f"activations ({spec.corpus})", unit="batch"):
            batch = ctx[start : start + batch_size].to(loaded.device)
            with hooked(loaded.model, chained), contextlib.suppress(_Stop):
                loaded.model(input_ids=batch)
            row += batch.shape[0] * keep
    for array in arrays.values():
        array.flush()
    arrays.clear()
    tokens_tmp = folder / "tokens.tmp.npy"
    np.save(tokens_tmp, ctx[:, 1:].reshape(-1).numpy())
    tokens_tmp.replace(folder / "tokens.npy")  # before the sites: a site array never lacks its tokens
    for name, tmp in tmp_paths.items():
        tmp.replace(folder / f"{name}.npy")
    write_json_atomic(folder / "spec.json", {"model": loaded.model_id, **spec.__dict__, "n_tokens": n_tokens})


def site_activations(loaded: LoadedModel, site: str, ids: torch.Tensor) -> torch.Tensor:
    """[batch, pos, d_site] float activations at ``site`` for token ids, one uncached forward pass
    (for diagnostics on a few hundred tokens; the cached pass above is for corpora)."""
    seen: dict[str, torch.Tensor] = {}
    with torch.no_grad(), hooked(loaded.model, {site: lambda t: seen.__setitem__("h", t.float())}):
        loaded.model(input_ids=ids.to(loaded.device))
    return seen["h"]


def _then(first, second):
    def fn(tensor: torch.Tensor) -> None:
        if first is not None:
            first(tensor)
        second(tensor)

    return fn
