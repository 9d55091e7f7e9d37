"""hypercorn's access log atoms, every text the client chose escaped (serving/access_log.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypercorn.config import Config

from flaskr_async.serving.access_log import EscapedAccessLogger


def test_every_atom_the_client_chose_is_escaped() -> None:
    scope: Any = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": '/a"\x1b\u009b',
        "raw_path": b"/a%22%1b%C2%9b",
        "query_string": b'q="\x1b',
        "headers": [
            (b"user-agent", b"\x1b[2K\x1b[1A"),
            (b"referer", b'x" 200 "forged\\'),
            (b"x-forwarded-for", b"\x7f\x85, 192.0.2.1"),
        ],
        "client": ("192.0.2.1", 4711),
    }
    atoms: Any = EscapedAccessLogger(Config()).atoms(scope, {"status": 200, "headers": []}, 1.5)
    # The target as sent, percent-encoded: two paths never log alike.
    assert atoms["r"] == "GET /a%22%1b%C2%9b 1.1"
    assert atoms["R"] == 'GET /a%22%1b%C2%9b?q=\\"\\x1B 1.1'
    assert atoms["U"] == "/a%22%1b%C2%9b"
    assert atoms["q"] == 'q=\\"\\x1B'
    assert atoms["a"] == "\\x1B[2K\\x1B[1A"
    assert atoms["f"] == 'x\\" 200 \\"forged\\\\'
    assert atoms["{X-Forwarded-For}i"] == "\\x7F\\x85, 192.0.2.1"
    assert atoms["h"] == "192.0.2.1:4711"
    assert atoms["s"] == "200"
    assert atoms["T"] == 1  # numbers stay numbers, for a format's %(T)d
    assert atoms["{missing}i"] == "-"


def test_an_environment_atom_beyond_latin_1_is_its_utf_8(monkeypatch: pytest.MonkeyPatch) -> None:
    """``{name}e`` atoms come from the environment, not the wire: text beyond latin-1 as UTF-8."""
    monkeypatch.setenv("TEST_ACCESS_LOG_NOTE", "caf\u00e9 \u2192 \x1b")
    scope: Any = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "query_string": b"",
        "headers": [],
        "client": ("192.0.2.1", 4711),
    }
    atoms: Any = EscapedAccessLogger(Config()).atoms(scope, None, 0.1)
    assert atoms["{test_access_log_note}e"] == "caf\\xC3\\xA9 \\xE2\\x86\\x92 \\x1B"
    assert atoms["r"] == "GET / 1.1"  # no raw_path: the path's own UTF-8
