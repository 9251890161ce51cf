# `make run` and `make test` work on a fresh machine: each creates .venv and installs when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres migrate reconcile bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m bot migrate
	$(PY) -m bot serve

migrate: $(STAMP)
	$(PY) -m bot migrate

reconcile: $(STAMP)
	$(PY) -m bot reconcile --once

# The whole suite: every database test runs on SQLite and on PostgreSQL (skipped with a reason when
# PostgreSQL is unreachable, unless TITIP_REQUIRE_POSTGRES=1, as in CI).
test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Every benchmark (a long run: ~40 min); `make bench BENCH_ARGS=--quick` for a smoke run.
bench: $(STAMP)
	$(PY) bench/all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache
