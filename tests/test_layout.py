"""The package's layout is its architecture: no import cycles, no layer imports one above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.servers import ROOT

PACKAGE = ROOT / "flaskr_async"
# Modules every layer may use: they import nothing but each other.
SHARED = {
    "settings",
    "setting_rules",
    "identity",
    "converters",
    "clients",
    "forms",
    "templating",
    "quoting",
    "logs",
    "private_files",
    "host_names",
    "config_file",
}
# What each layer may import, bottom up. "views" are Flaskr's blueprints (auth, blog), which
# call accounts/; the factory (flaskr_async/__init__.py) installs db/, middleware/, live/ and
# the development server's hook; the serve command calls the factory.
MAY_IMPORT: dict[str, set[str]] = {
    "shared": {"shared"},
    "db": {"db", "shared"},
    "accounts": {"accounts", "db", "shared"},
    "live": {"live", "db", "shared"},
    "middleware": {"middleware", "live", "db", "shared"},
    "views": {"views", "accounts", "live", "db", "shared"},
    "factory": {"views", "middleware", "accounts", "live", "db", "shared", "devserver"},
    "devserver": set(),  # serving/devserver.py: a hook create_app installs, importing nothing
    "serving": {"serving", "devserver", "factory", "middleware", "live", "db", "shared"},
    "main": {"serving"},
}
BACKENDS = {"flaskr_async.db.sqlite", "flaskr_async.db.postgres"}


def module_name(path: Path) -> str:
    """Name the module a file of the package defines."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    """Name the layer a module belongs to."""
    parts = module.split(".")
    if module == "flaskr_async":
        return "factory"
    if parts[1] == "__main__":
        return "main"
    if module == "flaskr_async.serving.devserver":
        return "devserver"
    if parts[1] in SHARED:
        return "shared"
    if parts[1] in ("auth", "blog"):
        return "views"
    return parts[1]


def imports_of(module: str) -> set[str]:
    """Return the package's modules that a module imports, at its top or inside a function."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("flaskr_async")
        ):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
    return found - {module}


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_layer_imports_only_what_sits_below_it() -> None:
    wrong = [
        f"{module} ({layer(module)}) imports {imported} ({layer(imported)})"
        for module, imported_modules in GRAPH.items()
        for imported in sorted(imported_modules)
        if layer(imported) not in MAY_IMPORT[layer(module)]
    ]
    assert wrong == []


def test_no_module_imports_one_that_imports_it() -> None:
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for step in GRAPH[start] - seen:
            seen.add(step)
            if step == goal or reaches(step, goal, seen):
                return True
        return False

    cycles = [module for module in GRAPH if reaches(module, module, set())]
    assert cycles == []


@pytest.mark.parametrize("backend_module", sorted(BACKENDS))
def test_a_backend_never_reaches_into_the_other(backend_module: str) -> None:
    assert GRAPH[backend_module] & BACKENDS == set()


def test_each_layer_folder_says_what_it_is() -> None:
    for folder in ("db", "accounts", "middleware", "live", "serving"):
        docstring = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
        assert docstring is not None and len(docstring.splitlines()) >= 3, folder


def test_the_tests_mirror_the_package() -> None:
    for folder in ("db", "accounts", "middleware", "live", "serving"):
        assert (ROOT / "tests" / folder).is_dir(), folder
