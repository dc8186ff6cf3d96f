# The two commands of the README: `make demo` and `make test`. Both set everything up.
# `make unit` runs tests/unit alone (no component started, no lint first) while developing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCK_HASH := $(shell cat requirements.lock pyproject.toml portalctl/pyproject.toml package-lock.json 2>/dev/null | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(LOCK_HASH)
PYTEST_ARGS ?=
# The suite runs in this many pytest-xdist processes, a test file to a process (most of a
# functional test's time is spent waiting on the components it started, each process its own).
TEST_WORKERS ?= 2

.PHONY: demo test unit check bench install system-deps clean

install: $(STAMP)

# portalctl (the CLI) is installed too; its dependencies and build backend are also kept as
# wheels in .venv/portalctl-wheels, from which the test that installs it alone in a fresh
# venv does so offline. The browser's libraries (uPlot for the charts) come from npm at the
# versions package-lock.json pins, into node_modules/, which staticfiles serves from.
$(STAMP): requirements.lock pyproject.toml portalctl/pyproject.toml package.json package-lock.json
	./scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip install -q --no-deps -e ./portalctl
	$(BIN)/python -m pip wheel -q -c requirements.lock -w $(VENV)/portalctl-wheels ./portalctl "setuptools>=70.1"
	npm ci --omit=dev --no-audit --no-fund
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	PORTAL_DEMO=1 DEBUG=1 $(BIN)/python manage.py demo

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	PORTAL_DEMO=1 $(BIN)/mypy
	PORTAL_DEMO=1 $(BIN)/python manage.py check
	PORTAL_DEMO=1 $(BIN)/python manage.py makemigrations --check --dry-run

test: check
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

system-deps:
	./scripts/system-deps.sh

clean:
	rm -rf $(VENV) node_modules var/test-portal.sqlite3*
