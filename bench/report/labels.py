"""How the report names things: a record's SAE, its lens in plots, its judge, and the command that made it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.engine.records import lens_weights

# flags whose values are machine paths: shown commands leave them out (they do not change what is computed)
_LOCAL_FLAGS = {"--output-dir", "--output_path", "--data-dir"}
_TASK_FLAGS = {"--task", "--tasks"}


def judge_name(record: dict[str, Any]) -> str:
    judge = record.get("judge")
    if not judge:
        return ""
    return f"{judge['name']} v{judge['version']}" + (f" {judge['model']}" if "model" in judge else "")


def trained_variant(source: str) -> str | None:
    """For an SAE the harness trained (in the cache's saes/ folder): its variant, "" for the
    default; None for any other SAE."""
    if "/saes/" not in source:
        return None
    return Path(source).name.partition("+")[2]  # e.g. blocks.16.hook_mlp_out+standard_ne


def sae_column(record: dict[str, Any]) -> str:
    config = lens_weights(record)
    source = config.get("sae")
    if not source:
        return ""
    variant = trained_variant(source)
    if variant is None:
        return source
    # a retrained SAE keeps its path: its weights' hash keeps records of different weights in different rows
    weights = (config.get("sae_sha256") or "")[:8]
    return (f"trained ({variant})" if variant else "trained") + (f" {weights}" if weights else "")


def lens_label(record: dict[str, Any]) -> str:
    """How plots name a lens: with the SAE variant or external SAE when it is not the default."""
    lens, source = record["lens"]["name"], lens_weights(record).get("sae")
    if not source:
        return lens
    variant = trained_variant(source)
    if variant is None:
        return f"{lens} ({'/'.join(Path(source).parts[-2:])})"
    return f"{lens} ({variant})" if variant else lens


def single_cluster(metric: dict[str, Any]) -> bool:
    """A bootstrap over whole relations with one relation has no spread to measure: its SE of 0 is not certainty."""
    return metric.get("clusters") == 1


Z95 = 1.96  # normal 95 % interval from the bootstrap SE


def interval(mean: float, se: float) -> tuple[float, float]:
    return mean - Z95 * se, mean + Z95 * se


def interval_text(mean: float, se: float, clusters: float | None) -> str:
    """`[low, high]`, or a plain n/a where one relation leaves nothing to resample."""
    if clusters == 1:
        return "[n/a: 1 relation]"
    low, high = interval(mean, se)
    return f"[{low:.2f}, {high:.2f}]"


def mean_se(metric: dict[str, Any]) -> str:
    """`mean ± se`, or `mean ± n/a (1 relation)` where the SE cannot be estimated."""
    spread = "n/a (1 relation)" if single_cluster(metric) else f"{metric['se']:.3f}"
    return f"{metric['mean']:.3f} ± {spread}"


def layer_of(site: str) -> int:
    match = re.match(r"blocks\.(\d+)\.", site)
    return int(match.group(1)) if match else -1


def portable_command(record: dict[str, Any]) -> str:
    return " ".join(portable_argv(record))


def portable_argv(record: dict[str, Any]) -> list[str]:
    """The bench command that made the record, as another machine would type it: the task by name,
    a harness-trained SAE as ``trained:<variant>``, and no output or data folders."""
    argv = list(record["provenance"].get("command") or [])[1:]
    if not argv:
        return []
    shown, i = ["bench"], 0
    while i < len(argv):
        flag, _, inline = argv[i].partition("=")
        takes_value = flag.startswith("--") and not inline and i + 1 < len(argv) and not argv[i + 1].startswith("-")
        value = inline or (argv[i + 1] if takes_value else "")
        step = 2 if takes_value else 1
        if flag in _LOCAL_FLAGS:
            pass
        elif flag in _TASK_FLAGS:
            shown += [flag, record["task"]["name"]]
        elif flag == "--sae" and (variant := trained_variant(value)) is not None:
            shown += [flag, f"trained:{variant}"] if variant else []
        else:
            shown += argv[i : i + step]
        i += step
    return shown


def caveat_numbers(notes: Mapping[int, str]) -> dict[str, int]:
    """Each distinct caveat text of `notes` (row index -> text) numbered 1, 2, ... in order of
    first appearance: the n of the †n marks."""
    return {text: n for n, text in enumerate(dict.fromkeys(notes.values()), 1)}


def detectable_sentence(detectable: Mapping[str, float]) -> str:
    """The leaderboard's note on power: per task, the smallest difference its sample sizes detect."""
    return (
        "Smallest difference between two lenses at one site that these sample sizes detect "
        "(80 % power, α = 0.05, from the two SEs; median over pairs): "
        + "; ".join(f"{task}: {value:.3f}" for task, value in detectable.items())
        + ". A smaller gap is a tie here, whatever the point estimates say."
    )
