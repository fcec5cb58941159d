# virnuc-hpc: every target prints the command it runs.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
CLI     = $(VENV)/bin/virnuc-hpc
DEMO_OUT ?= demo-out

.PHONY: install demo test lint
.DEFAULT_GOAL := help

help:
	@echo "make install | demo | test | lint"

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'

demo: install
	$(CLI) predict examples/reads.fa -o $(DEMO_OUT) --models tiny

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check virnuc_hpc tests bench
