# The two commands of the quick start: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check -c requirements/constraints.txt
SRC := proxy cache conf rig tests benchmarks

.PHONY: run test lint bench bench-cache system-deps clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "s3cache needs Python 3.11+"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { bash scripts/system-deps.sh && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip

$(VENV)/.run-deps: $(BIN)/python pyproject.toml requirements/constraints.txt
	$(PIP) -e .
	@touch $@

$(VENV)/.test-deps: $(VENV)/.run-deps
	$(PIP) torch==2.13.0  # first, on its own: the CPU build, so resolving the test extra never pulls a CUDA torch
	$(PIP) -e '.[test]'
	@touch $@

system-deps:
	@bash scripts/system-deps.sh

run: $(VENV)/.run-deps
	$(BIN)/s3cache serve

lint: $(VENV)/.test-deps
	$(BIN)/ruff check $(SRC)
	$(BIN)/mypy

test: system-deps $(VENV)/.test-deps lint
	$(BIN)/pytest -q -ra

bench: system-deps $(VENV)/.test-deps
	$(BIN)/python benchmarks/get_vs_nginx.py

# Cold vs warm through a 20 ms origin, peak RSS streaming 2 GiB, the block size (several minutes; a quiet machine).
bench-cache: $(VENV)/.test-deps
	$(BIN)/python benchmarks/cold_warm.py
	$(BIN)/python benchmarks/stream_rss.py
	$(BIN)/python benchmarks/block_size.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
