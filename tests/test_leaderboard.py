"""Leaderboard rendering from a fixed set of records (golden file) and from real runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.leaderboard import frame, render

GOLDEN = Path(__file__).parent / "golden" / "leaderboard.md"


def record(lens: str, site: str, means: dict[str, float], finished: str, rid: str) -> dict:
    return {
        "schema": 1,
        "id": rid,
        "model": {"id": "tiny", "weights_sha256": "ab" * 32, "dtype": "float32"},
        "lens": {"name": lens, "site": site, "layer": int(site.split(".")[1]), "n_units": 24, "config": {}},
        "task": {"name": "knowledge_ablation", "type": "knowledge_ablation", "config": {"seed": 0}},
        "metrics": {name: {"mean": m, "se": m / 10, "n": 200} for name, m in means.items()},
        "provenance": {"finished": finished, "git_commit": "c0ffee"},
    }


RECORDS = [
    record(
        "mlp_neurons",
        "blocks.10.mlp.hook_post",
        {"delta_prob@1": 0.1, "delta_prob@5": 0.3, "delta_prob@10": 0.9},
        "2026-01-01",
        "r1",
    ),
    record(
        "mlp_neurons",
        "blocks.2.mlp.hook_post",
        {"delta_prob@1": 0.2, "delta_prob@5": 0.4, "delta_prob@10": 0.9},
        "2026-01-01",
        "r2",
    ),
    record(
        "sae_post_mlp",
        "blocks.2.hook_resid_post",
        {"delta_prob@1": 0.5, "delta_prob@5": 0.8, "delta_prob@10": 0.9},
        "2026-01-01",
        "r3",
    ),
    # the same cell computed again later: the newer record wins
    record(
        "mlp_neurons",
        "blocks.2.mlp.hook_post",
        {"delta_prob@1": 0.25, "delta_prob@5": 0.45, "delta_prob@10": 0.9},
        "2026-02-01",
        "r4",
    ),
]


def test_render_matches_golden_file() -> None:
    text = render(frame(RECORDS), "bench leaderboard --results-dir results")
    if os.environ.get("UPDATE_GOLDEN"):  # after an intended change: UPDATE_GOLDEN=1 pytest, then review the diff
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_no_records_is_a_clear_error() -> None:
    with pytest.raises(BenchError, match="no result records"):
        frame([])


def test_leaderboard_command_from_real_runs(tmp_path, tiny_model_dirs, tiny_task, pararel_dir, capsys) -> None:
    results = tmp_path / "results"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model_dirs["llama"]),
                "--units",
                "mlp_neurons",
                "--task",
                str(tiny_task),
                "--data-dir",
                str(pararel_dir),
                "--output-dir",
                str(results),
                "--layers",
                "0,2",
                "--limit",
                "4",
            ]
        )
        == 0
    )
    out = tmp_path / "board" / "README.md"
    assert main(["leaderboard", "--results-dir", str(results), "--output", str(out)]) == 0
    text = out.read_text()
    assert "| blocks.0.mlp.hook_post" in text and "| blocks.2.mlp.hook_post" in text
    record_files = list(results.rglob("*.json"))
    metric = json.loads(record_files[0].read_text())["metrics"]["delta_prob@1"]
    assert f"{metric['mean']:.3f} ± {metric['se']:.3f} (4)" in text
