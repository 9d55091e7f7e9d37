"""Client-chosen text in log lines: escaped as nginx's escape=default escapes it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flaskr_async import create_app
from flaskr_async.logs import EscapedRequestPaths
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
    ("\x85\x9b", "\\xC2\\x85\\xC2\\x9B"),  # C1: NEL, CSI, as UTF-8 (a str is its UTF-8)
    ("caf\xe9", "caf\\xC3\\xA9"),  # so "é" and the byte 0xE9 never log alike
    ("\u202egnp.exe", "\\xE2\\x80\\xAEgnp.exe"),  # beyond latin-1 (a decoded path): its UTF-8
    ("\ud800", "\\xED\\xA0\\x80"),  # a lone surrogate does not stop the line
]


@pytest.mark.parametrize(("sent", "logged"), HOSTILE)
def test_escaped_text(sent: str, logged: str) -> None:
    assert escaped(sent) == logged


@pytest.mark.parametrize(("sent", "logged"), HOSTILE)
def test_escaped_bytes_are_the_text_s_utf_8(sent: str, logged: str) -> None:
    assert escaped(sent.encode("utf-8", "surrogatepass")) == logged


def test_bytes_are_escaped_as_they_are() -> None:
    assert escaped(b"caf\xe9\x85") == "caf\\xE9\\x85"  # latin-1 header bytes: one each


def test_every_byte_is_printable_and_unambiguous() -> None:
    shown = [escaped(bytes([byte])) for byte in range(256)]
    assert all(text.isprintable() and text.isascii() for text in shown)
    assert len(set(shown)) == 256
    assert all('"' not in text.replace('\\"', "") for text in shown)


async def test_quart_s_exception_line_escapes_the_path(
    app_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # Not testing: Quart then logs the exception (with its path) instead of raising it here.
    app = create_app({**app_config, "TESTING": False})

    @app.route("/boom/<path:rest>")
    async def boom(rest: str) -> str:
        raise RuntimeError(rest)

    response = await app.test_client().get('/boom/%E2%80%AE"x%C3%A9')
    assert response.status_code == 500
    lines = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert lines == ['Exception on request GET /boom/\\xE2\\x80\\xAE\\"x\\xC3\\xA9']


async def test_other_lines_are_left_as_they_are(app_config: dict[str, Any]) -> None:
    record = logging.LogRecord(
        "flaskr_async", logging.ERROR, __file__, 1, 'Exception "%s"', ("x",), None
    )
    assert EscapedRequestPaths().filter(record)  # outside a request
    async with create_app(app_config).test_request_context("/a"):
        assert EscapedRequestPaths().filter(record)
    assert record.getMessage() == 'Exception "x"'
