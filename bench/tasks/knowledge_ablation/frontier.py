"""Selectivity at a side-effect budget: where a fact's edits, growing with k, cross a KL budget.

Bigger edits score higher on every ablation metric, so lenses are compared at matched side
effects. A fact's menu of edits (its top-k units for k = 1, 2, 5, ...) traces a path of
(KL, selectivity) points that starts at the unedited model (0, 0). The value at budget b is read
where that path first reaches KL = b, interpolating linearly in √KL between the two edits around
it: for small edits KL grows with the square of the edit's size and ΔProb linearly, so in √KL a
lens that merely scales its edits moves along its own line and gains nothing. When even the
largest edit stays under b, the budget does not bind and the largest edit's value is taken.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def at_budget(path: Sequence[tuple[float, float]], budget: float) -> float:
    """Selectivity where the path of (KL, selectivity) points, in increasing k, first reaches ``budget``."""
    if budget <= 0:
        raise ValueError(f"a KL budget must be positive, got {budget}")
    points = [(0.0, 0.0), *((math.sqrt(max(kl, 0.0)), value) for kl, value in path)]
    x = math.sqrt(budget)
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x1 >= x:  # x0 < x: every earlier point stayed under the budget
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def fits(path: Sequence[tuple[float, float]], budget: float) -> bool:
    """Whether the smallest edit (the first point) is within the budget: when it is not, the value
    at the budget is interpolated towards the unedited model rather than measured."""
    return bool(path) and path[0][0] <= budget
