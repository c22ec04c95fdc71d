"""A lens from a separately installed distribution, found through the entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.plugin.registry import plugins
from tests.conftest import run_cli
from tests.tiny import install_fake_distribution

PLUGIN = '''
"""A third-party lens: residual-stream dimensions after a block (a lens with no MLP in sight)."""
from bench import hookimpl
from bench.model.lens import Lens
from bench.plugin.specs import LensSpec


class ResidDims(Lens):
    def __init__(self, loaded, site):
        self.site = site
        self._n = loaded.model.config.hidden_size

    @property
    def n_units(self):
        return self._n

    def encode(self, acts):
        return acts[self.site]

    def patch(self, acts, units, new_units):
        return new_units


@hookimpl
def bench_lenses():
    return [LensSpec("resid_dims", "Residual stream dimensions.", "blocks.{layer}.hook_resid_post",
                     lambda loaded, site, options: ResidDims(loaded, site))]
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate `pip install acme-lenses`, a separate distribution registering a lens."""
    install_fake_distribution(tmp_path / "site-packages", "acme-lenses", "1.2.3", "acme_lenses", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "site-packages"))
    plugins.cache_clear()


def test_entry_point_lens_is_registered_with_its_distribution(installed_plugin) -> None:
    entry = plugins().lenses.entry("resid_dims")
    assert entry.source == "acme-lenses 1.2.3"
    # the built-in lenses come with the main distribution, through the same entry-point group
    assert plugins().lenses.entry("mlp_neurons").source.startswith("lens-bench ")


def test_entry_point_lens_runs_a_task(
    installed_plugin, tmp_path, tiny_model_dirs, tiny_task, pararel_dir, capsys
) -> None:
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "resid_dims" in listing and "acme-lenses 1.2.3" in listing
    assert "Judges" in listing and "lens-bench 0" in listing
    out = tmp_path / "results"
    code = run_cli(tiny_model_dirs["llama"], tiny_task, pararel_dir, out, "--limit", "4", units="resid_dims")
    assert code == 0
    (path,) = out.rglob("*.json")
    record = json.loads(path.read_text())
    assert record["lens"]["site"] == "blocks.1.hook_resid_post"
    assert record["provenance"]["lens_source"] == "acme-lenses 1.2.3"
    assert record["lens"]["n_units"] == 16


def test_plugin_allow_list_keeps_runs_hermetic(installed_plugin, monkeypatch) -> None:
    monkeypatch.setenv("LENS_BENCH_PLUGINS", "mlp_neurons")
    plugins.cache_clear()
    assert "resid_dims" not in plugins().lenses
    assert "mlp_neurons" in plugins().lenses


def test_duplicate_lens_names_are_an_error(installed_plugin, tmp_path, monkeypatch) -> None:
    install_fake_distribution(tmp_path / "site2", "copycat", "0.1", "copycat", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "site2"))
    plugins.cache_clear()
    with pytest.raises(BenchError, match="registered twice"):
        plugins()


EXAMPLE = Path(__file__).parents[1] / "examples" / "lens_plugin"


def test_the_readme_plugin_example_installs_and_runs_a_task(
    tmp_path, monkeypatch, tiny_model_dirs, tiny_task, pararel_dir
) -> None:
    """examples/lens_plugin, registered exactly as pip would install it, runs ΔProb on a tiny model."""
    source = (EXAMPLE / "bench_resid_dims" / "__init__.py").read_text()
    install_fake_distribution(tmp_path / "site-packages", "bench-resid-dims", "0.1.0", "bench_resid_dims", source)
    monkeypatch.syspath_prepend(str(tmp_path / "site-packages"))
    plugins.cache_clear()
    assert plugins().lenses.entry("resid_dims").source == "bench-resid-dims 0.1.0"
    out = tmp_path / "results"
    assert run_cli(tiny_model_dirs["llama"], tiny_task, pararel_dir, out, "--limit", "3", units="resid_dims") == 0
    (path,) = out.rglob("*.json")
    assert json.loads(path.read_text())["lens"]["n_units"] == 16


def test_the_readme_shows_the_example_plugin_as_it_is() -> None:
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    for path in (EXAMPLE / "pyproject.toml", EXAMPLE / "bench_resid_dims" / "__init__.py"):
        assert path.read_text().strip() in readme, f"README's copy of {path.name} differs from the file"
