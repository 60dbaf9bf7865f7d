# Ownstory: `make run` to try it, `make test` to test it, `make bench` for the benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
# The shipped data map's billing service: Demo Billing, served by `make run` at /demo/billing.
export BILLING_ERASE_URL ?= http://127.0.0.1:$(PORT)/demo/billing

.PHONY: run test bench migrate lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Ownstory needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The project's own metadata too, without its code: the entry points that register the store kinds.
$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

migrate: $(VENV)/.runtime
	$(BIN)/flask --app wsgi db upgrade

# One process: the web app, the worker loop and the Demo Social network, on SQLite. It says one thing,
# the address to open (and a failed migration, in full); requests are logged as they come.
run: $(VENV)/.runtime
	@$(BIN)/flask --app wsgi db upgrade >/dev/null
	@OWNSTORY_INLINE_WORKER=$${OWNSTORY_INLINE_WORKER:-1} OWNSTORY_DEMO=$${OWNSTORY_DEMO:-1} \
		OWNSTORY_BASE_URL=$${OWNSTORY_BASE_URL:-http://127.0.0.1:$(PORT)} \
		$(BIN)/python -m wsgi --host 127.0.0.1 --port $(PORT)

# Every test on SQLite, and again on PostgreSQL when OWNSTORY_TEST_DATABASE_URL is set.
test: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Figures against limits measured in the same run; OWNSTORY_BENCH_SCALE=0.02 for a quick run,
# OWNSTORY_TEST_DATABASE_URL to run on PostgreSQL (in fresh schemas, dropped afterwards).
bench: $(VENV)/.dev
	$(BIN)/python -m bench

# Style, the import contract (pyproject.toml's [tool.importlinter]) and the types (its [tool.mypy]).
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .import_linter_cache tests/artifacts
