"""lens-bench: score analytical lenses of language models on declarative tasks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lens-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from bench.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
