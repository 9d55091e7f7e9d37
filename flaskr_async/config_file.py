"""The instance folder's config.py: the names it sets that Quart would ignore without a word.

config.py may hold other extensions' settings, so a name unknown here is no mistake by itself;
one spelled nearly like a setting of this app is (``SESSION_COOKIE_SECUR = True``), as is a
setting in lower case or with the environment's FLASKR_ prefix: Quart reads neither.
"""

from __future__ import annotations

import ast
import difflib
import traceback
from collections.abc import Collection
from collections.abc import Iterator
from typing import Protocol

from flaskr_async.settings import PREFIX
from flaskr_async.settings import SETTINGS
from flaskr_async.settings import InvalidSetting

# Quart-WTF's settings (quart_wtf/csrf.py), which it defaults or reads after create_app checks.
QUART_WTF = frozenset(
    {
        "WTF_CSRF_CHECK_DEFAULT",
        "WTF_CSRF_ENABLED",
        "WTF_CSRF_FIELD_NAME",
        "WTF_CSRF_HEADERS",
        "WTF_CSRF_METHODS",
        "WTF_CSRF_SECRET_KEY",
        "WTF_CSRF_SSL_STRICT",
        "WTF_CSRF_TIME_LIMIT",
    }
)
# How alike (difflib's ratio) an unknown name and a setting of this app must be for the name
# to be its misspelling: a letter or two off even in DEBUG or TESTING, while another
# extension's name that merely shares a word with one (MAIL_DEBUG) passes.
CLOSE = 0.85


class PythonFileConfig(Protocol):
    """A config that runs a Python file into itself (Quart's, Flask's)."""

    def from_pyfile(self, filename: str, silent: bool = False) -> bool:
        """Run the file; set its upper-case names."""


def run(config: PythonFileConfig, path: str) -> None:
    """Run config.py into the config, if there is one; raise InvalidSetting if it fails to run.

    Quart's own error would be a traceback; this is one line: the file, the line, the error.
    """
    try:
        config.from_pyfile(path, silent=True)
    except SyntaxError as error:
        raise InvalidSetting(f"{path}, line {error.lineno}: {error.msg}") from None
    except Exception as error:  # the file's own code failed: ZeroDivisionError, ImportError...
        line = next(
            (
                frame.lineno
                for frame in reversed(traceback.extract_tb(error.__traceback__))
                if frame.filename == path
            ),
            None,
        )
        where = f", line {line}" if line is not None else ""
        raise InvalidSetting(f"{path}{where}: {type(error).__name__}: {error}") from None


def assigned_names(source: bytes, path: str) -> Iterator[str]:
    """Yield the names a config file assigns outside functions and classes, in order."""
    yield from names_in(ast.parse(source, path))


def names_in(node: ast.AST) -> Iterator[str]:
    """Yield the names assigned in a node's statements, not descending into definitions."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            yield child.id
        yield from names_in(child)


def misspelling(name: str, known: Collection[str], assigned: Collection[str]) -> str | None:
    """Say which setting a name in config.py was meant to be, if it looks meant for one."""
    if name in known:
        return None
    if name.startswith(PREFIX) and name.removeprefix(PREFIX) in SETTINGS:
        return f"write {name.removeprefix(PREFIX)} ({PREFIX} names are for the environment)"
    if not name.isupper():
        # Quart reads upper-case names only; a lower-case helper of a setting's name is fine
        # when the setting itself is set too.
        close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=CLOSE)
        if close and close[0] not in assigned:
            return f"Quart reads upper-case names only: did you mean {close[0]}?"
        return None
    # Quart's and Quart-WTF's names too: SESSION_COOKIE_DOMIAN, WTF_CSRF_SSL_STRIC.
    close = difflib.get_close_matches(name, known, n=1, cutoff=CLOSE)
    return f"did you mean {close[0]}?" if close else None


def misspelled(path: str, known: Collection[str]) -> list[str]:
    """Name each setting config.py sets that Quart would ignore, with the one it was meant to be.

    ``known``: the names Quart, Quart-WTF and this app read. No file: nothing to say.
    """
    try:
        with open(path, "rb") as file:
            source = file.read()
    except OSError:  # Quart's from_pyfile(silent=True) has already read it, or found none
        return []
    assigned = list(dict.fromkeys(assigned_names(source, path)))
    return [
        f"{name} in {path} is not a setting of this app: {hint}"
        for name in assigned
        if (hint := misspelling(name, {*known, *QUART_WTF, *SETTINGS}, assigned)) is not None
    ]
