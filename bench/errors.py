"""The one exception type the CLI turns into a clean message instead of a traceback."""


class BenchError(Exception):
    """A problem with the user's input or environment: the message names it and says how to fix it."""
