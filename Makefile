# `make run` serves the app; `make test` runs every check. Both set up everything they need.
PYTHON ?= python3
# The Pythons `make test` runs the suite on (`make test PYTHONS=3.13` for one); see noxfile.py.
PYTHONS ?= 3.11 3.12 3.13
TEST_SESSIONS = $(addprefix tests-,$(PYTHONS))
VENV := .venv
BIN := $(VENV)/bin
SERVING := $(VENV)/.serving
INSTALLED := $(VENV)/.installed
# The stack tested with this Python, pinned: requirements/py3.X.txt (`make lock` refreshes them).
PYTHON_VERSION = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
LOCK = requirements/py$(PYTHON_VERSION).txt
# A PYTHON given to make (`make run PYTHON=python3.13`) that is not the one .venv was made with
# rebuilds .venv, rather than serving on the old one without a word; the default leaves it be.
VENV_VERSION = $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
REBUILD := $(if $(filter-out file,$(origin PYTHON)),$(if $(VENV_VERSION),$(filter-out $(PYTHON_VERSION),$(VENV_VERSION))))

# Debian packages the tests drive: Chromium (browser test), the PostgreSQL server and nginx
# (the shipped deploy/nginx.conf in front of the app).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
MISSING_PACKAGES := $(if $(wildcard /usr/bin/chromium),,chromium) \
	$(if $(shell command -v initdb || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null),,postgresql) \
	$(if $(wildcard /usr/sbin/nginx),,nginx)

.PHONY: run test test-fast lint lock settings-table system-deps bench clean rebuild-venv $(TEST_SESSIONS)

# What serving needs, nothing more (Debian: apt-get install python3-venv).
$(SERVING): pyproject.toml $(wildcard requirements/*.txt) $(if $(REBUILD),rebuild-venv)
	@test -n "$(PYTHON_VERSION)" || { echo "No Python interpreter '$(PYTHON)' found: install it, or name another (PYTHON=python3.13); supported: $(PYTHONS)" >&2; exit 1; }
	@test -f $(LOCK) || { echo "No $(LOCK): supported Pythons are $(PYTHONS) (PYTHON=python3.13)" >&2; exit 1; }
	$(if $(REBUILD),@echo "Rebuilding $(VENV) (Python $(VENV_VERSION)) with PYTHON=$(PYTHON) (Python $(PYTHON_VERSION))" && rm -rf $(VENV))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e .
	touch $(SERVING)

rebuild-venv:

# The rest for development: pytest, ruff, mypy, Playwright, nox (which runs every Python).
$(INSTALLED): $(SERVING)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(INSTALLED)

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

# ruff once; then each Python's virtualenv filled from its lock, one after another (each
# install writes the project's egg-info); then per Python mypy and the whole suite, the Pythons
# side by side: the suite mostly waits on servers and sockets, so three share two cores well.
# Each Python's output is printed whole when it ends; a failure names its session.
# A Python that is not installed is skipped, except under CI=true.
test: $(INSTALLED) system-deps
	$(BIN)/nox --sessions lint
	$(BIN)/nox --install-only --sessions $(TEST_SESSIONS)
	@$(MAKE) --no-print-directory --keep-going --jobs=$(words $(TEST_SESSIONS)) \
		--output-sync=target $(TEST_SESSIONS)

$(TEST_SESSIONS): $(INSTALLED)
	$(BIN)/nox --no-install --reuse-existing-virtualenvs --sessions $@

# Between two edits: this Python only, without the tests marked system (real servers, nginx,
# PostgreSQL, a browser) and without coverage. `make test` runs everything.
test-fast: $(INSTALLED)
	$(BIN)/python -m pytest -q -m 'not system'

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
