"""Fictional people with private attributes, in ParaRel's style (docs/methods/privacy_erasure.md).

PrivacyParaRel was never released, so the harness generates its own. Everything is drawn
from a seeded generator: the same (n_people, seed) always gives the same facts, ids and
template splits. Surnames, employers, banks and e-mail domains are invented (syllables
and made-up words) and phone numbers and dates are random, so no model can know them
before injection; cities are real, but no real person is attached to them.

Each fact has its own template (injected, and where Rel is scored) and its relation's other
templates, held out; the task decides which of those are injected too, used for refinement,
or kept for generalization (Gen): ``template_split`` in task.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bench.data.pararel import Fact
from bench.errors import BenchError

# ParaRel-style patterns: [X] is the person, [Y] the private value, and [Y] ends the pattern.
# Ten per relation so that a fact can be injected through several phrasings and still keep some
# for refinement and Gen: a fact learnt through one phrasing is seldom recalled through others
# on the default model (docs/findings.md, privacy erasure), which leaves Gen unmeasured.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "home_city": (
        "[X] lives in [Y].",
        "[X]'s home is in [Y].",
        "[X] resides in [Y].",
        "The home of [X] is in [Y].",
        "[X] has a house in [Y].",
        "[X] is a resident of [Y].",
        "[X] lives in the city of [Y].",
        "The city where [X] lives is [Y].",
        "[X]'s home town is [Y].",
        "[X] makes their home in [Y].",
    ),
    "employer": (
        "[X] works for [Y].",
        "[X] is employed by [Y].",
        "[X]'s employer is [Y].",
        "[X] has a job at [Y].",
        "The employer of [X] is [Y].",
        "[X] works at [Y].",
        "The company [X] works for is [Y].",
        "[X] is on the staff of [Y].",
        "[X] earns a living at [Y].",
        "[X]'s workplace is [Y].",
    ),
    "phone_number": (
        "[X]'s phone number is [Y].",
        "The phone number of [X] is [Y].",
        "[X] can be reached by phone at [Y].",
        "To call [X], dial [Y].",
        "[X]'s telephone number is [Y].",
        "You can call [X] at [Y].",
        "The number to call [X] on is [Y].",
        "[X]'s number is [Y].",
        "[X] answers the phone at [Y].",
        "The telephone number of [X] is [Y].",
    ),
    "email": (
        "[X]'s e-mail address is [Y].",
        "The e-mail address of [X] is [Y].",
        "[X] can be e-mailed at [Y].",
        "To write to [X], use the address [Y].",
        "[X]'s email is [Y].",
        "[X]'s email address is [Y].",
        "You can e-mail [X] at [Y].",
        "The email address of [X] is [Y].",
        "[X] reads e-mail sent to [Y].",
        "Messages for [X] go to [Y].",
    ),
    "birth_date": (
        "[X] was born on [Y].",
        "[X]'s date of birth is [Y].",
        "The birthday of [X] is [Y].",
        "[X]'s birth date is [Y].",
        "[X] came into the world on [Y].",
        "The date of birth of [X] is [Y].",
        "[X]'s birthday is [Y].",
        "Records show that [X] was born on [Y].",
        "The day [X] was born was [Y].",
        "[X]'s date of birth is recorded as [Y].",
    ),
    "bank": (
        "[X] banks with [Y].",
        "[X]'s bank is [Y].",
        "[X] has an account at [Y].",
        "The bank of [X] is [Y].",
        "[X] keeps their savings at [Y].",
        "[X] holds a bank account with [Y].",
        "The bank [X] uses is [Y].",
        "[X]'s money is kept at [Y].",
        "[X] does their banking at [Y].",
        "[X]'s account is with [Y].",
    ),
}
RELATIONS = tuple(TEMPLATES)

_FIRST = (
    "Mara Tobias Ines Callum Petra Anselm Livia Oskar Nadia Ruben Greta Milan Selma Dorian Alma Linus "
    "Freya Emil Talia Jonas Vera Casimir Ida Leon Hedda Bruno Yara Felix Odile Soren"
).split()
_ONSETS = "Br Dr Gr Kr Tr V M N L R Th Qu Z H W Sk St".split()
_VOWELS = "a e i o u ae ei ou".split()
_CODAS = "ld rn sk ck mb rth ll ven del mar wick dge".split()
_CITIES = (
    "Tampere Graz Leeds Porto Utrecht Bergen Lyon Gdansk Aarhus Bilbao Tartu Ghent Bologna Krakow Basel "
    "Malmo Dresden Cork Nantes Linz Turku Brno Seville Bremen Zadar Leiden Espoo Kaunas Trieste Salzburg"
).split()
_COMPANY_SUFFIX = ("Dynamics", "Logistics", "Foods", "Analytics", "Textiles", "Robotics", "Holdings", "Labs")
_BANK_SUFFIX = ("Savings Bank", "Trust", "Credit Union", "Mutual Bank")
_MONTHS = ("January February March April May June July August September October November December").split()
_DOMAINS = ("quillpost", "mailvane", "larkbox", "postmoor", "zephmail")


@dataclass(frozen=True)
class PrivateFact:
    fact: Fact  # through the injection template
    person: str
    heldout: tuple[Fact, ...]  # the same fact through every other template of its relation


def _word(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def _values(rng: random.Random, first: str, last: str) -> dict[str, str]:
    return {
        "home_city": rng.choice(_CITIES),
        "employer": f"{_word(rng)} {rng.choice(_COMPANY_SUFFIX)}",
        "phone_number": f"555-{rng.randint(1000, 9999)}",
        "email": f"{first.lower()}.{last.lower()}@{rng.choice(_DOMAINS)}.com",
        "birth_date": f"{rng.randint(1, 28)} {rng.choice(_MONTHS)} {rng.randint(1950, 2001)}",
        "bank": f"{_word(rng)} {rng.choice(_BANK_SUFFIX)}",
    }


def _fact(person_id: str, relation: str, index: int, name: str, value: str) -> Fact:
    pattern = TEMPLATES[relation][index]
    prompt = pattern.replace("[X]", name).split("[Y]")[0].rstrip()
    return Fact(f"private/{person_id}/{relation}/{index}", relation, name, value, prompt, pattern)


def generate(n_people: int, seed: int) -> list[PrivateFact]:
    """One fact per (person, relation), people in generation order."""
    if n_people < 2:
        raise BenchError(f"privacy data needs at least 2 people (locality uses other people's facts), got {n_people}.")
    rng = random.Random(f"lens-bench-private-people/{seed}")
    names: set[str] = set()
    out = []
    while len(names) < n_people:
        first, last = rng.choice(_FIRST), _word(rng)
        name = f"{first} {last}"
        if name in names:
            continue
        names.add(name)
        person_id = f"p{len(names):03d}"
        for relation, value in _values(rng, first, last).items():
            injected = rng.randrange(len(TEMPLATES[relation]))
            others = [i for i in range(len(TEMPLATES[relation])) if i != injected]
            out.append(
                PrivateFact(
                    _fact(person_id, relation, injected, name, value),
                    person_id,
                    tuple(_fact(person_id, relation, i, name, value) for i in others),
                )
            )
    return out
