# Two commands for a newcomer: `make demo` runs the platform, `make test` runs the tests.
# Both create (or reuse) a virtual environment in .venv and install what it needs.

PYTHON ?= python3
# Some machines (CI's among them) set PYTHONDONTWRITEBYTECODE: then every process compiles every
# module it imports from source again, and pytest rewrites every test module's asserts again. The
# suite starts hundreds of processes (workers, platforms, brokers' clients), so it pays that
# hundreds of times: collecting the tests took 17 s of CPU per worker with it, 7 s without.
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist workers: twice as many as CPUs, since tests spend much of their time waiting
# (database drops wait for a checkpoint, processes start, brokers deliver), not computing. On
# 2 CPUs, from a fresh clone: 4 workers 285 s, 3 workers 289 s with 22 fewer tests.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(max(2, (os.cpu_count() or 1) * 2))')

.PHONY: demo test lint bench-ingest bench-alerts bench-figures bench-fhir bench-dashboard bench-storage clean

# uv when it can be had (seconds), pip otherwise (minutes), from the indexes pip is configured
# with; every step is printed as it starts (tools/bootstrap.py).
$(STAMP): pyproject.toml
	@$(PYTHON) tools/bootstrap.py --venv $(VENV) --extras dev
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/heimvakt up --demo

# mypy (configured in pyproject.toml) checks types beside pytest rather than before it: from a
# cold cache it needs about 50 s of CPU, which it finds, at a lower priority, while the tests
# wait on the database and the broker. Its report follows pytest's; either failing fails the
# run, and make names pytest's exit status when both fail. Its cache lives in the user's cache
# directory, shared by every checkout: mypy checks each file's hash against it, so a fresh
# clone of a known commit is checked in a second instead of 25.
MYPY := $(BIN)/mypy --cache-dir "$${XDG_CACHE_HOME:-$$HOME/.cache}/heimvakt/mypy"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	@mypy_log=$$(mktemp); \
	nice -n 10 $(MYPY) > "$$mypy_log" 2>&1 & mypy_pid=$$!; \
	echo "$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal  (mypy runs beside it)"; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal; pytest_status=$$?; \
	wait $$mypy_pid; mypy_status=$$?; \
	echo "$(BIN)/mypy"; cat "$$mypy_log"; rm -f "$$mypy_log"; \
	if [ $$pytest_status -ne 0 ]; then exit $$pytest_status; fi; \
	exit $$mypy_status

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(MYPY)

# Ingest throughput, latency, CPU and memory against a Mosquitto it starts and a database it
# creates on the machine's PostgreSQL (HEIMVAKT_BENCH_DATABASE_URL); updates docs/benchmarks.md.
# `make test` runs the benchmarks with --smoke (tests/bench/test_smoke.py: small numbers, no
# targets, nothing written) so a change that breaks them fails there, not at the next measurement.
bench-ingest: $(STAMP)
	$(BIN)/python -m bench.ingest

bench-alerts: $(STAMP)
	$(BIN)/python -m bench.alerts

bench-figures: $(STAMP)
	$(BIN)/python -m bench.figures

bench-fhir: $(STAMP)
	$(BIN)/python -m bench.fhir

# Bytes per stored reading before and after TimescaleDB's compression, a patient's 30 and 365
# days read back, and 60 days of retention on compressed chunks (bench/storage.py). Point
# HEIMVAKT_BENCH_DATABASE_URL at a server with TimescaleDB preloaded; on plain PostgreSQL it
# reports the uncompressed figures only.
bench-storage: $(STAMP)
	$(BIN)/python -m bench.storage

bench-dashboard: $(STAMP)
	$(BIN)/python -m bench.dashboard

clean:
	rm -rf $(VENV) .heimvakt .pytest_cache .ruff_cache .mypy_cache
