"""The instance folder's config.py: the names it sets that Quart would ignore without a word.

config.py may hold other extensions' settings, so a name unknown here is no mistake by itself;
one spelled nearly like a setting of this app is (``SESSION_COOKIE_SECUR = True``), as is a
setting in lower case or with the environment's FLASKR_ prefix: Quart reads neither.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Collection
from collections.abc import Iterator

from flaskr_async.settings import PREFIX
from flaskr_async.settings import SETTINGS

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
        # Quart reads upper-case names only; a lower-case helper of the same name is fine.
        meant = name.upper()
        if meant in SETTINGS and meant not in assigned:
            return f"Quart reads upper-case names only: did you mean {meant}?"
        return None
    close = difflib.get_close_matches(name, SETTINGS, n=1, cutoff=CLOSE)
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
        if (hint := misspelling(name, {*known, *QUART_WTF}, assigned)) is not None
    ]
