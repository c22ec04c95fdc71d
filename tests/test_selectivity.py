"""Fact-level selectivity: a unit that carries a whole relation scores about 0, however much it
lowers its facts' answers, while units that each carry one fact's answer score high.

Both lenses read the last block's output of the tiny model taught the miniature ParaRel, along
directions its logits are read from (each answer token's unembedding row, the final norm's scale
folded in): a fact unit per answer, and a relation unit per relation (the mean of its answers'
directions, which every answer of the relation reads and no other does much).
"""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.tiny import use_plugin

DIRECTIONS = '''
import torch
from bench import hookimpl
from bench.model.lens import Lens
from bench.plugin.specs import LensSpec
from tests.tiny import FACTS


class AnswerDirections(Lens):
    """Units: the stream's component along unit directions; removing one sets that component."""

    def __init__(self, loaded, site, relation):
        self.site = site
        unembed = loaded.model.get_output_embeddings().weight.detach()
        folded = unembed * loaded.model.model.norm.weight.detach()  # logit_t = folded[t] . h / rms(h)
        ids = {r: [loaded.tokenizer.convert_tokens_to_ids(y) for _, y in pairs] for r, (_, pairs) in FACTS.items()}
        if relation:
            rows = [folded[ids[r]].mean(0) for r in FACTS]
        else:
            rows = [folded[t] for r in FACTS for t in ids[r]]
        self.directions = torch.nn.functional.normalize(torch.stack(rows), dim=-1)

    @property
    def n_units(self):
        return len(self.directions)

    def encode(self, acts):
        return acts[self.site] @ self.directions.T.to(acts[self.site].dtype)

    def patch(self, acts, units, new_units):
        return acts[self.site] + (new_units - units) @ self.directions.to(units.dtype)


@hookimpl
def bench_lenses():
    return [
        LensSpec("relation_units", "One unit per relation.", "blocks.{layer}.hook_resid_post",
                 lambda loaded, site, options: AnswerDirections(loaded, site, relation=True)),
        LensSpec("fact_units", "One unit per answer.", "blocks.{layer}.hook_resid_post",
                 lambda loaded, site, options: AnswerDirections(loaded, site, relation=False)),
    ]
'''

TASK = """\
type: knowledge_ablation
description: selectivity of relation units and fact units
data: {relations: [P17, P19], tuples_per_relation: 10}
filter: {greedy_correct: true}
sampling: {max_per_answer: null}
attribution: {method: integrated_gradients, ig_steps: 8}
selection: {k: [1]}
ablation: {value: zero}        # removing a unit removes its direction (the tiny corpus's mean along it is arbitrary)
controls: {same_relation: 3, unrelated: 4, kl_windows: 0}
layers: [2]
bootstrap: {resamples: 50}
seed: 0
"""


def test_relation_units_score_no_selectivity_and_fact_units_do(taught_model, corpus_dir, tmp_path, monkeypatch) -> None:
    use_plugin(tmp_path / "site-packages", monkeypatch, "directions", DIRECTIONS)
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    metrics = {}
    for units in ("relation_units", "fact_units"):
        assert run_cli(taught_model, task, corpus_dir, tmp_path / "out", "--batch-size", "8", units=units) == 0
        (path,) = (tmp_path / "out").rglob(f"{units}/*.json")
        record = json.loads(path.read_text())
        assert record["sample"]["used"] == 10 and not record["sample"]["without_same_relation_partner"]
        metrics[units] = {key: value["mean"] for key, value in record["metrics"].items()}
    relation, fact = metrics["relation_units"], metrics["fact_units"]
    # the relation unit lowers its fact's answer, and as much every other answer of the relation ...
    assert relation["delta_prob@1"] > 0.2
    assert relation["delta_prob_same_relation@1"] > 0.5 * relation["delta_prob@1"]
    # ... but not the other relation's: specificity credits it, selectivity does not
    assert relation["specificity@1"] > 0.15
    assert abs(relation["selectivity@1"]) < 0.1
    # a fact unit removes its own answer, and much less of its relation's others
    assert fact["delta_prob@1"] > 0.9
    assert fact["selectivity@1"] > 0.5
    assert fact["selectivity@1"] > relation["selectivity@1"] + 0.4


def test_sampling_caps_count_tuples_so_paraphrases_add_prompts_of_the_same_facts() -> None:
    from bench.data.pararel import Fact
    from bench.tasks.facts import SamplingConfig, sampled

    def fact(tuple_id: str, pattern: int, relation: str, answer: str) -> Fact:
        return Fact(f"{tuple_id}/{pattern}", relation, "S", answer, f"S {pattern} is", "[X] is [Y]")

    facts = [fact(f"t{i}", p, "P1", f"A{i % 2}") for p in range(3) for i in range(4)]  # 4 tuples x 3 patterns
    facts += [fact("u0", 0, "P2", "A0"), fact("u0", 1, "P2", "A0")]
    kept = sampled(facts, SamplingConfig(max_per_relation=2, max_per_answer=5))
    assert {f.id.split("/")[0] for f in kept if f.relation == "P1"} == {"t0", "t1"}  # 2 tuples of P1, capped
    assert len([f for f in kept if f.relation == "P1"]) == 6  # each with its 3 patterns
    assert [f.id for f in kept if f.relation == "P2"] == ["u0/0", "u0/1"]
    by_answer = sampled(facts, SamplingConfig(max_per_relation=None, max_per_answer=1))
    assert {f.id.split("/")[0] for f in by_answer} == {"t0", "t1"}  # one tuple per answer string
    # one pattern per relation: exactly as before (one prompt per tuple)
    single = [f for f in facts if f.id.endswith("/0")]
    assert [f.id for f in sampled(single, SamplingConfig(max_per_relation=2))] == ["t0/0", "t1/0", "u0/0"]


def test_same_relation_partners_go_through_the_facts_own_pattern() -> None:
    """A partner through another paraphrase would not read the fact's template, so a unit carrying
    the template (relation-level, not fact-level) would look selective."""
    from bench.data.pararel import Fact
    from bench.tasks.knowledge_ablation.task import KnowledgeAblationConfig, _Controls

    def fact(tuple_id: str, pattern: int, relation: str, answer: str) -> Fact:
        return Fact(f"{tuple_id}/{pattern}", relation, "S", answer, f"S {pattern} is", f"[X] {pattern} [Y]")

    pool = [fact(f"t{i}", p, "P1", f"A{i}") for p in range(3) for i in range(4)]
    pool += [fact("u0", 0, "P2", "B0")]
    controls = _Controls.__new__(_Controls)  # the partner choice only; no model needed
    controls.pool = pool
    controls.config = KnowledgeAblationConfig(
        type="knowledge_ablation", description="", layers=[0], controls={"same_relation": 10}
    )
    target = pool[5]  # t1 through pattern 1
    partners = controls.same_relation(target)
    assert sorted(p.id for p in partners) == ["t0/1", "t2/1", "t3/1"]
    assert controls.same_relation(pool[-1]) == []  # no partner: reported, not drawn from another pattern
