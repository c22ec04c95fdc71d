"""The package's shape: no import cycle among bench's modules, one run loop, no task knowledge in the report."""

from __future__ import annotations

import ast
from pathlib import Path

import bench

PACKAGE = Path(bench.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """bench modules this file imports, anywhere in it except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(node)
        for stmt in ast.walk(tree)
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)
        for child in stmt.body
        for node in ast.walk(child)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        out |= {name for name in names if name in known}
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(files)) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_bench_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "bench.plugin.registry" in graph and "bench.engine.session" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_cli_and_pytest_plugin_share_the_session_loop() -> None:
    graph = import_graph()
    for front in ("bench.cli", "bench.pytest_plugin"):
        assert "bench.engine.session" in graph[front]
        assert "bench.engine.runner.run_item" not in graph[front], f"{front} runs items itself"


def test_the_report_names_no_task_metric() -> None:
    """Metric labels, directions and headlines come from the tasks' metric tables."""
    source = (PACKAGE / "report" / "leaderboard.py").read_text(encoding="utf-8")
    for name in ("specificity", "delta_prob", "auroc", "is_sampled", "f1_tokens", "rel_at_budget", "ppl_ratio"):
        assert f'"{name}' not in source, name


def test_tasks_get_the_registry_from_their_context() -> None:
    graph = import_graph()
    for module, imported in graph.items():
        if module.startswith("bench.tasks."):
            assert "bench.plugin.registry" not in imported and "bench.plugin.registry.plugins" not in imported, module
