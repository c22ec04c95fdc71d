"""A lens whose units are the coordinates of the residual stream after a block."""

from bench import Lens, LensSpec, hookimpl


class ResidDims(Lens):
    def __init__(self, loaded, site):
        self.site = site  # e.g. blocks.4.hook_resid_post
        self._n = loaded.model.config.hidden_size

    @property
    def n_units(self):
        return self._n

    def encode(self, acts):  # [batch, pos, d_model] -> unit activations
        return acts[self.site]

    def patch(self, acts, units, new_units):  # the site's new value once units are edited
        return new_units


@hookimpl
def bench_lenses():
    build = lambda loaded, site, options: ResidDims(loaded, site)  # noqa: E731
    return [LensSpec("resid_dims", "Residual stream coordinates.", "blocks.{layer}.hook_resid_post", build)]
