"""The findings' table of one task at one layer, from full records.

    python scripts/findings_table.py <results dir> --task knowledge_ablation --layer 16

One markdown row per lens, sorted by the task's headline, every mean with its 95 % interval
(mean ± 1.96 SE as the leaderboard writes it, relations resampled where the task clusters by
relation; records of the task's current schema only). Reads full records
(`bench run --output-dir`); the leaderboard's compact copies keep only headline numbers.

- knowledge_ablation: selectivity at each KL budget ("≥" where the lens's costliest edit stays
  under the budget, so the value is a lower bound; "†" where even k = 1 costs more, so the value is
  interpolated between no edit and k = 1), selectivity/specificity/ΔProb and the two
  controls at k = 5, next-token KL at k = 1/5/50, the edit's relative norm at k = 5 and the
  run's wall time ("resumed" where it finished an earlier run's items: partial).
- monosemanticity: median Cohen's d, AUROC overall, on paraphrases and on same-object prompts.
- interpretability: IS of sampled and of fact-attributed units, the shuffled-explanation and
  random-direction nulls, and the alive fraction of the sampled units.
- sparse_probing: mean F1 with 1 and 16 units, the site's random-basis floor and dense ceiling.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from bench.engine.records import load_records
from bench.report.labels import interval_text

BUDGETS = ("0.005", "0.01", "0.02")


def _interval(metric: dict) -> str:
    """As the leaderboard writes it."""
    return f"{metric['mean']:.3f} {interval_text(metric['mean'], metric['se'], metric.get('clusters'))}"


def _at_budget(record: dict, budget: str) -> str:
    cell = _interval(record["metrics"][f"selectivity_at_kl@{budget}"])
    frontier = record["frontier"][budget]
    if not frontier["binding"]:
        return f"≥ {cell}"
    # even one unit costs more than the budget: the value is interpolated towards no edit
    return cell if frontier["smallest_edit_fits"] else f"{cell} †"


def _wall(provenance: dict) -> str:
    wall = f"{provenance['wall_time_s']:.0f} s"
    return f"{wall} (resumed)" if provenance.get("resumed_items") else wall


def _knowledge_ablation(record: dict) -> list[str]:
    metrics = record["metrics"]
    mean = {key: value["mean"] for key, value in metrics.items() if isinstance(value, dict)}
    return [
        *(_at_budget(record, budget) for budget in BUDGETS),
        _interval(metrics["selectivity@5"]),
        _interval(metrics["specificity@5"]),
        f"{mean['delta_prob@5']:.3f}",
        f"{mean['delta_prob_same_relation@5']:.3f}",
        f"{mean['delta_prob_unrelated@5']:.3f}",
        " / ".join(f"{mean[f'kl_last@{k}']:.3f}" for k in (1, 5, 50)),
        f"{mean['edit_norm@5']:.2f}",
        _wall(record["provenance"]),
    ]


def _intervals(*keys: str) -> Callable[[dict], list[str]]:
    return lambda record: [_interval(record["metrics"][key]) for key in keys]


TABLES: dict[str, tuple[str, list[str], Callable[[dict], list[str]]]] = {
    # task type: (sort key, column titles after lens and site, cells of one record)
    "knowledge_ablation": (
        "selectivity_at_kl@0.01",
        [
            *(f"selectivity, KL ≤ {budget}" for budget in BUDGETS),
            "selectivity@5",
            "specificity@5",
            "ΔProb@5",
            "same relation@5",
            "other relations@5",
            "next-token KL k = 1 / 5 / 50",
            "‖Δh‖/‖h‖@5",
            "wall",
        ],
        _knowledge_ablation,
    ),
    "monosemanticity": (
        "auroc",
        ["median Cohen's d", "AUROC", "AUROC paraphrases", "AUROC same object"],
        _intervals("median_d", "auroc", "auroc_paraphrase", "auroc_same_object"),
    ),
    "interpretability": (
        "is_sampled",
        ["IS sampled units", "IS fact units", "null: shuffled explanations", "null: random directions", "alive"],
        lambda record: [
            *_intervals("is_sampled", "is_attributed", "is_shuffled", "is_random_direction")(record),
            f"{record['metrics']['alive_sampled']['mean']:.2f}",  # a fraction: its interval would leave [0, 1]
        ],
    ),
    "sparse_probing": (
        "f1@1",
        ["F1@1", "F1@16", "floor@1", "floor@16", "ceiling (dense)"],
        _intervals("f1@1", "f1@16", "f1_random_basis@1", "f1_random_basis@16", "f1_dense"),
    ),
}


def table(records: list[dict], task_type: str) -> str:
    sort_key, titles, cells = TABLES[task_type]
    records = sorted(records, key=lambda r: -r["metrics"][sort_key]["mean"])
    lines = ["| " + " | ".join(["lens", "site", *titles]) + " |", "|---" * (len(titles) + 2) + "|"]
    for record in records:
        lens = record["lens"]
        lines.append("| " + " | ".join([f"`{lens['name']}`", f"`{lens['site']}`", *cells(record)]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a results directory (bench run --output-dir)")
    parser.add_argument("--task", choices=sorted(TABLES), required=True, help="the task type")
    parser.add_argument("--layer", type=int, required=True)
    args = parser.parse_args()
    wanted = (args.task, args.layer)
    records = [r for r in load_records(args.results) if (r["task"]["type"], r["lens"]["layer"]) == wanted]
    if not records:
        raise SystemExit(f"no {args.task} records of layer {args.layer} under {args.results}")
    if args.task == "knowledge_ablation" and any("frontier" not in r for r in records):
        raise SystemExit("a knowledge_ablation record has no KL frontier: a compact published copy")
    print(table(records, args.task))


if __name__ == "__main__":
    main()
