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

__all__ = ["BenchError", "LensSpec", "MetricSpec", "TaskType", "__version__", "hookimpl"]
