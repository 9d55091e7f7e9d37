# `make run` serves the app; `make test` runs every check. Both set up everything they need.
PYTHON ?= python3
# The Pythons `make test` runs the suite on (`make test PYTHONS=3.13` for one); see noxfile.py.
PYTHONS ?= 3.11 3.12 3.13
space := $(subst ,, )
TEST_SESSIONS = $(addprefix tests-,$(PYTHONS))
INSTALLS = $(addprefix install-,$(TEST_SESSIONS))
VENV := .venv
BIN := $(VENV)/bin
SERVING := $(VENV)/.serving
INSTALLED := $(VENV)/.installed
# A Python named on the command line or in the environment (`make run PYTHON=python3.13`),
# not the default.
ASKED := $(filter-out file,$(origin PYTHON))
version_of = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# pyenv's shims answer `python3.13` only for the version pyenv has selected: an installed but
# unselected one is found in its own folder, the newest patch release (as noxfile.py does).
PYENV_VERSIONS := $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions
in_pyenv = $(lastword $(shell ls -d $(PYENV_VERSIONS)/$(patsubst python%,%,$(1)).*/bin/$(1) \
	2>/dev/null | grep -E '/versions/[0-9]+\.[0-9]+\.[0-9]+/bin/' | sort -V))
interpreter = $(if $(call version_of,$(1)),$(1),$(if $(filter python3.%,$(1)),$(call in_pyenv,$(1))))
VENV_VERSION := $(call version_of,$(BIN)/python)
# Not asked for, with a .venv that runs: .venv's Python, and so its lock (python3 may be another).
FROM_VENV := $(if $(ASKED),,$(VENV_VERSION))
INTERPRETER := $(if $(FROM_VENV),$(BIN)/python,$(call interpreter,$(PYTHON)))
PYTHON_VERSION := $(or $(FROM_VENV),$(if $(INTERPRETER),$(call version_of,$(INTERPRETER))))
# The stack tested with this Python, pinned: requirements/py3.X.txt (`make lock` refreshes them).
LOCK = requirements/py$(PYTHON_VERSION).txt
# A PYTHON given to make (`make run PYTHON=python3.13`) that is not the one .venv was made with
# rebuilds .venv, rather than serving on the old one without a word; the default leaves it be.
REBUILD := $(if $(ASKED),$(if $(VENV_VERSION),$(filter-out $(PYTHON_VERSION),$(VENV_VERSION))))
# For a missing Python's message: the supported ones this machine has, other than the one asked.
OTHERS = $(strip $(foreach version,$(PYTHONS),$(if $(filter-out $(PYTHON),python$(version)),$(if \
	$(call interpreter,python$(version)),PYTHON=python$(version)))))

# Debian packages the tests drive: Chromium (browser test), the PostgreSQL server and nginx
# (the shipped deploy/nginx.conf in front of the app).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
MISSING_PACKAGES := $(if $(wildcard /usr/bin/chromium),,chromium) \
	$(if $(shell command -v initdb || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null),,postgresql) \
	$(if $(wildcard /usr/sbin/nginx),,nginx)

.PHONY: run test ruff test-fast lint lock settings-table system-deps bench clean rebuild-venv $(TEST_SESSIONS) $(INSTALLS)

# .venv made with the Python asked for (or rebuilt for it), after checking there is one and a
# lock for it (Debian: apt-get install python3-venv).
define make-venv
	@test -n "$(PYTHON_VERSION)" || { echo "No Python interpreter '$(PYTHON)' found, on the PATH or in $(PYENV_VERSIONS): $(if $(OTHERS),name one that is ($(subst $(space), or ,$(OTHERS))) or install it,install one of $(PYTHONS)); supported: $(PYTHONS)" >&2; exit 1; }
	@test -f $(LOCK) || { echo "No $(LOCK): supported Pythons are $(PYTHONS)$(if $(OTHERS), ($(subst $(space), or ,$(OTHERS))))" >&2; exit 1; }
	$(if $(REBUILD),@echo "Rebuilding $(VENV) (Python $(VENV_VERSION)) with PYTHON=$(PYTHON) (Python $(PYTHON_VERSION))" && rm -rf $(VENV))
	test -x $(BIN)/python || $(INTERPRETER) -m venv $(VENV)
endef

# What serving needs, nothing more: pip alone, as a server has it.
$(SERVING): pyproject.toml $(wildcard requirements/*.txt) $(if $(REBUILD),rebuild-venv)
	$(make-venv)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e .
	touch $(SERVING)

rebuild-venv:

# What serving needs and the development tools: pytest, ruff, mypy, Playwright, nox (which
# runs every Python). uv (locked among them) installs them all in 16 s where pip, then uv,
# took 25 (make test waits on it), and compiles their bytecode, which nothing writes where
# PYTHONDONTWRITEBYTECODE is set. uv, as nox's sessions, reads no pip.conf: a pip mirror is
# given to it as UV_INDEX_URL.
$(INSTALLED): pyproject.toml $(wildcard requirements/*.txt) $(if $(REBUILD),rebuild-venv)
	$(make-venv)
	$(BIN)/python -m pip install --quiet -c $(LOCK) uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -c $(LOCK) -e '.[dev]'
	touch $(SERVING) $(INSTALLED)

# A line per request on stdout, for the person watching (production leaves it to nginx), and
# another address with `make run BIND=127.0.0.1:8001` (BIND replaces hypercorn.toml's bind).
# Plain HTTP: a Secure session cookie would only reach browsers on localhost, never a script
# (httpx, requests), so --plain-http turns it off where neither instance/config.py nor the
# environment sets SESSION_COOKIE_SECURE, and says so at start-up (the unit sets true).
run: $(SERVING)
	$(BIN)/python -m flaskr_async serve --config hypercorn.toml --access-logfile - --plain-http \
		$(if $(BIND),--bind $(BIND))

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

system-deps:
	@if [ -n "$(strip $(MISSING_PACKAGES))" ]; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(MISSING_PACKAGES); \
	fi

# ruff once, and per Python its virtualenv filled from its lock, mypy and the whole suite: all
# side by side. On two cores they keep both busy (97-99 %, measured): a suite alone waits on its
# servers about half the time, and the others' work fills those waits. The virtualenvs are
# filled one at a time (each install writes the project's egg-info), each suite starting as soon
# as its own is ready, and each from another third of the run (noxfile.py). Each session's
# output is printed whole when it ends; a failure names its session. A Python that is not
# installed is skipped, except under CI=true.
test: $(INSTALLED) system-deps
	@$(MAKE) --no-print-directory --keep-going --jobs=$(words ruff $(TEST_SESSIONS)) \
		--output-sync=target ruff $(TEST_SESSIONS)

# nox's lint session: ruff check and format, the same on every Python, so once.
ruff: $(INSTALLED)
	$(BIN)/nox --sessions lint

$(TEST_SESSIONS): %: install-%
	$(BIN)/nox --no-install --reuse-existing-virtualenvs --sessions $@

$(INSTALLS): install-%: $(INSTALLED)
	flock $(VENV)/.nox-install.lock $(BIN)/nox --install-only --sessions $*

# The oldest Python's suite runs names and passwords through the others' virtualenvs
# (TEST_OTHER_PYTHONS, noxfile.py): they are filled before its own (and if one fails, its
# suite does not run).
OLDEST := install-tests-$(firstword $(sort $(PYTHONS)))
$(OLDEST): $(filter-out $(OLDEST),$(INSTALLS))

# Between two edits: this Python only, without the tests marked system (real servers, nginx,
# PostgreSQL, a browser) and without coverage, on every core (pytest-xdist: each test has its
# own tmp_path, and each worker its own ports for the few in-process servers; see
# tests/servers.py). `make test` runs everything.
test-fast: $(INSTALLED)
	$(BIN)/python -m pytest -q -m 'not system' --numprocesses=auto

# Rewrite README.md's settings table from flaskr_async/settings.py (between its two markers).
settings-table: $(SERVING)
	$(BIN)/python -c 'import re, pathlib; from flaskr_async.settings import markdown_table; \
	readme = pathlib.Path("README.md"); text = readme.read_text(); \
	start = re.search(r"<!-- settings table:.*-->\n", text).end(); end = text.index("<!-- end of the settings table -->"); \
	readme.write_text(text[:start] + markdown_table() + "\n" + text[end:])'

# Re-resolve requirements/py3.X.txt to the newest releases pyproject.toml allows.
lock: $(INSTALLED)
	$(BIN)/nox --sessions locks

# `make bench`, not part of `make test`: about 15 minutes of load on loopback, printing tables.
# system-deps: the PostgreSQL phase starts its own server with initdb.
bench: $(INSTALLED) system-deps
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk; }
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .nox .coverage .mypy_cache .ruff_cache
