"""The judge contract for the interpretability score (simulation scoring, Bills et al. 2023).

An explainer reads a unit's top-activating examples and writes an explanation; a simulator
predicts, from the explanation alone, the unit's activation on every token of held-out
windows. Judges are plugins (hook ``bench_judges``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Example:
    tokens: tuple[str, ...]  # a window of text, one string per token
    activations: tuple[float, ...]  # the unit's activation at each token


class Judge(ABC):
    @abstractmethod
    def explain(self, examples: Sequence[Example]) -> str:
        """An explanation of what makes the unit fire, from its top-activating examples."""

    @abstractmethod
    def simulate(self, explanation: str, windows: Sequence[Sequence[str]]) -> list[list[float]]:
        """Predicted activation for every token of every window, from the explanation alone."""

    def describe(self) -> dict[str, Any]:
        """What identifies this judge beyond its name and version (a model, an endpoint)."""
        return {}


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    description: str
    version: str  # bump when explanations or simulations would change
    build: Callable[[Mapping[str, Any]], Judge]
