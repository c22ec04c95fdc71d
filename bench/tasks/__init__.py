"""Task types that ship with the harness (each registered through bench.plugin.builtin like any plugin)."""
