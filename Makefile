# mktlab: every target creates the project environment (.venv) when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 5000
STORE := sqlite:///$(CURDIR)/experiments/mlflow.db
ARTIFACTS := $(CURDIR)/experiments/mlartifacts
SERVER_WORKERS ?= 2
# The server's backend store: MLFLOW_BACKEND_STORE_URI in the environment, else the first line of
# BACKEND_FILE (e.g. postgresql://mlflow:PASSWORD@db/mlflow in a file only you can read), else the
# project's SQLite store. It reaches `mlflow server` through its environment, never its command line.
BACKEND_FILE ?=

.PHONY: help install demo test test-fast browser postgres lab mlflow-ui mlflow-server bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# The packages are installed without byte-compiling, then compiled on every core at once (pip compiles file
# by file); a file that does not compile (a template, a Python 2 example) is left as pip would leave it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install --no-compile -e '.[dev]'
	-$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null
	touch $@

install: $(STAMP)  ## create .venv and install mktlab with its dev tools

demo: $(STAMP)  ## run the default job (matrix factorization on MovieLens) and print where to look
	$(BIN)/mktlab

# What the browser and PostgreSQL tests start, installed from Debian's packages when missing (CI runs as root).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q

# --dist loadfile: a module's tests share a worker, so a module-scoped fixture (the browser tests' sweep and
# MLflow UI) is set up once (xdist_group marks do not group with pytest 9.2: pytest-dev/pytest-xdist#1386).
# --no-loadscope-reorder: the files start in the order tests/conftest.py gives them, the longest first
# (xdist's default would start the files with the most tests first, leaving the long one-test files to the end).
test: $(STAMP) browser postgres  ## check that the layers run one way, then run the whole test suite (two workers; the browser and PostgreSQL tests included)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15

browser:  ## Debian's Chromium for the browser tests (`-m browser`), installed when missing
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -q && $(APT_INSTALL) chromium; }

postgres:  ## Debian's PostgreSQL server for the PostgreSQL tests (`-m postgres`), installed when missing
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(APT_INSTALL) postgresql; }

test-fast: $(STAMP)  ## the suite without the slow (kernel, sweep) tests
	$(BIN)/python -m pytest -m "not slow"

lab: $(STAMP)  ## open JupyterLab on notebooks/
	$(BIN)/jupyter lab --notebook-dir=notebooks

mlflow-ui: $(STAMP)  ## open the MLflow UI on the project's store
	$(BIN)/mlflow ui --backend-store-uri $(STORE) --default-artifact-root $(ARTIFACTS) --host $(HOST) --port $(PORT)

mlflow-server: $(STAMP)  ## MLflow tracking server on HOST:PORT; PostgreSQL: BACKEND_FILE=<file holding postgresql://...> or MLFLOW_BACKEND_STORE_URI
	@MLFLOW_BACKEND_STORE_URI="$${MLFLOW_BACKEND_STORE_URI:-$$(if [ -n "$(BACKEND_FILE)" ]; then head -n 1 "$(BACKEND_FILE)"; else echo "$(STORE)"; fi)}" \
		$(BIN)/mlflow server --artifacts-destination $(ARTIFACTS) --host $(HOST) --port $(PORT) --workers $(SERVER_WORKERS)

bench: $(STAMP)  ## run the benchmarks against PyTorch and scikit-surprise
	$(BIN)/python -m pip install -e '.[dev,bench]'
	$(BIN)/python benchmarks/mf.py

clean:  ## remove the environment (runs under experiments/ are kept)
	rm -rf $(VENV)
