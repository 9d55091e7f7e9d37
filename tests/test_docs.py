"""The docs point at what exists, and know every command they show (run: tests/system)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.doc_commands import COMMANDS
from tests.doc_commands import commands_of
from tests.doc_commands import documented_commands
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
    # A table's first cell may name Flaskr's own file (docs/porting.md): not ours to find.
    lines = [re.sub(r"^\|[^|]*\|", "|", line) for line in doc.read_text().splitlines()]
    named = set(PATH.findall("\n".join(lines)))
    missing = sorted(path for path in named if not (ROOT / path).exists() and "*" not in path)
    assert missing == []


# Names the docs quote from Flask's Flaskr, Quart or other libraries, not from this project.
NOT_OURS = {"after_serving", "close_db", "get_flashed_messages", "init_db", "user_loader"}


def test_every_function_named_in_the_docs_exists() -> None:
    """A `snake_case` name quoted in the README or the porting guide is in the code."""
    quoted = set()
    for doc in (ROOT / "README.md", ROOT / "docs" / "porting.md"):
        quoted |= set(re.findall(r"`([a-z_][a-z0-9_]*_[a-z0-9_]*)(?:\(\))?`", doc.read_text()))
    code = "\n".join(
        path.read_text()
        for folder in ("flaskr_async", "tests")
        for path in (ROOT / folder).rglob("*.py")
    )
    missing = sorted(name for name in quoted - NOT_OURS if not re.search(rf"\b{name}\b", code))
    assert missing == []


def test_the_license_file_is_the_license_pyproject_names() -> None:
    """BSD-3-Clause needs its text and copyright lines in every copy (the wheel: test_packaging)."""
    text = (ROOT / "LICENSE").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    assert text.startswith("Copyright 2026 the flaskr-async authors\nCopyright 2010 Pallets ")
    # The three conditions and the disclaimer, as the SPDX text has them.
    assert "1.  Redistributions of source code must retain" in text
    assert "2.  Redistributions in binary form must reproduce" in text
    assert "3.  Neither the name of the copyright holder" in text
    assert 'PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS\n"AS IS"' in text


def test_every_command_of_the_docs_is_run_or_skipped_with_a_reason() -> None:
    """A new command in README.md or docs/deployment.md needs a line in doc_commands.COMMANDS.

    tests/system/test_doc_commands.py runs them (or says why not) in the order a reader meets
    them; a command it does not know would go untested.
    """
    documented = documented_commands()
    assert documented
    unknown = [
        f"{document}: {command}" for document, command in documented if command not in COMMANDS
    ]
    assert unknown == []


def test_every_command_the_table_knows_is_still_in_the_docs() -> None:
    """An entry whose command the docs changed or dropped would run something nobody reads."""
    documented = {command for _, command in documented_commands()}
    assert sorted(set(COMMANDS) - documented) == []


def test_commands_are_read_without_comments_and_across_continued_lines() -> None:
    text = "```sh\nmake run    # serve\n# a comment\nsed 's/#x/y/' \\\n    a   b\n```\n"
    assert commands_of(text) == ["make run", "sed 's/#x/y/' a b"]


# Paragraphs (of the docs, and of the Makefile's comments) that say how long `make bench` runs.
BENCH_FILES = [*DOCS, ROOT / "Makefile"]


def test_make_bench_s_duration_is_one_figure_everywhere() -> None:
    """Each file that says how long `make bench` takes says the same (it said 15 and 9 once)."""
    figures: dict[str, list[str]] = {}
    for path in BENCH_FILES:
        for paragraph in re.split(r"\n\s*\n", path.read_text()):
            if "make bench" in paragraph:
                for figure in re.findall(r"about (\d+) minutes", paragraph):
                    figures.setdefault(figure, []).append(str(path.relative_to(ROOT)))
    assert len(figures) == 1, figures
    (named_in,) = figures.values()
    assert {"README.md", "benchmarks/README.md", "Makefile"} <= set(named_in)


def test_the_guide_s_commands_name_the_system_python_by_its_path() -> None:
    """A bare python3 is the first on root's PATH: pyenv's, under /root, which the unit hides."""
    commands = commands_of((ROOT / "docs" / "deployment.md").read_text())
    bare = [c for c in commands if re.search(r"(?<![\w/.-])python3(?:\.\d+)? -", c)]
    assert bare == []
    assert sum("/usr/bin/python3 -m " in command for command in commands) == 2
