"""The built-in synthetic corpus: seeded, unlimited, and structured enough to learn from.

Document ``i`` of seed ``s`` is a pure function of ``(s, i)``, so any position in the stream can be
regenerated (resume needs only a cursor). Each document introduces a small cast of people with
facts (birthplace, date, phone number, job, favourite things), then mixes templated sentences,
lists, a phone directory and question-answer pairs that refer back to earlier facts: material for
copying, infilling and retrieval objectives alike.
"""

from __future__ import annotations

import numpy as np

FIRST = [
    "Ada",
    "Alan",
    "Amir",
    "Ana",
    "Ben",
    "Bela",
    "Carl",
    "Chen",
    "Dana",
    "Dev",
    "Eli",
    "Emma",
    "Finn",
    "Fatima",
    "Gus",
    "Grace",
    "Hana",
    "Hugo",
    "Ivan",
    "Iris",
    "Jon",
    "Jade",
    "Kai",
    "Kira",
    "Leo",
    "Lena",
    "Mia",
    "Max",
    "Nia",
    "Noah",
    "Omar",
    "Olga",
    "Pia",
    "Paul",
    "Quinn",
    "Rosa",
    "Raj",
    "Sara",
    "Sam",
    "Tara",
    "Tom",
    "Uma",
    "Ugo",
    "Vera",
    "Victor",
    "Wen",
    "Will",
    "Xia",
    "Yara",
    "Yusuf",
    "Zoe",
    "Zane",
]
LAST = [
    "Abbott",
    "Baker",
    "Castro",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Kim",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Novak",
    "Okafor",
    "Patel",
    "Quint",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Young",
    "Zhou",
]
PLACES = [
    "Lisbon",
    "Oslo",
    "Nairobi",
    "Lima",
    "Kyoto",
    "Dublin",
    "Quito",
    "Hanoi",
    "Cairo",
    "Perth",
    "Porto",
    "Vienna",
    "Riga",
    "Accra",
    "Bogota",
    "Seoul",
    "Turin",
    "Zurich",
    "Austin",
    "Boston",
    "Denver",
    "Madrid",
    "Prague",
    "Tunis",
    "Dakar",
    "Hobart",
    "Malmo",
    "Bergen",
]
JOBS = [
    "baker",
    "pilot",
    "nurse",
    "teacher",
    "farmer",
    "painter",
    "chemist",
    "lawyer",
    "plumber",
    "writer",
    "sailor",
    "engineer",
    "florist",
    "librarian",
    "carpenter",
    "dentist",
    "geologist",
    "tailor",
]
COLOURS = [
    "red",
    "blue",
    "green",
    "amber",
    "violet",
    "teal",
    "silver",
    "black",
    "white",
    "orange",
    "ochre",
    "crimson",
]
THINGS = [
    "apples",
    "bread",
    "cheese",
    "rice",
    "lentils",
    "honey",
    "tea",
    "coffee",
    "olives",
    "plums",
    "eggs",
    "butter",
    "salt",
    "flour",
    "pepper",
    "onions",
    "garlic",
    "lemons",
    "pears",
    "figs",
]
ANIMALS = [
    "cat",
    "dog",
    "fox",
    "owl",
    "heron",
    "otter",
    "horse",
    "goat",
    "crow",
    "lynx",
    "badger",
    "whale",
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
ADJ = [
    "quiet",
    "old",
    "bright",
    "small",
    "busy",
    "narrow",
    "green",
    "windy",
    "distant",
    "famous",
    "cold",
    "warm",
]
NOUNS = [
    "river",
    "market",
    "bridge",
    "garden",
    "library",
    "station",
    "harbour",
    "valley",
    "tower",
    "square",
    "museum",
]
VERBS = [
    "visited",
    "painted",
    "crossed",
    "described",
    "photographed",
    "remembered",
    "cleaned",
    "guarded",
]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _person(rng: np.random.Generator) -> dict[str, str]:
    digits = "".join(map(str, rng.integers(0, 10, size=10).tolist()))
    return {
        "name": f"{_pick(rng, FIRST)} {_pick(rng, LAST)}",
        "place": _pick(rng, PLACES),
        "date": f"{int(rng.integers(1, 29))} {_pick(rng, MONTHS)} {int(rng.integers(1900, 2020))}",
        "phone": digits,
        "job": _pick(rng, JOBS),
        "colour": _pick(rng, COLOURS),
        "animal": _pick(rng, ANIMALS),
    }


def _fact(rng: np.random.Generator, p: dict[str, str]) -> str:
    templates = (
        "{name} was born in {place} on {date}.",
        "{name} works as a {job} in {place}.",
        "The phone number of {name} is {phone}.",
        "{name} likes the colour {colour} and keeps a {animal}.",
        "Born on {date}, {name} later became a {job}.",
        "Everyone in {place} knows {name}, the {job} with a {colour} door.",
    )
    return _pick(rng, list(templates)).format(**p)


def _question(rng: np.random.Generator, p: dict[str, str]) -> str:
    kind = int(rng.integers(4))
    if kind == 0:
        return f"Q: Where was {p['name']} born? A: {p['place']}."
    if kind == 1:
        return f"Q: What is the phone number of {p['name']}? A: {p['phone']}."
    if kind == 2:
        return f"Q: What does {p['name']} do? A: {p['name']} is a {p['job']}."
    return f"Q: When was {p['name']} born? A: {p['date']}."


def _sentence(rng: np.random.Generator) -> str:
    return (
        f"The {_pick(rng, ADJ)} {_pick(rng, NOUNS)} was {_pick(rng, VERBS)} "
        f"by a {_pick(rng, JOBS)} from {_pick(rng, PLACES)}."
    )


def _list(rng: np.random.Generator) -> str:
    n = int(rng.integers(3, 8))
    items = rng.choice(len(THINGS), size=n, replace=False)
    return "List: " + ", ".join(THINGS[i] for i in items) + "."


def _directory(rng: np.random.Generator, people: list[dict[str, str]]) -> str:
    order = rng.permutation(len(people))
    return "Directory:\n" + "\n".join(f"{people[i]['name']}: {people[i]['phone']}" for i in order)


def synthetic_document(seed: int, index: int) -> str:
    """Document ``index`` of the corpus seeded by ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    people = [_person(rng) for _ in range(int(rng.integers(3, 9)))]
    # Every fact asked about later is stated first, so questions are answerable from context.
    parts = [
        f"{p['name']} was born in {p['place']} on {p['date']}, works as a {p['job']} "
        f"and can be reached at {p['phone']}."
        for p in people
    ]
    for _ in range(int(rng.integers(6, 18))):
        kind = int(rng.integers(10))
        if kind < 4:
            parts.append(_fact(rng, people[int(rng.integers(len(people)))]))
        elif kind < 6:
            parts.append(_sentence(rng))
        elif kind < 7:
            parts.append(_list(rng))
        elif kind < 8:
            parts.append(_directory(rng, people))
        else:
            parts.append(_question(rng, people[int(rng.integers(len(people)))]))
    return "\n".join(parts)
