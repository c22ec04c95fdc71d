"""Interpretability score: judges' contract, and IS on planted units of a tiny model."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import torch
from tqdm import tqdm

from bench.context import TaskContext
from bench.judges import Example
from bench.lens import Lens
from bench.registry import plugins
from bench.results import RecordSlot
from bench.tasks.interpretability import InterpretabilityConfig, run

N_NOISE = 20


class Planted(Lens):
    """Unit 0 is exactly the planted 'Paris' embedding dimension; units 1.. are noise independent of the text."""

    site = "blocks.0.hook_resid_pre"
    n_units = 1 + N_NOISE

    def encode(self, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        h = acts[self.site]
        noise = torch.rand(*h.shape[:-1], N_NOISE, generator=torch.Generator().manual_seed(h.shape[1]))
        return torch.cat([h[..., :1], noise], dim=-1)

    def patch(self, acts, units, new_units):
        return acts[self.site]


def run_is(loaded, judge: str, corpus_dir, tmp_path) -> dict:
    config = InterpretabilityConfig.model_validate(
        {
            "type": "interpretability",
            "description": "test",
            "layers": [0],
            "judge": {"name": judge},
            "corpus": {"context_size": 16, "max_tokens": 3000},
            "units": {"sample": 1 + N_NOISE, "attributed_facts": 0},
            "examples": {"window": 4, "explain": 6, "heldout_top": 4, "heldout_random": 4},
            "bootstrap": {"resamples": 50},
        }
    )
    slot = RecordSlot(
        tmp_path / "r", {"task": {"name": "is"}, "model": {"id": "m"}, "lens": {"name": "p", "site": "s"}}
    )
    ctx = TaskContext(
        loaded, Planted(), config, 8, corpus_dir, slot, lambda d, t, i: tqdm(total=t, initial=i, disable=True)
    )
    return run(ctx)


def test_lexical_judge_scores_a_planted_unit_near_one_and_noise_near_zero(planted_llama, corpus_dir, tmp_path) -> None:
    result = run_is(planted_llama, "lexical", corpus_dir, tmp_path)
    by_unit = {item["unit"]: item for item in result["items"]}
    assert by_unit[0]["is"] > 0.95
    assert by_unit[0]["explanation"].split("\n")[0] == "Paris"
    noise = [by_unit[u]["is"] for u in range(1, 1 + N_NOISE)]
    assert abs(np.mean(noise)) < 0.1
    assert result["judge"]["name"] == "lexical" and result["judge"]["version"] == "1"


def test_embedding_judge_ranks_the_planted_unit_above_noise(planted_llama, corpus_dir, tmp_path) -> None:
    result = run_is(planted_llama, "embedding", corpus_dir, tmp_path)
    by_unit = {item["unit"]: item["is"] for item in result["items"]}
    noise = [by_unit[u] for u in range(1, 1 + N_NOISE)]
    assert by_unit[0] > 0.3 > abs(np.mean(noise))


@pytest.mark.parametrize("name", ["lexical", "embedding"])
def test_judge_contract(name: str) -> None:
    judge = plugins().judges.get(name).build({})
    examples = [Example(("the", " city", " of", " Paris"), (0.0, 0.0, 0.1, 5.0))] * 3
    explanation = judge.explain(examples)
    assert isinstance(explanation, str) and explanation
    windows = [("I", " love", " Paris"), ("a", " dog")]
    predicted = judge.simulate(explanation, windows)
    assert [len(p) for p in predicted] == [3, 2]
    assert predicted == judge.simulate(explanation, windows)  # deterministic
    assert predicted[0][2] > predicted[1][1]  # 'Paris' looks more like the explanation than 'dog'
