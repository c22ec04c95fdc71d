"""The pytest plugin: task YAML as collected items (opt-in), and fixtures for users' tests."""

from __future__ import annotations

import json

import bench_baselines  # noqa: F401
import bench_judges  # noqa: F401
import bench_sae_lenses  # noqa: F401
import pytest

import bench.plugin.builtin  # noqa: F401
from tests.conftest import TINY_TASK

# The imports above load torch, datasets and pyarrow before pytester snapshots sys.modules:
# in-process runs then share them (pyarrow cannot register its extension types twice).


@pytest.fixture
def bench_args(tiny_model_dirs, pararel_dir) -> list[str]:
    return [
        "--bench-model",
        str(tiny_model_dirs["llama"]),
        "--bench-data-dir",
        str(pararel_dir),
        "--bench-limit",
        "3",
        "-p",
        "no:cacheprovider",
    ]


def write_task(pytester: pytest.Pytester, *expectations: str) -> None:
    text = TINY_TASK + ("expect:\n" + "".join(f"  - {json.dumps(e)}\n" for e in expectations) if expectations else "")
    pytester.mkdir("tasks")
    (pytester.path / "tasks" / "tiny.yaml").write_text(text)


def test_task_yaml_is_collected_only_when_asked(pytester, bench_args) -> None:
    write_task(pytester)
    assert pytester.runpytest_inprocess("tasks/", *bench_args).ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result = pytester.runpytest_inprocess(
        "tasks/", "--bench-tasks", "--bench-units", "mlp_neurons,random", "--collect-only", "-q", *bench_args
    )
    result.stdout.fnmatch_lines(
        [
            "*tasks/tiny.yaml::tiny[[]mlp_neurons-blocks.1.mlp.hook_post[]]",
            "*tasks/tiny.yaml::tiny[[]random-blocks.1.hook_resid_post[]]",
        ]
    )


def test_task_items_pass_and_fail_on_expectations(pytester, bench_args) -> None:
    write_task(pytester, "delta_prob@1 >= 0", "delta_prob@1 > 1.5")
    result = pytester.runpytest_inprocess("tasks/", "--bench-tasks", *bench_args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*expectation failed: delta_prob@1 > 1.5*"])
    write_task_ok = pytester.path / "tasks" / "tiny.yaml"
    write_task_ok.write_text(TINY_TASK + 'expect:\n  - "delta_prob@1 >= 0"\n')
    pytester.makeini("[pytest]\nbench_collect_tasks = true\n")
    pytester.runpytest_inprocess("tasks/", *bench_args).assert_outcomes(passed=1)


def test_fixtures_for_users_own_tests(pytester, bench_args) -> None:
    write_task(pytester)
    pytester.makepyfile(
        test_mine="""
        def test_lens(bench_lens, bench_model):
            assert bench_lens("mlp_neurons", 1).n_units == 24
            assert bench_model.model.config.model_type == "llama"

        def test_run(bench_run, bench_results_dir):
            record = bench_run("tasks/tiny.yaml", "mlp_neurons", 1, limit=2)
            assert record["metrics"]["delta_prob@1"]["n"] == 2
            assert str(bench_results_dir) in record["provenance"]["task_file"] or bench_results_dir.exists()

        def test_task(bench_task):
            assert bench_task("tasks/tiny.yaml").config.selection.k == [1, 3]
    """
    )
    pytester.runpytest_inprocess("test_mine.py", *bench_args).assert_outcomes(passed=3)


def test_task_items_can_run_on_ray(local_ray, pytester, bench_args) -> None:
    write_task(pytester, "delta_prob@1 >= 0")
    out = pytester.path / "records"
    ray_args = (
        "--bench-executor",
        "ray",
        "--bench-workers",
        "2",
        "--bench-layers",
        "0,1",
        "--bench-output-dir",
        str(out),
    )
    result = pytester.runpytest_inprocess("tasks/", "--bench-tasks", *ray_args, *bench_args)
    result.assert_outcomes(passed=2)
    assert len(list(out.rglob("*.json"))) == 2 and not list(out.rglob("*.partial.jsonl"))
