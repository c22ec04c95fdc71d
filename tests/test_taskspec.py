"""Task YAML validation: every mistake names the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.engine.taskspec import load_task, task_files
from bench.errors import BenchError
from bench.plugin.registry import plugins
from tests.conftest import TINY_TASK


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(text)
    return path


def test_shipped_tasks_validate() -> None:
    for name in task_files(plugins()):
        assert load_task(plugins(), name).name == name
    task = load_task(plugins(), "knowledge_ablation")
    assert task.type.name == "knowledge_ablation"
    assert task.config.selection.k == [1, 2, 5, 10, 20, 50] and task.config.ablation.value == "mean"
    tau_sweep = load_task(plugins(), "feature_edit_tau")  # privacy erasure with one method, the paper's rule
    assert tau_sweep.type.name == "privacy_erasure"
    assert tau_sweep.config.methods == {"feature_edit": {"top_k": [1, 20], "mode": "zero_rows", "tau": [1, 3, 10]}}
    lens_methods = load_task(plugins(), "privacy_erasure_lens_methods")  # the same task without the neuron baselines
    assert set(lens_methods.config.methods) == {"feature_edit", "ablate_top_k"}
    full = load_task(plugins(), "privacy_erasure")
    assert lens_methods.config.model_dump(exclude={"methods", "description"}) == full.config.model_dump(
        exclude={"methods", "description"}
    )
    # includes chain: the lens methods again, with the lens fitted before injection
    base_lens = load_task(plugins(), "privacy_erasure_base_lens")
    assert base_lens.config.lens_fit.model == "base" and lens_methods.config.lens_fit.model == "injected"
    assert base_lens.config.model_dump(exclude={"lens_fit", "description"}) == lens_methods.config.model_dump(
        exclude={"lens_fit", "description"}
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            TINY_TASK + "colour: red\n",
            r"field 'colour' is not allowed \(allowed here: type, description, layers",
        ),
        (
            TINY_TASK.replace("ig_steps: 4", "ig_step: 4"),
            r"field 'attribution.ig_step' is not allowed \(allowed here: method, ig_steps\)",
        ),
        (TINY_TASK.replace("k: [1, 3]", "k: many"), r"field 'selection.k': Input should be a valid list"),
        (
            TINY_TASK.replace("method: integrated_gradients", "method: saliency"),
            r"field 'attribution.method': Input should be 'integrated_gradients'",
        ),
        (
            TINY_TASK.replace("type: knowledge_ablation\n", ""),
            r"field 'type' is missing; known task types: interpretability, knowledge_ablation, monosemanticity, "
            r"polysemanticity, privacy_erasure, sparse_probing",
        ),
        (TINY_TASK.replace("type: knowledge_ablation", "type: vibes"), r"unknown task type 'vibes'"),
        (TINY_TASK.replace("layers: [1]\n", ""), r"field 'layers': Field required"),
        ("type: [unclosed\n", r"not valid YAML"),
        ("- a list\n", r"must be a mapping"),
    ],
)
def test_bad_yaml_is_rejected_with_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(BenchError, match=message) as info:
        load_task(plugins(), str(path))
    assert str(path) in str(info.value)


def test_unknown_task_name_lists_known_tasks() -> None:
    with pytest.raises(
        BenchError,
        match=r"unknown task 'nope'\. Known: feature_edit_tau, interpretability, knowledge_ablation, monosemanticity, "
        r"polysemanticity, privacy_erasure, privacy_erasure_base_lens, privacy_erasure_lens_methods, sparse_probing",
    ):
        load_task(plugins(), "nope")


def test_unknown_lens_lists_known_lenses() -> None:
    with pytest.raises(BenchError, match=r"unknown lens 'sae_nope'\. Known: .*mlp_neurons"):
        plugins().lenses.get("sae_nope")


def test_include_lays_a_variant_over_its_base(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(TINY_TASK)
    variant = tmp_path / "variant.yaml"
    variant.write_text("include: base.yaml\ndescription: three facts per relation\nselection: {k: [2]}\n")
    task = load_task(plugins(), str(variant))
    assert task.name == "variant"
    assert task.config.selection.k == [2]  # replaced whole
    assert task.config.description == "three facts per relation"
    assert task.config.attribution.ig_steps == 4  # from the base
    (tmp_path / "base.yaml").write_text(TINY_TASK.replace("ig_steps: 4", "ig_steps: 7"))
    assert load_task(plugins(), str(variant)).config.attribution.ig_steps == 7  # edits to the base reach it


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"variant.yaml": "include: missing.yaml\n"}, r"field 'include': .*missing\.yaml does not exist"),
        ({"variant.yaml": "include: [base.yaml]\n"}, r"field 'include' must be a file name"),
        ({"variant.yaml": "include: other.yaml\n", "other.yaml": "include: variant.yaml\n"}, r"in a cycle"),
        ({"variant.yaml": "include: variant.yaml\n"}, r"in a cycle"),
        ({"variant.yaml": "include: base.yaml\ncolour: red\n", "base.yaml": TINY_TASK}, r"'colour' is not allowed"),
    ],
)
def test_bad_include_is_rejected(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(BenchError, match=message) as info:
        load_task(plugins(), str(tmp_path / "variant.yaml"))
    assert str(tmp_path / "variant.yaml") in str(info.value)


def test_the_headline_key_is_the_ranked_metric_at_its_middle_budget() -> None:
    from bench.plugin.registry import plugins

    task_type = plugins().task_types.get("knowledge_ablation")
    keys = ["selectivity@1", "selectivity_at_kl@0.02", "selectivity_at_kl@0.005", "selectivity_at_kl@0.01"]
    assert task_type.headline_key(dict.fromkeys(keys)) == "selectivity_at_kl@0.01"  # numeric order, not text
    assert task_type.headline_key({"specificity@5": {}}) is None  # a record that lacks it
