"""Expectations a task YAML declares on its results, checked after a run (like assertions).

Two forms:
- ``delta_prob@5 >= 0.3``: every item of the task must satisfy it (mean of the metric);
- ``sae_post_mlp beats mlp_neurons on delta_prob@5`` (or ``>``, ``>=``, ``<``, ``<=``):
  at every layer where the run has both lenses, the first lens's mean compares so.
A comparison whose two sides are not both in the run is skipped, not failed.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any

_OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "beats": operator.gt,
}
_THRESHOLD = re.compile(r"^\s*(?P<metric>[\w@.]+)\s*(?P<op>>=|<=|==|>|<)\s*(?P<value>-?\d+(\.\d*)?)\s*$")
_COMPARE = re.compile(r"^\s*(?P<a>\w+)\s+(?P<op>beats|>=|<=|>|<)\s+(?P<b>\w+)\s+on\s+(?P<metric>[\w@.]+)\s*$")


def check_syntax(text: str) -> str:
    if not (_THRESHOLD.match(text) or _COMPARE.match(text)):
        raise ValueError(
            f"expectation {text!r} is neither '<metric> <op> <number>' (e.g. 'delta_prob@5 >= 0.3') "
            "nor '<lens> beats <lens> on <metric>'"
        )
    return text


@dataclass(frozen=True)
class Outcome:
    expectation: str
    subject: str
    status: str  # passed | failed | skipped
    detail: str


def evaluate(task: str, expectations: list[str], cells: list[tuple[Any, dict[str, Any]]]) -> list[Outcome]:
    """cells: (item, record) pairs of this run for this task."""
    outcomes = []
    for text in expectations:
        if match := _THRESHOLD.match(text):
            metric, op, value = match["metric"], match["op"], float(match["value"])
            for item, record in cells:
                outcomes.append(_check(text, item.id, record, metric, lambda m, op=op, v=value: _OPS[op](m, v)))
        elif match := _COMPARE.match(text):
            a, b, metric, op = match["a"], match["b"], match["metric"], _OPS[match["op"]]
            by_key = {(item.lens, item.layer): record for item, record in cells}
            layers = sorted({item.layer for item, _ in cells})
            for layer in layers:
                subject = f"{task} layer {layer}"
                if (a, layer) not in by_key or (b, layer) not in by_key:
                    outcomes.append(Outcome(text, subject, "skipped", f"run both {a} and {b} to check it"))
                    continue
                ma, mb = (by_key[(lens, layer)]["metrics"].get(metric, {}).get("mean") for lens in (a, b))
                if ma is None or mb is None:
                    outcomes.append(Outcome(text, subject, "failed", f"no metric {metric!r} in the results"))
                    continue
                status = "passed" if op(ma, mb) else "failed"
                outcomes.append(Outcome(text, subject, status, f"{a} {ma:.3f} vs {b} {mb:.3f}"))
    return outcomes


def _check(text: str, subject: str, record: dict[str, Any], metric: str, test: Any) -> Outcome:
    value = record["metrics"].get(metric, {}).get("mean")
    if value is None:
        return Outcome(text, subject, "failed", f"no metric {metric!r} in the results")
    return Outcome(text, subject, "passed" if test(value) else "failed", f"{metric} = {value:.3f}")
