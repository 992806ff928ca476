# The two front-door commands: `make demo` and `make test`. Each makes its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready

.PHONY: demo test lint types unit bench bench-quick screenshots clean

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

# Benchmarks are not tests: they take long (`make bench`: about two hours on 2 cores) and their
# numbers go to bench/results/*.json, docs/benchmarks.md and docs/scaling.png. PostgreSQL runs need
# LEDGER_BENCH_PG_DSN (or LEDGER_TEST_PG_DSN). `make bench-quick` is the same harness at a small
# scale, in about a minute, and prints the tables without touching the recorded results.
BENCH_PG_DSN ?= $(or $(LEDGER_BENCH_PG_DSN),$(LEDGER_TEST_PG_DSN),postgresql://postgres@127.0.0.1:5432/test)
BENCH := LEDGER_BENCH_PG_DSN=$(BENCH_PG_DSN) $(BIN)/python bench
bench: $(READY)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@for backend in sqlite postgresql; do \
		$(BENCH)/views.py --backend $$backend --operations 1000000 --out bench/results/views-$$backend.json && \
		$(BENCH)/views.py --backend $$backend --operations 100000 --out bench/results/views-$$backend-100k.json && \
		$(BENCH)/views.py --backend $$backend --operations 10000 --out bench/results/views-$$backend-10k.json && \
		$(BENCH)/audit.py --backend $$backend --operations 25000 250000 --out bench/results/audit-$$backend.json && \
		$(BENCH)/ingest.py --backend $$backend --events 1000000 --out bench/results/ingest-$$backend.json && \
		$(BENCH)/ingest.py --backend $$backend --events 400000 --out bench/results/ingest-$$backend-100k.json && \
		$(BENCH)/ingest.py --backend $$backend --events 40000 --out bench/results/ingest-$$backend-10k.json && \
		$(BENCH)/lean.py --backend $$backend --operations 1000000 --out bench/results/lean-$$backend-1m.json && \
		$(BENCH)/lean.py --backend $$backend --operations 100000 --out bench/results/lean-$$backend-100k.json && \
		$(BENCH)/lean.py --backend $$backend --operations 10000 --out bench/results/lean-$$backend-10k.json && \
		$(BENCH)/commands.py --backend $$backend --operations 10000 --out bench/results/commands-$$backend.json && \
		$(BENCH)/serve.py --backend $$backend --seconds 60 --out bench/results/serve-$$backend.json && \
		$(BENCH)/serve_grpc.py --backend $$backend --seconds 60 --out bench/results/serve-grpc-$$backend.json && \
		$(BENCH)/ui.py --backend $$backend --operations 10000 --out bench/results/ui-$$backend-10k.json && \
		$(BENCH)/ui.py --backend $$backend --operations 100000 --out bench/results/ui-$$backend-100k.json && \
		$(BENCH)/collect.py --backend $$backend --out bench/results/collect-$$backend.json || exit 1; \
	done
	$(BIN)/python bench/plot.py
	$(BIN)/python bench/report.py > docs/benchmarks.md

bench-quick: $(READY)
	@mkdir -p .bench-quick
	$(BIN)/python bench/views.py --backend sqlite --operations 5000 --samples 300 --out .bench-quick/views-sqlite.json >/dev/null
	$(BIN)/python bench/audit.py --backend sqlite --operations 2000 8000 --out .bench-quick/audit-sqlite.json >/dev/null
	$(BIN)/python bench/ingest.py --backend sqlite --events 20000 --out .bench-quick/ingest-sqlite.json >/dev/null
	$(BIN)/python bench/commands.py --backend sqlite --operations 1000 --rounds 100 --processes 5 --out .bench-quick/commands-sqlite.json >/dev/null
	$(BIN)/python bench/serve.py --backend sqlite --seconds 5 --out .bench-quick/serve-sqlite.json >/dev/null
	$(BIN)/python bench/lean.py --backend sqlite --operations 2000 --samples 300 --out .bench-quick/lean-sqlite-2k.json >/dev/null
	$(BIN)/python bench/serve_grpc.py --backend sqlite --seconds 5 --out .bench-quick/serve-grpc-sqlite.json >/dev/null
	$(BIN)/python bench/ui.py --backend sqlite --operations 1000 --rounds 3 --out .bench-quick/ui-sqlite.json >/dev/null
	$(BIN)/python bench/collect.py --backend sqlite --operations 500 --steady 5 --out .bench-quick/collect-sqlite.json >/dev/null
	$(BIN)/python bench/report.py --results .bench-quick

# The explorer's pages over 10,000 simulated operations, as docs/ui-*.png (needs /usr/bin/chromium).
screenshots: $(READY)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .demo .bench-quick .mypy_cache .pytest_cache .ruff_cache .hypothesis
