"""`bench leaderboard`: every finished record on disk, as one markdown table comparing lenses."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError
from bench.io import write_atomic
from bench.plots import delta_prob_curves

_METRIC_NAMES = {
    "delta_prob": "ΔProb",
    "p_clean": "P(answer)",
    "cohens_d": "Cohen's d",
    "auroc": "AUROC",
    "is_sampled": "IS (sampled units)",
    "is_attributed": "IS (fact units)",
}


def _metric_label(record: dict[str, Any], metric: str) -> str:
    """Column name; scores of different judges never share a column."""
    base, _, suffix = metric.partition("@")
    task = record["task"]["name"]
    if "judge" in record:
        judge = record["judge"]
        task += f" [{judge['name']} v{judge['version']}" + (f" {judge['model']}" if "model" in judge else "") + "]"
    return f"{task}: {_METRIC_NAMES.get(base, base)}" + (f"@{suffix}" if suffix else "")


def _layer(site: str) -> int:
    match = re.match(r"blocks\.(\d+)\.", site)
    return int(match.group(1)) if match else -1


def frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (record, metric); when a cell was computed twice, the latest record wins."""
    rows = []
    for record in records:
        for metric, value in record["metrics"].items():
            rows.append(
                {
                    "model": record["model"]["id"],
                    "lens": record["lens"]["name"],
                    "site": record["lens"]["site"],
                    "task": record["task"]["name"],
                    "metric": metric,
                    "column": _metric_label(record, metric),
                    "cell": f"{value['mean']:.3f} ± {value['se']:.3f} ({value['n']})",
                    "finished": record["provenance"]["finished"],
                    "record": record["id"],
                    "commit": record["provenance"].get("git_commit"),
                    "weights": record["model"]["weights_sha256"][:12],
                    "seed": record["task"]["config"].get("seed"),
                    "artifacts": [
                        str(Path(record["_path"]).parent / name) for name in record.get("artifacts", {}).values()
                    ]
                    if "_path" in record
                    else [],
                }
            )
    if not rows:
        raise BenchError("no result records found; run `bench run ...` first or pass --results-dir.")
    df = pd.DataFrame(rows).sort_values("finished")
    return df.drop_duplicates(["model", "lens", "site", "task", "metric"], keep="last")


def render(df: pd.DataFrame, command: str, out_dir: Path = Path(".")) -> str:
    table = df.pivot(index=["model", "lens", "site"], columns="column", values="cell").fillna("")
    table = table[list(dict.fromkeys(df["column"]))]  # metrics in the order tasks report them, not A-Z
    order = sorted(table.index, key=lambda key: (key[0], key[1], _layer(key[2]), key[2]))
    table = table.loc[order]
    body = tabulate(table.reset_index(), headers="keys", tablefmt="github", showindex=False)
    provenance = (
        df.drop_duplicates("record")
        .sort_values(["model", "lens", "site", "task"])
        .apply(
            lambda r: (
                f"- `{r.record}` {r.model} / {r.lens} / {r.site} / {r.task}: weights `{r.weights}`, "
                f"seed {r.seed}, commit `{r.commit}`, finished {r.finished}"
            ),
            axis=1,
        )
    )
    plots = [
        f"- {r.lens} / {r.site} / {r.task}: "
        + ", ".join(f"[{Path(a).stem.split('.')[-1]}]({os.path.relpath(a, out_dir)})" for a in r.artifacts)
        for r in df.drop_duplicates("record").sort_values(["model", "lens", "site", "task"]).itertuples()
        if r.artifacts
    ]
    plot_section = "\n## Plots\n\n" + "\n".join(plots) + "\n" if plots else ""
    return (
        "# lens-bench leaderboard\n\n"
        "Each cell is `mean ± bootstrap SE (n)`. Lenses are compared at equal k.\n"
        f"Regenerate with `{command}`.\n\n"
        f"{body}\n\n## Provenance\n\n" + "\n".join(provenance) + "\n" + plot_section
    )


def _delta_prob_plot(records: list[dict[str, Any]], out_dir: Path) -> Path | None:
    rows = [
        {"lens": r["lens"]["name"], "layer": r["lens"]["layer"], "k": int(name.split("@")[1]), **value}
        for r in records
        if r["task"]["type"] == "knowledge_ablation"
        for name, value in r["metrics"].items()
        if name.startswith("delta_prob@") and name.split("@")[1].isdigit()
    ]
    return delta_prob_curves(rows, out_dir / "delta_prob.png") if rows else None


def write_leaderboard(records: Iterable[dict[str, Any]], out: Path, command: str) -> Path:
    records = list(records)
    df = frame(records)
    text = render(df, command, out.parent)
    current = set(df["record"])  # the plot shows the same, latest, records as the table
    plot = _delta_prob_plot([r for r in records if r["id"] in current], out.parent)
    if plot is not None:
        text += f"\n## ΔProb against k\n\n![ΔProb against k per lens and layer]({plot.name})\n"
    write_atomic(out, text)
    return out
