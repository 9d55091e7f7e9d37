"""The docs point at what exists: every relative link and every file path they name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.servers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks/README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# A path to one of the project's files, as prose names it: flaskr_async/db/sqlite.py, tests/...
PATH = re.compile(r"(?<![\w/.-])((?:flaskr_async|tests|deploy|docs|benchmarks)/[\w./-]*\w)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    targets = [t for t in LINK.findall(doc.read_text()) if not re.match(r"[a-z]+:", t)]
    assert targets or doc.name != "porting.md"
    missing = [t for t in targets if not (doc.parent / t).exists()]
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_file_path_named_exists(doc: Path) -> None:
    named = set(PATH.findall(doc.read_text()))
    missing = sorted(path for path in named if not (ROOT / path).exists() and "*" not in path)
    assert missing == []
