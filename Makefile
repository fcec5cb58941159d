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
	$(VENV)/bin/ruff check virnuc_hpc tests bench scripts

# --- SLURM: submit a run, follow it, rerun bad shards (PROFILE: jobs/<name>.yaml) ---
PROFILE ?= slurm
SUBMIT_RUN = $(or $(RUN),runs/$(basename $(notdir $(firstword $(SAMPLESHEET) $(INPUT)))))
SUBMIT_ARGS ?=
SLURM_DIR ?= /tmp/virnuc-slurm

.PHONY: submit status resubmit slurm-up slurm-down

# INPUT: one file (or several, quoted); SAMPLESHEET: a sheet of samples (sample,fasta,...)
submit:
	@test -n "$(INPUT)$(SAMPLESHEET)" || { echo "usage: make submit INPUT=reads.fa | SAMPLESHEET=samples.csv [PROFILE=slurm RUN=runs/<name> SUBMIT_ARGS='--partition gpu']"; exit 2; }
	$(CLI) submit $(INPUT) $(if $(SAMPLESHEET),--samplesheet $(SAMPLESHEET)) --run-dir $(SUBMIT_RUN) --profile $(PROFILE) $(SUBMIT_ARGS)

# BY_SAMPLE=1: one line per sample
status:
	@test -n "$(RUN)" || { echo "usage: make status RUN=runs/<name> [BY_SAMPLE=1]"; exit 2; }
	$(CLI) status $(RUN) $(if $(BY_SAMPLE),--by-sample)

resubmit:
	@test -n "$(RUN)" || { echo "usage: make resubmit RUN=runs/<name>"; exit 2; }
	$(CLI) resubmit $(RUN)

# A single-node test cluster (root; apt-get install slurmctld slurmd slurm-client), stopped by PID.
slurm-up:
	$(PY) tests/executors/slurm_cluster.py up $(SLURM_DIR)

slurm-down:
	$(PY) tests/executors/slurm_cluster.py down $(SLURM_DIR)

# --- Containers: the image (podman or docker), the Apptainer SIF, models (docs/containers.md) ---
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
ENGINE  ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
IMAGE   ?= virnuc:$(VERSION)
SIF     ?= virnuc.sif
SOURCE_URL ?= $(shell git remote get-url origin 2>/dev/null)
CONTAINER_ARGS ?=
MODELS  ?= real

.PHONY: container sif test-container fetch-models

container:
	$(ENGINE) build -t $(IMAGE) -f Containerfile --build-arg VIRNUC_VERSION=$(VERSION) $(if $(SOURCE_URL),--build-arg VIRNUC_SOURCE=$(SOURCE_URL)) $(CONTAINER_ARGS) .

sif: container
	mkdir -p build && rm -f build/virnuc-$(VERSION).tar
	$(ENGINE) save -o build/virnuc-$(VERSION).tar $(IMAGE)
	apptainer build $(SIF) apptainer.def

test-container: install
	$(PY) -m pytest -s -q tests/containers

fetch-models: install
	$(CLI) models fetch --profile $(MODELS) $(if $(CACHE),--cache $(CACHE))
