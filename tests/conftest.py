"""Shared fixtures: tiny random models of each supported architecture, a word-level
tokenizer, a miniature ParaRel folder, and an isolated cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bench.model.loading import LoadedModel, load_model
from bench.paths import ALLOW_POOR_SAE_ENV
from bench.plugin.registry import plugins
from tests import tiny
from tests.tiny import ARCH_CONFIGS, install_fake_distribution, save_tiny_model, write_corpora, write_pararel

pytest_plugins = ["pytester"]


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
def tiny_saes_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """SAEs trained in a test on 2,000 tokens explain little of anything; the tests that use them check
    mechanics, not quality. tests/test_sae_quality_gate.py turns the gate back on."""
    monkeypatch.setenv(ALLOW_POOR_SAE_ENV, "1")


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


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {arch: save_tiny_model(arch, tmp_path_factory.mktemp(arch)) for arch in ARCH_CONFIGS}


@pytest.fixture
def tiny_llama(tiny_model_dirs: dict[str, Path]) -> LoadedModel:
    return load_model(str(tiny_model_dirs["llama"]))


@pytest.fixture
def pararel_dir(tmp_path: Path) -> Path:
    """A miniature data directory laid out like ../shared/data."""
    return write_pararel(tmp_path / "data")


TINY_TASK = """\
type: knowledge_ablation
description: ΔProb on a miniature ParaRel, every fact kept (the model is random)
data: {relations: [P17, P19], tuples_per_relation: 10}
filter: {greedy_correct: false, min_prob: null}
attribution: {method: integrated_gradients, ig_steps: 4}
selection: {k: [1, 3]}
ablation: {value: zero}                   # the mean rule's reference needs WikiText (corpus_dir)
controls: {unrelated: 3, kl_windows: 0}   # so does the KL control
layers: [1]
bootstrap: {resamples: 50}
seed: 0
"""


@pytest.fixture
def tiny_task(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_ablation.yaml"
    path.write_text(TINY_TASK)
    return path


@pytest.fixture
def corpus_dir(pararel_dir: Path) -> Path:
    """The miniature data directory, with WikiText-2 and UD English-EWT files made of the test vocabulary."""
    return write_corpora(pararel_dir)


@pytest.fixture
def taught_model(tiny_model_dirs: dict[str, Path], corpus_dir: Path) -> Path:
    """The tiny model fine-tuned on the miniature ParaRel facts, so that it knows them."""
    return tiny.taught_model(tiny_model_dirs["llama"], corpus_dir)


@pytest.fixture
def planted_llama(tiny_llama: LoadedModel) -> LoadedModel:
    """The tiny Llama with embedding dimension 0 planted: 10 on the token 'Paris', 0 on every other token."""
    paris = tiny_llama.tokenizer.convert_tokens_to_ids("Paris")
    with torch.no_grad():
        embedding = tiny_llama.model.get_input_embeddings().weight
        embedding[:, 0] = 0.0
        embedding[paris, 0] = 10.0
    return tiny_llama


# Two lenses that go wrong on the worker only (the driver builds lenses but never encodes):
# `dying` kills its worker's process the first time it runs, `dying_late` at its 20th encoding, once
# some facts are done (a marker file per lens remembers it did), `failing` raises the error a lens
# raises on bad input.
FAULTY = """
import os
from pathlib import Path
from bench import hookimpl
from bench.errors import BenchError
from bench.model.lens import Lens
from bench.plugin.specs import LensSpec


class Dims(Lens):
    def __init__(self, loaded, site, fault):
        self.site, self.fault, self.d = site, fault, loaded.model.config.hidden_size
        self.calls = 0

    @property
    def n_units(self):
        return self.d

    def encode(self, acts):
        if self.fault == "failing":
            raise BenchError("the failing lens has nothing to encode")
        self.calls += 1
        marker = Path(os.environ["DYING_MARKER"] + "-" + self.fault)
        if not marker.exists() and (self.fault == "dying" or self.calls == 20):
            marker.touch()
            os._exit(1)
        return acts[self.site]

    def patch(self, acts, units, new_units):
        return new_units


@hookimpl
def bench_lenses():
    return [
        LensSpec(fault, "goes wrong on workers", "blocks.{layer}.hook_resid_post",
                 lambda loaded, site, options, fault=fault: Dims(loaded, site, fault))
        for fault in ("dying", "dying_late", "failing")
    ]
"""


@pytest.fixture(scope="session")
def local_ray(tmp_path_factory: pytest.TempPathFactory):
    """A local Ray of 2 CPUs whose workers can import the faulty lenses' distribution, started once
    per test session (Ray does not restart cleanly in one process once the environment fixture has
    put os.environ back)."""
    ray = pytest.importorskip("ray", reason="the Ray executor is an optional extra")
    site = tmp_path_factory.mktemp("site-packages")
    install_fake_distribution(site, "faulty-lenses", "0.1", "faulty_lenses", FAULTY)
    marker = tmp_path_factory.mktemp("marker") / "died-once"  # one file per lens: <marker>-<lens>
    env = {"PYTHONPATH": str(site), "DYING_MARKER": str(marker)}
    ray.init(
        num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False, runtime_env={"env_vars": env}
    )
    yield site, marker
    ray.shutdown()
