# One command to set up, one to test.  `make install` builds .venv with everything the project
# and its tests need; `make test` runs the test suite (the command CI runs).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,meteor]'

test: $(BIN)/python
	$(BIN)/python -m pytest -q

bench: $(BIN)/python
	$(BIN)/python benchmarks/eval_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
