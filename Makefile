# Shopflow: `make demo` and `make test` set up .venv from requirements.lock and run.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch is found in a local wheel folder (pip's find-links on these machines).
TORCH_FIND_LINKS ?= $(wildcard /opt/wheels)
UV_FIND_LINKS := $(if $(TORCH_FIND_LINKS),--find-links $(TORCH_FIND_LINKS),)
LOCK_HASH := $(shell sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(LOCK_HASH)
# The slowest tests are listed at the end of every run (CI's budget is watched by them).
PYTEST_ARGS ?= --durations=40

.PHONY: help setup demo airflow test test-fast lint bench lock image clean

help:
	@echo "make demo   - set up .venv, run the training pipeline on synthetic data, serve it"
	@echo "make airflow - the Airflow 3 UI, scheduler and model service (Ctrl-C stops all)"
	@echo "make test   - set up .venv and run the whole test suite"
	@echo "make lint   - ruff and mypy --strict (CI runs it before the tests)"
	@echo "make bench  - run the benchmarks (tables + JSON in SHOPFLOW_HOME/bench)"
	@echo "make lock   - re-resolve requirements.in into requirements.lock"
	@echo "make image  - docker compose build, recording the git commit in the image"

setup: $(STAMP)

# Idempotent: re-runs only when the lock or pyproject changes.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip sync --python $(BIN)/python --compile-bytecode $(UV_FIND_LINKS) requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: setup
	$(BIN)/python -m shopflow.demo

# Airflow 3 (api-server, scheduler, dag-processor, triggerer; LocalExecutor) + the model
# service on SHOPFLOW_HOME; prints the UI address and a login generated for this start.
# SHOPFLOW_AIRFLOW__EXECUTOR=CeleryExecutor (with a PostgreSQL metadata URL): Celery workers.
airflow: setup
	$(BIN)/python -m shopflow.cli airflow up

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

# ruff (with I, B, TC and the Airflow rules) on everything, mypy --strict on src/ (pyproject).
lint: setup
	$(BIN)/ruff check src tests dags services feature_repo expectations benchmarks
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m benchmarks.run_all

lock:
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"; }
	$(BIN)/uv pip compile requirements.in --python 3.11 $(UV_FIND_LINKS) -o requirements.lock

# The image has no .git: the commit (+dirty when tracked files under src/ changed) goes
# in as a build argument and becomes the code version every model records.
image:
	GIT_SHA="$$(git rev-parse --short=12 HEAD)$$(git status --porcelain --untracked-files=no -- src | grep -q . && echo +dirty)" \
	  docker compose build

clean:
	rm -rf $(VENV) .shopflow
