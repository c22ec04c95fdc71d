"""lens-bench baseline lenses: fixed directions of the residual stream after block L.

- ``pca``: principal components (scikit-learn PCA) of the site's activations;
- ``ica``: independent components (scikit-learn FastICA);
- ``random``: a random orthonormal basis (QR of a Gaussian matrix), centred like PCA.

A unit's activation is the projection on its direction, ``f = (h - mean) @ E.T``; editing
units adds ``(f' - f) @ D`` to the stream (D = E for PCA and random directions, the mixing
matrix for ICA), so ablating a unit removes exactly its projection and an unedited pass
returns ``h``. The centre (and PCA and ICA) are fitted on the harness's cached activation
pass over the training corpus (the same text the SAEs are trained on).

The random basis is orthonormal, not overcomplete, for integrated gradients: scaling every
unit to 0 must mean "no signal" (the mean activation). With 8 x d random directions,
E.T @ D is about 8 I, so all units at 0 moved h to about -7h, and IG measured that.

Options: ``n_units`` (at most d_model; default d_model), ``fit_tokens`` (activations used for
fitting, default 50000), ``seed`` (default 0).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA, FastICA

from bench import hookimpl
from bench.errors import BenchError
from bench.model.activations import ActivationSpec, collect
from bench.model.lens import Lens, RefitData
from bench.model.loading import LoadedModel
from bench.model.sites import Site, site_width
from bench.paths import cache_dir, data_dir
from bench.plugin.specs import LensSpec


class Directions(Lens):
    def __init__(self, site: str, center: np.ndarray, encoder: np.ndarray, decoder: np.ndarray, config: dict[str, Any]):
        self.site = site
        self.center = torch.from_numpy(center).float()
        self.encoder = torch.from_numpy(encoder).float()  # [n_units, d]
        self.decoder = torch.from_numpy(decoder).float()  # [n_units, d]
        self._config = config

    @property
    def n_units(self) -> int:
        return self.encoder.shape[0]

    def encode(self, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        h = acts[self.site]
        return (h.float() - self.center.to(h.device)) @ self.encoder.to(h.device).T

    def patch(self, acts: Mapping[str, torch.Tensor], units: torch.Tensor, new_units: torch.Tensor) -> torch.Tensor:
        h = acts[self.site]
        return h + ((new_units - units) @ self.decoder.to(h.device)).to(h.dtype)

    def config(self) -> dict[str, Any]:
        return self._config

    def refit(self, loaded: LoadedModel, data: RefitData) -> Lens:
        """The same basis fitted again on `loaded`'s activations over the same corpus (the fit is
        cached by the model's weights). `data.texts` are not added: a basis of the stream's
        variance has no dictionary that could lack a unit for them."""
        options = {key: self._config[key] for key in ("n_units", "fit_tokens", "seed")}
        return _builder(self._config["method"])(loaded, self.site, options)


def _fit(method: str, x: np.ndarray, n_units: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if method == "random":
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((x.shape[1], n_units)))
        return x.mean(0), q.T, q.T
    if method == "pca":
        pca = PCA(n_components=n_units, random_state=seed).fit(x)
        return pca.mean_, pca.components_, pca.components_
    # float64: in float32 FastICA's iterations overflow to NaN on the default model's residual
    # stream at layer 16 (its covariance spans 0.9 to 48,000 on WikiText-2 validation)
    ica = FastICA(n_components=n_units, whiten="unit-variance", random_state=seed, max_iter=400, tol=1e-3)
    ica.fit(x.astype(np.float64))
    if not (np.isfinite(ica.components_).all() and np.isfinite(ica.mixing_).all()):
        raise BenchError(f"FastICA did not converge to a finite basis of {n_units} components; try a smaller n_units.")
    return ica.mean_, ica.components_, ica.mixing_.T


def _fitted(loaded: LoadedModel, site: str, method: str, n_units: int, fit_tokens: int, seed: int):
    """Center, encoder and decoder, fitted once per (model, activation corpus, site, method, size) and cached."""
    spec = ActivationSpec("train")
    key = f"{method}-{site}-{n_units}-{fit_tokens}-{seed}"
    path = cache_dir() / "baselines" / spec.key(loaded) / f"{key}.npz"  # refitted when the corpus changes
    if not path.exists():
        acts = collect(loaded, [site], spec, data_dir())[site]
        rows = np.random.default_rng(seed).permutation(len(acts))[:fit_tokens]
        center, encoder, decoder = _fit(method, np.asarray(acts[np.sort(rows)], dtype=np.float32), n_units, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, center=center, encoder=encoder, decoder=decoder)
        tmp.replace(path)
    saved = np.load(path)
    return saved["center"], saved["encoder"], saved["decoder"]


def _options(method: str, options: Mapping[str, Any], d: int) -> tuple[int, int, int]:
    unknown = set(options) - {"n_units", "fit_tokens", "seed"}
    if unknown:
        raise BenchError(f"{method} takes the options n_units, fit_tokens and seed, not {sorted(unknown)}.")
    n_units = int(options.get("n_units", d))
    if not 1 <= n_units <= d:
        raise BenchError(f"{method}: n_units must be between 1 and the site width {d}, got {n_units}.")
    return n_units, int(options.get("fit_tokens", 50_000)), int(options.get("seed", 0))


def _builder(method: str):
    def build(loaded: LoadedModel, site: str, options: Mapping[str, Any]) -> Lens:
        d = site_width(loaded.model, Site.parse(site))
        n_units, fit_tokens, seed = _options(method, options, d)
        config = {"method": method, "n_units": n_units, "seed": seed}
        center, encoder, decoder = _fitted(loaded, site, method, n_units, fit_tokens, seed)
        config["fit_tokens"] = fit_tokens
        config["sha256"] = hashlib.sha256(encoder.tobytes() + decoder.tobytes()).hexdigest()
        return Directions(site, center, encoder, decoder, config)

    return build


_DESCRIPTIONS = {
    "pca": "Baseline: principal components of the residual stream after the block.",
    "ica": "Baseline: independent components (FastICA) of the residual stream after the block.",
    "random": "Baseline: a random orthonormal basis of the residual stream after the block.",
}


@hookimpl
def bench_lenses() -> list[LensSpec]:
    return [
        LensSpec(name, description, "blocks.{layer}.hook_resid_post", _builder(name))
        for name, description in _DESCRIPTIONS.items()
    ]
