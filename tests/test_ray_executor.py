"""`bench run --executor ray`: items computed on a local Ray of 2 workers give the records of the
in-process executor; a failed item is reported while the others finish; a worker killed
mid-item leaves nothing behind in the output folder, and the rerun computes the item."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.plugin.registry import plugins

pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install 'lens-bench[ray]'")

TASK = """\
type: knowledge_ablation
description: ΔProb on the miniature ParaRel, over Ray
data: {relations: [P17, P19], tuples_per_relation: 10}
filter: {greedy_correct: false, min_prob: null}
attribution: {method: integrated_gradients, ig_steps: 3}
selection: {k: [1, 3]}
controls: {unrelated: 3, kl_windows: 2, kl_window_tokens: 12}
layers: [1, 2]
bootstrap: {resamples: 50}
seed: 0
"""


def _run(model: Path, task: Path, data: Path, out: Path, units: str, *extra: str) -> int:
    argv = ["run", "--model", str(model), "--units", units, "--task", str(task), "--data-dir", str(data)]
    return main([*argv, "--output-dir", str(out), *extra])


def _records(folder: Path) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in folder.rglob("*.json")}


def _close(a: object, b: object) -> bool:
    """Equal structure and equal numbers up to float32 rounding: a Ray worker runs torch on its own
    number of threads, so its reductions may sum in another order (KLs of ~1e-7 then differ by ~1e-8)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-4, abs=1e-7)
    return a == b


def test_ray_records_equal_local_records(local_ray, tiny_model_dirs, corpus_dir, tmp_path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    model = tiny_model_dirs["llama"]
    assert _run(model, task, corpus_dir, tmp_path / "local", "mlp_neurons,pca") == 0
    ray_argv = ("--executor", "ray", "--workers", "2")
    assert _run(model, task, corpus_dir, tmp_path / "ray", "mlp_neurons,pca", *ray_argv) == 0
    local, on_ray = _records(tmp_path / "local"), _records(tmp_path / "ray")
    assert len(local) == 4 and sorted(local) == sorted(on_ray)  # 2 lenses x 2 layers, the same record ids
    for name, record in local.items():
        assert _close(on_ray[name]["metrics"], record["metrics"]) and _close(on_ray[name]["items"], record["items"])
    assert not list((tmp_path / "ray").rglob("*.partial.jsonl"))


def test_failures_on_workers_are_reported_and_a_killed_item_is_rerun(
    local_ray, tiny_model_dirs, corpus_dir, tmp_path, monkeypatch, capsys
) -> None:
    site, marker = local_ray
    monkeypatch.syspath_prepend(str(site))  # the driver builds the faulty lenses too
    plugins.cache_clear()
    task = tmp_path / "task.yaml"
    task.write_text(TASK.replace("layers: [1, 2]", "layers: [1]"))
    model, out = tiny_model_dirs["llama"], tmp_path / "out"
    argv = ("--executor", "ray", "--workers", "2")
    assert _run(model, task, corpus_dir, out, "mlp_neurons,dying,failing", *argv) == 1
    err = capsys.readouterr().err
    assert "task[failing-blocks.1.hook_resid_post] FAILED  the failing lens has nothing to encode" in err
    assert "task[dying-blocks.1.hook_resid_post] FAILED  the worker died" in err
    assert Path(f"{marker}-dying").exists()  # the dying lens did kill its worker
    # nothing of either failed item in the output folder; the healthy item finished beside them
    assert [path.parent.name for path in out.rglob("*.json")] == ["mlp_neurons"]
    assert not list(out.rglob("*.partial.jsonl"))
    # the rerun reuses the finished record and computes the killed item on a restarted worker
    assert _run(model, task, corpus_dir, out, "mlp_neurons,dying", *argv) == 0
    printed = capsys.readouterr().out
    assert "task[mlp_neurons-blocks.1.mlp.hook_post] CACHED" in printed
    assert "task[dying-blocks.1.hook_resid_post] DONE" in printed
    assert sorted(path.parent.name for path in out.rglob("*.json")) == ["dying", "mlp_neurons"]


def test_without_ray_the_executor_says_how_to_get_it(
    tiny_model_dirs, corpus_dir, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where the extra is not installed
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    assert _run(tiny_model_dirs["llama"], task, corpus_dir, tmp_path / "out", "mlp_neurons", "--executor", "ray") == 2
    assert "pip install 'lens-bench[ray]'" in capsys.readouterr().err
    assert not list((tmp_path / "out").rglob("*.json"))


def test_items_finished_before_a_worker_died_are_kept_and_resumed(
    local_ray, tiny_model_dirs, corpus_dir, tmp_path, monkeypatch, capsys
) -> None:
    """The driver logs each batch of facts a worker finishes: the rerun starts from them and ends
    with the record an uninterrupted run writes."""
    site, marker = local_ray
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("DYING_MARKER", str(marker))  # for the local run at the end
    plugins.cache_clear()
    task = tmp_path / "task.yaml"
    task.write_text(TASK.replace("layers: [1, 2]", "layers: [1]"))
    model, out = tiny_model_dirs["llama"], tmp_path / "out"
    one_fact_per_step = ("--batch-size", "5")  # 3 IG steps: each fact is logged as it finishes
    assert _run(model, task, corpus_dir, out, "dying_late", "--executor", "ray", *one_fact_per_step) == 1
    assert "the worker died" in capsys.readouterr().err
    (log,) = out.rglob("*.partial.jsonl")  # written by the driver, from the worker's stream
    kept = [json.loads(line)["id"] for line in log.read_text().splitlines()]
    assert 0 < len(kept) < 10 and not list(out.rglob("*.json"))
    assert _run(model, task, corpus_dir, out, "dying_late", "--executor", "ray", *one_fact_per_step) == 0
    (resumed,) = _records(out).values()
    assert resumed["provenance"]["resumed_items"] == len(kept)
    # the marker is set now: the lens runs through
    assert _run(model, task, corpus_dir, tmp_path / "local", "dying_late", *one_fact_per_step) == 0
    (local,) = _records(tmp_path / "local").values()
    assert _close(resumed["items"], local["items"]) and _close(resumed["metrics"], local["metrics"])
