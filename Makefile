# Quick start: `make run` (train / open the example) and `make test` (the test suite).
# Both bootstrap .venv on a fresh machine with Python 3.11.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[testing]"
	touch $(STAMP)

run: $(STAMP)
	bash scripts/run.sh

test: $(STAMP)
	bash scripts/ensure-xvfb.sh
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/train_overhead.py
	$(BIN)/python bench/precision.py
	xvfb-run -a $(BIN)/python bench/gui_stall.py

clean-venv:
	rm -rf $(VENV)
