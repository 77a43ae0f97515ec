# Everything installs into a local virtualenv from pyproject.toml: no other set-up step.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run demo test coverage lint typecheck check bench bench-smoke chaos chaos-full soak clean lock

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The quick start: the whole pipeline on embedded defaults (private Redis, bundled MNS emulator, demo events).
run: $(STAMP)
	$(BIN)/ims-worker run --demo

## Same, but exits once every demo event was handled (what CI runs).
demo: $(STAMP)
	$(BIN)/ims-worker run --demo --exit-when-done

## The test suite (what CI runs). With COVERAGE=1 (`make coverage`) the same tests are measured with line coverage of every process
## they start (Celery workers and pool children, consumer, shim, emulator: coverage's parallel mode, combined)
## and the run fails below COVERAGE_MIN percent of worker/.
## The test files run in TEST_JOBS processes (pytest-xdist; one file per process at a time); 0 runs them in one.
COVERAGE ?= 0
COVERAGE_MIN ?= 88
TEST_JOBS ?= 3
test: $(STAMP)
ifeq ($(COVERAGE),1)
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -m "not chaos and not chaos_full" -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)
	$(BIN)/coverage combine -q
	$(BIN)/coverage report --include='worker/*' --skip-covered --sort=cover --fail-under=$(COVERAGE_MIN)
else
	$(BIN)/python -m pytest -m "not chaos and not chaos_full" -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)
endif

coverage:
	$(MAKE) test COVERAGE=1

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run_all --smoke

## Fault-injection scenarios with the event-ledger check (RELIABILITY.md). Replay a failure with the seed it
## printed: IMS_WORKER_CHAOS_SEED=N make chaos PYTEST_ARGS='-k <scenario>'. The scenario files run side by side
## (CHAOS_JOBS processes, one file each at a time: a file's scenarios share private servers' names): most of a
## scenario's time is waiting out leases and timeouts at the default settings (a 3-process run used 0.6 of a
## core on average), so 6 at once take about as long as the longest file (~3.5 min), where 3 took ~8 min;
## tests/chaos/conftest.py orders the files so that each process gets one long and one short file.
CHAOS_JOBS ?= 6
chaos: $(STAMP)
	$(BIN)/python -m pytest -m "chaos and not chaos_full" tests/chaos -n $(CHAOS_JOBS) --dist loadfile \
		--no-loadscope-reorder $(PYTEST_ARGS)

## make chaos plus its slow variants (marker chaos_full): the worker-kill recovery at the default lease in the
## io profile (threads) too. About 5 minutes more than make chaos; not in CI.
chaos-full: $(STAMP)
	$(BIN)/python -m pytest -m "chaos or chaos_full" tests/chaos -n $(CHAOS_JOBS) --dist loadfile \
		--no-loadscope-reorder $(PYTEST_ARGS)

## The same scenarios for about MINUTES minutes in all (progress printed; no per-test timeout).
MINUTES ?= 15
soak: $(STAMP)
	IMS_WORKER_SOAK_MINUTES=$(MINUTES) $(BIN)/python -m pytest -m chaos tests/chaos -s --timeout=0 $(PYTEST_ARGS)

## The deployment lock file (exact versions + hashes, what deploy/Dockerfile installs) from pyproject's ranges.
## Run after changing dependencies; `make lock UPGRADE=1` also moves every pin to the newest allowed version.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra flower --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" \
		$(if $(UPGRADE),--upgrade,) --quiet -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .ims-worker
