# The two front-door commands: `make demo` and `make test`. Each makes its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready

.PHONY: demo test lint types unit bench clean

$(READY): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "ledger needs Python 3.11+ (found: $$($(PYTHON) --version 2>&1)); set PYTHON=python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(READY)
	@PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh

test: lint types unit

lint: $(READY)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

types: $(READY)
	$(BIN)/mypy

unit: $(READY)
	$(BIN)/pytest

# Benchmarks are not tests: they take minutes and their numbers go to docs/benchmarks.md.
# PostgreSQL runs need LEDGER_BENCH_PG_DSN (or LEDGER_TEST_PG_DSN). OPERATIONS=100000 for a shorter run.
OPERATIONS ?= 1000000
bench: $(READY)
	$(BIN)/python bench/views.py --backend sqlite --operations $(OPERATIONS) --out bench/results/views-sqlite.json
	$(BIN)/python bench/views.py --backend postgresql --operations $(OPERATIONS) --out bench/results/views-postgresql.json

clean:
	rm -rf $(VENV) .demo .mypy_cache .pytest_cache .ruff_cache .hypothesis
