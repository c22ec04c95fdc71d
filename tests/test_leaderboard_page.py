"""The HTML leaderboard in a real browser (Debian's headless Chromium, driven by Playwright):
it renders, clicking a header sorts the rows, the filter hides rows, and nothing logs an error.

CI installs chromium (.ci/run); elsewhere the test skips when no chromium is on the machine.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.report.leaderboard import write_leaderboard
from tests.test_leaderboard import RECORDS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="no chromium on this machine (CI installs it)"
)
# Chromium's own background connections are refused on a closed network; keep it from trying
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(tmp_path: Path):
    playwright = pytest.importorskip("playwright.sync_api")
    out = write_leaderboard(RECORDS, tmp_path / "board" / "index.html", "bench leaderboard", "html")
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        tab = browser.new_page()
        tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        tab.on("pageerror", lambda err: errors.append(str(err)))
        tab.goto(out.as_uri())
        yield tab, errors
        browser.close()


def _column(tab, table: str, index: int) -> list[str]:
    return tab.eval_on_selector_all(
        f"#{table} tbody tr:not([hidden])", f"rows => rows.map(r => r.cells[{index}].textContent.trim())"
    )


def test_page_renders_the_headline_first(page) -> None:
    tab, errors = page
    assert tab.title() == "lens-bench leaderboard"
    assert tab.locator("h2").first.text_content() == "Headline"
    assert tab.locator("#headline tbody tr").count() == 4  # one row per lens and site
    assert all(tab.locator(f"img >> nth={i}").evaluate("img => img.naturalWidth > 0") for i in range(2))
    assert errors == []


def test_clicking_a_header_sorts_the_rows(page) -> None:
    tab, errors = page
    headers = tab.eval_on_selector_all("#headline th", "ths => ths.map(th => th.textContent)")
    column = headers.index("knowledge_ablation")
    tab.click(f"#headline th >> nth={column}")
    ascending = [float(text.split()[0]) for text in _column(tab, "headline", column)]
    assert ascending == sorted(ascending) and len(ascending) == 4
    tab.click(f"#headline th >> nth={column}")
    descending = [float(text.split()[0]) for text in _column(tab, "headline", column)]
    assert descending == sorted(ascending, reverse=True)
    assert errors == []


def test_the_filter_hides_rows_that_do_not_match(page) -> None:
    tab, errors = page
    tab.fill("input[data-table=headline]", "mlp_neurons 10")
    assert _column(tab, "headline", 2) == ["blocks.10.mlp.hook_post"]
    tab.fill("input[data-table=headline]", "")
    assert len(_column(tab, "headline", 2)) == 4
    assert errors == []
