"""Print what this Python makes of names and passwords, for another Python to compare.

``python -m tests.identity_probe SEED`` prints one JSON object: per block of 4,096 code points,
the SHA-256 of each character's canonical forms (its username key and password form), and the
forms of random texts drawn with SEED. ``SEED --block N`` prints block N's forms one by one.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import unicodedata
from collections.abc import Callable

import unicodedataplus

from flaskr_async.identity import NotAllowed
from flaskr_async.identity import canonical_password
from flaskr_async.identity import username_key

BLOCK = 4096
RANDOM_TEXTS = 2000
# Runs of like characters (private use; ideographs and syllables named by their code point):
# a different eighth of them, drawn by the seed, each run. Every other character, every run.
LIKE_CHARACTERS = (
    "CJK UNIFIED IDEOGRAPH-",
    "TANGUT IDEOGRAPH-",
    "HANGUL SYLLABLE ",
    "KHITAN SMALL SCRIPT CHARACTER-",
    "NUSHU CHARACTER-",
)
SAMPLED = 8
# The key is folded from the shown form, so a difference in either shows in the key.
FORMS: list[Callable[[str], str]] = [username_key, canonical_password]


def assigned(code_point: int) -> bool:
    """Tell whether the pinned database or this Python's own knows the code point."""
    char = chr(code_point)
    if 0xD800 <= code_point <= 0xDFFF:  # surrogates: no text holds them
        return False
    return unicodedataplus.age(char) != "Unassigned" or unicodedata.category(char) != "Cn"


def probed(code_point: int, seed: int) -> bool:
    """Tell whether this run probes the character: an assigned one, or its share of the like."""
    if not assigned(code_point):
        return False
    char = chr(code_point)
    if unicodedataplus.category(char) == "Co" or unicodedataplus.name(char, "").startswith(
        LIKE_CHARACTERS
    ):
        return ((code_point * 0x9E3779B1) ^ seed) % SAMPLED == 0
    return True


def forms_of(text: str) -> list[str]:
    """Return each canonical form of a text, or "!" where it is refused."""
    results = []
    for form in FORMS:
        try:
            results.append(form(text))
        except NotAllowed:
            results.append("!")
    return results


def block_forms(block: int, seed: int) -> dict[str, list[str]]:
    """Return the forms of each probed character of a block, in a name ("a" before it)."""
    code_points = range(block * BLOCK, (block + 1) * BLOCK)
    return {f"{cp:04X}": forms_of("a" + chr(cp)) for cp in code_points if probed(cp, seed)}


def random_texts(seed: int) -> list[str]:
    """Return texts of 1 to 8 characters drawn from the assigned ones, spaces between some."""
    rng = random.Random(seed)
    pool = [cp for cp in range(0x110000) if assigned(cp)]
    return [
        "".join(
            chr(rng.choice(pool)) if rng.random() > 0.1 else " " for _ in range(rng.randint(1, 8))
        )
        for _ in range(RANDOM_TEXTS)
    ]


def main(arguments: list[str]) -> None:
    """Print the probe's JSON for the arguments given."""
    seed = int(arguments[0])
    if arguments[1:2] == ["--block"]:
        print(json.dumps(block_forms(int(arguments[2]), seed)))
        return
    digests = []
    for block in range(0x110000 // BLOCK):
        digest = hashlib.sha256(json.dumps(block_forms(block, seed)).encode()).hexdigest()
        digests.append(digest)
    texts = {text: forms_of(text) for text in random_texts(seed)}
    print(json.dumps({"blocks": digests, "texts": texts, "python": sys.version}))


if __name__ == "__main__":
    main(sys.argv[1:])
