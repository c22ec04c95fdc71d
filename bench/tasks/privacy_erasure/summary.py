"""What `bench run` prints for a privacy-erasure record: each method at the side-effect budget
with 95 % intervals, the paired differences between them, and every swept variant (the erasure
frontier as numbers; `bench leaderboard` draws it). A table with a column per metric and variant
would run to a hundred columns."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from bench.report.labels import interval, single_cluster


def _cell(metric: dict[str, Any] | None, targets: int) -> str:
    """`mean [low, high]` to three places (a perplexity ratio's interval lies within 1 ± 0.01),
    with the count where fewer than the test targets were measured (Gen: only the targets whose
    held-out templates the injected model answers)."""
    if metric is None:
        return ""
    fewer = f" (n={metric['n']} of {targets})" if metric["n"] < targets else ""
    if single_cluster(metric):
        return f"{metric['mean']:.3f} [n/a: 1 relation]{fewer}"
    low, high = interval(metric["mean"], metric["se"])
    return f"{metric['mean']:.3f} [{low:.3f}, {high:.3f}]{fewer}"


def _p(value: float) -> str:
    return f"{value:.3g}" if value > 0 else "< 0.001"


def run_summary(record: dict[str, Any]) -> str:
    metrics, budget = record["metrics"], record["budget"]
    limits = budget["config"]
    injection, splits, ppl = record["injection"], record["splits"], record["perplexity"]
    targets = splits["test_targets"]
    lines = [
        f"{record['lens']['name']} at {record['lens']['site']}: {injection['learnt']} of {injection['of']} private "
        f"facts learnt, WikiText-2 perplexity x{ppl['injection_ratio']:.3f} after injection; "
        f"{splits['dev_targets']} dev / {splits['test_targets']} test targets; lens fit: {record['lens_fit']['model']}",
        "",
        f"At the budget (Loc >= {limits['min_loc']}, PPL ratio <= {limits['max_ppl_ratio']}): each method's "
        "variant chosen on the dev half, scored on the test half, 95 % intervals (relations resampled)",
    ]
    rows = [
        [
            name,
            label or "none within budget (erases nothing)",
            _cell(metrics.get(f"rel_at_budget.{name}"), targets),
            _cell(metrics.get(f"loc_at_budget.{name}"), targets),
            _cell(metrics.get(f"ppl_ratio_at_budget.{name}"), targets),
        ]
        for name, label in budget["chosen"].items()
    ]
    lines.append(tabulate(rows, headers=["method", "variant", "Rel", "Loc", "PPL ratio"], tablefmt="github"))
    if budget.get("paired_rel"):
        lines += ["", "Rel at the budget, paired over the same test targets (a tie unless Holm's p < 0.05):"]
        lines.append(_paired_table(budget["paired_rel"]))
    lines += ["", "Every variant on the test half (the erasure frontier; `bench leaderboard` draws it):"]
    rows = [
        [label, *(_cell(metrics.get(f"{name}.{label}"), targets) for name in ("rel", "gen", "loc", "ppl_ratio"))]
        for label in record["methods"]
    ]
    lines.append(tabulate(rows, headers=["variant", "Rel", "Gen", "Loc", "PPL ratio"], tablefmt="github"))
    return "\n".join(lines)


def _paired_table(pairs: list[dict[str, Any]]) -> str:
    rows = [
        [f"{p['a']} - {p['b']}", f"{p['diff']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]", _p(p["p_holm"])]
        for p in pairs
    ]
    return tabulate(rows, headers=["difference", "Rel", "p (Holm)"], tablefmt="github")


def leaderboard_note(records: list[dict[str, Any]]) -> str:
    """Under the leaderboard's privacy table: each record's methods compared at the budget, paired."""
    parts = []
    for record in records:
        pairs = record.get("budget", {}).get("paired_rel")
        if pairs:
            n = pairs[0]["n"]
            parts.append(
                f"{record['lens']['name']} at `{record['lens']['site']}`: Rel at the budget paired over the same "
                f"{n} test targets (relations resampled, Holm-adjusted; a tie unless p < 0.05):\n\n"
                + _paired_table(pairs)
            )
    return "\n\n".join(parts)
