"""lens-bench: score analytical lenses of language models on declarative tasks.

The names here are the plugin API: what a lens, task or judge package imports to register itself.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lens-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from bench.errors import BenchError
from bench.plugin.hookspecs import hookimpl
from bench.plugin.specs import LensSpec, MetricSpec, TaskType

__all__ = ["BenchError", "Lens", "LensSpec", "MetricSpec", "TaskType", "__version__", "hookimpl"]


def __getattr__(name: str) -> object:
    """``bench.Lens`` on first use: it imports torch, which `import bench` (and so pytest, through
    the plugin entry point) should not pay for."""
    if name == "Lens":
        from bench.model.lens import Lens

        return Lens
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
