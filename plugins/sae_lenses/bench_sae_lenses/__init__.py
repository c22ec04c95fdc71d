"""lens-bench lenses: SAE features at four sites, through sae-lens.

- ``sae_post_mlp``: the residual stream after block L (``blocks.L.hook_resid_post``)
- ``sae_mlp_out``: the MLP's output (``blocks.L.hook_mlp_out``)
- ``sae_attn_out``: the attention output after its projection (``blocks.L.hook_attn_out``)
- ``sae_attn_z``: the heads' outputs, concatenated, before the projection (``blocks.L.attn.hook_z``)

Units are ``f = sae.encode(h)``. Editing units replaces only their decoder contribution:
``h' = h + decode(f') - decode(f)``, so the SAE's error term stays in the stream and an
unedited pass returns ``h`` exactly.

Which SAE (``--sae`` or ``--lens-option sae=...``; ``{layer}`` is filled in):
- a local directory saved with sae-lens (``SAE.save_model``);
- ``<release>/<sae_id>`` of a public sae-lens release, e.g.
  ``gemma-scope-2b-pt-res-canonical/layer_{layer}/width_16k/canonical`` (needs network);
- nothing: the SAE that ``bench sae train`` made for this model and site; ``trained:<variant>``
  names one of its variants (``trained:standard_ne``), the portable name the leaderboard shows.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from sae_lens import SAE
from sae_lens.loading.pretrained_sae_loaders import load_sae_config_from_huggingface
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

from bench import hookimpl
from bench.errors import BenchError, warn
from bench.io import write_json_atomic
from bench.model.lens import Lens, RefitData
from bench.model.loading import LoadedModel
from bench.model.sites import Site, site_width
from bench.paths import ALLOW_POOR_SAE_ENV, cache_dir, data_dir
from bench.plugin.specs import LensSpec
from bench.sae.finetune import finetuned_sae
from bench.sae.quality import MIN_VARIANCE_EXPLAINED, gate_stats
from bench.sae.training import sae_path

SITE_KINDS = {
    "sae_post_mlp": "hook_resid_post",
    "sae_mlp_out": "hook_mlp_out",
    "sae_attn_out": "hook_attn_out",
    "sae_attn_z": "attn.hook_z",
}
TRAIN_SITE_NAMES = {"hook_resid_post": "resid_post", "hook_mlp_out": "mlp_out", "hook_attn_out": "attn_out"}


TRAINED = "trained:"


def _not_an_sae(spec: str, release: str) -> str:
    return (
        f"--sae {spec!r}: no such directory, and {release!r} is not a sae-lens release. Give a folder saved "
        "with sae-lens (SAE.save_model), <release>/<sae_id> of a public release (the release names are the keys "
        "of sae_lens' get_pretrained_saes_directory()), or trained:<variant> for an SAE `bench sae train` made."
    )


def load_sae(loaded: LoadedModel, site: str, spec: str | None) -> tuple[SAE[Any], str]:
    """The SAE and a description of where it came from."""
    parsed = Site.parse(site)
    if spec is None or spec.startswith(TRAINED):
        path = sae_path(loaded, site, (spec or TRAINED).removeprefix(TRAINED))
        if not (path / "card.json").exists():
            raise BenchError(
                f"no SAE for {site} of {loaded.model_id} yet. "
                + (
                    f"Train one with `bench sae train --model {loaded.model_id} --sites "
                    f"{TRAIN_SITE_NAMES[parsed.hook]} --layers {parsed.layer}`, or pass "
                    if parsed.hook in TRAIN_SITE_NAMES
                    else "Pass "
                )
                + "--sae with a sae-lens directory or <release>/<sae_id>."
            )
        return SAE.load_from_disk(path, device=str(loaded.device)), str(path)
    spec = spec.format(layer=parsed.layer)
    if Path(spec).is_dir():
        return SAE.load_from_disk(spec, device=str(loaded.device)), str(Path(spec).resolve())
    release, _, sae_id = spec.partition("/")
    if not sae_id or release not in get_pretrained_saes_directory():
        raise BenchError(_not_an_sae(spec, release))
    try:
        return SAE.from_pretrained(release, sae_id, device=str(loaded.device)), spec
    except Exception as err:  # sae-lens raises ValueError, OSError or hub errors depending on the failure
        raise BenchError(f"could not load SAE {spec!r} through sae-lens: {err}") from err


def _parsed(hook: str) -> Site | None:
    try:
        return Site.parse(hook)
    except BenchError:  # a hook no lens here reads (hook_z, a transcoder's input ...)
        return None


def _same_point(hook: str) -> str:
    """sae-lens hook names for one point of the stream, spelled one way: the residual stream before
    block L is the residual stream after block L - 1."""
    parsed = _parsed(hook)
    if parsed is not None and parsed.hook == "hook_resid_pre" and parsed.layer > 0:
        return f"blocks.{parsed.layer - 1}.hook_resid_post"
    return hook


def check_sae_site(hook: str | None, site: str, source: str) -> None:
    """An SAE runs only where it was trained; say what would match when it does not."""
    if not hook or _same_point(hook) == _same_point(site):
        return
    point = _same_point(hook)
    where = f"{hook}" + (f" (= {point})" if point != hook else "")
    lens_for = {f".{kind}": name for name, kind in SITE_KINDS.items()}
    wanted = next((name for suffix, name in lens_for.items() if point.endswith(suffix)), None)
    parsed = _parsed(point)
    if parsed is not None and wanted is not None and point.endswith(Site.parse(site).hook):
        fix = f"run it with --layers {parsed.layer}"
    elif wanted is not None:
        fix = f"use --units {wanted}" + (f" --layers {parsed.layer}" if parsed else "")
    else:
        fix = "no lens here reads that site; pick an SAE of the residual stream, MLP output or attention output"
    raise BenchError(f"SAE {source} was trained on {where}, but the lens reads {site}: {fix}.")


class SAEFeatures(Lens):
    def __init__(self, loaded: LoadedModel, site: str, sae: SAE[Any], source: str):
        width = site_width(loaded.model, Site.parse(site))
        if sae.cfg.d_in != width:
            raise BenchError(
                f"SAE {source} has d_in = {sae.cfg.d_in}, but {site} of {loaded.model_id} has width {width}; "
                "use an SAE trained on this model and site."
            )
        check_sae_site(sae.cfg.metadata.hook_name, site, source)
        if getattr(sae, "hook_z_reshaping_mode", False):
            # sae-lens reshapes a hook_z SAE's input from [..., heads, d_head]; the site holds the heads
            # already concatenated in the same order, so the SAE reads it flat
            sae.turn_off_forward_pass_hook_z_reshaping()
        self.site, self.sae, self.source = site, sae, source
        # Releases trained on TransformerLens activations with centred writing weights (gpt2-small-res-jb)
        # saw a residual stream with mean 0 over d_model; Hugging Face's stream keeps its mean.
        kwargs = getattr(sae.cfg.metadata, "model_from_pretrained_kwargs", None) or {}
        self.centred = bool(kwargs.get("center_writing_weights")) and Site.parse(site).hook.startswith("hook_resid")
        self.sae.requires_grad_(False)
        self.quality: dict[str, float] = {}

    @property
    def n_units(self) -> int:
        return int(self.sae.cfg.d_sae)

    def prepare(self, h: torch.Tensor) -> torch.Tensor:
        """The activation as the SAE was trained to read it."""
        if self.centred:  # what TransformerLens's centred residual stream is; LayerNorm ignores the mean anyway
            h = h - h.mean(dim=-1, keepdim=True)
        return h.to(self.sae.dtype)

    def reconstruct(self, h: torch.Tensor) -> torch.Tensor:
        """The SAE's reconstruction of the site's activation, in the site's own frame."""
        out = self.sae.decode(self.sae.encode(self.prepare(h)))
        return out + h.mean(dim=-1, keepdim=True) if self.centred else out

    def encode(self, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.sae.encode(self.prepare(acts[self.site]))

    def diagnostics(self) -> dict[str, Any]:
        return {"sae_quality": self.quality} if self.quality else {}

    def patch(self, acts: Mapping[str, torch.Tensor], units: torch.Tensor, new_units: torch.Tensor) -> torch.Tensor:
        h = acts[self.site]
        return h + (self.sae.decode(new_units) - self.sae.decode(units)).to(h.dtype)

    def unit_directions(self, units: torch.Tensor) -> torch.Tensor:
        """Decoder rows: what each feature writes into the site (FeatureEdit maps features back through them)."""
        return self.sae.W_dec[units].detach()

    def input_weights(self, model: torch.nn.Module) -> tuple[str, torch.Tensor]:
        """Encoder columns: each feature reads the site through its row of W_enc (b_dec is ignored)."""
        return self.site, self.sae.W_enc.T[:, None, :].detach()

    @cached_property
    def weights_sha256(self) -> str:
        """Hashed once: config() is asked for by the quality gate's cache and by the record's identity."""
        weights = b"".join(t.detach().cpu().numpy().tobytes() for _, t in sorted(self.sae.state_dict().items()))
        return hashlib.sha256(weights).hexdigest()

    def refit(self, loaded: LoadedModel, data: RefitData) -> Lens:
        """This SAE fine-tuned on `loaded`'s activations over its corpus and `data.texts`
        (bench.sae.finetune), then held to the same quality bar as any SAE."""
        sae, source = finetuned_sae(loaded, self.site, self.sae, self.config(), data, self.prepare)
        lens = SAEFeatures(loaded, self.site, sae, source)
        lens.quality = checked_quality(loaded, lens)
        return lens

    def config(self) -> dict[str, Any]:
        return {
            "sae": self.source,
            "architecture": self.sae.cfg.architecture(),
            "d_sae": self.n_units,
            "sae_sha256": self.weights_sha256,
            **({"input": "centred over d_model"} if self.centred else {}),
        }


def checked_quality(loaded: LoadedModel, lens: SAEFeatures) -> dict[str, float]:
    """The SAE's quality at its site (cached per model, site, SAE weights and preprocessing); an SAE
    that explains too little of the activation stops the run unless --allow-poor-sae."""
    key = hashlib.sha256(
        json.dumps([loaded.weights_sha256, str(loaded.dtype), lens.site, lens.config()], sort_keys=True).encode()
    ).hexdigest()[:16]
    path = cache_dir() / "sae_quality" / f"{key}.json"
    if path.exists():
        quality = json.loads(path.read_text())
    else:
        try:
            quality = gate_stats(loaded, lens.sae, lens.site, data_dir(), lens.prepare, lens.reconstruct)
        except BenchError as err:  # no held-out text here: say so, do not guess
            warn(f"SAE {lens.source}: quality not measured ({err}).")
            return {}
        write_json_atomic(path, quality)
    quality = {**quality, "min_variance_explained": MIN_VARIANCE_EXPLAINED}  # the bar it was held to
    explained = quality["fraction_variance_explained"]
    if explained < MIN_VARIANCE_EXPLAINED:
        message = (
            f"SAE {lens.source} explains {explained:.2f} of the variance of {lens.site} on {loaded.model_id} "
            f"(L0 {quality['l0']:.1f}, CE loss recovered {quality['ce_loss_recovered']:.2f}); below "
            f"{MIN_VARIANCE_EXPLAINED} it is almost surely not this model's SAE for this site (or it expects "
            "other preprocessing)"
        )
        if not os.environ.get(ALLOW_POOR_SAE_ENV):
            raise BenchError(message + ". Pick the matching SAE, or pass --allow-poor-sae to run it anyway.")
        warn(message + "; running it anyway (--allow-poor-sae).")
    return quality


def _builder(kind: str):
    def build(loaded: LoadedModel, site: str, options: Mapping[str, Any]) -> Lens:
        unknown = set(options) - {"sae"}
        if unknown:
            raise BenchError(f"{kind} takes only the option 'sae', got {sorted(unknown)}.")
        sae, source = load_sae(loaded, site, options.get("sae"))
        lens = SAEFeatures(loaded, site, sae, source)
        lens.quality = checked_quality(loaded, lens)
        return lens

    return build


_DESCRIPTIONS = {
    "sae_post_mlp": "SAE features of the residual stream after the block (post-MLP).",
    "sae_mlp_out": "SAE features of the MLP output.",
    "sae_attn_out": "SAE features of the attention output (after its output projection).",
    "sae_attn_z": "SAE features of the attention heads' outputs, concatenated (hook_z, before the projection).",
}


def _hook_of(spec: str) -> str | None:
    """The hook an SAE named by --sae was trained on, from its config alone (no weights read)."""
    if Path(spec).is_dir():
        raw = json.loads((Path(spec) / "cfg.json").read_text())
    else:
        release, _, sae_id = spec.partition("/")
        if not sae_id or release not in get_pretrained_saes_directory():
            raise BenchError(_not_an_sae(spec, release))  # at collection: before any model loads
        try:
            raw = load_sae_config_from_huggingface(release, sae_id)
        except Exception as err:  # sae-lens raises ValueError, OSError or hub errors
            raise BenchError(f"could not load SAE {spec!r} through sae-lens (its config): {err}") from err
    return (raw.get("metadata") or {}).get("hook_name") or raw.get("hook_name") or raw.get("hook_point")


def _pinned(kind: str):
    def layers(options: Mapping[str, Any]) -> list[int] | None:
        spec = options.get("sae")
        if not spec or "{layer}" in spec or spec.startswith(TRAINED):
            return None
        hook = _hook_of(spec)
        site = _parsed(_same_point(hook)) if hook else None
        return [site.layer] if site is not None and site.hook == kind else None

    return layers


@hookimpl
def bench_lenses() -> list[LensSpec]:
    return [
        LensSpec(name, _DESCRIPTIONS[name], f"blocks.{{layer}}.{hook}", _builder(name), _pinned(hook))
        for name, hook in SITE_KINDS.items()
    ]
