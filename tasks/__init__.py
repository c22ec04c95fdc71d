"""The task files that ship with lens-bench, importable as ``bench.task_files`` once installed."""
