"""Bad input and broken files, as a user meets them: each is one `bench: error:` line (exit 2) that
names the problem, or a correct recovery with a warning; never a traceback."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.engine.records import load_records
from tests.conftest import run_cli


def error_of(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def run_args(model: Path, task: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model), "--units", "mlp_neurons", "--task", str(task), "--data-dir", str(data),
            "--output-dir", str(out), *extra]  # fmt: skip


@pytest.mark.parametrize("limit", ["0", "-3", "two"])
def test_a_limit_below_one_is_an_error_not_every_fact(capsys, tiny_model_dirs, tiny_task, pararel_dir, tmp_path, limit):
    args = run_args(tiny_model_dirs["llama"], tiny_task, pararel_dir, tmp_path / "out", "--limit", limit)
    err = error_of(capsys, args)
    assert err.startswith("bench: error: argument --limit:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_limit_of_zero_from_the_pytest_side_is_refused_too(tiny_task) -> None:
    """RunOptions do not go through argparse: the task config validates the limit again."""
    from bench.engine.runner import RunOptions, task_config
    from bench.engine.taskspec import load_task
    from bench.errors import BenchError
    from bench.plugin.registry import plugins

    task = load_task(plugins(), str(tiny_task))
    with pytest.raises(BenchError, match="limit: Input should be greater than or equal to 1"):
        task_config(task, RunOptions(limit=0), [1])


def test_a_truncated_record_is_moved_aside_and_recomputed(capsys, tiny_model_dirs, tiny_task, pararel_dir, tmp_path):
    out = tmp_path / "out"
    assert run_cli(tiny_model_dirs["llama"], tiny_task, pararel_dir, out, "--limit", "3") == 0
    (path,) = out.rglob("*.json")
    good = json.loads(path.read_text())
    path.write_text(path.read_text()[:200])  # a disk that filled up, a copy cut short
    capsys.readouterr()
    assert run_cli(tiny_model_dirs["llama"], tiny_task, pararel_dir, out, "--limit", "3") == 0
    assert "was unreadable" in capsys.readouterr().err
    assert json.loads(path.read_text())["metrics"] == good["metrics"]
    assert path.with_suffix(".json.corrupt").exists()


def test_a_corrupt_pararel_file_is_named_with_its_line(capsys, tiny_model_dirs, tiny_task, pararel_dir, tmp_path):
    tuples = pararel_dir / "pararel" / "tuples" / "P17.jsonl"
    tuples.write_text(tuples.read_text() + '{"sub_label": "Pa')  # half-written last line
    err = error_of_main(capsys, run_args(tiny_model_dirs["llama"], tiny_task, pararel_dir, tmp_path / "o"))
    assert f"{tuples}, line 7: not valid JSON" in err


def error_of_main(capsys, argv: list[str]) -> str:
    """Errors found after parsing: main returns 2 and prints one line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after any progress bars
    assert last.startswith("bench: error:") and "Traceback" not in err
    return last


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_an_error_before_loading(capsys, tiny_model_dirs, tiny_task, pararel_dir, tmp_path):
    args = run_args(tiny_model_dirs["llama"], tiny_task, pararel_dir, tmp_path / "o", "--device", "cuda")
    assert "--device cuda: this machine has no CUDA GPU" in error_of_main(capsys, args)


def test_a_model_folder_without_a_config_is_named(capsys, tiny_task, pararel_dir, tmp_path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    err = error_of_main(capsys, run_args(empty, tiny_task, pararel_dir, tmp_path / "o"))
    assert f"--model {empty}: the directory has no config.json" in err


def test_a_missing_data_dir_is_named_before_loading(capsys, tiny_model_dirs, tiny_task, tmp_path) -> None:
    args = run_args(tiny_model_dirs["llama"], tiny_task, tmp_path / "no-data", tmp_path / "o")
    assert f"--data-dir {tmp_path / 'no-data'}: no such directory" in error_of_main(capsys, args)


def test_a_missing_model_path_says_it_does_not_exist(capsys, tiny_task, pararel_dir, tmp_path) -> None:
    missing = tmp_path / "no" / "such" / "model"
    err = error_of_main(capsys, run_args(missing, tiny_task, pararel_dir, tmp_path / "o"))
    assert f"--model {missing}: no such directory" in err


def test_a_missing_sae_path_says_it_does_not_exist(capsys, tiny_model_dirs, tiny_task, pararel_dir, tmp_path) -> None:
    args = run_args(tiny_model_dirs["llama"], tiny_task, pararel_dir, tmp_path / "o", "--sae", "/path/that/is/not")
    args[args.index("mlp_neurons")] = "sae_post_mlp"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--sae '/path/that/is/not': no such directory" in err and "not a sae-lens release" in err
    assert "Loading weights" not in err  # refused at collection, before the model loads


def test_leaderboard_skips_a_json_file_that_is_not_a_record(capsys, tiny_model_dirs, tiny_task, pararel_dir, tmp_path):
    out = tmp_path / "out"
    assert run_cli(tiny_model_dirs["llama"], tiny_task, pararel_dir, out, "--limit", "3") == 0
    stray = out / "notes.json"
    stray.write_text('{"task": "x"}')
    (out / "broken.json").write_text("{")
    capsys.readouterr()
    assert main(["leaderboard", "--results-dir", str(out), "--output", str(tmp_path / "board.md")]) == 0
    err = capsys.readouterr().err
    assert f"skipped {stray}: not a lens-bench record" in err and "broken.json: not valid JSON" in err
    assert len(list(load_records(out))) == 1


def test_records_are_readable_by_colleagues(tiny_model_dirs, tiny_task, pararel_dir, tmp_path) -> None:
    old = os.umask(0o022)
    try:
        assert run_cli(tiny_model_dirs["llama"], tiny_task, pararel_dir, tmp_path / "out", "--limit", "3") == 0
    finally:
        os.umask(old)
    (path,) = (tmp_path / "out").rglob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_one_relation_shows_no_interval() -> None:
    """Every fact from one relation: a relation-clustered bootstrap has nothing to resample, and its
    SE of 0 must not read as certainty, in the run's table or on the leaderboard."""
    from bench.report.labels import mean_se
    from bench.report.leaderboard import frame, render
    from tests.test_leaderboard import record

    one = {"mean": 0.25, "se": 0.0, "n": 4, "clusters": 1}
    assert mean_se(one) == "0.250 ± n/a (1 relation)"
    assert mean_se({**one, "clusters": 3, "se": 0.01}) == "0.250 ± 0.010"
    rec = record("mlp_neurons", "blocks.2.mlp.hook_post", {"selectivity_at_kl@0.01": 0.25}, "2026-01-01", "r")
    rec["metrics"]["selectivity_at_kl@0.01"]["clusters"] = 1
    text = render(frame([rec]), "bench leaderboard")
    assert "0.250 ± n/a (1 relation) (200)" in text and "[n/a: 1 relation]" in text
    # a record without its task's ranked metric still renders, and the headline says why it is empty
    old = record("mlp_neurons", "blocks.2.mlp.hook_post", {"specificity@5": 0.25}, "2026-01-01", "r")
    assert "No record holds its task's ranked metric" in render(frame([old]), "bench leaderboard")


def test_an_interrupted_screen_resumes_where_it_stopped(monkeypatch, tiny_llama, pararel_dir) -> None:
    import bench.tasks.known_facts as known_facts
    from bench.data.pararel import load_facts

    facts = load_facts(pararel_dir, ["P17", "P19"], 1, 10, 0)
    monkeypatch.setattr(known_facts, "SCREEN_CHUNK", 3)
    real, scored = known_facts.score_items, []

    def counted(loaded, items, batch_size):
        if len(scored) == 2 and interrupt:
            raise KeyboardInterrupt  # Ctrl-C during the third chunk
        scored.append(len(items))
        return real(loaded, items, batch_size)

    monkeypatch.setattr(known_facts, "score_items", counted)
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        known_facts.known(tiny_llama, facts, False, None, 4)
    interrupt = False
    resumed = known_facts.known(tiny_llama, facts, False, None, 4)
    assert scored == [3, 3, 3, 1]  # 6 prompts kept by the interrupted screen, only the last 4 scored again
    assert resumed == facts  # the filter is off: every fact, in order
    scored.clear()
    assert known_facts.known(tiny_llama, facts, False, None, 4) == facts and scored == []  # cached


def test_a_limited_screen_scores_only_what_the_run_needs(monkeypatch, tiny_llama, pararel_dir) -> None:
    import bench.tasks.known_facts as known_facts
    from bench.data.pararel import load_facts

    facts = load_facts(pararel_dir, ["P17", "P19"], 1, 10, 0)
    monkeypatch.setattr(known_facts, "SCREEN_CHUNK", 2)
    real, scored = known_facts.score_items, []
    monkeypatch.setattr(
        known_facts, "score_items", lambda loaded, items, b: scored.append(len(items)) or real(loaded, items, b)
    )
    assert known_facts.known(tiny_llama, facts, False, None, 4, limit=3) == facts[:3]
    assert sum(scored) == 4  # two chunks, not all 10 prompts
    assert known_facts.known(tiny_llama, facts, False, None, 4) == facts  # a later full run extends the same log
    assert sum(scored) == 10
    # a screen read to its end leaves the finished cache file, not the log it resumes from
    path, log = known_facts.screen_paths(tiny_llama, facts)
    assert path.exists() and not log.exists()


def test_an_interrupt_says_what_was_kept(monkeypatch, capsys, tiny_model_dirs, tiny_task, pararel_dir, tmp_path):
    from bench.engine.records import RecordSlot

    real_log = RecordSlot.log_items

    def log_then_interrupt(self, items):  # Ctrl-C right after the first items are logged
        real_log(self, items)
        raise KeyboardInterrupt

    monkeypatch.setattr(RecordSlot, "log_items", log_then_interrupt)
    assert run_cli(tiny_model_dirs["llama"], tiny_task, pararel_dir, tmp_path / "out", "--limit", "3") == 130
    err = capsys.readouterr().err
    (log,) = (tmp_path / "out").rglob("*.partial.jsonl")
    kept = len(log.read_text().splitlines())
    assert f"bench: interrupted. Kept: {kept} finished item(s) in {log}" in err
    assert "Rerun the same command to resume" in err
