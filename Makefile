# `make demo` and `make test` build .venv from nothing (the runtime, the train extra and the dev
# tools); `make test` runs the suite. Slow tests carry the `slow` marker and run with `make test-slow`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: test test-slow synth-speed demo clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $@

test: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow"

test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -m slow

# Phantom generation speed (benchmarks/synth_speed.py). `fundusrt bench` times a bundle; the other
# scripts under benchmarks/ measure the README's figures and say how to run them.
synth-speed: $(BIN)/.installed
	$(BIN)/python benchmarks/synth_speed.py

# The whole mission on phantoms (about a quarter of an hour on 2 cores); a re-run reuses finished steps.
demo: $(BIN)/.installed
	$(BIN)/python demo/demo.py --out demo-out

clean:
	rm -rf $(VENV) .pytest_cache
