"""The unrelated-fact control: a lens whose ablations wreck every prompt tops raw ΔProb
and must rank last on specificity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.engine.records import load_records
from bench.report.leaderboard import frame
from tests.conftest import run_cli
from tests.tiny import use_plugin

WRECKER = '''
"""A lens built to wreck: every unit is the same random 90 % of the residual stream's
dimensions, so ablating any of them zeroes that chunk, whatever the prompt."""
import torch
from bench import hookimpl
from bench.model.lens import Lens
from bench.plugin.specs import LensSpec


class RandomChunks(Lens):
    def __init__(self, loaded, site):
        self.site = site
        d = loaded.model.config.hidden_size
        self.chunk = (torch.rand(d, generator=torch.Generator().manual_seed(0)) < 0.9).float()

    @property
    def n_units(self):
        return 8

    def encode(self, acts):
        h = acts[self.site]
        return h.new_ones(*h.shape[:-1], 8)

    def patch(self, acts, units, new_units):
        removed = (units - new_units).amax(-1, keepdim=True).clamp(0, 1) * self.chunk
        return acts[self.site] * (1 - removed)


@hookimpl
def bench_lenses():
    return [LensSpec("random_chunks", "Wrecks the stream.", "blocks.{layer}.hook_resid_post",
                     lambda loaded, site, options: RandomChunks(loaded, site))]
'''

TASK = """\
type: knowledge_ablation
description: ΔProb with its controls on a tiny model taught the miniature ParaRel
data: {relations: [P17, P19], tuples_per_relation: 10}
filter: {greedy_correct: true}
attribution: {method: integrated_gradients, ig_steps: 4}
selection: {k: [1, 3]}
ablation: {value: zero}        # the wrecker's units are constant: only zeroing them edits anything
controls: {unrelated: 4, kl_windows: 2, kl_window_tokens: 16}
layers: [2]   # the last block: zeroing its output collapses every prompt's answer distribution alike

bootstrap: {resamples: 50}
seed: 0
"""


@pytest.fixture
def wrecker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_plugin(tmp_path / "site-packages", monkeypatch, "wreckers", WRECKER)


def test_a_lens_that_wrecks_everything_ranks_last_on_specificity(wrecker, taught_model, corpus_dir, tmp_path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    out = tmp_path / "results"
    for units in ("mlp_neurons", "random_chunks"):
        assert run_cli(taught_model, task, corpus_dir, out, "--batch-size", "8", units=units) == 0
    df = frame(load_records(out)).set_index(["lens", "metric"])["mean"]
    for k in ("1", "3"):
        # raw ΔProb rewards the wrecker ...
        assert df["random_chunks", f"delta_prob@{k}"] > df["mlp_neurons", f"delta_prob@{k}"]
        # ... its ablations hit unrelated facts as hard, and its text KL is larger ...
        assert df["random_chunks", f"delta_prob_unrelated@{k}"] > 0.5
        assert df["random_chunks", f"kl@{k}"] > df["mlp_neurons", f"kl@{k}"]
        # ... so specificity ranks it last
        assert df["random_chunks", f"specificity@{k}"] < df["mlp_neurons", f"specificity@{k}"]
    (record,) = [json.loads(p.read_text()) for p in out.rglob("random_chunks/*.json")]
    assert record["schema"] == 3 and record["sample"]["used"] == 10
    assert record["ablation"]["value"] == "zero"


def test_a_constant_unit_removed_at_its_mean_scores_nothing_and_changes_nothing(
    wrecker, taught_model, corpus_dir, tmp_path
) -> None:
    """Under the default rule a unit is removed by setting it to its mean on WikiText, and IG
    integrates from there: the wrecker's units are the same on every token, so they get no
    attribution and removing them edits nothing (a zero rule credits them with every fact)."""
    task = tmp_path / "task.yaml"
    task.write_text(TASK.replace("ablation: {value: zero}", "ablation: {value: mean}"))
    out = tmp_path / "results"
    assert run_cli(taught_model, task, corpus_dir, out, "--batch-size", "8", units="random_chunks") == 0
    (record,) = [json.loads(p.read_text()) for p in out.rglob("random_chunks/*.json")]
    assert record["ablation"]["value"] == "mean"
    for item in record["items"]:
        assert max(abs(s) for s in item["top_scores"]) < 1e-6
        for k in ("1", "3"):
            assert item["p_ablated"][k] == pytest.approx(item["p_clean"], rel=1e-5)
            assert item["kl"][k] < 1e-6 and item["kl_last"][k] < 1e-6
