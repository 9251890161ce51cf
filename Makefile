# `make run` and `make test` work on a fresh machine: each creates .venv and installs when needed, from
# requirements.lock (every dependency pinned with its hashes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint test-only migrate reconcile bench lock clean

$(STAMP): requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m bot migrate
	$(PY) -m bot serve

migrate: $(STAMP)
	$(PY) -m bot migrate

reconcile: $(STAMP)
	$(PY) -m bot reconcile --once

# Layers (import-linter contracts in .importlinter) and lint (ruff), then the whole suite: every database test
# runs on SQLite and on PostgreSQL (skipped with a reason when PostgreSQL is unreachable, unless
# TITIP_REQUIRE_POSTGRES=1, as in CI).
test: lint test-only

lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test-only: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Every benchmark (a long run: ~45 min); `make bench BENCH_ARGS=--quick` for a smoke run.
bench: $(STAMP)
	$(PY) bench/all.py $(BENCH_ARGS)

# Rebuild requirements.lock from pyproject.toml's ranges, held to the versions in requirements.in.
lock: $(STAMP)
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --quiet --extra test --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links -c requirements.in -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) data .pytest_cache
