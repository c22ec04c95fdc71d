"""Privacy erasure: the generator, the metrics by hand, FeatureEdit's exact edit, and a run end to end."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

from bench.errors import BenchError
from bench.model.lens import Lens
from bench.model.loading import LoadedModel
from bench.model.reference import AblationValue, UnitReference
from bench.model.sites import Site, n_layers, neuron_output_weight, writer_weight
from bench.tasks.privacy_erasure.methods import DEPN, FeatureEdit, KnowledgeNeurons, zeroed
from bench.tasks.privacy_erasure.people import RELATIONS, TEMPLATES, generate
from bench.tasks.privacy_erasure.scores import PromptScore, erased, share_erased, share_kept
from bench.tasks.privacy_erasure.targets import choose_targets, split_by_person
from bench.tasks.privacy_erasure.task import (
    BudgetConfig,
    PrivateDataConfig,
    _variants,
    at_budget,
    choose_variants,
    paired_at_budget,
    template_split,
)
from tests.conftest import run_cli
from tests.tiny import ARCH_CONFIGS, CORPUS_LINES


def test_generator_is_deterministic_and_covers_every_relation() -> None:
    first, again, other = generate(5, seed=0), generate(5, seed=0), generate(5, seed=1)
    assert first == again
    assert [p.fact for p in first] != [p.fact for p in other]
    assert len(first) == 5 * len(RELATIONS)
    assert len({p.fact.id for p in first}) == len(first)
    assert {p.fact.relation for p in first} == set(RELATIONS)
    assert all(len(TEMPLATES[r]) >= 8 for r in RELATIONS)  # 5 injected, 2 refinement, Gen


def test_held_out_templates_never_include_the_injection_template() -> None:
    for private in generate(10, seed=3):
        heldout = {f.pattern for f in private.heldout}
        assert private.fact.pattern not in heldout
        assert heldout | {private.fact.pattern} == set(TEMPLATES[private.fact.relation])
        assert all(f.answer == private.fact.answer and f.subject == private.fact.subject for f in private.heldout)
        assert all(not f.prompt.endswith(" ") and "[" not in f.prompt for f in (private.fact, *private.heldout))


@pytest.mark.parametrize(("injection", "refine"), [(1, 0), (1, 2), (2, 2), (3, 0), (5, 2)])
def test_each_template_of_a_fact_has_one_role(injection: int, refine: int) -> None:
    private = generate(4, seed=0)
    split = template_split(private, PrivateDataConfig(injection_templates=injection, refine_templates=refine))
    for p in private:
        injected, attribution, gen = (split.injected[p.fact.id], split.attribution[p.fact.id], split.gen[p.fact.id])
        assert injected[0] == attribution[0] == p.fact and len(injected) == injection
        assert len(attribution) == 1 + refine and gen
        patterns = [f.pattern for f in (*injected, *attribution[1:], *gen)]
        assert sorted(patterns) == sorted(TEMPLATES[p.fact.relation])  # every template, each once
    if (injection, refine) == (1, 0):  # the default: only the fact's own template is injected
        assert all(split.gen[p.fact.id] == list(p.heldout) for p in private)


def test_a_split_that_leaves_no_gen_template_is_refused() -> None:
    with pytest.raises(BenchError, match=r"no template for Gen in .*employer.*fewest templates a relation has is 10"):
        template_split(generate(2, seed=0), PrivateDataConfig(injection_templates=8, refine_templates=2))


def test_metrics_match_a_hand_computation() -> None:
    s = PromptScore
    # erased needs both: no longer greedy, and p below half of before
    assert erased(s(0.8, True), s(0.3, False), 0.5)
    assert not erased(s(0.8, True), s(0.3, True), 0.5)  # still greedy
    assert not erased(s(0.8, True), s(0.5, False), 0.5)  # 0.5 >= 0.4
    before = [s(0.8, True), s(0.6, True), s(0.9, False), s(0.5, True)]
    after = [s(0.1, False), s(0.5, True), s(0.0, False), s(0.2, False)]
    # only the 3 prompts known before count: erased are #0 (0.1 < 0.4) and #3 (0.2 < 0.25)
    assert share_erased(before, after, 0.5) == pytest.approx(2 / 3)
    assert share_kept(before, after) == pytest.approx(1 / 3)  # of #0, #1, #3 only #1 is still right
    assert share_erased([s(0.9, False)], [s(0.1, False)], 0.5) is None


class _Directions(Lens):
    """A lens whose units are given directions in the residual stream after a block."""

    def __init__(self, site: str, directions: torch.Tensor):
        self.site, self.directions = site, directions

    @property
    def n_units(self) -> int:
        return self.directions.shape[0]

    def encode(self, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return acts[self.site] @ self.directions.T

    def patch(self, acts: Mapping[str, torch.Tensor], units: torch.Tensor, new_units: torch.Tensor) -> torch.Tensor:
        return acts[self.site] + (new_units - units) @ self.directions

    def unit_directions(self, units: torch.Tensor) -> torch.Tensor:
        return self.directions[units]


def test_feature_edit_zero_rows_zeroes_exactly_the_rows_where_a_top_feature_is_large(tiny_llama: LoadedModel) -> None:
    d = tiny_llama.model.config.hidden_size
    directions = torch.zeros(3, d)
    directions[0, [1, 4]] = torch.tensor([3.0, -4.0])  # unit norm after scaling: 0.6, -0.8
    directions[1, [2, 7]] = torch.tensor([0.05, 1.0])  # 0.05 is below tau2 once normalized
    directions[2, 9] = 1.0  # not a top unit
    lens = _Directions("blocks.1.hook_resid_post", directions)
    scores = torch.tensor([[5.0, 4.0, -1.0]])
    weight = writer_weight(tiny_llama.model, Site.parse(lens.site))
    original = weight.detach().clone()
    method = FeatureEdit(top_k=2, mode="zero_rows", tau=0.4)  # 0.4 / sqrt(16) = 0.1
    assert method.unsupported(lens) is None
    with method.erase(tiny_llama, lens, scores) as edit:
        zero_rows = (weight == 0).all(1).nonzero().squeeze(1).tolist()
        assert zero_rows == [1, 4, 7]
        assert torch.equal(weight[[0, 2, 3, 5, 6, 8]], original[[0, 2, 3, 5, 6, 8]])
        assert edit["weights_zeroed"] == 3 * weight.shape[1]
    assert torch.equal(weight, original)  # restored on exit
    assert tiny_llama.model.model.layers[1].mlp.down_proj.weight.data_ptr() == weight.data_ptr()


@pytest.mark.parametrize("site", ["blocks.1.hook_mlp_out", "blocks.1.hook_attn_out"])
def test_feature_edit_projects_the_directions_out_of_the_writing_matrix(site: str, tiny_llama: LoadedModel) -> None:
    d = tiny_llama.model.config.hidden_size
    directions = torch.randn(3, d, generator=torch.Generator().manual_seed(0))
    lens = _Directions(site, directions)
    weight = writer_weight(tiny_llama.model, Site.parse(site))
    original = weight.detach().clone()
    assert FeatureEdit(top_k=2).edited(tiny_llama, lens) == []  # a weight edit sets nothing to a reference
    with FeatureEdit(top_k=2).erase(tiny_llama, lens, torch.tensor([[5.0, 4.0, -1.0]])):
        # the block writes nothing along the two top directions, and the rest of its output is kept
        torch.testing.assert_close(directions[:2] @ weight, torch.zeros(2, weight.shape[1]), atol=1e-5, rtol=0)
        q, _ = torch.linalg.qr(directions[:2].T)
        torch.testing.assert_close(weight, original - q @ (q.T @ original), atol=1e-5, rtol=1e-5)
    assert torch.equal(weight, original)


@pytest.mark.parametrize("reference", ["zero", "mean"])
@pytest.mark.parametrize("arch", sorted(ARCH_CONFIGS))
def test_feature_edit_at_the_residual_stream_removes_the_direction_for_every_later_reader(
    arch: str, reference: AblationValue, tiny_model_dirs, corpus_dir: Path
) -> None:
    """After a project edit at resid_post L, adding α·d to the stream at L (at every position but
    the first, the sink no edit touches) changes no logit, for any α: no later block, norm
    statistic or the unembedding reads d. Without the edit it does."""
    from bench.model.loading import load_model
    from bench.model.sites import hooked, stream_reading_norms

    loaded = load_model(str(tiny_model_dirs[arch]))
    with torch.no_grad():  # random norm scales, so that a γ-blind edit would show
        for name, module in loaded.model.named_modules():
            if "norm" in name or name.endswith(("ln_1", "ln_2", "ln_f")):
                module.weight.uniform_(0.5, 2.0)
    d = loaded.model.config.hidden_size
    direction = torch.randn(1, d, generator=torch.Generator().manual_seed(1))
    lens = _Directions("blocks.1.hook_resid_post", direction)
    ids = torch.tensor([[3, 5, 7, 9, 11]])
    after_sink = torch.ones(1, ids.shape[1], 1)
    after_sink[:, 0] = 0

    def logits(alpha: float) -> torch.Tensor:
        with hooked(loaded.model, {lens.site: lambda x: x + alpha * direction[0] * after_sink}), torch.no_grad():
            return loaded.model(input_ids=ids).logits

    base = logits(0.0)
    assert not torch.allclose(logits(5.0), base, atol=1e-3)  # the probe can fail: d matters unedited
    method = FeatureEdit(top_k=1)
    assert [(u.site, u.n_units) for u in method.edited(loaded, lens)] == [(lens.site, d)]  # the stream itself
    # the task hands the edit its site's reference value: the stream's WikiText mean, or 0
    values = [UnitReference.measure(loaded, site, reference, corpus_dir).mean for site in method.edited(loaded, lens)]
    with method.erase(loaded, lens, torch.tensor([[1.0]]), values) as edit:
        assert edit["norms_blinded"] == len(stream_reading_norms(loaded.model, 1))
        edited = logits(0.0)
        for alpha in (-7.0, 0.5, 30.0):
            torch.testing.assert_close(logits(alpha), edited, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits(0.0), base)  # restored on exit


def test_option_lists_sweep_a_grid_and_the_budget_picks_the_best_within_it() -> None:
    variants = _variants("feature_edit", {"top_k": [1, 5], "mode": "project"})
    assert [label for label, _ in variants] == ["feature_edit[top_k=1]", "feature_edit[top_k=5]"]
    assert variants[1][1] == {"top_k": 5, "mode": "project"}
    methods = {label: FeatureEdit(**options) for label, options in variants}
    value = lambda m: {"mean": m, "se": 0.0, "n": 10}  # noqa: E731
    metrics = {
        "rel.feature_edit[top_k=1]": value(0.2), "loc.feature_edit[top_k=1]": value(0.95),
        "ppl_ratio.feature_edit[top_k=1]": value(1.01),
        "rel.feature_edit[top_k=5]": value(0.9), "loc.feature_edit[top_k=5]": value(0.5),  # erases by breaking
        "ppl_ratio.feature_edit[top_k=5]": value(1.01),
    }  # fmt: skip
    chosen = choose_variants(metrics, methods, BudgetConfig())
    assert chosen == {"feature_edit": "feature_edit[top_k=1]"}
    # reported from the other half's metrics, whatever they say of the variant not chosen
    test = {**metrics, "rel.feature_edit[top_k=1]": value(0.1), "rel.feature_edit[top_k=5]": value(1.0)}
    reported = at_budget(test, chosen)
    assert reported["rel_at_budget.feature_edit"]["mean"] == 0.1
    assert reported["loc_at_budget.feature_edit"]["mean"] == 0.95
    metrics["loc.feature_edit[top_k=1]"] = value(0.8)
    chosen = choose_variants(metrics, methods, BudgetConfig())
    assert chosen == {"feature_edit": None}
    assert at_budget(test, chosen) == {"rel_at_budget.feature_edit": {"mean": 0.0, "se": 0.0, "n": 0}}


def test_methods_at_budget_are_compared_paired_over_the_same_targets() -> None:
    """The at-budget comparison pairs two methods' Rel target by target; a method with no variant
    within budget erases nothing; identical methods tie with p = 1."""
    relations = ["a", "a", "b", "b", "c", "c", "d", "d"]
    erased = [1, 1, 1, 0, 1, 1, 1, 0]
    rows = [
        {"id": f"f{i}", "relation": r, "methods": {"fe[k=1]": {"rel": e}, "kn[t=1]": {"rel": e}, "ab[k=1]": {"rel": 0}}}
        for i, (r, e) in enumerate(zip(relations, erased, strict=True))
    ]
    chosen = {"fe": "fe[k=1]", "kn": "kn[t=1]", "ab": "ab[k=1]", "depn": None}
    pairs = {(p["a"], p["b"]): p for p in paired_at_budget(rows, chosen, 2000, 0)}
    assert len(pairs) == 6 and pairs[("fe", "kn")]["diff"] == 0 and pairs[("fe", "kn")]["p"] == 1
    assert pairs[("fe", "ab")]["diff"] == 0.75 and pairs[("fe", "ab")]["p"] < 0.01
    assert pairs[("ab", "depn")]["diff"] == 0  # nothing erased by either
    assert all(p["p_holm"] >= p["p"] for p in pairs.values())


def _people(n: int, learnt_share: float = 1.0):
    private = generate(n, seed=0)
    return [p for i, p in enumerate(private) if (i * 7919) % 100 < learnt_share * 100]


def test_per_target_values_of_a_fixed_variant_pair_two_records() -> None:
    """scripts/paired_lenses.py pairs two privacy records (the lens fitted before and after the
    injection) through the task's item_values: per-target Rel/Gen/Loc of one variant, by relation."""
    from bench.tasks.privacy_erasure.outputs import item_values

    def item(target: str, relation: str, rel: float, gen: float | None) -> dict:
        return {
            "id": target,
            "relation": relation,
            "half": "dev",
            "methods": {"ablate_top_k[top_k=5]": {"rel": rel, "gen": gen, "loc": 0.5}},
        }

    record = {"items": [item("t1", "email", 1.0, None), item("t2", "bank", 0.0, 1.0)]}
    assert item_values(record, "rel.ablate_top_k[top_k=5]") == {"t1": ("email", 1.0), "t2": ("bank", 0.0)}
    assert item_values(record, "gen.ablate_top_k[top_k=5]") == {"t2": ("bank", 1.0)}  # where it was measured
    assert item_values(record, "rel.feature_edit[top_k=1]") == {}
    assert item_values(record, "rel_at_budget.ablate_top_k") is None  # its variant was chosen on one half
    assert item_values({"items": None}, "rel.ablate_top_k[top_k=5]") is None  # a compact copy


def test_targets_spread_over_people_and_relations_and_the_halves_share_no_person() -> None:
    learnt = _people(24)
    targets = choose_targets(learnt, 60, max_per_person=3, seed=0)
    assert len(targets) == 60 and len({t.fact.id for t in targets}) == 60
    per_person = Counter(t.person for t in targets)
    assert max(per_person.values()) <= 3 and len(per_person) == 24  # every person, none over the cap
    per_relation = Counter(t.fact.relation for t in targets)
    assert len(per_relation) == 6 and max(per_relation.values()) - min(per_relation.values()) <= 2  # balanced
    assert choose_targets(learnt, 60, 3, seed=0) == targets != choose_targets(learnt, 60, 3, seed=1)
    dev, test = split_by_person(targets, seed=0)
    assert not {t.person for t in dev} & {t.person for t in test}
    assert sorted(t.fact.id for t in dev + test) == sorted(t.fact.id for t in targets)
    assert abs(len({t.person for t in dev}) - len({t.person for t in test})) <= 1
    # fewer learnt facts than the cap allows: every one of them is a target
    few = _people(4, learnt_share=0.5)
    assert sorted(t.fact.id for t in choose_targets(few, 60, 6, 0)) == sorted(p.fact.id for p in few)


def test_neuron_methods_run_beside_every_lens(tiny_llama: LoadedModel) -> None:
    """Knowledge neurons and DEPN search the model's MLP neurons, never the lens's units: any lens
    gets them as baselines, at every block or at the lens's block."""
    from bench.plugin.registry import plugins

    lenses = plugins().lenses
    clusters = lenses.get("neuron_clusters").build(tiny_llama, "blocks.1.mlp.hook_post", {"max_tokens": 2000})
    basis = lenses.get("random").build(tiny_llama, "blocks.1.hook_resid_post", {})
    for lens in (clusters, basis):
        for method in (KnowledgeNeurons(), DEPN()):
            assert method.unsupported(lens) is None
            searched = method.searched(tiny_llama, lens)
            assert [b.site for b in searched] == [
                f"blocks.{i}.mlp.hook_post" for i in range(n_layers(tiny_llama.model))
            ]
        assert [b.site for b in DEPN(layers="lens").searched(tiny_llama, lens)] == ["blocks.1.mlp.hook_post"]


def test_neuron_methods_search_every_block(tiny_llama: LoadedModel) -> None:
    from bench.plugin.registry import plugins

    lens = plugins().lenses.get("mlp_neurons").build(tiny_llama, "blocks.1.mlp.hook_post", {})
    kn = KnowledgeNeurons(threshold=0.5)
    blocks = kn.searched(tiny_llama, lens)
    assert [b.site for b in blocks] == [f"blocks.{i}.mlp.hook_post" for i in range(n_layers(tiny_llama.model))]
    assert [b.site for b in KnowledgeNeurons(layers="lens").searched(tiny_llama, lens)] == [lens.site]
    width = blocks[0].n_units
    scores = torch.zeros(1, width * len(blocks))
    scores[0, 3], scores[0, width + 5] = 1.0, 0.9  # neuron 3 of block 0 and neuron 5 of block 1
    weight = neuron_output_weight(tiny_llama.model, 0)
    with kn.erase(tiny_llama, lens, scores) as edit:
        assert edit["neurons"] == ["0:3", "1:5"] and edit["weights_zeroed"] == 2 * weight.shape[0]
        assert weight[:, 3].abs().sum() == 0 and neuron_output_weight(tiny_llama.model, 1)[:, 5].abs().sum() == 0
    assert weight[:, 3].abs().sum() > 0

    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        clean = tiny_llama.model(ids).logits
        with DEPN(top_k=1).erase(tiny_llama, lens, scores) as edit:
            edited = tiny_llama.model(ids).logits
    assert edit["neurons"] == ["0:3"]  # block 0, below the lens's block
    assert torch.equal(edited[:, 0], clean[:, 0])  # the first position is never edited
    assert not torch.allclose(edited[:, 1:], clean[:, 1:])


def test_knowledge_neurons_refine_to_neurons_shared_by_prompts() -> None:
    scores = torch.tensor([[1.0, 0.5, 0.1, 0.0], [1.0, 0.1, 0.6, 0.0], [0.9, 0.3, 0.5, 1.0]])
    # >= 0.2 x row max: row0 {0,1}, row1 {0,2}, row2 {0,1,2,3}; in >= 70% of rows: {0} only... and 1, 2 in 2/3
    assert KnowledgeNeurons(threshold=0.2, refine_share=0.7).select(scores).tolist() == [0]
    assert KnowledgeNeurons(threshold=0.2, refine_share=0.6).select(scores).tolist() == [0, 2, 1]


def test_zeroed_columns_restore() -> None:
    weight = torch.arange(12.0).reshape(3, 4)
    with zeroed(weight, cols=torch.tensor([1, 3])) as count:
        assert weight[:, [1, 3]].abs().sum() == 0 and count == 6
    assert torch.equal(weight, torch.arange(12.0).reshape(3, 4))


def _char_model(folder: Path) -> Path:
    """A tiny Llama with a byte-level BPE trained on the private facts (names must tokenize)."""
    texts = [f"{f.prompt} {f.answer}." for p in generate(3, seed=0) for f in (p.fact, *p.heldout)]
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<eos>", "[UNK]"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts + CORPUS_LINES, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="[UNK]")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
    )  # fmt: skip
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


TINY_TASK = """\
type: privacy_erasure
description: tiny privacy erasure
data: {people: 3}
injection: {learning_rate: 0.01, batch_size: 6, max_epochs: 60}
methods:
  knowledge_neurons: {threshold: 0.2}
  depn: {top_k: 2}
  ablate_top_k: {top_k: [1, 2]}    # a sweep: one variant per value
attribution: {ig_steps: 4}
locality: {private: 4, pararel: 2, pararel_relations: [P17, P19], pararel_tuples_per_relation: 4}
perplexity: {max_tokens: 64, max_length: 32, edits: 1}
layers: [1]
limit: 4
bootstrap: {resamples: 50}
"""


def _methods_of(record: dict) -> dict:
    from bench.plugin.registry import plugins

    registry = plugins().erasure_methods
    return {label: registry.get(label.split("[")[0])(**m["options"]) for label, m in record["methods"].items()}


def test_privacy_erasure_runs_end_to_end(tmp_path: Path, corpus_dir: Path, capsys: pytest.CaptureFixture) -> None:
    model = _char_model(tmp_path / "model")
    task = tmp_path / "privacy_erasure.yaml"
    task.write_text(TINY_TASK)
    assert run_cli(model, task, corpus_dir, tmp_path / "out") == 0
    # the run prints each method at the budget, their paired differences and every variant
    printed = capsys.readouterr().out
    for shown in (
        "At the budget",
        "| depn ",
        "knowledge_neurons - depn",
        "the erasure frontier",
        "ablate_top_k[top_k=2]",
    ):
        assert shown in printed
    assert "rel.ablate_top_k" not in printed  # not the generic hundred-column table
    [path] = (tmp_path / "out" / "privacy_erasure").rglob("*.json")
    record = json.loads(path.read_text())
    injection = record["injection"]
    assert injection["learnt"] > 0 and injection["of"] == 18
    assert record["clean_model"]["greedy_correct"] == 0
    for method in ("knowledge_neurons", "depn", "ablate_top_k[top_k=1]", "ablate_top_k[top_k=2]"):
        for metric in ("rel", "loc", "delta_ppl"):
            value = record["metrics"][f"{metric}.{method}"]
            assert value["n"] >= 1
            assert (0 <= value["mean"] <= 1) or metric == "delta_ppl"
    assert record["methods_skipped"] == {}
    assert record["schema"] == 4
    for item in record["items"]:  # neurons found in any block, named layer:index
        for method in ("knowledge_neurons", "depn"):
            neurons = item["methods"][method]["edit"]["neurons"]
            assert all(n.split(":")[0] in {"0", "1"} for n in neurons)
    for method in ("knowledge_neurons", "depn", "ablate_top_k"):  # the headline: best Rel within the side-effect budget
        assert 0 <= record["metrics"][f"rel_at_budget.{method}"]["mean"] <= 1
        assert method in record["budget"]["chosen"]
    assert len(record["items"]) == min(4, injection["learnt"])
    # variants chosen on the dev half's people, reported on the others'
    dev_people = set(record["dev"]["people"])
    assert {item["half"] for item in record["items"]} == {"dev", "test"}
    assert all((item["half"] == "dev") == (item["id"].split("/")[1] in dev_people) for item in record["items"])
    budget = BudgetConfig(**record["budget"]["config"])
    assert record["budget"]["chosen"] == choose_variants(record["dev"]["metrics"], _methods_of(record), budget)
    for method, label in record["budget"]["chosen"].items():
        if label is not None:
            assert record["metrics"][f"rel_at_budget.{method}"] == record["metrics"][f"rel.{label}"]
    pairs = record["budget"]["paired_rel"]  # every two methods at the budget, over the same test targets
    assert {(p["a"], p["b"]) for p in pairs} == set(itertools.combinations(record["budget"]["chosen"], 2))
    assert all(p["n"] == sum(item["half"] == "test" for item in record["items"]) for p in pairs)
    # the leaderboard draws each method's sweep as Rel against side effects
    from bench.cli import main

    board = tmp_path / "board" / "README.md"
    assert main(["leaderboard", "--results-dir", str(tmp_path / "out"), "--output", str(board)]) == 0
    assert (board.parent / "erasure_frontier.png").stat().st_size > 0
    assert "erasure_frontier.png" in board.read_text()
    assert "Rel at the budget paired over the same" in board.read_text()  # the methods' paired comparison
    assert "knowledge_neurons - depn" in board.read_text()
    # the injected model is cached: a second run (forced) trains nothing and agrees
    assert run_cli(model, task, corpus_dir, tmp_path / "out", "--force") == 0
    again = json.loads(path.read_text())
    assert again["injection"]["seconds"] == injection["seconds"]
    assert again["injection"]["weights_sha256"] == injection["weights_sha256"] != injection["base_weights_sha256"]
    assert again["metrics"] == record["metrics"]


def test_neuron_baselines_are_computed_once_per_layer_whatever_the_lens(
    tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Knowledge neurons and DEPN never read the lens's units: a second lens at the same layer
    reads their results from the first run instead of attributing and editing again."""
    from bench.tasks.privacy_erasure import task as task_module

    model = _char_model(tmp_path / "model")
    task = tmp_path / "privacy_erasure.yaml"
    task.write_text(TINY_TASK)
    assert run_cli(model, task, corpus_dir, tmp_path / "out") == 0
    computed = task_module._results

    def lens_methods_only(job, methods):
        assert all(method.uses_lens for method in methods.values()), "a neuron baseline was recomputed"
        return computed(job, methods)

    monkeypatch.setattr(task_module, "_results", lens_methods_only)
    assert run_cli(model, task, corpus_dir, tmp_path / "out", units="random") == 0
    neurons, basis = (
        json.loads(next((tmp_path / "out" / "privacy_erasure").rglob(f"{lens}/*.json")).read_text())
        for lens in ("mlp_neurons", "random")
    )
    for a, b in zip(neurons["items"], basis["items"], strict=True):
        for method in ("knowledge_neurons", "depn"):
            assert a["methods"][method] == b["methods"][method]
    assert basis["metrics"]["rel_at_budget.depn"] == neurons["metrics"]["rel_at_budget.depn"]


def test_the_fine_tuning_sees_every_injection_template_and_gen_none(tmp_path: Path, corpus_dir: Path) -> None:
    model = _char_model(tmp_path / "model")
    task = tmp_path / "privacy_erasure.yaml"
    task.write_text(TINY_TASK.replace("data: {people: 3}", "data: {people: 3, injection_templates: 2}"))
    assert run_cli(model, task, corpus_dir, tmp_path / "out", "--limit", "2") == 0
    [path] = (tmp_path / "out" / "privacy_erasure").rglob("*.json")
    record = json.loads(path.read_text())
    assert record["injection"]["of"] == 2 * 3 * len(RELATIONS)  # two prompts of each of the 18 facts
    assert record["task"]["config"]["data"]["injection_templates"] == 2


@pytest.mark.parametrize(("trainable", "window", "changed"), [("mlp", 0, {"layers.1.mlp"}), ("blocks", 1, {"layers."})])
def test_injection_trains_only_the_configured_weights(
    trainable, window, changed, tiny_llama: LoadedModel, corpus_dir: Path
) -> None:
    from bench.tasks.privacy_erasure.injection import InjectionConfig, inject

    facts = [p.fact for p in generate(2, seed=0)]
    config = InjectionConfig(trainable=trainable, window=window, learning_rate=1e-2, max_epochs=2, stop_when_learnt=1.0)
    injected = inject(tiny_llama, facts, config, layer=1, data_dir=corpus_dir)
    assert all(epoch["retain_kl"] >= 0 for epoch in injected.report["history"])  # the KL term ran
    assert injected.report["trained"]["blocks"] == ([1] if window == 0 else [0, 1, 2][: n_layers(tiny_llama.model)])
    after = dict(injected.loaded.model.named_parameters())
    moved = {name for name, before in tiny_llama.model.named_parameters() if not torch.equal(before, after[name])}
    assert moved, "the injection trained nothing"
    assert all(any(part in name for part in changed) for name in moved), moved
    if trainable == "mlp":  # every MLP weight of block 1 moved, nothing else did
        assert moved == {n for n, _ in tiny_llama.model.named_parameters() if n.startswith("model.layers.1.mlp.")}


def test_the_retain_windows_are_whole_windows_of_wikitext_valid_as_many_as_it_holds(
    tiny_llama: LoadedModel, corpus_dir: Path
) -> None:
    """The KL term's windows come from the validation split (perplexity is measured on test): up to
    the pool, fewer where the split is short, never a partial window; an empty split is an error."""
    from bench.errors import BenchError
    from bench.model.text_kl import wikitext_tokens
    from bench.tasks.privacy_erasure.injection import InjectionConfig, retain_text

    config = InjectionConfig(retain_pool=10**6, retain_length=8)
    windows = retain_text(tiny_llama, config, corpus_dir)
    valid = wikitext_tokens(corpus_dir, tiny_llama.tokenizer, 10**9, "valid")
    assert windows.shape == (len(valid) // 8, 8)
    assert torch.equal(windows.flatten(), valid[: windows.numel()])
    assert retain_text(tiny_llama, config.model_copy(update={"retain_pool": 2}), corpus_dir).shape == (2, 8)
    long_windows = config.model_copy(update={"retain_length": len(valid) + 1})
    with pytest.raises(BenchError, match=r"WikiText-2 valid has \d+ tokens, fewer than"):
        retain_text(tiny_llama, long_windows, corpus_dir)


def test_feature_edit_erases_a_fact_planted_on_one_feature_and_keeps_the_others(tiny_llama: LoadedModel) -> None:
    """Six facts, each stored by its own direction: the prompt's last (trigger) token writes c·dᵢ
    into the stream and the answer's unembedding reads dᵢ. FeatureEdit on fact 0's feature (at
    resid_post of a middle block) erases fact 0 and keeps the five others (Loc = 1)."""
    from bench.model.scoring import Encoded, score_items
    from bench.tasks.privacy_erasure.scores import share_erased, share_kept

    model = tiny_llama.model
    embed, unembed = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if unembed.data_ptr() == embed.data_ptr():
        pytest.skip("tied embeddings: a planted write and read would share one row")
    d_model = model.config.hidden_size
    generator = torch.Generator().manual_seed(0)
    directions = torch.linalg.qr(torch.randn(d_model, 6, generator=generator))[0].T  # orthonormal rows
    triggers, answers = [7, 8, 9, 10, 12, 13], [20, 21, 22, 23, 24, 25]
    with torch.no_grad():
        for d, trigger, answer in zip(directions, triggers, answers, strict=True):
            embed[trigger] += 40.0 * d  # the fact is written by its prompt ...
            unembed[answer] += 30.0 * d / model.model.norm.weight  # ... and read by its answer's logit
    facts = [Encoded((3, 5, trigger), (answer,)) for trigger, answer in zip(triggers, answers, strict=True)]
    before = [PromptScore(*s) for s in score_items(tiny_llama, facts, 8)]
    assert all(s.greedy_correct for s in before)  # every planted fact is known

    distractors = torch.randn(3, d_model, generator=generator)
    lens = _Directions("blocks.1.hook_resid_post", torch.cat([directions[:1], distractors]))
    scores = torch.tensor([[9.0, 1.0, 0.5, 0.1]])  # attribution picks fact 0's feature
    with FeatureEdit(top_k=1).erase(tiny_llama, lens, scores) as edit:
        after = [PromptScore(*s) for s in score_items(tiny_llama, facts, 8)]
    assert edit["units"] == [0]
    assert share_erased(before[:1], after[:1], 0.5) == 1.0  # Rel
    assert share_kept(before[1:], after[1:]) == 1.0  # Loc


def test_activation_edits_set_units_to_the_reference_value(tiny_llama: LoadedModel) -> None:
    """ablate_top_k and DEPN remove a unit by setting it to the value it is attributed from (the
    reference), at every position but the first; without values, to 0."""
    from bench.model.interventions import unit_mask, units_ablated_at
    from bench.plugin.registry import plugins
    from bench.tasks.privacy_erasure.methods import AblateTopK

    lens = plugins().lenses.get("mlp_neurons").build(tiny_llama, "blocks.1.mlp.hook_post", {})
    ids = torch.tensor([[1, 2, 3, 4]])
    scores = torch.zeros(1, lens.n_units)
    scores[0, 5] = 1.0
    value = torch.full((lens.n_units,), 0.7)

    def logits(edit) -> torch.Tensor:
        with torch.no_grad(), edit:
            return tiny_llama.model(ids).logits

    mask = unit_mask(lens.n_units, torch.tensor([5]))
    at_value = logits(units_ablated_at(tiny_llama, lens, mask, "all_but_first", value))
    at_zero = logits(units_ablated_at(tiny_llama, lens, mask, "all_but_first"))
    assert not torch.allclose(at_value, at_zero)
    torch.testing.assert_close(logits(AblateTopK(top_k=1).erase(tiny_llama, lens, scores, [value])), at_value)
    torch.testing.assert_close(logits(AblateTopK(top_k=1).erase(tiny_llama, lens, scores)), at_zero)
    blocks = DEPN(top_k=1, layers="lens").searched(tiny_llama, lens)
    depn = logits(DEPN(top_k=1, layers="lens").erase(tiny_llama, lens, scores, [value] * len(blocks)))
    torch.testing.assert_close(depn, at_value)


def test_the_run_summary_says_when_a_metric_was_measured_on_fewer_targets() -> None:
    from bench.tasks.privacy_erasure.summary import run_summary

    metric = {"mean": 0.5, "se": 0.1, "n": 10, "clusters": 5}
    record = {
        "lens": {"name": "sae_post_mlp", "site": "blocks.1.hook_resid_post"},
        "injection": {"learnt": 18, "of": 18},
        "splits": {"dev_targets": 10, "test_targets": 10},
        "perplexity": {"injection_ratio": 1.0},
        "lens_fit": {"model": "injected"},
        "budget": {"config": {"min_loc": 0.9, "max_ppl_ratio": 1.05}, "chosen": {"ablate_top_k": None}},
        "methods": {"ablate_top_k[top_k=1]": {}},
        "metrics": {
            "rel.ablate_top_k[top_k=1]": metric,
            "gen.ablate_top_k[top_k=1]": {**metric, "n": 4, "clusters": 2},  # held-out templates answered by 4
        },
    }
    row = next(line for line in run_summary(record).splitlines() if line.startswith("| ablate_top_k[top_k=1]"))
    assert row.count("(n=4 of 10)") == 1 and "none within budget" in run_summary(record)
