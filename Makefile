# The two commands a newcomer needs: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check install demo clean bench faults audit

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	mkdir -p var
	$(BIN)/checkin db upgrade
	$(BIN)/checkin run

demo: $(STAMP)
	$(BIN)/checkin db upgrade
	$(BIN)/checkin demo

test: $(STAMP)
	$(BIN)/ruff check worker tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest --ignore=tests/faults $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check worker tests bench
	$(BIN)/ruff format --check worker tests bench

# Benchmarks (bench/): minutes, not seconds; writes bench/REPORT.md. BENCH_ARGS=--quick for a check.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Fault-injection suite (tests/faults): real processes under each fault, 2,000+ messages a run,
# one summary line per fault; about a quarter of an hour. Not part of `make test`.
faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults -m faults -s $(PYTEST_ARGS)

# Known vulnerabilities in the installed dependencies (pip-audit against the PyPI/OSV advisory
# database; needs network access to it). Not part of `make test`, which must pass offline.
audit: $(STAMP)
	$(BIN)/pip-audit --skip-editable --progress-spinner off

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
