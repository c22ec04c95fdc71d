"""Sparse probing: token alignment, and a planted unit found by the 1-sparse probe."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from tqdm import tqdm
from transformers import PreTrainedTokenizerFast

from bench.data.ud import Word, last_subtokens, load_sentences
from bench.engine.context import TaskContext
from bench.engine.records import RecordSlot
from bench.errors import BenchError
from bench.model.lens import Lens
from bench.plugin.registry import plugins
from bench.tasks.sparse_probing.task import (
    SparseProbingConfig,
    extreme_tokens,
    held_out_groups,
    random_basis,
    run,
    token_dataset,
)
from tests.conftest import run_cli
from tests.tiny import FACTS

NAMES = sorted({name for _, pairs in FACTS.values() for pair in pairs for name in pair})


def test_word_label_goes_to_its_last_subtoken() -> None:
    vocab = {t: i for i, t in enumerate(["[UNK]", "Ber", "##lin", "is", "nice", "."])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok)
    text = "Berlin is nice."
    enc = tokenizer(text, return_offsets_mapping=True)
    assert tokenizer.convert_ids_to_tokens(enc["input_ids"]) == ["Ber", "##lin", "is", "nice", "."]
    words = [
        Word("Berlin", 0, 6, "PROPN", {}, "nsubj"),
        Word("is", 7, 9, "AUX", {}, "cop"),
        Word("nice", 10, 14, "ADJ", {}, "root"),
        Word(".", 14, 15, "PUNCT", {}, "punct"),
    ]
    assert last_subtokens(words, enc["offset_mapping"]) == [1, 2, 3, 4]
    assert last_subtokens([Word("x", 20, 21, "X", {}, "dep")], enc["offset_mapping"]) == [None]


def conllu_sentence(i: int, subject: str, verb: list[str], obj: str) -> str:
    words = [(subject, "PROPN", "_", "nsubj:pass")] + [
        (v, u, f, d)
        for v, u, f, d in [
            (verb[0], "AUX", "Tense=Pres" if verb[0] == "is" else "Tense=Past", "aux:pass"),
            (verb[1], "VERB", "Tense=Past|VerbForm=Part", "root"),
            ("in", "ADP", "_", "case"),
        ]
    ]
    words += [(obj, "PROPN", "_", "obl"), (".", "PUNCT", "_", "punct")]
    text = " ".join(w for w, *_ in words[:-1]) + " ."
    lines = [f"# sent_id = s{i}", f"# text = {text}"]
    lines += [f"{j}\t{w}\t{w}\t{u}\t_\t{f}\t0\t{d}\t_\t_" for j, (w, u, f, d) in enumerate(words, 1)]
    return "\n".join(lines) + "\n\n"


@pytest.fixture
def ud_dir(corpus_dir):
    sentences = [conllu_sentence(i, s, ["is", "located"], o) for i, (s, o) in enumerate(FACTS["P17"][1])]
    sentences += [conllu_sentence(100 + i, s, ["was", "born"], o) for i, (s, o) in enumerate(FACTS["P19"][1])]
    (corpus_dir / "ud-english-ewt" / "en_ewt-ud-dev.conllu").write_text("".join(sentences * 8))
    return corpus_dir


class NameDetector(Lens):
    """Unit 0 is the planted 'proper name' embedding dimension; the rest are text-independent noise."""

    site = "blocks.0.hook_resid_pre"
    n_units = 12

    def encode(self, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        h = acts[self.site]
        noise = torch.rand(*h.shape[:-1], self.n_units - 1, generator=torch.Generator().manual_seed(0))
        return torch.cat([h[..., :1], noise], dim=-1)

    def patch(self, acts, units, new_units):
        return acts[self.site]


@pytest.mark.parametrize("sign", [1.0, -1.0])  # the unit fires on names, or everywhere but on names
def test_one_sparse_probe_finds_the_planted_unit(tiny_llama, ud_dir, tmp_path, sign: float) -> None:
    with torch.no_grad():
        embedding = tiny_llama.model.get_input_embeddings().weight
        embedding[:, 0] = 0.0 if sign > 0 else 10.0
        for name in NAMES:
            embedding[tiny_llama.tokenizer.convert_tokens_to_ids(name), 0] = 10.0 if sign > 0 else 0.0
    assert len(load_sentences(ud_dir, "dev")) == 80
    config = SparseProbingConfig.model_validate(
        {
            "type": "sparse_probing",
            "description": "t",
            "layers": [0],
            "prompts": None,
            "k": [1, 2, 4],
            "tokens": {"features": ["upos:PROPN", "upos:VERB"]},
            "max_per_class": 100,
            "bootstrap": {"resamples": 20},
        }
    )
    slot = RecordSlot(tmp_path, {"task": {"name": "sp"}, "model": {"id": "m"}, "lens": {"name": "n", "site": "s"}})
    ctx = TaskContext(
        tiny_llama, NameDetector(), config, 16, ud_dir, slot, lambda d, t, i: tqdm(total=t, disable=True), plugins()
    )
    result = run(ctx)
    propn = next(item for item in result["items"] if item["id"] == "upos:PROPN")
    assert propn["curve"]["1"]["units"] == [0]
    assert propn["curve"]["1"]["f1"] > 0.95 and propn["curve"]["1"]["auroc"] > 0.95
    assert propn["dedicated_unit"]["unit"] == 0 and set(propn["dedicated_unit"]["top_tokens"]) <= set(NAMES)
    assert propn["dedicated_unit"]["direction"] == ("higher" if sign > 0 else "lower")
    assert len(propn["dedicated_unit"]["top_values"]) == 10
    verb = next(item for item in result["items"] if item["id"] == "upos:VERB")
    assert verb["curve"]["1"]["f1"] < 0.9  # no unit is planted for verbs: noise cannot recover them
    # no prompt features in this task; floor and ceiling beside every row
    assert set(result["metrics"]) == {"f1@1", "f1_tokens@1", "f1_random_basis@1", "f1_dense"}
    assert propn["f1_dense"] > 0.95  # the site holds the planted dimension: a dense probe reads it
    assert set(propn["f1_random_basis"]) == {"1", "2", "4"}
    floors = [item["f1_random_basis"]["1"] for item in result["items"]]
    assert result["metrics"]["f1_random_basis@1"]["mean"] == pytest.approx(np.mean(floors))
    assert result["metrics"]["f1@1"] == result["metrics"]["f1_tokens@1"]
    assert result["curves"]["upos:PROPN"]["1"] > 0.95


def test_extreme_tokens_say_when_the_list_is_a_pick_among_ties() -> None:
    values = np.array([0.0, 0.0, 3.0, 0.0, 1.0, 0.0])
    texts = ["a", "b", "c", "d", "e", "f"]
    higher = extreme_tokens(values, texts, 1.0, 2)
    assert higher == {"top_tokens": ["c", "e"], "top_values": [3.0, 1.0], "tied_with_last": 1}
    # the bottom of a feature that is 0 on most tokens: the two listed are 2 of 4 tied at 0
    lower = extreme_tokens(values, texts, -1.0, 2)
    assert lower["top_values"] == [0.0, 0.0] and lower["tied_with_last"] == 4


@pytest.mark.parametrize("skip", [True, False])
def test_words_on_the_first_position_are_left_out_by_default(tiny_llama, ud_dir, tmp_path, skip: bool) -> None:
    config = SparseProbingConfig.model_validate(
        {"type": "sparse_probing", "description": "t", "layers": [0], "tokens": {"skip_first_token": skip}}
    )
    slot = RecordSlot(tmp_path, {"task": {"name": "sp"}, "model": {"id": "m"}, "lens": {"name": "n", "site": "s"}})
    ctx = TaskContext(
        tiny_llama, NameDetector(), config, 16, ud_dir, slot, lambda d, t, i: tqdm(total=t, disable=True), plugins()
    )
    data = token_dataset(ctx, config)
    sentences = load_sentences(ud_dir, "dev")
    every_word = sum(len(s.words) for s in sentences)  # each test word is one token of the tiny vocabulary
    n = every_word - (len(sentences) if skip else 0)
    assert len(data.acts) == len(data.texts) == len(data.labels["upos:PROPN"]) == len(data.test) == n
    assert data.labels["upos:PROPN"].sum() == (1 if skip else 2) * len(sentences)  # subject first, object last
    # whole sentences are held out (24 of the 80): every row of a sentence is on one side
    assert data.held_out == {"sentences": 24, "of": 80}
    by_sentence = data.test.reshape(len(sentences), -1)  # every test sentence has the same number of words
    assert by_sentence.sum() == 24 * by_sentence.shape[1]
    assert (by_sentence.all(1) | ~by_sentence.any(1)).all()


def test_held_out_groups_keeps_every_stratum_on_both_sides() -> None:
    relations = np.repeat(["P17", "P19", "P36"], [4, 6, 20])
    n_patterns = np.repeat([2, 3, 10], [4, 6, 20])
    patterns = np.array([f"{r}/{i % n}" for i, (r, n) in enumerate(zip(relations, n_patterns, strict=True))])
    test = held_out_groups(patterns, 0.3, seed=0, strata=relations)
    for relation, n_patterns, n_test in (("P17", 2, 1), ("P19", 3, 1), ("P36", 10, 3)):
        mine = relations == relation
        assert len(set(patterns[mine & test])) == n_test and len(set(patterns[mine & ~test])) == n_patterns - n_test
    assert not set(patterns[test]) & set(patterns[~test])  # a pattern is never on both sides
    with pytest.raises(BenchError, match="single group"):
        held_out_groups(np.array(["a", "a"]), 0.3, seed=0)


@pytest.mark.parametrize("units", ["mlp_neurons", "neuron_clusters"])
def test_sparse_probing_through_the_cli_and_leaderboard(tmp_path, tiny_model_dirs, ud_dir, units: str) -> None:
    from bench.cli import main

    for relation, pattern in (("P17", "[X] , which is located in [Y] ."), ("P19", "[X] is a native of [Y] .")):
        with (ud_dir / "pararel" / "patterns" / f"{relation}.jsonl").open("a") as f:
            f.write(json.dumps({"pattern": pattern}) + "\n")
    task = tmp_path / "probe.yaml"
    task.write_text(
        "type: sparse_probing\ndescription: t\nlayers: [1]\nk: [1, 2]\nmax_per_class: 50\n"
        "tokens: {features: ['upos:PROPN', 'upos:ADP']}\nprompts: {relations: [P17, P19], prompts_per_relation: 6}\n"
    )
    results, board = tmp_path / "results", tmp_path / "board" / "README.md"
    options = ["--lens-option", "max_tokens=2000"] if units == "neuron_clusters" else []
    assert run_cli(tiny_model_dirs["llama"], task, ud_dir, results, *options, units=units) == 0
    assert main(["leaderboard", "--results-dir", str(results), "--output", str(board)]) == 0
    text = board.read_text()
    assert "## probe" in text and "| mean F1@1" in text and "sparse_probing_f1.png" in text
    assert "| F1 UD tokens@1" in text  # the relations have too few tiny facts to be probed
    (record,) = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    held_out = record["held_out"]["patterns"]  # one of each relation's two patterns
    assert sorted(p.split("/")[0] for p in held_out) == ["P17", "P19"]
    assert (board.parent / "sparse_probing_f1.png").stat().st_size > 1000


def test_the_floor_basis_is_orthonormal_and_the_same_for_every_lens_at_a_site() -> None:
    q = random_basis(24, seed=0)
    np.testing.assert_allclose(q.T @ q, np.eye(24), atol=1e-10)
    np.testing.assert_array_equal(q, random_basis(24, seed=0))
