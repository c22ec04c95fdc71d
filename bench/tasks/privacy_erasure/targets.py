"""Which learnt private facts are erasure targets, and the dev/test split of their people.

Targets are spread over every person and relation (a person's facts share one injection and
one set of tokens, so ten targets from two people would be two observations, not ten). Each
method's variant is chosen on the dev half and reported on the test half: choosing the best
of a sweep on the facts it is then scored on is a winner's curse. The halves are split by
person, so no fact of a test person informs the choice.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from bench.tasks.privacy_erasure.people import PrivateFact


def choose_targets(
    learnt: Sequence[PrivateFact], limit: int | None, max_per_person: int, seed: int
) -> list[PrivateFact]:
    """Round robin over the people (in a seeded order): each round every person under the cap
    gives one more learnt fact, of the relation chosen least so far (ties broken by the seed)."""
    rng = random.Random(f"{seed}/targets")
    by_person: dict[str, list[PrivateFact]] = {}
    for private in learnt:
        by_person.setdefault(private.person, []).append(private)
    people = sorted(by_person)
    rng.shuffle(people)
    for facts in by_person.values():
        rng.shuffle(facts)
    chosen: list[PrivateFact] = []
    relations: Counter[str] = Counter()
    cap = limit if limit is not None else len(learnt)
    for _ in range(max_per_person):
        for person in people:
            if len(chosen) >= cap or not by_person[person]:
                continue
            pick = min(by_person[person], key=lambda p: relations[p.fact.relation])  # first of the least used
            by_person[person].remove(pick)
            relations[pick.fact.relation] += 1
            chosen.append(pick)
    return chosen


def split_by_person(targets: Sequence[PrivateFact], seed: int) -> tuple[list[PrivateFact], list[PrivateFact]]:
    """(dev, test): the targets' people shuffled and dealt alternately into the two halves."""
    people = sorted({t.person for t in targets})
    random.Random(f"{seed}/split").shuffle(people)
    dev_people = set(people[0::2])
    return [t for t in targets if t.person in dev_people], [t for t in targets if t.person not in dev_people]
