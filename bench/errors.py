"""The one exception type the CLI turns into a clean message instead of a traceback, and warnings."""

import sys


class BenchError(Exception):
    """A problem with the user's input or environment: the message names it and says how to fix it."""


def warn(message: str) -> None:
    """A problem the run works around (a file skipped, a record recomputed): one line on stderr."""
    print(f"bench: warning: {message}", file=sys.stderr)
