"""Leaderboard rendering from a fixed set of records (golden file) and from real runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.cli import main
from bench.engine.records import load_records, schema_version
from bench.errors import BenchError
from bench.report.leaderboard import frame, render
from bench.tasks.knowledge_ablation.task import FrontierConfig
from tests.conftest import run_cli

GOLDEN = Path(__file__).parent / "golden" / "leaderboard.md"


def record(lens: str, site: str, means: dict[str, float], finished: str, rid: str) -> dict:
    return {
        "schema": 1,
        "id": rid,
        "model": {"id": "tiny", "weights_sha256": "ab" * 32, "dtype": "float32"},
        "lens": {"name": lens, "site": site, "layer": int(site.split(".")[1]), "n_units": 24, "config": {}},
        "task": {"name": "knowledge_ablation", "type": "knowledge_ablation", "config": {"seed": 0}},
        "metrics": {name: {"mean": m, "se": m / 10, "n": 200} for name, m in means.items()},
        "provenance": {"finished": finished, "git_commit": "c0ffee"},
    }


def ablation(selectivity: list[float], raw: list[float]) -> dict[str, float]:
    """ΔProb metrics at k = 1, 5, 10: selectivity and the raw drop beside it; selectivity at two KL
    budgets (ranked; the headline shows the larger, the middle of two) read off the first two k."""
    ks = (1, 5, 10)
    return (
        {f"selectivity@{k}": v for k, v in zip(ks, selectivity, strict=True)}
        | {f"delta_prob@{k}": v for k, v in zip(ks, raw, strict=True)}
        | {"selectivity_at_kl@0.01": selectivity[0], "selectivity_at_kl@0.05": selectivity[1]}
    )


RECORDS = [
    record("mlp_neurons", "blocks.10.mlp.hook_post", ablation([0.05, 0.2, 0.3], [0.1, 0.3, 0.9]), "2026-01-01", "r1"),
    record("mlp_neurons", "blocks.2.mlp.hook_post", ablation([0.1, 0.3, 0.3], [0.2, 0.4, 0.9]), "2026-01-01", "r2"),
    # with a control at every k: the markdown shows it at the middle k only
    record(
        "sae_post_mlp",
        "blocks.2.hook_resid_post",
        ablation([0.4, 0.5, 0.2], [0.5, 0.8, 0.9]) | {"kl_last@1": 0.01, "kl_last@5": 0.05, "kl_last@10": 0.2},
        "2026-01-01",
        "r3",
    ),
    # the same cell computed again later: the newer record wins
    record("mlp_neurons", "blocks.2.mlp.hook_post", ablation([0.15, 0.35, 0.3], [0.25, 0.45, 0.9]), "2026-02-01", "r4"),
    # a baseline at the SAE's site: top raw ΔProb, but bold goes to the best selectivity at that site only
    record("random", "blocks.2.hook_resid_post", ablation([0.0, 0.1, 0.1], [0.9, 0.95, 0.99]), "2026-01-01", "r11"),
]


def with_sae(record: dict) -> dict:
    record["lens"]["config"] = {
        "sae": "/home/u/.cache/lens-bench/saes/ab12/blocks.2.hook_resid_post",
        "sae_sha256": "cd" * 32,
    }
    return record


def interpretability(lens: str, site: str, value: float, rid: str) -> dict:
    rec = record(lens, site, {"is_sampled": value}, "2026-01-03", rid)
    rec["task"] = {"name": "interpretability", "type": "interpretability", "config": {"seed": 0}}
    rec["judge"] = {"name": "embedding", "version": "1"}
    return rec


RECORDS[2] = with_sae(RECORDS[2])


def erasure(lens: str, site: str, by_method: dict[str, tuple[float, float]], rid: str) -> dict:
    """A privacy-erasure record: metrics named `<metric>.<method>` become one row per method."""
    means = {}
    for method, (rel, ppl) in by_method.items():
        means |= {f"rel.{method}": rel, f"delta_ppl.{method}": ppl}
    rec = record(lens, site, means, "2026-01-04", rid)
    rec["task"] = {"name": "privacy_erasure", "type": "privacy_erasure", "config": {"seed": 0}}
    return rec


def polysemanticity(lens: str, site: str, distance: float, input_dims: float, rid: str) -> dict:
    rec = record(lens, site, {"max_distance": distance, "input_dims": input_dims}, "2026-01-05", rid)
    rec["task"] = {"name": "polysemanticity", "type": "polysemanticity", "config": {"seed": 0}}
    return rec


RECORDS += [
    interpretability("mlp_neurons", "blocks.2.mlp.hook_post", 0.2, "r5"),
    # lowest distance at the site, but from a lens built out of the embeddings: a caveat, not bare bold
    polysemanticity("neuron_clusters", "blocks.2.mlp.hook_post", 0.1, 20.0, "r12"),
    polysemanticity("mlp_neurons", "blocks.2.mlp.hook_post", 0.5, 16.0, "r13"),
    with_sae(interpretability("sae_post_mlp", "blocks.2.hook_resid_post", 0.4, "r6")),
    erasure("mlp_neurons", "blocks.2.mlp.hook_post", {"knowledge_neurons": (0.6, 0.3), "depn": (0.7, 0.5)}, "r7"),
    with_sae(erasure("sae_post_mlp", "blocks.2.hook_resid_post", {"feature_edit": (0.8, 0.1)}, "r8")),
]


def test_render_matches_golden_file() -> None:
    text = render(frame(RECORDS), "bench leaderboard --results-dir results")
    if os.environ.get("UPDATE_GOLDEN"):  # after an intended change: UPDATE_GOLDEN=1 pytest, then review the diff
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_plot_labels_name_sae_variants_apart() -> None:
    variant = with_sae(record("sae_mlp_out", "blocks.2.hook_mlp_out", {"delta_prob@1": 0.3}, "2026-01-05", "r9"))
    variant["lens"]["config"]["sae"] += "+standard_ne"
    external = record("sae_mlp_out", "blocks.2.hook_mlp_out", {"delta_prob@1": 0.2}, "2026-01-05", "r10")
    external["lens"]["config"] = {"sae": "some-release/layer_2/width_16k"}
    labels = frame([*RECORDS, variant, external]).drop_duplicates("record").set_index("record")["label"]
    assert labels["r3"] == "sae_post_mlp"  # the default trained SAE
    assert labels["r9"] == "sae_mlp_out (standard_ne)"
    assert labels["r10"] == "sae_mlp_out (layer_2/width_16k)"
    assert labels["r1"] == "mlp_neurons"


def test_a_retrained_sae_at_the_same_path_gets_its_own_row() -> None:
    old = with_sae(interpretability("sae_post_mlp", "blocks.2.hook_resid_post", 0.1, "old"))
    new = with_sae(interpretability("sae_post_mlp", "blocks.2.hook_resid_post", 0.4, "new"))
    new["lens"]["config"]["sae_sha256"] = "ef" * 32
    df = frame([old, new])
    assert sorted(df["sae"].unique()) == ["trained cdcdcdcd", "trained efefefef"]
    assert set(df["label"]) == {"sae_post_mlp"}


def test_records_of_another_schema_version_are_not_loaded(tmp_path) -> None:
    old = record("mlp_neurons", "blocks.2.mlp.hook_post", {"delta_prob@1": 0.9}, "2026-01-01", "old")
    old["schema"] = 1  # ΔProb before its controls: a different definition
    new = record(
        "mlp_neurons", "blocks.2.mlp.hook_post", ablation([0.1, 0.2, 0.3], [0.2, 0.3, 0.4]), "2026-01-02", "new"
    )
    new["schema"] = schema_version("knowledge_ablation")
    for rec in (old, new):
        (tmp_path / f"{rec['id']}.json").write_text(json.dumps(rec))
    assert [r["id"] for r in load_records(tmp_path)] == ["new"]


def test_no_records_is_a_clear_error() -> None:
    with pytest.raises(BenchError, match="no result records"):
        frame([])


def test_leaderboard_command_from_real_runs(tmp_path, tiny_model_dirs, tiny_task, pararel_dir, capsys) -> None:
    results = tmp_path / "results"
    assert run_cli(tiny_model_dirs["llama"], tiny_task, pararel_dir, results, "--layers", "0,2", "--limit", "4") == 0
    out = tmp_path / "board" / "README.md"
    assert main(["leaderboard", "--results-dir", str(results), "--output", str(out)]) == 0
    text = out.read_text()
    assert "| blocks.0.mlp.hook_post" in text and "| blocks.2.mlp.hook_post" in text
    record_files = list(results.rglob("*.json"))
    metric = json.loads(record_files[0].read_text())["metrics"]["delta_prob@1"]
    assert f"{metric['mean']:.3f} ± {metric['se']:.3f} (4)" in text


def test_other_formats(tmp_path, tiny_model_dirs, tiny_task, corpus_dir) -> None:
    results = tmp_path / "results"
    assert (
        main(
            [
                "run",
                "--model",
                str(tiny_model_dirs["llama"]),
                "--units",
                "mlp_neurons,random",
                "--task",
                str(tiny_task),
                "--data-dir",
                str(corpus_dir),
                "--output-dir",
                str(results),
                "--limit",
                "3",
            ]
        )
        == 0
    )
    for fmt in ("csv", "json", "html"):
        out = tmp_path / "board" / f"leaderboard.{fmt}"
        assert main(["leaderboard", "--results-dir", str(results), "--format", fmt, "--output", str(out)]) == 0
    assert (
        (tmp_path / "board" / "leaderboard.csv")
        .read_text()
        .startswith("model,lens,site,layer,sae,label,method,task,task_type,family,metric")
    )
    rows = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    assert {r["lens"] for r in rows} == {"mlp_neurons", "random"} and all("mean" in r and "se" in r for r in rows)
    html = (tmp_path / "board" / "leaderboard.html").read_text()
    # small: plots are the PNG files beside the page, not inlined; each row links to its record
    assert "<table id='headline'" in html and "src='bars_tiny_ablation.png'" in html
    assert "data:image/png;base64," not in html and "class=rec" in html
    assert (tmp_path / "board" / "knowledge_ablation_frontier_layer1.png").exists()


def test_frontier_keeps_a_second_erasure_task_on_its_own_lines(monkeypatch, tmp_path) -> None:
    import bench.tasks.privacy_erasure.plot as plot

    drawn = []
    monkeypatch.setattr(plot, "erasure_frontier", lambda rows, *_: drawn.extend(rows))
    project = erasure("sae_post_mlp", "blocks.2.hook_resid_post", {"feature_edit[top_k=1]": (0.1, 0.1)}, "p")
    zeroing = erasure("sae_post_mlp", "blocks.2.hook_resid_post", {"feature_edit[top_k=1,tau=3]": (0.2, 0.1)}, "z")
    zeroing["task"]["name"] = "feature_edit_tau"
    for rec in (project, zeroing):
        rec["methods"] = {variant.split(".", 1)[1]: {} for variant in rec["metrics"] if variant.startswith("rel.")}
    plot.frontier_plot([project, zeroing], tmp_path)
    assert {(row["method"], row["variant"]) for row in drawn} == {
        ("feature_edit", "top_k=1"),
        ("feature_edit (feature_edit_tau)", "top_k=1,tau=3"),
    }


def test_frontier_styles_never_repeat() -> None:
    """A lens or method sharing another's look would make two frontier lines read as one."""
    from bench.report.plots import distinct_colors, distinct_styles

    for n in (3, 12, 27):
        assert len({tuple(c) for c in distinct_colors(n)}) == n
    assert len(set(distinct_styles(28))) == 28


def test_produced_by_shows_portable_commands() -> None:
    from bench.report.labels import portable_command

    rec = with_sae(
        record("sae_post_mlp", "blocks.2.hook_resid_post", {"selectivity_at_kl@0.05": 0.5}, "2026-01-01", "p")
    )
    rec["lens"]["config"]["sae"] = "/root/.cache/lens-bench/saes/ab12/blocks.2.hook_resid_post+standard_ne"
    rec["provenance"]["command"] = [
        "/venv/bin/bench", "run", "--units", "sae_post_mlp", "--task", "/work/runs2/tasks/knowledge_ablation.yaml",
        "--sae", rec["lens"]["config"]["sae"], "--output-dir", "/tmp/out", "--data-dir=/data", "--limit", "60",
    ]  # fmt: skip
    assert portable_command(rec) == (
        "bench run --units sae_post_mlp --task knowledge_ablation --sae trained:standard_ne --limit 60"
    )


def test_publish_writes_compact_records_that_render_the_same(tmp_path, tiny_model_dirs, tiny_task, pararel_dir) -> None:
    from bench.report.leaderboard import frame

    results, published = tmp_path / "results", tmp_path / "published"
    assert run_cli(tiny_model_dirs["llama"], tiny_task, pararel_dir, results, "--limit", "4") == 0
    assert main(["publish", "--results-dir", str(results), "--to", str(published)]) == 0
    (full,) = load_records(results)
    (compact,) = load_records(published)
    assert "items" in full and "items" not in compact
    columns = ["lens", "site", "metric", "mean", "se", "n"]
    assert frame([full])[columns].equals(frame([compact])[columns])
    # each fact's ranked value stays, so the published headline still compares lenses fact by fact
    budgets = FrontierConfig().kl_budgets
    assert set(compact["paired_values"]) == {f"selectivity_at_kl@{b:g}" for b in budgets}
    query = f"metric == 'selectivity_at_kl@{budgets[-1]:g}'"
    ranked = frame([full]).query(query)["items"].iloc[0]
    assert frame([compact]).query(query)["items"].iloc[0] == ranked
    assert len(ranked) == 4 and all(relation in ("P17", "P19") for relation, _ in ranked.values())


def test_delta_prob_frontier_pairs_each_k_with_its_own_kl(tmp_path) -> None:
    from bench.tasks.knowledge_ablation.plot import frontier_plot, frontier_points

    sae = [r for r in RECORDS if r["lens"]["name"] == "sae_post_mlp"]
    assert frontier_points(sae) == {(2, "sae_post_mlp"): [(0.01, 0.4, 0.04), (0.05, 0.5, 0.05), (0.2, 0.2, 0.02)]}
    assert frontier_points([r for r in RECORDS if r["lens"]["name"] == "random"]) == {}  # no KL control: no line
    (path,) = frontier_plot(sae, tmp_path)
    assert path.name == "knowledge_ablation_frontier_layer2.png" and path.stat().st_size > 10_000


def _cheap_and_costly() -> list[dict]:
    """Two lenses at a KL budget of 0.01: one whose costliest edit (k = 50, KL 0.006) stays under it,
    one that crosses it; and a second lens at the costly one's site, so that a pair exists."""
    cheap = {"kl_last@1": 0.001, "kl_last@5": 0.002, "kl_last@50": 0.006}
    costly = {"kl_last@1": 0.001, "kl_last@5": 0.02, "kl_last@50": 0.1}
    budget = {"selectivity_at_kl@0.005": 0.1, "selectivity_at_kl@0.01": 0.2, "selectivity_at_kl@0.02": 0.3}
    return [
        record("sae_mlp_out", "blocks.2.hook_mlp_out", budget | cheap, "2026-01-01", "cheap"),
        record("sae_attn_out", "blocks.2.hook_attn_out", budget | costly, "2026-01-01", "costly"),
        record("pca", "blocks.2.hook_attn_out", budget | costly, "2026-01-01", "costly-pca"),
    ]


def test_a_budget_the_lens_never_reaches_is_marked_a_lower_bound() -> None:
    """Selectivity at a KL budget that every edit of the sweep stays under is a lower bound: the
    mark goes on the headline and the detail cell, from the KL of every k (not only the shown one)."""
    text = render(frame(_cheap_and_costly()), "bench leaderboard")
    headline = text.split("## Headline")[1].split("Detail tables")[0]
    cheap_row = next(line for line in headline.splitlines() if line.startswith("| sae_mlp_out"))
    costly_row = next(line for line in headline.splitlines() if line.startswith("| sae_attn_out"))
    assert "†1" in cheap_row and "†" not in costly_row  # budget 0.01 > KL 0.006 of k = 50; < 0.1
    assert "costliest edit (KL 0.006) stays under this budget" in headline


def test_the_html_page_carries_the_same_caveat_marks_and_the_detectable_difference(tmp_path: Path) -> None:
    from bench.report.leaderboard import write_leaderboard

    page = write_leaderboard(_cheap_and_costly(), tmp_path / "index.html", "bench leaderboard", fmt="html").read_text()
    headline = page.split("<h2>Headline</h2>")[1].split("<h2>")[0]
    rows = {row.split("</td>")[1]: row for row in headline.split("<tr>")[2:]}
    cheap_row = next(r for lens, r in rows.items() if "sae_mlp_out" in lens)
    costly_row = next(r for lens, r in rows.items() if "sae_attn_out" in lens)
    assert len(rows) == 3 and "†1</sup>" in cheap_row and "†" not in costly_row
    assert "†1: " in headline and "costliest edit (KL 0.006) stays under this budget" in headline
    assert "Smallest difference between two lenses" in headline


def test_a_refitted_lens_is_named_by_the_weights_the_task_used() -> None:
    """Privacy erasure fine-tunes the SAE on the model it edits: the row names that SAE, not the base one."""
    from bench.report.labels import sae_column
    from bench.report.leaderboard import frame

    rec = with_sae(
        record("sae_post_mlp", "blocks.2.hook_resid_post", {"selectivity_at_kl@0.05": 0.5}, "2026-01-01", "p")
    )
    base = "/root/.cache/lens-bench/saes/ab12/blocks.2.hook_resid_post"
    rec["lens"]["config"].update(sae=base, sae_sha256="b" * 64)
    assert sae_column(rec) == "trained bbbbbbbb"
    rec["lens_fit"] = {"refitted": True, "lens": {"sae": f"{base}+finetuned-4d3f", "sae_sha256": "f" * 64}}
    assert sae_column(rec) == "trained (finetuned-4d3f) ffffffff"
    assert set(frame([rec])["sae_sha256"]) == {"f" * 12}
