"""Tests that try to break lens-bench: random bad task files and command lines, runs killed at random
moments, and two identical runs at once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cli import main
from bench.engine.taskspec import load_task
from bench.errors import BenchError
from bench.model import loading
from bench.plugin.registry import plugins
from tests.conftest import TINY_TASK

BASE = yaml.safe_load(TINY_TASK)
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 100), st.floats(allow_nan=True), st.text(max_size=8),
    st.lists(st.integers(-3, 40), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip
KEYS = [*BASE, "attribution.method", "attribution.ig_steps", "selection.k", "controls.unrelated", "data.relations",
        "filter.min_prob", "colour", "include", "expect"]  # fmt: skip


def _mutate(config: dict, key: str, value: object, delete: bool) -> dict:
    out = json.loads(json.dumps(config))
    *parents, last = key.split(".")
    node = out
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
    if delete:
        node.pop(last, None)
    else:
        node[last] = value
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(KEYS), ODD_VALUES, st.booleans()), min_size=1, max_size=3))
def test_any_mutated_task_file_loads_or_says_why(tmp_path, mutations) -> None:
    config = BASE
    for key, value, delete in mutations:
        config = _mutate(config, key, value, delete)
    path = tmp_path / "mutated.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    try:
        load_task(plugins(), str(path))
    except BenchError as err:
        assert str(err).strip(), "an error must say what is wrong"


FLAG_VALUES = {
    "--limit": ["0", "-3", "1", "x", "99999"],
    "--layers": ["99", "-1", "0,1", "a,b", "", "-99"],
    "--units": ["mlp_neurons", "nope", "mlp_neurons,random", ",", "sae_post_mlp"],
    "--task": ["knowledge_ablation", "nope", "tiny", "/no/such.yaml", "tiny,tiny"],
    "--device": ["cpu", "cuda", "tpu", "cuda:7", "", "mps"],
    "--dtype": ["float32", "int8", "bfloat16"],
    "--batch-size": ["0", "-1", "8", "many"],
    "--seed": ["1", "-1", "s"],
    "-k": ["mlp", "and", "not (", "blocks.1"],
    "--lens-option": ["a=b", "novalue", "=x"],
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(list(FLAG_VALUES)), st.integers(0, 5), max_size=4))
def test_any_command_line_collects_or_says_why(tiny_model_dirs, tiny_task, pararel_dir, tmp_path, chosen) -> None:
    args = {"--units": "mlp_neurons", "--task": "tiny"} | {
        flag: FLAG_VALUES[flag][i % len(FLAG_VALUES[flag])] for flag, i in chosen.items()
    }
    argv = ["run", "--model", str(tiny_model_dirs["llama"]), "--data-dir", str(pararel_dir), "--collect-only"]
    for flag, value in args.items():
        argv += [flag, str(tiny_task) if value == "tiny" else value.replace("tiny", str(tiny_task))]
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse: one `bench: error:` line
        assert exit_info.code == 2
    else:
        assert code in (0, 2)


def _run_command(model: Path, task: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "run", "--model", str(model), "--units", "mlp_neurons", "--task",
            str(task), "--data-dir", str(data), "--output-dir", str(out), "--batch-size", "2"]  # fmt: skip


def _the_record(out: Path) -> dict:
    (path,) = out.rglob("*.json")
    assert not list(out.rglob("*.partial.jsonl")), "a finished record leaves no item log behind"
    record = json.loads(path.read_text())
    return {key: record[key] for key in ("id", "metrics", "items")}


@pytest.fixture
def slow_task(tmp_path: Path) -> Path:
    """The tiny task made slow enough (many IG steps, one fact per batch) to be killed mid-run."""
    path = tmp_path / "slow.yaml"
    path.write_text(TINY_TASK.replace("ig_steps: 4", "ig_steps: 256"))
    return path


def _started_work(out: Path, process: subprocess.Popen, timeout: float = 300) -> float:
    """Seconds until the run takes its record's lock (its imports and collection are done)."""
    start = time.perf_counter()
    while not list(out.rglob("*.lock")):
        assert process.poll() is None and time.perf_counter() - start < timeout, "the run never started its item"
        time.sleep(0.02)
    return time.perf_counter() - start


def test_killed_runs_resume_to_the_same_record(tiny_model_dirs, slow_task, pararel_dir, tmp_path) -> None:
    """SIGKILL at 10 random moments of a run's work (from taking its record's lock to writing the
    record): every rerun ends with the record an uninterrupted run writes."""
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    command = _run_command(tiny_model_dirs["llama"], slow_task, pararel_dir, tmp_path / "reference")
    reference_run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    waited = _started_work(tmp_path / "reference", reference_run)
    start = time.perf_counter()
    assert reference_run.wait() == 0
    work = time.perf_counter() - start
    reference = _the_record(tmp_path / "reference")
    rng = random.Random(0)
    mid_item = 0  # kills that left finished items in a log for the rerun to resume from
    for attempt in range(10):
        out = tmp_path / f"killed{attempt}"
        command[command.index("--output-dir") + 1] = str(out)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _started_work(out, process)
        time.sleep(rng.uniform(0, work))
        process.send_signal(signal.SIGKILL)
        process.wait()
        mid_item += any(log.read_text().strip() for log in out.rglob("*.partial.jsonl"))
        subprocess.run(command, check=True, env=env, capture_output=True)
        assert _the_record(out) == reference, f"attempt {attempt}"
    print(f"imports and collection {waited:.1f}s, work {work:.1f}s, {mid_item} of 10 kills mid-item")
    assert mid_item >= 2, "the kills should land while items are being computed"


def test_two_identical_runs_at_once_compute_once(tiny_model_dirs, slow_task, pararel_dir, tmp_path) -> None:
    out = tmp_path / "shared"
    command = _run_command(tiny_model_dirs["llama"], slow_task, pararel_dir, out)
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    statuses = sorted(
        "DONE" if " DONE " in stdout else "CACHED" if " CACHED " in stdout else "?" for stdout, _ in outputs
    )
    assert statuses == ["CACHED", "DONE"], outputs
    assert any("another run is computing it; waiting" in stderr for _, stderr in outputs)
    _the_record(out)  # one valid record, no item log left


def test_two_first_runs_dequantize_the_default_model_once(isolated_cache, monkeypatch) -> None:
    """Two runs started together on a fresh machine: the second waits for the first's checkpoint
    instead of writing into the same folder (which once crashed it mid-save)."""
    calls = []

    def slow_dequantize(target: Path) -> None:
        calls.append(target)
        time.sleep(0.3)  # long enough for the other thread to reach the lock
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(loading, "_dequantize_default_model", slow_dequantize)
    found: list[Path] = []
    threads = [threading.Thread(target=lambda: found.append(loading._default_model_dir())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert found == [calls[0], calls[0]]
