"""User text quoted in a sentence: short, and unable to reorder the words around it."""

from __future__ import annotations

import unicodedata

# Characters of user text a message or heading quotes. Titles from an older Flaskr database
# have no limit, and a flashed message travels in the session cookie: a browser drops a cookie
# over 4 KB, and a proxy's header buffer (nginx: 4 or 8 KB) answers 502 for it.
QUOTE_MAX = 80
ELLIPSIS = "\u2026"
# Embeddings, overrides and isolates (UAX #9): invisible, they reorder what follows them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
RIGHT_TO_LEFT = frozenset({"R", "AL", "AN"})
FIRST_STRONG_ISOLATE, POP_DIRECTIONAL_ISOLATE = "\u2068", "\u2069"
ZERO_WIDTH_JOINER = "\u200d"


def joins_previous(char: str) -> bool:
    """Tell whether a character belongs to the one before it (a cut there would split them)."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")  # combining marks
        or char == ZERO_WIDTH_JOINER
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xDC00 <= code <= 0xDFFF  # the low half of a surrogate pair
    )


def shortened(text: str, limit: int = QUOTE_MAX) -> str:
    """Return at most ``limit`` characters of text, cut between two characters shown apart."""
    if len(text) <= limit:
        return text
    cut = limit - 1  # room for the ellipsis
    # Back to the start of the character cluster the cut falls in (or after a joiner).
    while cut > 0 and (joins_previous(text[cut]) or text[cut - 1] == ZERO_WIDTH_JOINER):
        cut -= 1
    return text[:cut] + ELLIPSIS


def quoted(text: str) -> str:
    """Return user text to put in a sentence: shortened, and isolated if it could reorder it.

    The plain-text form of ``<bdi>`` (first-strong isolate ... pop isolate), for messages,
    which are text: added only around text with right-to-left characters, so a message
    quoting left-to-right text reads exactly as its words. The text's own bidi controls are
    dropped: one could close the isolate early.
    """
    plain = "".join(char for char in text if char not in BIDI_CONTROLS)
    short = shortened(plain)
    if any(unicodedata.bidirectional(char) in RIGHT_TO_LEFT for char in short):
        return FIRST_STRONG_ISOLATE + short + POP_DIRECTIONAL_ISOLATE
    return short
