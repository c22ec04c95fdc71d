"""Shared fixtures: tiny random models of each supported architecture, a word-level
tokenizer, a miniature ParaRel folder, and an isolated cache."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

from bench.model.loading import LoadedModel, load_model
from bench.plugin.registry import plugins

pytest_plugins = ["pytester"]

FACTS = {
    "P17": (
        "[X] is located in [Y] .",
        [
            ("Paris", "France"),
            ("Berlin", "Germany"),
            ("Rome", "Italy"),
            ("Madrid", "Spain"),
            ("Lisbon", "Portugal"),
            ("Oslo", "Norway"),
        ],
    ),
    "P19": (
        "[X] was born in [Y].",
        [("Alice", "Paris"), ("Bob", "Berlin"), ("Carol", "Rome"), ("Dave", "Oslo")],
    ),
}
WORDS = sorted(
    {w for pattern, pairs in FACTS.values() for pair in pairs for w in pair}
    | set(["is", "located", "in", "was", "born", ".", "[UNK]", "<pad>", ","])
)

ARCH_CONFIGS = {
    "llama": lambda v: LlamaConfig(
        vocab_size=v,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    ),
    "gemma2": lambda v: Gemma2Config(
        vocab_size=v,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=64,
    ),
    "gpt2": lambda v: GPT2Config(vocab_size=v, n_embd=16, n_inner=24, n_layer=3, n_head=2, n_positions=64),
    "gpt_neox": lambda v: GPTNeoXConfig(
        vocab_size=v,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=3,
        num_attention_heads=2,
        max_position_embeddings=64,
    ),
}


@pytest.fixture(autouse=True)
def restore_environment() -> Iterator[None]:
    """`bench run` publishes --data-dir in os.environ (for plugins); keep that from leaking across tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("LENS_BENCH_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def fresh_plugins() -> None:
    plugins.cache_clear()


def run_cli(model: Path, task: Path, data: Path, output: Path, *extra: str, units: str = "mlp_neurons") -> int:
    """`bench run` on a test model, task, data directory and output folder."""
    from bench.cli import main

    return main(
        ["run", "--model", str(model), "--units", units, "--task", str(task), "--data-dir", str(data),
         "--output-dir", str(output), *extra]
    )  # fmt: skip


def make_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {word: i for i, word in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="<pad>", eos_token="<eos>")


def save_tiny_model(arch: str, folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    tokenizer = make_tokenizer()
    model = AutoModelForCausalLM.from_config(ARCH_CONFIGS[arch](len(tokenizer)))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {arch: save_tiny_model(arch, tmp_path_factory.mktemp(arch)) for arch in ARCH_CONFIGS}


@pytest.fixture
def tiny_llama(tiny_model_dirs: dict[str, Path]) -> LoadedModel:
    return load_model(str(tiny_model_dirs["llama"]))


@pytest.fixture
def pararel_dir(tmp_path: Path) -> Path:
    """A miniature data directory laid out like ../shared/data."""
    root = tmp_path / "data"
    for relation, (pattern, pairs) in FACTS.items():
        for kind, rows in (
            ("patterns", [{"pattern": pattern}]),
            (
                "tuples",
                [{"sub_label": s, "obj_label": o, "uuid": f"{relation}-{i}"} for i, (s, o) in enumerate(pairs)],
            ),
        ):
            path = root / "pararel" / kind / f"{relation}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


TINY_TASK = """\
type: knowledge_ablation
description: ΔProb on a miniature ParaRel, every fact kept (the model is random)
data: {relations: [P17, P19], tuples_per_relation: 10}
filter: {greedy_correct: false, min_prob: null}
attribution: {method: integrated_gradients, ig_steps: 4}
selection: {k: [1, 3]}
controls: {unrelated: 3, kl_windows: 0}   # the KL control needs WikiText (corpus_dir)
layers: [1]
bootstrap: {resamples: 50}
seed: 0
"""


@pytest.fixture
def tiny_task(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_ablation.yaml"
    path.write_text(TINY_TASK)
    return path


CORPUS_LINES = [
    "Paris is located in France . Berlin is located in Germany .",
    "Alice was born in Paris . Bob was born in Berlin . Rome is located in Italy .",
    "Carol was born in Rome , Dave was born in Oslo . Oslo is located in Norway .",
    "Madrid is located in Spain , Lisbon is located in Portugal .",
]


@pytest.fixture
def corpus_dir(pararel_dir: Path) -> Path:
    """The miniature data directory, with WikiText-2 and UD English-EWT files made of the test vocabulary."""
    wiki = pararel_dir / "wikitext-2"
    wiki.mkdir()
    for split, repeat in (("valid", 30), ("test", 10)):
        pages = [
            f" = Page {i} = \n \n {' '.join(CORPUS_LINES[i % 4 :] + CORPUS_LINES[: i % 4])} \n" for i in range(repeat)
        ]
        (wiki / f"{split}.txt").write_text("".join(pages))
    ud = pararel_dir / "ud-english-ewt"
    ud.mkdir()
    for split in ("dev", "test"):
        (ud / f"en_ewt-ud-{split}.conllu").write_text(
            "".join(f"# sent_id = {i}\n# text = {line}\n1\t_\n\n" for i, line in enumerate(CORPUS_LINES))
        )
    return pararel_dir


@pytest.fixture
def planted_llama(tiny_llama: LoadedModel) -> LoadedModel:
    """The tiny Llama with embedding dimension 0 planted: 10 on the token 'Paris', 0 on every other token."""
    paris = tiny_llama.tokenizer.convert_tokens_to_ids("Paris")
    with torch.no_grad():
        embedding = tiny_llama.model.get_input_embeddings().weight
        embedding[:, 0] = 0.0
        embedding[paris, 0] = 10.0
    return tiny_llama
