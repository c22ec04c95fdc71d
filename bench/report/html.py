"""The leaderboard as one small HTML page: the headline first, every table sortable and filterable.

No CDN and no framework: a few lines of plain JavaScript sort a table when its header is clicked
(numbers by value, text by name) and hide the rows a filter box does not match. Plots are the PNG
files written beside the page; each row links to its record.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.labels import caveat_numbers, detectable_sentence, interval_text, mean_se

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:14px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" ▲"} th[aria-sort=descending]::after{content:" ▼"}
td.lead{font-weight:bold;background:#eef7ee} .wrap{overflow-x:auto} td{white-space:nowrap}
a.rec{text-decoration:none;font-size:12px}
input.filter{margin:.3em 0;padding:3px 6px;width:20em} img{max-width:100%;margin:1em 0}
"""

_SCRIPT = """
function sortTable(th){
  const table=th.closest('table'), body=table.tBodies[0], col=th.cellIndex;
  const ascending=th.getAttribute('aria-sort')!=='ascending';
  table.querySelectorAll('th').forEach(h=>h.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort', ascending?'ascending':'descending');
  const key=row=>{const c=row.cells[col]; const v=c?c.dataset.value:undefined;
    return v!==undefined&&v!==''?parseFloat(v):(c?c.textContent.trim():'');};
  const rows=Array.from(body.rows).sort((a,b)=>{
    const x=key(a), y=key(b);
    if(typeof x==='number'&&typeof y==='number') return ascending?x-y:y-x;
    if(typeof x==='number') return -1; if(typeof y==='number') return 1;
    return ascending?String(x).localeCompare(String(y)):String(y).localeCompare(String(x));});
  rows.forEach(r=>body.appendChild(r));
}
function filterTable(input){
  const words=input.value.toLowerCase().split(/\\s+/).filter(Boolean);
  const table=document.getElementById(input.dataset.table);
  Array.from(table.tBodies[0].rows).forEach(r=>{const text=r.textContent.toLowerCase();
    r.hidden=!words.every(w=>text.includes(w));});
}
document.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
document.querySelectorAll('input.filter').forEach(i=>i.addEventListener('input',()=>filterTable(i)));
"""

_KEYS = ["model", "lens", "site", "sae", "method"]


def _table(table_id: str, headers: list[str], rows: list[list[tuple[str, Any, bool]]]) -> str:
    """rows: cells of (shown html, sort value or None, emphasised)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=lead' if lead else ''} data-value='{'' if value is None else value}'>{text}</td>"
            for text, value, lead in row
        )
        + "</tr>"
        for row in rows
    )
    return (
        f"<input class=filter placeholder='filter rows (e.g. sae 16)' data-table='{table_id}'>"
        f"<div class=wrap><table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _record_link(path: str, out_dir: Path) -> str:
    if not path:
        return ""
    return f"<a class=rec title='the record' href='{html.escape(os.path.relpath(path, out_dir.resolve()))}'>↗</a>"


Mark = Callable[[int], str]


def _marker(notes: Mapping[int, str]) -> tuple[Mark, dict[str, int]]:
    """A function putting a row's caveat mark (†n, the note as its tooltip) after its cell, and
    the notes' numbers: one numbering for the page, so a mark means the same in every table."""
    numbers = caveat_numbers(notes)

    def mark(i: int) -> str:
        return f" <sup title='{html.escape(notes[i])}'>†{numbers[notes[i]]}</sup>" if i in notes else ""

    return mark, numbers


def _headline(top: pd.DataFrame, columns: dict[str, str], lead: set[int], out_dir: Path, mark: Mark) -> str:
    top = top.assign(header=top["task"])
    headers = list(columns)
    several_models = top["model"].nunique() > 1
    rows = []
    for (layer, site, lens, sae, model), group in top.groupby(["layer", "site", "lens", "sae", "model"], sort=True):
        by_header = {r.header: (i, r) for i, r in zip(group.index, group.itertuples(), strict=True)}
        cells: list[tuple[str, Any, bool]] = [
            *([(html.escape(model), None, False)] if several_models else []),
            (str(layer), layer, False),
            (html.escape(lens), None, False),
            (html.escape(site), None, False),
            (html.escape(sae), None, False),
        ]
        for header in headers:
            if header not in by_header:
                cells.append(("", None, False))
                continue
            i, r = by_header[header]
            method = f" ({html.escape(r.method)})" if r.method else ""
            shown = interval_text(r.mean, r.se, r.clusters)
            text = f"{r.mean:.3f} <small>{shown}{method}</small>{mark(i)} {_record_link(r.path, out_dir)}"
            cells.append((text, f"{r.mean:.6g}", i in lead))
        rows.append(cells)
    keys = ["model"] * several_models + ["layer", "lens", "site", "sae"]
    return _table("headline", [*keys, *headers], rows)


def _detail(task: str, part: pd.DataFrame, bold: set[int], out_dir: Path, mark: Mark) -> str:
    columns = list(dict.fromkeys(part["column"]))
    rows = []
    for key, group in part.groupby(_KEYS, sort=False):
        by_column = {r.column: (i, r) for i, r in zip(group.index, group.itertuples(), strict=True)}
        cells: list[tuple[str, Any, bool]] = [(html.escape(str(k)), None, False) for k in key]
        for column in columns:
            if column not in by_column:
                cells.append(("", None, False))
                continue
            i, r = by_column[column]
            shown = mean_se({"mean": r.mean, "se": r.se, "clusters": r.clusters})
            cells.append((f"{shown} ({r.n}){mark(i)}", f"{r.mean:.6g}", i in bold))
        cells.append((_record_link(group["path"].iloc[0], out_dir), None, False))
        rows.append(cells)
    return _table(f"task-{task}", [*_KEYS, *columns, "record"], rows)


def html_page(
    df: pd.DataFrame,
    top: pd.DataFrame,
    columns: dict[str, str],
    lead: set[int],
    bold: set[int],
    plots: list[Path],
    command: str,
    out_dir: Path,
    notes: Mapping[int, str] | None = None,
    detectable: Mapping[str, float] | None = None,
) -> str:
    """`notes`: caveats by row index (marked †n); `detectable`: per task, the smallest difference
    the sample sizes detect (stated under the headline)."""
    mark, numbers = _marker(notes or {})
    power = f"<p>{html.escape(detectable_sentence(detectable))}</p>" if detectable else ""
    marked = "".join(f"<p class=note>†{n}: {html.escape(text)}.</p>" for text, n in numbers.items())
    sections = [
        "<h2>Headline</h2><p>Each task's ranked metric at its middle k: mean [95 % interval]. Highlighted: lenses "
        "the data cannot tell from the leader at the same site (a tie with the leader, not a win): a paired "
        "bootstrap over the same facts, Holm-corrected, where records carry per-fact values (nothing "
        "highlighted when no lens is significantly worse), else overlapping intervals. Click a header to "
        "sort; type in the box to filter rows.</p>",
        _headline(top, columns, lead, out_dir, mark),
        "<p>Columns: "
        + "; ".join(f"{html.escape(task)}: {html.escape(column)}" for task, column in columns.items())
        + ".</p>",
        power,
        marked,
    ]
    for task, part in df.groupby("task", sort=False):
        sections.append(f"<h2>{html.escape(str(task))}</h2>{_detail(str(task), part, bold, out_dir, mark)}")
    images = "".join(
        f"<figure><img alt='{html.escape(p.stem)}' src='{html.escape(os.path.relpath(p, out_dir))}'></figure>"
        for p in plots
    )
    return (
        "<!doctype html><html lang=en><head><meta charset='utf-8'><title>lens-bench leaderboard</title>"
        f"<style>{_STYLE}</style></head><body><h1>lens-bench leaderboard</h1>"
        f"<p>Regenerate with <code>{html.escape(command)}</code>.</p>{''.join(sections)}"
        f"<h2>Plots</h2>{images}<script>{_SCRIPT}</script></body></html>\n"
    )
