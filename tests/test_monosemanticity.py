"""The monosemanticity task: statistics by hand, and a run end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from bench.data.pararel import load_facts
from bench.tasks.monosemanticity.outputs import item_values
from bench.tasks.monosemanticity.task import (
    MonosemanticityConfig,
    PromptSets,
    auroc,
    auroc_by_kind,
    cohens_d,
    orient_to_fact,
    prompt_sets,
)
from tests.conftest import TINY_TASK, run_cli

TASK = """\
type: monosemanticity
description: tiny monosemanticity
data: {relations: [P17, P19], tuples_per_relation: 10}
filter: {greedy_correct: false}
attribution: {method: gradient_x_activation}
top_k: 3
related: {max_paraphrases: 4, max_same_object: 4, min_related: 2}
negatives: {count: 4}
mixing: {shares: [0.0, 0.5, 1.0], prompts: 10}
layers: [1]
bootstrap: {resamples: 50}
"""


def test_cohens_d_and_auroc_by_hand() -> None:
    related, unrelated = np.array([2.0, 3.0, 4.0]), np.array([0.0, 1.0, 1.0, 2.0])
    pooled_sd = np.sqrt((2 * 1.0 + 3 * (2 / 3)) / 5)  # sample variances 1 and 2/3
    assert cohens_d(related, unrelated) == pytest.approx((3.0 - 1.0) / pooled_sd)
    # 12 (related, unrelated) pairs: related wins 11, ties once (2 vs 2)
    assert auroc(related, unrelated) == pytest.approx(11.5 / 12)
    assert cohens_d(np.zeros(3), np.zeros(4)) == 0.0
    # both samples constant: the pooled SD is floored at 0.1 x their RMS, not 0
    assert cohens_d(np.ones(3), np.zeros(4), sd_floor=0.1) == pytest.approx(1.0 / (0.1 * np.sqrt(3 / 7)))


def _with_related_prompts(pararel_dir: Path) -> Path:
    """Give P17 two paraphrases and three P19 subjects a shared object, so those facts have related prompts."""
    with (pararel_dir / "pararel" / "patterns" / "P17.jsonl").open("a") as f:
        f.write(json.dumps({"pattern": "[X] , which is located in [Y] ."}) + "\n")
        f.write(json.dumps({"pattern": "[X] is situated in [Y] ."}) + "\n")
    with (pararel_dir / "pararel" / "tuples" / "P19.jsonl").open("a") as f:
        for i, name in enumerate(["Eve", "Frank"]):
            f.write(json.dumps({"sub_label": name, "obj_label": "Paris", "uuid": f"P19-x{i}"}) + "\n")
    return pararel_dir


def test_negatives_share_the_relation_and_the_related_templates(pararel_dir) -> None:
    data_dir = _with_related_prompts(pararel_dir)
    config = MonosemanticityConfig.model_validate(yaml.safe_load(TASK))
    ctx = SimpleNamespace(data_dir=data_dir)
    (paris,) = [f for f in load_facts(data_dir, ["P17"], 1, 10, 0) if f.subject == "Paris"]
    sets = prompt_sets(ctx, config, paris, [])
    related, negatives = sets.related, sets.negatives
    assert [f.pattern for f in related] == ["[X] , which is located in [Y] .", "[X] is situated in [Y] ."]
    assert len(negatives) == 4 and all(f.relation == "P17" and f.answer != "France" for f in negatives)
    # the templates alternate over the related prompts' patterns: the sets differ in the fact only
    assert [f.pattern for f in negatives] == [f.pattern for f in related] * 2
    assert sets.related_kinds == ["paraphrase"] * 2 and sets.negative_kinds == ["paraphrase"] * 4
    (alice,) = [f for f in load_facts(data_dir, ["P19"], 1, 10, 0) if f.subject == "Alice"]
    sets = prompt_sets(ctx, config, alice, [])
    assert [f.subject for f in sets.related] == ["Eve", "Frank"] and sets.related_kinds == ["same_object"] * 2
    assert sets.negative_kinds == ["same_object"] * len(sets.negatives)


def test_related_prompts_and_negatives_are_only_prompts_the_model_knows(pararel_dir) -> None:
    data_dir = _with_related_prompts(pararel_dir)
    config = MonosemanticityConfig.model_validate(yaml.safe_load(TASK))
    (alice,) = [f for f in load_facts(data_dir, ["P19"], 1, 10, 0) if f.subject == "Alice"]
    seen: list[list[str]] = []

    def keep(facts, limit):  # a model that does not know Eve's birthplace, nor Carol's
        seen.append([f.subject for f in facts])
        return [f for f in facts if f.subject not in ("Eve", "Carol")][:limit]

    sets = prompt_sets(SimpleNamespace(data_dir=data_dir), config, alice, [], keep)
    assert [f.subject for f in sets.related] == ["Frank"]
    assert "Carol" in seen[-1] and sorted(f.subject for f in sets.negatives) == ["Bob", "Dave"]


def test_monosemanticity_and_delta_prob_draw_the_same_facts(tmp_path, tiny_model_dirs, corpus_dir) -> None:
    _with_related_prompts(corpus_dir)
    caps = "sampling: {max_per_relation: 3, max_per_answer: 2}\n"
    ids = {}
    for name, text in (("monosemanticity", TASK), ("knowledge_ablation", TINY_TASK)):
        task = tmp_path / f"{name}.yaml"
        task.write_text(text + caps)
        assert run_cli(tiny_model_dirs["llama"], task, corpus_dir, tmp_path / name, "--limit", "5") == 0
        (path,) = (tmp_path / name).rglob("*.json")
        record = json.loads(path.read_text())
        ids[name] = [item["id"] for item in record["items"]]
        relations = [item["id"].split("-")[0] for item in record["items"]]
        assert len(ids[name]) == 5 and max(relations.count(r) for r in relations) <= 3
    assert ids["monosemanticity"] == ids["knowledge_ablation"]


def test_auroc_by_kind_compares_each_kind_with_the_negatives_through_its_templates() -> None:
    # one unit tracking the subject: high on the paraphrases only
    sets = PromptSets(
        [], [], ["paraphrase", "paraphrase", "same_object", "same_object"], ["paraphrase", "same_object"] * 2
    )
    rel = np.array([[5.0], [6.0], [0.0], [1.0]])
    neg = np.array([[0.0], [1.0], [2.0], [0.5]])  # through paraphrase, same-object, paraphrase, same-object patterns
    by_kind = auroc_by_kind(rel, neg, sets)
    assert by_kind["paraphrase"] == [1.0]  # 5 and 6 above the paraphrase negatives 0 and 2
    assert by_kind["same_object"] == [pytest.approx(auroc(np.array([0.0, 1.0]), np.array([1.0, 0.5])))]
    assert by_kind["same_object"][0] < 0.5
    # negatives from other relations have no template of their own: each kind is compared with all of them
    other = PromptSets([], [], ["paraphrase", "same_object"], [None, None])
    assert set(auroc_by_kind(np.array([[1.0], [0.0]]), np.array([[0.5], [0.5]]), other)) == {
        "paraphrase",
        "same_object",
    }


def test_monosemanticity_runs_end_to_end(tmp_path, tiny_model_dirs, corpus_dir) -> None:
    _with_related_prompts(corpus_dir)
    task = tmp_path / "mono.yaml"
    task.write_text(TASK)
    out = tmp_path / "results"
    assert run_cli(tiny_model_dirs["llama"], task, corpus_dir, out) == 0
    (path,) = out.rglob("*.json")
    record = json.loads(path.read_text())
    kept = [item for item in record["items"] if "skipped" not in item]
    assert len(kept) == 6 + 3  # every P17 fact has two paraphrases; Alice, Eve and Frank share Paris
    assert record["skipped_facts"] == 3  # Bob, Carol and Dave have no related prompt
    assert all(item["n_related"] == 2 for item in kept)
    # negatives share the fact's relation and have another object: P17 has 5 other objects
    # (4 drawn); Alice, Eve and Frank (born in Paris) have only Bob, Carol and Dave
    assert [item["n_negatives"] for item in kept if item["relation"] == "P17"] == [4] * 6
    assert [item["n_negatives"] for item in kept if item["relation"] == "P19"] == [3] * 3
    assert record["metrics"]["auroc"]["n"] == 3 * len(kept)
    d = [v for item in kept for v in item["cohens_d"]]
    assert record["metrics"]["median_d"]["mean"] == pytest.approx(np.median(d))
    assert record["metrics"]["median_d"]["statistic"] == "median"
    assert 0 <= record["metrics"]["auroc"]["mean"] <= 1
    # P17 facts have paraphrases only, Alice, Eve and Frank same-object prompts only
    assert record["metrics"]["auroc_paraphrase"]["n"] == 3 * 6
    assert record["metrics"]["auroc_same_object"]["n"] == 3 * 3
    assert record["distribution"]["cohens_d"]["q1"] <= record["distribution"]["cohens_d"]["q3"]
    assert (path.parent / record["artifacts"]["mixing_plot"]).stat().st_size > 1000
    # per-fact values for paired tests between lenses: the mean over the fact's units, by relation
    per_fact = item_values(record, "auroc")
    assert sorted(per_fact) == sorted(item["id"] for item in kept)
    assert np.mean([value for _, value in per_fact.values()]) == pytest.approx(record["metrics"]["auroc"]["mean"])
    assert len(item_values(record, "auroc_same_object")) == 3  # only the facts that have same-object prompts
    assert item_values({k: v for k, v in record.items() if k != "items"}, "auroc") is None  # a compact copy


def test_units_are_compared_in_the_direction_they_fire_on_the_fact() -> None:
    # unit 0 fires negatively on the fact and more so on related prompts; unit 1 positively
    acts = np.array([[-2.0, 1.0], [-3.0, 2.0], [0.0, 0.0]])
    signs, oriented = orient_to_fact(acts)
    assert signs.tolist() == [-1.0, 1.0]
    assert oriented.tolist() == [[3.0, 2.0], [0.0, 0.0]]
