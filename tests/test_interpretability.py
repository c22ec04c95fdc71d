"""Interpretability score: judges' contract, and IS on planted units of a tiny model."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import torch
from tqdm import tqdm

from bench.engine.context import TaskContext
from bench.engine.records import RecordSlot
from bench.model.lens import Lens
from bench.plugin.registry import plugins
from bench.tasks.interpretability.judges import Example, Judge
from bench.tasks.interpretability.task import (
    EXPLAIN,
    HELDOUT,
    NEITHER,
    ExamplesConfig,
    InterpretabilityConfig,
    run,
    score_unit,
    split_documents,
)

N_NOISE = 20


class Planted(Lens):
    """Unit 0 is exactly the planted 'Paris' embedding dimension; units 1.. are noise independent of
    the text; the last unit is dead (never above 0)."""

    site = "blocks.0.hook_resid_pre"
    n_units = 1 + N_NOISE + 1

    def encode(self, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        h = acts[self.site]
        noise = torch.rand(*h.shape[:-1], N_NOISE, generator=torch.Generator().manual_seed(h.shape[1]))
        return torch.cat([h[..., :1], noise, torch.zeros_like(h[..., :1])], dim=-1)

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
            "units": {"sample": 2 + N_NOISE, "attributed_facts": 0, "random_directions": 4},
            "examples": {"window": 4, "explain": 6, "heldout_top": 4, "heldout_random": 4},
            "bootstrap": {"resamples": 50},
        }
    )
    slot = RecordSlot(
        tmp_path / "r", {"task": {"name": "is"}, "model": {"id": "m"}, "lens": {"name": "p", "site": "s"}}
    )
    ctx = TaskContext(
        loaded,
        Planted(),
        config,
        8,
        corpus_dir,
        slot,
        lambda d, t, i: tqdm(total=t, initial=i, disable=True),
        plugins(),
    )
    return run(ctx)


def test_lexical_judge_scores_a_planted_unit_near_one_and_noise_near_zero(planted_llama, corpus_dir, tmp_path) -> None:
    result = run_is(planted_llama, "lexical", corpus_dir, tmp_path)
    by_unit = {item["id"]: item for item in result["items"]}
    assert by_unit["0"]["is"] > 0.95
    assert by_unit["0"]["explanation"].split("\n")[0] == "Paris"
    noise = [by_unit[str(u)]["is"] for u in range(1, 1 + N_NOISE)]
    assert abs(np.mean(noise)) < 0.1
    assert result["judge"]["name"] == "lexical" and result["judge"]["version"] == "1"
    # the dead unit scores 0 and counts in the mean; the alive fraction says how many fired
    dead = str(1 + N_NOISE)
    assert by_unit[dead] == {"id": dead, "unit": 1 + N_NOISE, "is": 0.0, "dead": True}
    assert result["dead_units"]["sampled"] == 1
    assert result["metrics"]["alive_sampled"]["mean"] == pytest.approx((1 + N_NOISE) / (2 + N_NOISE))
    scores = [by_unit[str(u)]["is"] for u in range(2 + N_NOISE)]
    assert result["metrics"]["is_sampled"]["mean"] == pytest.approx(np.mean(scores))
    # the null: the planted unit's windows simulated from a noise unit's explanation score near 0
    null = result["shuffled_null"]
    assert set(null) == {str(u) for u in range(1 + N_NOISE)} and abs(null["0"]) < 0.3
    assert result["metrics"]["is_shuffled"]["n"] == 1 + N_NOISE
    assert result["metrics"]["is_random_direction"]["n"] == 4


def test_embedding_judge_ranks_the_planted_unit_above_noise(planted_llama, corpus_dir, tmp_path) -> None:
    result = run_is(planted_llama, "embedding", corpus_dir, tmp_path)
    by_unit = {item["unit"]: item["is"] for item in result["items"] if "unit" in item}
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


class RecordingJudge(Judge):
    """Keeps the tokens it was shown to explain and asked to simulate."""

    def __init__(self) -> None:
        self.explained: list[str] = []
        self.simulated: list[str] = []

    def explain(self, examples):
        self.explained += [t for ex in examples for t in ex.tokens]
        return "x"

    def simulate(self, explanation, windows):
        self.simulated += [t for w in windows for t in w]
        return [[0.0] * len(w) for w in windows]


def test_explanation_and_heldout_windows_come_from_distinct_pages() -> None:
    context_len, n_contexts, eos = 10, 40, -1
    rng = np.random.default_rng(0)
    acts = rng.random(context_len * n_contexts)
    acts[::7] += 5.0  # several strong peaks inside every context
    ends = np.sort(rng.choice(np.arange(5, len(acts) - 1), size=11, replace=False))  # 12 pages of random length
    ids = np.zeros(len(acts), dtype=int)
    ids[ends] = eos
    page = np.searchsorted(ends, np.arange(len(acts)))  # the EOS closing a page belongs to it
    texts = [f"{row // context_len}:{page[row]}:{row}" for row in range(len(acts))]
    halves = split_documents(ids, eos, context_len, seed=0)
    assert set(halves) == {EXPLAIN, HELDOUT, NEITHER}
    # only a context spanning pages can be in neither half
    grid = page.reshape(n_contexts, context_len)
    assert all(len(set(grid[c])) > 1 for c in np.flatnonzero(halves == NEITHER))
    judge = RecordingJudge()
    config = ExamplesConfig(window=4, explain=6, heldout_top=5, heldout_random=5)
    result = score_unit(judge, acts, texts, context_len, halves, config, seed=1)

    def contexts(tokens: list[str]) -> list[int]:
        return [int(t.split(":")[0]) for t in tokens]

    def pages(tokens: list[str]) -> set[int]:
        return {int(t.split(":")[1]) for t in tokens}

    assert set(contexts(judge.explained)) == set(result["contexts"]["explain"])
    assert set(contexts(judge.simulated)) == set(result["contexts"]["heldout"])
    assert all(halves[contexts(judge.explained)] == EXPLAIN) and all(halves[contexts(judge.simulated)] == HELDOUT)
    assert not pages(judge.explained) & pages(judge.simulated)  # no page is both explained and scored
    # one window per context: no token is shown twice
    assert len(judge.simulated) == len(set(judge.simulated)) and len(judge.explained) == len(set(judge.explained))
    assert len(result["contexts"]["explain"]) == 6 and len(result["contexts"]["heldout"]) == 10
