"""Selectivity at a side-effect budget, read off a lens's frontier.

Bigger edits score higher on every ablation metric, so lenses are compared at matched side
effects. A lens's menu of edits (each fact's top-k units, k = 1, 2, 5, ...) traces a path of
mean (KL, selectivity) points over the facts, starting at the unedited model (0, 0). Between two
edits the path is interpolated linearly in √KL: for small edits KL grows with the square of the
edit's size and ΔProb linearly, so in √KL a lens that merely scales its edits moves along its own
line and gains nothing. The value at budget b is the best point of that path with KL ≤ b (an
edit within the budget, or the point where a segment crosses it), so a looser budget never
scores lower. Where even the largest edit stays under b the budget does not bind: the value is a
lower bound (the lens was not given an edit that big), and says so.

The choice is made once per lens, on the mean path, and applied to every fact as weights on its
k: each fact keeps a value (the same mix of its own edits), so lenses can be compared fact by
fact, and the facts' mean is the path's value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BudgetPoint:
    weights: dict[str, float]  # weight of each k's selectivity (the unedited model, weight 1 - sum, adds 0)
    value: float  # the mean path's selectivity there
    smallest_edit_fits: bool  # False: even the smallest edit costs more, the value is interpolated towards no edit
    binding: bool = True  # False: every edit costs less than the budget, the value is a lower bound


def at_budget(path: Sequence[tuple[str, float, float]], budget: float) -> BudgetPoint:
    """The best point with KL ≤ ``budget`` on the path of (k, mean KL, mean selectivity), in increasing k."""
    if budget <= 0:
        raise ValueError(f"a KL budget must be positive, got {budget}")
    x = math.sqrt(budget)
    nodes = [(None, 0.0, 0.0), *((k, math.sqrt(max(kl, 0.0)), value) for k, kl, value in path)]
    candidates = [BudgetPoint({}, 0.0, False)]
    for k, xk, value in nodes[1:]:
        if xk <= x:
            candidates.append(BudgetPoint({k: 1.0}, value, True))
    for (k0, x0, y0), (k1, x1, y1) in itertools.pairwise(nodes):
        if min(x0, x1) < x < max(x0, x1):  # the segment crosses the budget
            t = (x - x0) / (x1 - x0)
            weights = {k1: t} if k0 is None else {k0: 1 - t, k1: t}
            candidates.append(BudgetPoint(weights, y0 + t * (y1 - y0), False))
    best = max(candidates, key=lambda point: point.value)
    fits = bool(path) and path[0][1] <= budget
    binding = any(kl >= budget for _, kl, _ in path)
    return BudgetPoint(best.weights, best.value, fits, binding)
