"""Client-chosen text in log lines: escaped as nginx's escape=default escapes it."""

from __future__ import annotations

import pytest

from flaskr_async.logs import escaped

# (what the client sent, what a log line shows)
HOSTILE = [
    ("Mozilla/5.0 (X11)", "Mozilla/5.0 (X11)"),  # printable ASCII: as it is
    ("", ""),
    ('x" 200 13 "-" "forged', 'x\\" 200 13 \\"-\\" \\"forged'),  # no field forged
    ("back\\slash", "back\\\\slash"),
    ("\x1b[2K\x1b[1A", "\\x1B[2K\\x1B[1A"),  # erase-line, cursor-up: not reaching a terminal
    ("line\r\nbreak\ttab\x00", "line\\x0D\\x0Abreak\\x09tab\\x00"),
    ("\x7f", "\\x7F"),  # DEL
    ("\x85\x9b", "\\x85\\x9B"),  # C1: NEL, CSI (a header decoded as latin-1)
    ("caf\xe9", "caf\\xE9"),  # latin-1 text: the byte it was sent as
    ("\u202egnp.exe", "\\xE2\\x80\\xAEgnp.exe"),  # beyond latin-1 (a decoded path): its UTF-8
    ("\ud800", "\\xED\\xA0\\x80"),  # a lone surrogate does not stop the line
]


@pytest.mark.parametrize(("sent", "logged"), HOSTILE)
def test_escaped_text(sent: str, logged: str) -> None:
    assert escaped(sent) == logged


@pytest.mark.parametrize(("sent", "logged"), HOSTILE[:8])
def test_escaped_bytes(sent: str, logged: str) -> None:
    assert escaped(sent.encode("latin-1")) == logged


def test_every_byte_is_printable_and_unambiguous() -> None:
    shown = [escaped(bytes([byte])) for byte in range(256)]
    assert all(text.isprintable() and text.isascii() for text in shown)
    assert len(set(shown)) == 256
    assert all('"' not in text.replace('\\"', "") for text in shown)
