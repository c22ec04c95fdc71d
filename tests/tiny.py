"""Tiny fixtures built from scratch: a word-level tokenizer, random models of each supported
architecture, a miniature data directory laid out like ../shared/data, and a model taught its facts.

The test suite's fixtures use these functions; scripts/check_install.sh runs this file with a
freshly installed lens-bench (`python tests/tiny.py OUT`) to get a model and data to run a task on.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

if TYPE_CHECKING:
    import pytest

    from bench.model.lens import Lens
    from bench.model.loading import LoadedModel

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

# the same tiny shape for every architecture (GPT-2 names its fields its own way)
_SHAPE = {"hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 3, "num_attention_heads": 2}
_GQA = {**_SHAPE, "num_key_value_heads": 1, "max_position_embeddings": 64}
ARCH_CONFIGS = {
    "llama": lambda v: LlamaConfig(vocab_size=v, **_GQA),
    "gemma2": lambda v: Gemma2Config(vocab_size=v, head_dim=8, **_GQA),
    "qwen2": lambda v: Qwen2Config(vocab_size=v, **_GQA),
    "gpt2": lambda v: GPT2Config(vocab_size=v, n_embd=16, n_inner=24, n_layer=3, n_head=2, n_positions=64),
    "gpt_neox": lambda v: GPTNeoXConfig(vocab_size=v, max_position_embeddings=64, **_SHAPE),
}


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


CORPUS_LINES = [
    "Paris is located in France . Berlin is located in Germany .",
    "Alice was born in Paris . Bob was born in Berlin . Rome is located in Italy .",
    "Carol was born in Rome , Dave was born in Oslo . Oslo is located in Norway .",
    "Madrid is located in Spain , Lisbon is located in Portugal .",
]


def write_pararel(root: Path, every_relation: bool = False) -> Path:
    """The miniature ParaRel: patterns/ and tuples/ of FACTS' relations; with ``every_relation``,
    the other ParaRel relations too, each with one false fact the taught model does not know (so a
    task that reads every relation runs, on FACTS' relations alone)."""
    from bench.data.pararel import RELATIONS

    false_fact = ("[X] is located in [Y] .", [("Oslo", "Paris")])
    others = {r: false_fact for r in RELATIONS if r not in FACTS} if every_relation else {}
    for relation, (pattern, pairs) in (FACTS | others).items():
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


def write_corpora(root: Path) -> Path:
    """WikiText-2 and UD English-EWT files made of the test vocabulary, beside the ParaRel folder."""
    wiki = root / "wikitext-2"
    wiki.mkdir(parents=True)
    for split, repeat in (("valid", 30), ("test", 10)):
        pages = [
            f" = Page {i} = \n \n {' '.join(CORPUS_LINES[i % 4 :] + CORPUS_LINES[: i % 4])} \n" for i in range(repeat)
        ]
        (wiki / f"{split}.txt").write_text("".join(pages))
    ud = root / "ud-english-ewt"
    ud.mkdir()
    for split in ("dev", "test"):
        (ud / f"en_ewt-ud-{split}.conllu").write_text(
            "".join(f"# sent_id = {i}\n# text = {line}\n1\t_\n\n" for i, line in enumerate(CORPUS_LINES))
        )
    return root


def taught_model(model_dir: Path, data_dir: Path) -> Path:
    """The tiny model fine-tuned on the miniature ParaRel until it knows every fact (in the cache)."""
    from bench.data.pararel import load_facts
    from bench.model.loading import load_model
    from bench.tasks.privacy_erasure.injection import InjectionConfig, inject

    facts = load_facts(data_dir, list(FACTS), 1, 10, 0)
    config = InjectionConfig(
        trainable="all", retain_weight=0, learning_rate=3e-2, batch_size=10, max_epochs=200, stop_when_learnt=1.0
    )
    injected = inject(load_model(str(model_dir)), facts, config, layer=0)
    assert injected.report["learnt"] == len(facts), injected.report
    return Path(injected.report["path"])


def random_sae_lens(loaded: LoadedModel, site: str) -> Lens:
    """A 2x-wide standard SAE of the site with seeded random weights, as the sae_lenses plugin wraps one."""
    from bench_sae_lenses import SAEFeatures
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    d = loaded.model.config.hidden_size
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=2 * d, metadata=SAEMetadata(hook_name=site)))
    with torch.no_grad():
        for parameter in sae.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    return SAEFeatures(loaded, site, sae, "random")


def install_fake_distribution(site: Path, dist_name: str, version: str, module: str, source: str) -> None:
    """Lay out what `pip install` leaves: the module and a dist-info whose entry point names it."""
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(source)
    dist = site / f"{module}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[lens_bench]\n{module} = {module}\n")


def use_plugin(site: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str) -> None:
    """Install a one-module plugin distribution into ``site`` and make this test's registry see it."""
    from bench.plugin.registry import plugins

    install_fake_distribution(site, module, "0.1", module, source)
    monkeypatch.syspath_prepend(str(site))
    plugins.cache_clear()


def main(out: Path) -> None:
    """OUT/data (ParaRel, WikiText, UD) and OUT/model, a tiny Llama that knows the ParaRel facts."""
    data = write_corpora(write_pararel(out / "data", every_relation=True))
    taught = taught_model(save_tiny_model("llama", out / "random-model"), data)
    shutil.copytree(taught, out / "model")
    print(f"tiny model: {out / 'model'}\ndata: {data}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
