"""Task types that ship with the harness (each registered through bench.builtin like any plugin)."""
