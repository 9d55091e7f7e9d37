"""The wheel, built once a run for the tests that install it (test_packaging, test_doc_commands)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.servers import ROOT
from tests.wheels import NOT_IN_A_CLONE
from tests.wheels import build_wheel
from tests.wheels import git


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a git repository of the tree as it is now, uncommitted changes included."""
    source = tmp_path_factory.mktemp("repository")
    shutil.copytree(ROOT, source, ignore=NOT_IN_A_CLONE, dirs_exist_ok=True)
    git("init", "--quiet", cwd=source)
    git("add", "--all", cwd=source)
    git("commit", "--quiet", "--message", "one", cwd=source)
    # A clone used before: setuptools' build/ still holds a template deleted since.
    stale = source / "build" / "lib" / "flaskr_async" / "templates" / "deleted.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("deleted from the tree, still in build/")
    return source


@pytest.fixture(scope="session")
def wheel(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel as the guide says: in a fresh clone, never in a used one."""
    folder = tmp_path_factory.mktemp("build")
    git("clone", "--quiet", str(repository), "clone", cwd=folder)
    return build_wheel(folder / "clone", folder / "dist")
