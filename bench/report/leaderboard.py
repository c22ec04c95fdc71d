"""`bench leaderboard`: finished records published as markdown (or csv / json / html).

What each metric is called, which way is better and which one a task ranks on all come from
the task types' metric tables (``TaskType.metrics``); nothing here knows a task by name. The
markdown opens with a headline table (one row per lens and site, one column per task's ranked
metric with its 95 % interval) and has one detail table per task below it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.engine.records import lens_weights
from bench.errors import BenchError
from bench.io import write_atomic
from bench.plugin.specs import MetricSpec, TaskType, is_number, split_key
from bench.report.html import html_page
from bench.report.labels import (
    caveat_numbers,
    detectable_sentence,
    interval,
    interval_text,
    judge_name,
    layer_of,
    lens_label,
    mean_se,
    portable_command,
    sae_column,
)
from bench.report.plots import delta_prob_curves, metric_bars
from bench.stats import holm, paired_difference

FORMATS = ("md", "csv", "json", "html")
ROW = ["model", "lens", "site", "sae", "method"]
NUMBER = [*ROW, "task", "metric"]  # what names one number of the leaderboard
FAMILIES = ("Knowledge", "Interpretability", "Probing", "Erasure", "Other")
ALPHA = 0.05  # family-wise level of the paired tests that decide the headline's rank groups
PAIRED_RESAMPLES = 2000
DETECTABLE_Z = 1.96 + 0.84  # two-sided α = 0.05, power 0.8


def _spec(task_type: TaskType | None, key: str) -> MetricSpec:
    found = task_type.metric(key) if task_type else None
    base = split_key(key)[0]
    return found or MetricSpec(base, base, higher_is_better=None)  # a task this install does not know: shown, unranked


def installed_task_types() -> dict[str, TaskType]:
    from bench.plugin.registry import plugins

    return plugins().task_types.by_name()


def frame(records: Iterable[dict[str, Any]], task_types: Mapping[str, TaskType] | None = None) -> pd.DataFrame:
    """One row per (record, metric); when a cell was computed twice, the latest record wins."""
    task_types = installed_task_types() if task_types is None else task_types
    rows = []
    for record in records:
        path = Path(record["_path"]) if "_path" in record else None
        task_type = task_types.get(record["task"]["type"])
        judge = judge_name(record)
        for key, value in record["metrics"].items():
            base, k, method = split_key(key)
            metric = f"{base}@{k}" if k else base
            spec = _spec(task_type, key)
            label = spec.label + (f" [{judge}]" if judge else "")  # scores of different judges never share a column
            rows.append(
                {
                    "model": record["model"]["id"],
                    "lens": record["lens"]["name"],
                    "site": record["lens"]["site"],
                    "layer": layer_of(record["lens"]["site"]),
                    "sae": sae_column(record),
                    "label": lens_label(record),
                    "method": method,
                    "task": record["task"]["name"],
                    "task_type": record["task"]["type"],
                    "family": task_type.family if task_type else "Other",
                    "metric": metric,
                    "base": base,
                    "k": k,
                    "column": label + (f"@{k}" if k else ""),
                    "higher_is_better": spec.higher_is_better,
                    "headline": spec.headline,
                    "shown": spec.detail,
                    "all_k": spec.shown_at == "all",
                    "mean": value["mean"],
                    "se": value["se"],
                    "n": value["n"],
                    "clusters": value.get("clusters"),
                    "finished": record["provenance"]["finished"],
                    "record": record["id"],
                    "path": str(path) if path else "",
                    "commit": record["provenance"].get("git_commit"),
                    "weights": record["model"]["weights_sha256"][:12],
                    "seed": record["task"]["config"].get("seed"),
                    "sae_sha256": lens_weights(record).get("sae_sha256", "")[:12],
                    "judge": judge,
                    "command": portable_command(record),
                    "artifacts": [str(path.parent / a) for a in record.get("artifacts", {}).values()] if path else [],
                    # per-item values of a ranked metric, for paired tests between lenses
                    "items": item_values(task_type, record, key) if spec.headline else None,
                }
            )
    if not rows:
        raise BenchError("no result records found; run `bench run ...` first or pass --results-dir.")
    df = pd.DataFrame(rows).sort_values("finished", kind="stable")
    df = df.drop_duplicates(NUMBER, keep="last")
    return df.sort_values(["model", "layer", "site", "lens", "task"], kind="stable").reset_index(drop=True)


def numbers(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Every number of the leaderboard (mean, se, n) under what names it: the golden file's layout."""
    return frame(records)[[*NUMBER, "mean", "se", "n"]].sort_values(NUMBER, na_position="first")


def _middle_k(df: pd.DataFrame, every_k_where_asked: bool = True) -> pd.DataFrame:
    """Metrics reported at several k, at the middle k of their task (every k where the task asks)."""
    keep = []
    for (_task, _base), group in df.groupby(["task", "base"], sort=False):
        ks = sorted({k for k in group["k"] if is_number(k)}, key=float)
        if not ks or (every_k_where_asked and group["all_k"].iloc[0]):
            keep.append(group)
        else:
            keep.append(group[group["k"] == ks[len(ks) // 2]])
    return pd.concat(keep).sort_index() if keep else df


def caveats(df: pd.DataFrame, task_types: Mapping[str, TaskType]) -> dict[int, str]:
    """Footnotes the task types put on cells of their own rows (values that are partly mechanical)."""
    out: dict[int, str] = {}
    for name, task_type in task_types.items():
        part = df[df["task_type"] == name]
        if task_type.caveats is not None and not part.empty:
            out |= task_type.caveats(part)
    return out


def _ranked_groups(df: pd.DataFrame) -> Iterator[tuple[pd.DataFrame, bool]]:
    """Each column's rows at one site, with which way is better, where there is something to rank:
    units at different sites measure different things, so no lens is compared across sites."""
    for _key, group in df.groupby(["task", "column", "site"]):
        direction = group["higher_is_better"].iloc[0]
        if direction is not None and not pd.isna(direction) and len(group) >= 2:
            yield group, bool(direction)


def best(df: pd.DataFrame) -> set[int]:
    """Index of the best row of each column among lenses at one site (ties all bold)."""
    out = set()
    for group, higher in _ranked_groups(df):
        target = group["mean"].max() if higher else group["mean"].min()
        out |= set(group.index[group["mean"] == target])
    return out


def leading_group(df: pd.DataFrame) -> set[int]:
    """The rank group of each headline column at each site: the rows the data cannot tell apart
    from the leader. Where every row has its per-item values, a paired, cluster-resampled bootstrap
    of each row against the leader over the same items, Holm-corrected; when no row is
    significantly worse, no row leads and none is returned. Otherwise (compact records) the rows
    whose 95 % interval overlaps the leader's, an unpaired and conservative check."""
    out = set()
    for group, higher in _ranked_groups(df):
        leader = group["mean"].idxmax() if higher else group["mean"].idxmin()
        if all(isinstance(values, dict) for values in group["items"]):
            out |= _paired_rank_group(group, leader, higher)
            continue
        low, high = interval(group.loc[leader, "mean"], group.loc[leader, "se"])
        for i, row in group.iterrows():
            r_low, r_high = interval(row["mean"], row["se"])
            if r_high >= low and r_low <= high:
                out.add(i)
    return out


def paired_tests(group: pd.DataFrame, leader: int) -> dict[int, dict[str, float | int]]:
    """Each other row against the leader: leader − row over their common items, with a Holm-adjusted p."""
    lead = group.loc[leader, "items"]
    tests = {}
    for i, row in group.iterrows():
        if i != leader:
            clusters = {item: cluster for item, (cluster, _) in (row["items"] | lead).items()}
            tests[i] = paired_difference(
                {item: v for item, (_, v) in lead.items()},
                {item: v for item, (_, v) in row["items"].items()},
                clusters,
                PAIRED_RESAMPLES,
                seed=0,
            )
    for test, adjusted in zip(tests.values(), holm([t["p"] for t in tests.values()]), strict=True):
        test["p_holm"] = adjusted
    return tests


def _paired_rank_group(group: pd.DataFrame, leader: int, higher: bool) -> set[int]:
    worse = {
        i
        for i, test in paired_tests(group, leader).items()
        if test["p_holm"] < ALPHA and (test["diff"] > 0) == higher and test["diff"] != 0
    }
    return set(group.index) - worse if worse else set()


def item_values(task_type: TaskType | None, record: dict[str, Any], key: str) -> dict[str, Any] | None:
    """{item: (cluster, value)} from the record's items, or from a compact record's paired_values."""
    if key in (record.get("paired_values") or {}):
        return {item: tuple(pair) for item, pair in record["paired_values"][key].items()}
    if task_type is None or task_type.item_values is None:
        return None
    return task_type.item_values(record, key)


def headline(df: pd.DataFrame) -> pd.DataFrame:
    """Each task's ranked metric at its middle k; a task comparing methods shows its best method."""
    rows = _middle_k(df[df["headline"]], every_k_where_asked=False)
    picked = []
    for _key, group in rows.groupby([*ROW[:4], "task"], sort=False):
        direction = group["higher_is_better"].iloc[0]
        picked.append(group.loc[group["mean"].idxmax() if direction is not False else group["mean"].idxmin()])
    return pd.DataFrame(picked)


def _columns(top: pd.DataFrame) -> dict[str, str]:
    """The headline's columns, task -> metric label, in family order (knowledge first)."""
    order = top.assign(rank=top["family"].map({f: i for i, f in enumerate(FAMILIES)})).sort_values(
        "rank", kind="stable"
    )
    return dict(zip(order["task"], order["column"], strict=True))


def _headline_cell(row: Any, lead: bool, caveat: int | None = None) -> str:
    method = f" ({row.method})" if row.method else ""
    text = f"{row.mean:.3f} {interval_text(row.mean, row.se, row.clusters)}{method}"
    text = f"**{text}**" if lead else text
    return f"{text} †{caveat}" if caveat else text


def _headline_table(df: pd.DataFrame, all_notes: Mapping[int, str], fmt: str = "github") -> str:
    top = headline(df)
    if top.empty:  # e.g. records that predate their task's ranked metric
        return "No record holds its task's ranked metric; the tables below have what they hold."
    lead = leading_group(top)
    notes = {i: text for i, text in all_notes.items() if i in top.index}
    numbers = caveat_numbers(notes)
    top = top.assign(
        cell=[
            _headline_cell(r, i in lead, numbers.get(notes.get(i, "")))
            for i, r in zip(top.index, top.itertuples(), strict=True)
        ],
        header=top["task"],
    )
    table = top.pivot_table(
        index=["model", "layer", "lens", "site", "sae"], columns="header", values="cell", aggfunc="first", sort=False
    ).fillna("")
    table = table[list(_columns(top))].reset_index().sort_values(["model", "layer", "site", "lens"], kind="stable")
    table = _drop_constant(table, ["model"]).drop(columns="layer")
    if not table["sae"].any():
        table = table.drop(columns="sae")
    legend = "; ".join(f"{task}: {column}" for task, column in _columns(top).items())
    detectable = minimal_detectable(top)
    power = f"\n\n{detectable_sentence(detectable)}" if detectable else ""
    marked = "".join(f"\n\n†{n}: {text}." for text, n in numbers.items())
    return tabulate(table, headers="keys", tablefmt=fmt, showindex=False) + f"\n\nColumns: {legend}.{power}{marked}"


def minimal_detectable(top: pd.DataFrame) -> dict[str, float]:
    """Per task, the median over same-site pairs of (z_α/2 + z_power) · √(se₁² + se₂²): the
    difference an unpaired two-sided test at α = 0.05 finds with 80 % power. A paired test over
    the same facts detects less (the facts' shared variance cancels); this is its upper bound.
    Tasks in the headline's column order."""
    out = {}
    for task in _columns(top):
        part = top[top["task"] == task]
        gaps = [
            DETECTABLE_Z * (a**2 + b**2) ** 0.5
            for group, _ in _ranked_groups(part)
            for i, a in enumerate(group["se"])
            for b in list(group["se"])[i + 1 :]
        ]
        if gaps:
            out[str(task)] = float(np.median(gaps))
    return out


def _drop_constant(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return table.drop(columns=[c for c in columns if table[c].nunique() <= 1])


def _cell(row: Any, bold: bool, caveat: int | None = None) -> str:
    text = f"{mean_se({'mean': row.mean, 'se': row.se, 'clusters': row.clusters})} ({row.n})"
    text = f"**{text}**" if bold else text
    return f"{text} †{caveat}" if caveat else text


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


def _task_table(df: pd.DataFrame, refs: dict[tuple[str, ...], int], all_notes: Mapping[int, str]) -> str:
    """``all_notes``: the caveats of the whole frame (a caveat may depend on rows this table hides)."""
    bold = best(df)
    notes = {i: text for i, text in all_notes.items() if i in df.index}
    numbers = caveat_numbers(notes)
    cells = df.assign(
        cell=[
            _cell(row, i in bold, numbers.get(notes.get(i, "")))
            for i, row in zip(df.index, df.itertuples(), strict=True)
        ]
    )
    index = [*ROW, "layer"]
    table = cells.pivot_table(index=index, columns="column", values="cell", aggfunc="first", sort=False).fillna("")
    table = table[list(dict.fromkeys(df["column"]))]  # metrics in the order the task reports them, not A-Z
    table = table.reset_index().sort_values(["model", "layer", "site", "lens", "sae", "method"], kind="stable")
    table = table.drop(columns="layer")
    table["lens"] = [
        f"{lens} [^{refs[tuple(key)]}]" for lens, key in zip(table["lens"], table[ROW].values, strict=True)
    ]
    table = _drop_constant(table, ["model"])
    for column in ("sae", "method"):  # only rows that have them get the column
        if not table[column].any():
            table = table.drop(columns=column)
    text = tabulate(table, headers="keys", tablefmt="github", showindex=False)
    return text + "".join(f"\n\n†{n} mechanical in part: {note}." for note, n in numbers.items())


def render(
    df: pd.DataFrame,
    command: str,
    out_dir: Path = Path("."),
    plots: list[Path] | None = None,
    method_pages: Mapping[str, str] | None = None,
    task_types: Mapping[str, TaskType] | None = None,
    findings: str | None = None,
    table_notes: Mapping[str, str] | None = None,
) -> str:
    """``table_notes``: markdown under a task's table, by task name (from its type's table_note)."""
    detail = _middle_k(df[df["shown"]])
    types = installed_task_types() if task_types is None else task_types
    notes_all = caveats(df, types)
    notes = _footnotes(detail)
    refs = {key: i for i, key in enumerate(notes, 1)}
    parts = [
        "# lens-bench leaderboard\n",
        "## Headline\n",
        "Each task's ranked metric, at the middle k it was run at: `mean [95 % interval]`. Bold: the lenses "
        "the data cannot tell from the leader at the same site and layer (units at different sites measure "
        "different things), so a bold cell is a tie with the leader, not a win. With per-fact values in the "
        "records, a paired bootstrap over the same facts (whole relations resampled, Holm-corrected, "
        f"α = {ALPHA}) decides, and nothing is bold when no lens is significantly worse; records without "
        "them (compact copies) use overlap of the intervals, unpaired and conservative. A task that "
        "compares methods shows its best method in brackets.\n",
        _headline_table(df, notes_all) + "\n",
        "Detail tables: `mean ± bootstrap SE (n)`, bold the best value of a column at one site. Controls of "
        "a metric measured at several k are shown at the middle k; the csv and json formats have every k. "
        "† marks a value that is partly mechanical (see the note under its table).\n",
        f"Regenerate with `{command}`."
        + (f" What the numbers mean, and what they cannot show: [findings]({findings})." if findings else "")
        + "\n",
    ]
    commands = sorted({c for c in df["command"] if c})
    if commands:
        parts.append("Produced by:\n\n```bash\n" + "\n".join(commands) + "\n```\n")
    pages = method_pages or {}
    for family in FAMILIES:
        for task in dict.fromkeys(detail.loc[detail["family"] == family, "task"]):
            part = detail[detail["task"] == task]
            link = f" ([method]({pages[task]}))" if task in pages else ""
            note = (table_notes or {}).get(task)
            parts.append(f"## {task}{link}\n\n{_task_table(part, refs, notes_all)}\n" + (f"\n{note}\n" if note else ""))
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
    """Each task's headline metric against k (where it has several), then bars of its ranked metrics."""
    out = []
    curves = df[df["headline"] & df["k"].str.isdigit() & (df["method"] == "")]
    for (task, base), part in curves.groupby(["task", "base"], sort=False):
        rows = [
            {"lens": r.label, "layer": r.layer, "k": int(r.k), "mean": r.mean, "se": r.se} for r in part.itertuples()
        ]
        out.append(delta_prob_curves(rows, out_dir / f"{task}_{base}.png", part["column"].iloc[0].rpartition("@")[0]))
    ranked = df[df["higher_is_better"].notna()]
    for task, part in ranked.groupby("task", sort=False):
        out.append(metric_bars(part, f"{task}", out_dir / f"bars_{task}.png"))
    return out


def _task_plots(
    records: list[dict[str, Any]], df: pd.DataFrame, task_types: Mapping[str, TaskType], out: Path
) -> list[Path]:
    """Plots a task type draws from its own records (the erasure frontier, probing curves)."""
    current = set(df["record"])
    shown = [r for r in records if r["id"] in current]
    paths = []
    for name, task_type in task_types.items():
        mine = [r for r in shown if r["task"]["type"] == name]
        if mine and task_type.plot is not None:
            paths += [p for p in task_type.plot(mine, out) if p]
    return paths


def write_leaderboard(
    records: Iterable[dict[str, Any]],
    out: Path,
    command: str,
    fmt: str = "md",
    task_types: Mapping[str, TaskType] | None = None,
) -> Path:
    if fmt not in FORMATS:
        raise BenchError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    task_types = installed_task_types() if task_types is None else task_types
    records = list(records)
    df = frame(records, task_types)
    columns = [c for c in df.columns if c not in ("artifacts", "path", "all_k", "shown")]
    if fmt == "csv":
        write_atomic(out, df[columns].to_csv(index=False))
    elif fmt == "json":
        write_atomic(out, json.dumps(df[columns].to_dict(orient="records"), indent=1) + "\n")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        plots = _plots(df, out.parent) + _task_plots(records, df, task_types, out.parent)
        pages = _method_pages(records, task_types, out.parent)
        if fmt == "md":
            findings = _repo_page("docs/findings.md", out.parent)
            notes = _table_notes(records, task_types)
            write_atomic(out, render(df, command, out.parent, plots, pages, task_types, findings, notes))
        else:
            top = headline(df)
            detail = _middle_k(df[df["shown"]])
            notes = caveats(df, task_types)
            page = html_page(
                detail, top, _columns(top), leading_group(top), best(detail), plots, command, out.parent,
                notes=notes, detectable=minimal_detectable(top),
            )  # fmt: skip
            write_atomic(out, page)
    return out


def _table_notes(records: list[dict[str, Any]], task_types: Mapping[str, TaskType]) -> dict[str, str]:
    """Each task's note from its type's table_note over the task's records, where it gives one."""
    notes = {}
    for task in dict.fromkeys(r["task"]["name"] for r in records):
        mine = [r for r in records if r["task"]["name"] == task]
        task_type = task_types.get(mine[0]["task"]["type"])
        note = task_type.table_note(mine) if task_type and task_type.table_note else ""
        if note:
            notes[task] = note
    return notes


def _method_pages(records: list[dict[str, Any]], task_types: Mapping[str, TaskType], out_dir: Path) -> dict[str, str]:
    """Links from each task's section to its method page in the checkout (docs/methods/), where
    the page exists: an installed copy without the docs gets no dead links."""
    pages = {}
    for record in records:
        task_type = task_types.get(record["task"]["type"])
        page = _repo_page(task_type.method_page, out_dir) if task_type and task_type.method_page else None
        if page:
            pages[record["task"]["name"]] = page
    return pages


def _repo_page(relative: str, out_dir: Path) -> str | None:
    """A page of the lens-bench checkout (docs/...) as a link from out_dir; None for an installed copy."""
    from bench.paths import REPO_ROOT

    page = REPO_ROOT / relative
    return os.path.relpath(page, out_dir.resolve()) if page.is_file() else None
