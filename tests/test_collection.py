"""pytest-style collection, -k selection, and expectations with exit codes."""

from __future__ import annotations

import json

import pytest

from bench.cli import main
from bench.engine.taskspec import load_task
from bench.errors import BenchError
from bench.plugin.registry import plugins


def run(tmp_path, tiny_model_dirs, task, data, *extra: str) -> int:
    return main(
        [
            "run",
            "--model",
            str(tiny_model_dirs["llama"]),
            "--task",
            str(task),
            "--data-dir",
            str(data),
            "--output-dir",
            str(tmp_path / "results"),
            "--limit",
            "4",
            *extra,
        ]
    )


def test_collect_only_expands_the_matrix_with_stable_ids(tmp_path, tiny_model_dirs, tiny_task, pararel_dir, capsys):
    code = run(
        tmp_path,
        tiny_model_dirs,
        tiny_task,
        pararel_dir,
        "--units",
        "mlp_neurons,random",
        "--layers",
        "0,-1",
        "--collect-only",
    )
    assert code == 0
    out = capsys.readouterr().out.split("\n")
    assert out[:4] == [
        "tiny_ablation[mlp_neurons-blocks.0.mlp.hook_post]",
        "tiny_ablation[mlp_neurons-blocks.2.mlp.hook_post]",
        "tiny_ablation[random-blocks.0.hook_resid_post]",
        "tiny_ablation[random-blocks.2.hook_resid_post]",
    ]
    assert "4 items collected" in out[5]
    assert not (tmp_path / "results").exists()  # nothing ran


def test_k_selects_like_pytest(tmp_path, tiny_model_dirs, tiny_task, pararel_dir, capsys):
    args = ("--units", "mlp_neurons,random", "--layers", "0,1,2", "--collect-only")
    assert run(tmp_path, tiny_model_dirs, tiny_task, pararel_dir, *args, "-k", "random and not blocks.1") == 0
    ids = [line for line in capsys.readouterr().out.split("\n") if line.startswith("tiny")]
    assert ids == ["tiny_ablation[random-blocks.0.hook_resid_post]", "tiny_ablation[random-blocks.2.hook_resid_post]"]
    assert run(tmp_path, tiny_model_dirs, tiny_task, pararel_dir, *args, "-k", "random and (") == 2
    assert "is not a valid expression" in capsys.readouterr().err


def test_item_id_is_stored_and_selection_does_not_change_record_identity(
    tmp_path, tiny_model_dirs, tiny_task, pararel_dir
):
    assert (
        run(
            tmp_path,
            tiny_model_dirs,
            tiny_task,
            pararel_dir,
            "--units",
            "mlp_neurons",
            "--layers",
            "0,2",
            "-k",
            "blocks.2",
        )
        == 0
    )
    (path,) = (tmp_path / "results").rglob("*.json")
    assert json.loads(path.read_text())["item_id"] == "tiny_ablation[mlp_neurons-blocks.2.mlp.hook_post]"
    # running the whole matrix afterwards reuses that record
    assert run(tmp_path, tiny_model_dirs, tiny_task, pararel_dir, "--units", "mlp_neurons", "--layers", "0,2") == 0
    assert len(list((tmp_path / "results").rglob("*.json"))) == 2


def with_expectations(task_path, *expectations: str):
    task_path.write_text(task_path.read_text() + "expect:\n" + "".join(f"  - {json.dumps(e)}\n" for e in expectations))
    return task_path


def test_threshold_expectations_pass_and_fail_with_exit_codes(
    tmp_path, tiny_model_dirs, tiny_task, pararel_dir, capsys
):
    with_expectations(tiny_task, "delta_prob@3 >= 0", "p_clean <= 1")
    assert run(tmp_path, tiny_model_dirs, tiny_task, pararel_dir, "--units", "mlp_neurons") == 0
    assert "2 passed" in capsys.readouterr().out
    with_expectations(tiny_task, "delta_prob@3 > 1.5")  # ΔProb is in [0, 1]
    assert run(tmp_path, tiny_model_dirs, tiny_task, pararel_dir, "--units", "mlp_neurons") == 1
    out = capsys.readouterr().out
    assert "FAILED   delta_prob@3 > 1.5" in out and "1 failed" in out


def test_lens_comparison_expectations(tmp_path, tiny_model_dirs, tiny_task, corpus_dir, capsys):
    with_expectations(tiny_task, "random beats mlp_neurons on delta_prob@1")
    code = run(tmp_path, tiny_model_dirs, tiny_task, corpus_dir, "--units", "mlp_neurons,random")
    records = {
        json.loads(p.read_text())["lens"]["name"]: json.loads(p.read_text())
        for p in (tmp_path / "results").rglob("*.json")
    }
    beats = (
        records["random"]["metrics"]["delta_prob@1"]["mean"] > records["mlp_neurons"]["metrics"]["delta_prob@1"]["mean"]
    )
    assert code == (0 if beats else 1)
    assert ("PASSED" if beats else "FAILED") in capsys.readouterr().out
    # with one side missing, the comparison is skipped, not failed
    assert run(tmp_path, tiny_model_dirs, tiny_task, corpus_dir, "--units", "mlp_neurons") == 0
    assert "SKIPPED" in capsys.readouterr().out


def test_malformed_expectation_is_a_yaml_error(tiny_task):
    with_expectations(tiny_task, "delta_prob@5 is large")
    with pytest.raises(BenchError, match=r"field 'expect'.*'delta_prob@5 is large' is neither"):
        load_task(plugins(), str(tiny_task))
