"""Rel, Gen and Loc of one edit (docs/methods/privacy_erasure.md).

A prompt's answer is *erased* when it is no longer the greedy continuation and its
probability fell below `fraction` x its probability before the edit. Rel is that on the
injection prompt, Gen its share over the held-out templates the injected model knew, and
Loc the share of unrelated known facts whose greedy answer is still right after the edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PromptScore:
    prob: float
    greedy_correct: bool


def erased(before: PromptScore, after: PromptScore, fraction: float) -> bool:
    return not after.greedy_correct and after.prob < fraction * before.prob


def share_erased(before: Sequence[PromptScore], after: Sequence[PromptScore], fraction: float) -> float | None:
    """Share of the prompts erased, among those the model answered correctly before; None when none did."""
    pairs = [(b, a) for b, a in zip(before, after, strict=True) if b.greedy_correct]
    return sum(erased(b, a, fraction) for b, a in pairs) / len(pairs) if pairs else None


def share_kept(before: Sequence[PromptScore], after: Sequence[PromptScore]) -> float | None:
    """Share of the known prompts whose greedy answer is still right; None when none were known."""
    pairs = [(b, a) for b, a in zip(before, after, strict=True) if b.greedy_correct]
    return sum(a.greedy_correct for _, a in pairs) / len(pairs) if pairs else None
