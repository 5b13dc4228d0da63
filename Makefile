# mktlab: every target creates the project environment (.venv) when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 5000
STORE := sqlite:///$(CURDIR)/experiments/mlflow.db
ARTIFACTS := $(CURDIR)/experiments/mlartifacts
BACKEND ?= $(STORE)
SERVER_WORKERS ?= 2

.PHONY: help install demo test test-fast lab mlflow-ui mlflow-server bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

install: $(STAMP)  ## create .venv and install mktlab with its dev tools

demo: $(STAMP)  ## run the default job (matrix factorization on MovieLens) and print where to look
	$(BIN)/mktlab

test: $(STAMP)  ## run the whole test suite (two workers)
	$(BIN)/python -m pytest -n 2 --durations=15

test-fast: $(STAMP)  ## the suite without the slow (kernel, sweep) tests
	$(BIN)/python -m pytest -m "not slow"

lab: $(STAMP)  ## open JupyterLab on notebooks/
	$(BIN)/jupyter lab --notebook-dir=notebooks

mlflow-ui: $(STAMP)  ## open the MLflow UI on the project's store
	$(BIN)/mlflow ui --backend-store-uri $(STORE) --default-artifact-root $(ARTIFACTS) --host $(HOST) --port $(PORT)

mlflow-server: $(STAMP)  ## MLflow tracking server on HOST:PORT over the project's store; BACKEND=postgresql://user:pw@host/db for PostgreSQL
	$(BIN)/mlflow server --backend-store-uri $(BACKEND) --artifacts-destination $(ARTIFACTS) \
		--host $(HOST) --port $(PORT) --workers $(SERVER_WORKERS)

bench: $(STAMP)  ## run the benchmarks against PyTorch and scikit-surprise
	$(BIN)/python -m pip install -e '.[dev,bench]'
	$(BIN)/python benchmarks/mf.py

clean:  ## remove the environment (runs under experiments/ are kept)
	rm -rf $(VENV)
