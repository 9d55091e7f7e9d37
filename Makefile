# `make run` serves the app; `make test` runs every check. Both set up everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Debian packages the tests drive: Chromium (browser test), the PostgreSQL server and nginx
# (the shipped deploy/nginx.conf in front of the app).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
MISSING_PACKAGES := $(if $(wildcard /usr/bin/chromium),,chromium) \
	$(if $(shell command -v initdb || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null),,postgresql) \
	$(if $(wildcard /usr/sbin/nginx),,nginx)

.PHONY: run test lint system-deps bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/python -m flaskr_async serve --config hypercorn.toml

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

system-deps:
	@if [ -n "$(strip $(MISSING_PACKAGES))" ]; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(MISSING_PACKAGES); \
	fi

test: lint system-deps
	$(BIN)/python -m pytest --cov --cov-report=term-missing

# Not part of `make test`: about 9 minutes of load on loopback, printing a table of ratios.
# system-deps: the PostgreSQL phase starts its own server with initdb.
bench: $(INSTALLED) system-deps
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk; }
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache
