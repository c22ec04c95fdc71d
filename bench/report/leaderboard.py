"""`bench leaderboard`: every finished record on disk, published as markdown (or csv / json / html).

One table per task family (knowledge, interpretability, probing, erasure); rows are
(model, lens, site, SAE, and the method for tasks that compare several: a metric named
``rel.feature_edit`` is ``rel`` in the ``feature_edit`` row), cells `mean ± se (n)`, the
best value of each column in bold, and a footnote per row with its provenance. Plots (PNG)
are written beside the output.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError
from bench.io import write_atomic
from bench.report.plots import delta_prob_curves, erasure_frontier, metric_bars, probing_curves

FAMILIES = {
    "knowledge_ablation": "Knowledge",
    "monosemanticity": "Knowledge",
    "interpretability": "Interpretability",
    "sparse_probing": "Probing",
    "privacy_erasure": "Erasure",
    "polysemanticity": "Interpretability",
}
_METRIC_NAMES = {
    "specificity": "specificity (ΔProb − unrelated)",
    "delta_prob": "ΔProb (raw)",
    "delta_prob_unrelated": "ΔProb unrelated",
    "delta_prob_random": "ΔProb random edit",
    "kl": "KL WikiText",
    "edit_norm": "‖Δh‖/‖h‖",
    "p_clean": "P(answer)",
    "median_d": "median Cohen's d",
    "auroc": "AUROC",
    "auroc_paraphrase": "AUROC paraphrases",
    "auroc_same_object": "AUROC same object",
    "is_sampled": "IS (sampled units)",
    "is_attributed": "IS (fact units)",
    "f1": "mean F1",
    "f1_tokens": "F1 UD tokens",
    "f1_prompts": "F1 ParaRel relations",
    "n_clusters": "clusters",
    "max_distance": "max dist",
    "mean_distance": "mean dist",
    "intra": "intra-cluster",
    "inter": "inter-cluster",
    "input_dims": "input dims",
    "n_clusters_plain": "clusters (plain)",
    "max_plain": "max dist (plain)",
    "mean_plain": "mean dist (plain)",
    "intra_plain": "intra (plain)",
    "inter_plain": "inter (plain)",
    "rel": "Rel",
    "gen": "Gen",
    "loc": "Loc",
    "delta_ppl": "ΔPPL",
    "ppl_ratio": "PPL ratio",
}
LOWER_IS_BETTER = {"delta_ppl", "ppl_ratio", "n_clusters", "max_distance", "mean_distance"}
# descriptive, not scores: which way is better is not defined
NOT_RANKED = {
    *("p_clean", "intra", "inter", "input_dims"),
    # what the units track (the fact's subject or its object), not a better or worse lens
    *("auroc_paraphrase", "auroc_same_object"),
    # ΔProb is ranked by its specificity; the raw drop and its controls are shown beside it
    *("delta_prob", "delta_prob_unrelated", "delta_prob_random", "kl", "edit_norm"),
    *("n_clusters_plain", "max_plain", "mean_plain", "intra_plain", "inter_plain"),
}
FORMATS = ("md", "csv", "json", "html")
ROW = ["model", "lens", "site", "sae", "method"]


def _judge(record: dict[str, Any]) -> str:
    judge = record.get("judge")
    if not judge:
        return ""
    return f"{judge['name']} v{judge['version']}" + (f" {judge['model']}" if "model" in judge else "")


def _metric_label(record: dict[str, Any], metric: str) -> str:
    """Column name; scores of different judges never share a column."""
    base, _, suffix = metric.partition("@")
    task = record["task"]["name"] + (f" [{_judge(record)}]" if record.get("judge") else "")
    return f"{task}: {_METRIC_NAMES.get(base, base)}" + (f"@{suffix}" if suffix else "")


def _trained_variant(source: str) -> str | None:
    """For an SAE the harness trained (in the cache's saes/ folder): its variant, "" for the
    default; None for any other SAE."""
    if "/saes/" not in source:
        return None
    return Path(source).name.partition("+")[2]  # e.g. blocks.16.hook_mlp_out+standard_ne


def _sae(record: dict[str, Any]) -> str:
    config = record["lens"]["config"]
    source = config.get("sae")
    if not source:
        return ""
    variant = _trained_variant(source)
    if variant is None:
        return source
    # a retrained SAE keeps its path: its weights' hash keeps records of different weights in different rows
    weights = (config.get("sae_sha256") or "")[:8]
    return (f"trained ({variant})" if variant else "trained") + (f" {weights}" if weights else "")


def _label(record: dict[str, Any]) -> str:
    """How plots name a lens: with the SAE variant or external SAE when it is not the default."""
    lens, source = record["lens"]["name"], record["lens"]["config"].get("sae")
    if not source:
        return lens
    variant = _trained_variant(source)
    if variant is None:
        return f"{lens} ({'/'.join(Path(source).parts[-2:])})"
    return f"{lens} ({variant})" if variant else lens


def _command(record: dict[str, Any]) -> str:
    """The bench command that made the record; absolute paths inside this folder shown relative to it."""
    argv = record["provenance"].get("command") or []
    here = Path.cwd()

    def shown(arg: str) -> str:
        path = Path(arg)
        return os.path.relpath(path, here) if path.is_absolute() and path.is_relative_to(here) else arg

    return " ".join(["bench", *map(shown, argv[1:])]) if argv else ""


def _layer(site: str) -> int:
    match = re.match(r"blocks\.(\d+)\.", site)
    return int(match.group(1)) if match else -1


def frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (record, metric); when a cell was computed twice, the latest record wins."""
    rows = []
    for record in records:
        path = Path(record["_path"]) if "_path" in record else None
        sae = _sae(record)
        for name, value in record["metrics"].items():
            metric, _, method = name.partition(".")
            rows.append(
                {
                    "model": record["model"]["id"],
                    "lens": record["lens"]["name"],
                    "site": record["lens"]["site"],
                    "layer": _layer(record["lens"]["site"]),
                    "sae": sae,
                    "label": _label(record),
                    "method": method,
                    "task": record["task"]["name"],
                    "family": FAMILIES.get(record["task"]["type"], "Other"),
                    "metric": metric,
                    "column": _metric_label(record, metric),
                    "mean": value["mean"],
                    "se": value["se"],
                    "n": value["n"],
                    "finished": record["provenance"]["finished"],
                    "record": record["id"],
                    "commit": record["provenance"].get("git_commit"),
                    "weights": record["model"]["weights_sha256"][:12],
                    "seed": record["task"]["config"].get("seed"),
                    "sae_sha256": record["lens"]["config"].get("sae_sha256", "")[:12],
                    "judge": _judge(record),
                    "command": _command(record),
                    "artifacts": [str(path.parent / a) for a in record.get("artifacts", {}).values()] if path else [],
                }
            )
    if not rows:
        raise BenchError("no result records found; run `bench run ...` first or pass --results-dir.")
    df = pd.DataFrame(rows).sort_values("finished", kind="stable")
    df = df.drop_duplicates([*ROW, "task", "metric"], keep="last")
    return df.sort_values(["model", "lens", "layer", "site", "task"], kind="stable").reset_index(drop=True)


# Polysemanticity distances that can be low for reasons other than monosemantic units.
_DISTANCES = {"n_clusters", "max_distance", "mean_distance"}
_FEW_INPUT_DIMS = 0.5  # below this share of the widest-reading unit set at the site, distances shrink mechanically


def caveats(df: pd.DataFrame) -> dict[int, str]:
    """Cells whose value README calls partly mechanical, with why (shown as a footnote, never bare bold)."""
    out = {}
    dims = df[df["metric"] == "input_dims"].set_index(["model", "lens", "site", "sae"])["mean"]
    for i, row in df[df["metric"].isin(_DISTANCES)].iterrows():
        if row["lens"] == "neuron_clusters":
            out[i] = "neuron_clusters' units are clusters of these very embeddings: low distances by construction"
            continue
        key = (row["model"], row["lens"], row["site"], row["sae"])
        peers = dims[[k[0] == row["model"] and k[2] == row["site"] for k in dims.index]]
        if key in dims.index and len(peers) > 1 and dims[key] < _FEW_INPUT_DIMS * peers.max():
            out[i] = (
                f"{row['label']} reads {dims[key]:.0f} input dims against up to {peers.max():.0f} at this site: "
                "embeddings x ⊙ w look alike whatever the inputs"
            )
    return out


def _cell(row: Any, best: bool, caveat: int | None = None) -> str:
    text = f"{row.mean:.3f} ± {row.se:.3f} ({row.n})"
    text = f"**{text}**" if best else text
    return f"{text} †{caveat}" if caveat else text


def _best(df: pd.DataFrame) -> set[int]:
    """Index of the best row of each column among lenses at one site and layer (ties all bold):
    units at different sites measure different things, so no lens is bold across sites."""
    best = set()
    for (metric, _column, _site), group in df.groupby(["metric", "column", "site"]):
        base = str(metric).partition("@")[0]
        if base in NOT_RANKED or len(group) < 2:
            continue
        target = group["mean"].min() if base in LOWER_IS_BETTER else group["mean"].max()
        best |= set(group.index[group["mean"] == target])
    return best


def _footnotes(df: pd.DataFrame) -> dict[tuple[str, ...], str]:
    notes = {}
    for key, group in df.groupby(ROW, sort=False):
        parts = []
        for record in group.drop_duplicates("record").itertuples():
            extra = "".join(
                [
                    f", SAE `{record.sae_sha256}`" if record.sae_sha256 else "",
                    f", judge {record.judge}" if record.judge else "",
                ]
            )
            parts.append(
                f"{record.task}: record `{record.record}`, weights `{record.weights}`{extra}, seed {record.seed}, "
                f"commit `{record.commit}`, {record.finished}"
            )
        notes[tuple(key)] = "; ".join(parts)
    return notes


def _family_table(df: pd.DataFrame, refs: dict[tuple[str, ...], int]) -> str:
    best = _best(df)
    notes = caveats(df)
    numbers = {text: n for n, text in enumerate(dict.fromkeys(notes.values()), 1)}
    cells = df.assign(
        cell=[
            _cell(row, i in best, numbers.get(notes.get(i, "")))
            for i, row in zip(df.index, df.itertuples(), strict=True)
        ]
    )
    table = cells.pivot_table(index=ROW, columns="column", values="cell", aggfunc="first", sort=False).fillna("")
    table = table[list(dict.fromkeys(df["column"]))]  # metrics in the order tasks report them, not A-Z
    table = table.reset_index()
    table["lens"] = [
        f"{lens} [^{refs[tuple(key)]}]" for lens, key in zip(table["lens"], table[ROW].values, strict=True)
    ]
    if not table["method"].any():  # only tasks that compare methods get the column
        table = table.drop(columns="method")
    text = tabulate(table, headers="keys", tablefmt="github", showindex=False)
    return text + "".join(f"\n\n†{n} mechanical in part: {note}." for note, n in numbers.items())


# ΔProb's controls, shown in the markdown table at one k only (the middle one) to keep it readable;
# csv and json keep every k.
_CONTROLS = {"delta_prob_unrelated", "delta_prob_random", "kl", "edit_norm"}


def _controls_at_one_k(df: pd.DataFrame) -> pd.DataFrame:
    base, _, suffix = df["metric"].str.partition("@").T.values
    controls = pd.Series(base, index=df.index).isin(_CONTROLS)
    ks = sorted({s for s, c in zip(suffix, controls, strict=True) if c and s.isdigit()}, key=int)
    middle = ks[len(ks) // 2] if ks else ""
    return df[~controls | (pd.Series(suffix, index=df.index) == middle)]


def render(df: pd.DataFrame, command: str, out_dir: Path = Path("."), plots: list[Path] | None = None) -> str:
    df = _controls_at_one_k(df)
    notes = _footnotes(df)
    refs = {key: i for i, key in enumerate(notes, 1)}
    parts = [
        "# lens-bench leaderboard\n",
        "Each cell is `mean ± bootstrap SE (n)`. Bold: the best value of a column among the lenses "
        "at one site and layer (units at different sites measure different things). Lenses are "
        "compared at equal k; ΔProb is ranked by its specificity (ΔProb on the fact minus ΔProb of "
        "the same ablation on unrelated facts), the raw drop and its controls (at the middle k; "
        "every k in the csv and json formats) shown beside it. "
        "† marks a value that is partly mechanical (see the note under its table).",
        f"Regenerate with `{command}`.\n",
    ]
    commands = sorted({c for c in df["command"] if c})
    if commands:
        parts.append("Produced by:\n\n```bash\n" + "\n".join(commands) + "\n```\n")
    for family in dict.fromkeys(FAMILIES.values()) | {"Other": None}:
        part = df[df["family"] == family]
        if not part.empty:
            parts.append(f"## {family}\n\n{_family_table(part, refs)}\n")
    artifacts = [
        f"- {r.lens} / {r.site} / {r.task}: "
        + ", ".join(f"[{Path(a).stem.split('.')[-1]}]({os.path.relpath(a, out_dir)})" for a in r.artifacts)
        for r in df.drop_duplicates("record").itertuples()
        if r.artifacts
    ]
    figures = [f"![{p.stem}]({p.name})" for p in plots or []]
    if figures or artifacts:
        parts.append("## Plots\n\n" + "\n\n".join(figures) + ("\n\n" if figures else "") + "\n".join(artifacts) + "\n")
    labels = {key: " / ".join(k for k in (*key[:3], key[4]) if k) for key in notes}  # model / lens / site / method
    parts.append("\n".join(f"[^{refs[key]}]: {labels[key]}: {text}" for key, text in notes.items()) + "\n")
    return "\n".join(parts)


def _plots(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    out = []
    for metric, ylabel in (("specificity", "specificity: ΔProb − ΔProb unrelated"), ("delta_prob", "raw ΔProb")):
        curves = df[(df["family"] == "Knowledge") & df["metric"].str.match(rf"{metric}@\d+$")]
        if not curves.empty:
            rows = [
                {"lens": r.label, "layer": r.layer, "k": int(r.metric.split("@")[1]), "mean": r.mean, "se": r.se}
                for r in curves.itertuples()
            ]
            out.append(delta_prob_curves(rows, out_dir / f"{metric}.png", ylabel))
    ranked = ~df["metric"].str.partition("@")[0].isin(NOT_RANKED)
    for task, part in df[ranked].groupby("task", sort=False):
        out.append(metric_bars(part, f"{task}", out_dir / f"bars_{task}.png"))
    return out


def _frontier_plot(records: list[dict[str, Any]], out_dir: Path) -> Path | None:
    """Every erasure record's sweep as Rel against side effects; the budget of the newest record shaded."""
    rows, budget = [], {}
    for record in records:
        if record["task"]["type"] != "privacy_erasure":
            continue
        metrics, label = record["metrics"], f"{_label(record)} L{record['lens']['layer']}"
        budget = record.get("budget", {}).get("config", budget)
        # a second erasure task (e.g. FeatureEdit's other mode) must not extend the first one's lines
        task = record["task"]["name"]
        suffix = "" if task == record["task"]["type"] else f" ({task})"
        for variant in record.get("methods", {}):
            if f"rel.{variant}" not in metrics:
                continue
            base, _, swept = variant.partition("[")
            base += suffix
            means = {name: metrics.get(f"{name}.{variant}", {}).get("mean") for name in ("rel", "loc", "ppl_ratio")}
            rows.append({"lens": label, "method": base, "variant": swept.rstrip("]"), **means})
    if not rows:
        return None
    return erasure_frontier(rows, budget.get("min_loc"), budget.get("max_ppl_ratio"), out_dir / "erasure_frontier.png")


def _probing_plot(records: list[dict[str, Any]], out_dir: Path) -> Path | None:
    curves = [
        (f"{_label(r)} L{r['lens']['layer']}", r["curves"]) for r in records if r["task"]["type"] == "sparse_probing"
    ]
    return probing_curves(curves, out_dir / "sparse_probing_f1.png") if curves else None


def _html(df: pd.DataFrame, plots: list[Path], command: str) -> str:
    """One self-contained file: the tables, and the plots inlined as data URIs."""
    best = _best(df)
    cells = df.assign(
        cell=[_cell(row, i in best).replace("**", "") for i, row in zip(df.index, df.itertuples(), strict=True)]
    )
    tables = []
    for family, part in cells.groupby("family", sort=False):
        pivot = part.pivot_table(index=ROW, columns="column", values="cell", aggfunc="first", sort=False).fillna("")
        tables.append(f"<h2>{family}</h2>" + pivot.to_html(escape=True))
    images = "".join(
        f'<p><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"></p>'
        for p in plots
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>lens-bench leaderboard</title>"
        "<style>body{font-family:sans-serif} table{border-collapse:collapse} "
        "td,th{border:1px solid #ccc;padding:4px}</style></head><body><h1>lens-bench leaderboard</h1>"
        f"<p>mean ± bootstrap SE (n). Regenerate with <code>{command}</code>.</p>"
        f"{''.join(tables)}{images}</body></html>\n"
    )


def write_leaderboard(records: Iterable[dict[str, Any]], out: Path, command: str, fmt: str = "md") -> Path:
    if fmt not in FORMATS:
        raise BenchError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    records = list(records)
    df = frame(records)
    columns = [c for c in df.columns if c != "artifacts"]
    if fmt == "csv":
        write_atomic(out, df[columns].to_csv(index=False))
    elif fmt == "json":
        write_atomic(out, json.dumps(df[columns].to_dict(orient="records"), indent=1) + "\n")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        current = set(df["record"])
        shown = [r for r in records if r["id"] in current]
        extra = [_probing_plot(shown, out.parent), _frontier_plot(shown, out.parent)]
        plots = _plots(df, out.parent) + [p for p in extra if p]
        write_atomic(out, render(df, command, out.parent, plots) if fmt == "md" else _html(df, plots, command))
    return out
