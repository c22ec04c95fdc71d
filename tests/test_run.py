"""`bench run` end to end on tiny models: ΔProb by hand, resume after an interrupt, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.tasks.knowledge_ablation import task as knowledge_ablation
from tests.conftest import run_cli


def run_small(tmp_path: Path, model: Path, task: Path, data: Path, *extra: str) -> int:
    """`bench run` with 4 rows per batch: with 4 IG steps, one fact per chunk (what the resume test counts)."""
    return run_cli(model, task, data, tmp_path / "results", "--batch-size", "4", *extra)


def records(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "results").rglob("*.json"))]


def test_delta_prob_matches_a_hand_computation(tmp_path, tiny_model_dirs, tiny_llama, tiny_task, pararel_dir) -> None:
    assert run_small(tmp_path, tiny_model_dirs["llama"], tiny_task, pararel_dir) == 0
    (record,) = records(tmp_path)
    assert record["metrics"]["delta_prob@1"]["n"] == 10
    assert record["provenance"]["model"]["weights_sha256"] == record["model"]["weights_sha256"]
    assert record["provenance"]["versions"]["torch"] == torch.__version__
    item = record["items"][0]
    # Rescore by hand: zero the top neuron at the last prompt token only (positions: last),
    # before down_proj, with a plain PyTorch hook.
    model, tok = tiny_llama.model, tiny_llama.tokenizer
    ids = tok(item["prompt"])["input_ids"] + tok(" " + item["answer"], add_special_tokens=False)["input_ids"]
    answer_pos, answer_id = len(ids) - 2, ids[-1]
    down = model.model.layers[1].mlp.down_proj

    def prob() -> float:
        with torch.no_grad():
            return float(model(torch.tensor([ids[:-1]])).logits[0, answer_pos].softmax(-1)[answer_id])

    p_clean = prob()
    unit = item["top_units"][0]

    def zero_unit(_module, args):
        hidden = args[0].clone()
        hidden[:, answer_pos, unit] = 0
        return (hidden,)

    handle = down.register_forward_pre_hook(zero_unit)
    try:
        p_ablated = prob()
    finally:
        handle.remove()
    assert item["p_clean"] == pytest.approx(p_clean, rel=1e-5)
    assert item["p_ablated"]["1"] == pytest.approx(p_ablated, rel=1e-5)
    assert item["delta_prob"]["1"] == pytest.approx(max(0.0, (p_clean - p_ablated) / p_clean), abs=1e-6)
    # the control: the same neuron ablated on facts of the other relation
    relation = {i["id"]: i["relation"] for i in record["items"]}
    assert len(item["unrelated"]) == 3 and all(relation[u] != item["relation"] for u in item["unrelated"])
    for k in ("1", "3"):
        assert item["specificity"][k] == pytest.approx(item["delta_prob"][k] - item["delta_prob_unrelated"][k])
        assert 0 < item["edit_norm"][k] < 10 and 0 <= item["delta_prob_random"][k] <= 1
    assert record["schema"] == 3 and record["metrics"]["specificity@1"]["clusters"] == 2


def test_interrupted_run_resumes_without_losing_or_redoing_work(
    tmp_path, tiny_model_dirs, tiny_task, pararel_dir, monkeypatch
) -> None:
    original = knowledge_ablation._process
    calls: list[int] = []

    def flaky(ctx, config, facts, controls):
        calls.append(len(facts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(ctx, config, facts, controls)

    monkeypatch.setattr(knowledge_ablation, "_process", flaky)
    assert run_small(tmp_path, tiny_model_dirs["llama"], tiny_task, pararel_dir) == 130
    assert records(tmp_path) == []  # no half-finished record
    (log,) = (tmp_path / "results").rglob("*.partial.jsonl")
    assert len(log.read_text().splitlines()) == 2  # batch size 4 / 4 IG steps: one fact per chunk
    with log.open("a") as f:
        f.write('{"id": "cut-by-a-cra')  # a crash mid-write leaves a truncated line

    calls.clear()
    monkeypatch.setattr(knowledge_ablation, "_process", lambda *a: (calls.append(len(a[2])), original(*a))[1])
    assert run_small(tmp_path, tiny_model_dirs["llama"], tiny_task, pararel_dir) == 0
    assert sum(calls) == 8  # only the 8 facts not finished before the interrupt
    (resumed,) = records(tmp_path)
    assert resumed["provenance"]["resumed_items"] == 2
    assert not list((tmp_path / "results").rglob("*.partial.jsonl"))

    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    assert run_small(fresh_dir, tiny_model_dirs["llama"], tiny_task, pararel_dir) == 0
    (fresh,) = records(fresh_dir)
    assert [i["id"] for i in fresh["items"]] == [i["id"] for i in resumed["items"]]
    for key in fresh["metrics"]:
        assert fresh["metrics"][key]["mean"] == pytest.approx(resumed["metrics"][key]["mean"], rel=1e-5)

    # A finished record is reused, not recomputed.
    calls.clear()
    assert run_small(tmp_path, tiny_model_dirs["llama"], tiny_task, pararel_dir) == 0
    assert calls == []


def test_cli_reports_bad_input_cleanly(tmp_path, tiny_model_dirs, tiny_task, pararel_dir, capsys) -> None:
    assert main(["run", "--units", "nope", "--task", str(tiny_task)]) == 2
    assert "unknown lens 'nope'" in capsys.readouterr().err
    assert run_small(tmp_path, tiny_model_dirs["llama"], tiny_task, pararel_dir, "--layers", "7") == 2
    assert "layer 7 is out of range: the model has 3 layers" in capsys.readouterr().err
    assert run_small(tmp_path, tiny_model_dirs["llama"], tiny_task, tmp_path / "missing") == 2
    assert "missing: no such directory" in capsys.readouterr().err
    assert main(["run", "--model", str(tmp_path / "no-model"), "--units", "mlp_neurons", "--task", str(tiny_task)]) == 2
    assert "no-model: no such directory" in capsys.readouterr().err


def test_ks_wider_than_the_lens_are_skipped_and_listed(
    tmp_path, tiny_model_dirs, tiny_task, pararel_dir, capsys
) -> None:
    # the default sweep reaches k = 50; a narrow lens (here 24 neurons) runs the ks it has
    tiny_task.write_text(tiny_task.read_text().replace("selection: {k: [1, 3]}", "selection: {k: [1, 3, 500]}"))
    assert run_small(tmp_path, tiny_model_dirs["llama"], tiny_task, pararel_dir, "--limit", "3") == 0
    (record,) = records(tmp_path)
    assert record["sample"]["k_skipped_wider_than_lens"] == [500]
    assert "delta_prob@3" in record["metrics"] and "delta_prob@500" not in record["metrics"]
    tiny_task.write_text(tiny_task.read_text().replace("k: [1, 3, 500]", "k: [500]"))
    assert run_small(tmp_path / "none", tiny_model_dirs["llama"], tiny_task, pararel_dir, "--limit", "3") == 2
    assert "every selection.k ([500]) exceeds the lens's" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["gpt2", "gemma2", "gpt_neox"])
def test_task_runs_on_every_architecture(arch, tmp_path, tiny_model_dirs, tiny_task, pararel_dir) -> None:
    assert run_small(tmp_path, tiny_model_dirs[arch], tiny_task, pararel_dir, "--limit", "3") == 0
    (record,) = records(tmp_path)
    assert 0 <= record["metrics"]["delta_prob@3"]["mean"] <= 1


@pytest.mark.parametrize("method", ["gradient_x_activation", "activation"])
def test_other_attributions_and_threshold_selection(method, tmp_path, tiny_model_dirs, tiny_task, pararel_dir) -> None:
    text = tiny_task.read_text().replace("method: integrated_gradients", f"method: {method}")
    tiny_task.write_text(text.replace("selection: {k: [1, 3]}", "selection: {k: [1, 3], threshold: 0.3}"))
    assert run_small(tmp_path, tiny_model_dirs["llama"], tiny_task, pararel_dir, "--limit", "4") == 0
    (record,) = records(tmp_path)
    assert record["task"]["config"]["attribution"]["method"] == method
    for item in record["items"]:
        scores, n = item["top_scores"], item["n_ablated"]["thr0.3"]
        # exactly the units scoring >= 0.3 x the fact's best are ablated (scores hold the top max(k) only)
        passing = sum(score >= 0.3 * scores[0] for score in scores)
        assert n == passing if passing < len(scores) else n >= passing
    assert "delta_prob@thr0.3" in record["metrics"]


def test_git_commit_is_dirty_only_for_code_changes(tmp_path, monkeypatch) -> None:
    import subprocess

    import bench.engine.provenance as provenance

    repo = tmp_path / "repo"
    (repo / "bench").mkdir(parents=True)
    (repo / "results").mkdir()
    for path in ("bench/a.py", "results/r.json", "pyproject.toml"):
        (repo / path).write_text("1")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    monkeypatch.setattr(provenance, "REPO_ROOT", repo)
    (repo / "results" / "r.json").write_text("2")
    assert not provenance.git_commit().endswith("+dirty")
    (repo / "bench" / "a.py").write_text("2")
    assert provenance.git_commit().endswith("+dirty")


def test_an_installed_copy_reports_no_commit_of_an_enclosing_repository(tmp_path, monkeypatch) -> None:
    """A venv inside some other checkout: site-packages is in that repository, lens-bench is not."""
    import subprocess

    import bench.engine.provenance as provenance

    site = tmp_path / "other-repo" / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    subprocess.run(["git", "-C", str(tmp_path / "other-repo"), "init", "-q"], check=True)
    monkeypatch.setattr(provenance, "REPO_ROOT", site)
    assert provenance.git_commit() is None


def test_a_script_context_never_resumes_or_writes_among_results(tiny_llama, pararel_dir, tmp_path, monkeypatch) -> None:
    from bench.engine.context import TaskContext
    from bench.plugin.registry import plugins

    workdir = tmp_path / "workdir"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    lens = plugins().lenses.get("mlp_neurons").build(tiny_llama, "blocks.1.mlp.hook_post", {})
    config = knowledge_ablation.KnowledgeAblationConfig.model_validate(
        {"type": "knowledge_ablation", "description": "a script's", "layers": [1]}
    )
    with (
        TaskContext.outside_a_run(tiny_llama, lens, config, pararel_dir, plugins()) as first,
        TaskContext.outside_a_run(tiny_llama, lens, config, pararel_dir, plugins()) as second,
    ):
        first.slot.log_items([{"id": "f"}])
        assert first.slot.done_items() == [{"id": "f"}] and second.slot.done_items() == []
        folder = first.slot.root
    assert not any(workdir.iterdir())  # nothing in the working directory, where results go by default
    assert not folder.exists()  # and the temporary slot is gone
