# fraudstream: one command per task, the same locally and in CI. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
FS     := $(BIN)/fraudstream
PYTEST_ARGS ?=
DURATION ?= 180

.PHONY: help setup runtime system-deps venv lock demo test test-unit test-integration lint format typecheck \
        up down status logs reset smoke bench clean k8s-tools k8s-verify airflow-venv lock-airflow \
        kind-up kind-down kind-dev kind-e2e kind-status kind-clean images test-kind

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: runtime airflow-venv k8s-tools ## Install everything: system packages when missing, the venvs, the k8s verification tools

runtime: system-deps venv ## Install what the embedded platform needs (system packages, the venv)

system-deps: ## Install the JDK, Maven, PostgreSQL when missing (apt-get); check Go
	@scripts/system-deps.sh

venv: $(VENV)/.installed ## Create .venv from the lock file (uv; cached outside the clone)

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

airflow-venv: .venv-airflow/.installed ## Create .venv-airflow (Airflow 3, its own lock file; cached uv downloads)

.venv-airflow/.installed: airflow/requirements.lock | $(VENV)/.installed
	@test -x .venv-airflow/bin/python || $(PYTHON) -m venv .venv-airflow
	$(BIN)/uv pip sync -q --python .venv-airflow/bin/python airflow/requirements.lock
	@touch $@

lock-airflow: venv ## Re-resolve airflow/requirements.lock from airflow/requirements.in
	$(BIN)/uv pip compile -q airflow/requirements.in --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o airflow/requirements.lock

k8s-tools: venv ## Install the pinned offline Kubernetes verification tools and schemas (cached)
	@scripts/k8s-tools.sh

k8s-verify: k8s-tools ## Verify charts, operators, images, kind and skaffold offline (helm, kubeconform)
	$(BIN)/pytest tests/unit/kubernetes $(PYTEST_ARGS)

kind-up: k8s-tools ## A kind cluster (1 control plane, 3 workers) on a node image built here offline (cached; ~17 min cold), the image registry beside it, NetworkPolicy enforcement
	@scripts/kind/up.sh

kind-down: ## Delete the kind cluster and its registry container (the node image, caches and registry blobs stay)
	@scripts/kind/down.sh

kind-status: ## The kind cluster's nodes and pods, memory and disk footprint
	@scripts/kind/status.sh

kind-clean: ## Delete the kind cluster, the images built for it and its caches (reclaims the disk)
	@scripts/kind/clean.sh

images: venv ## Build every image in images/ (IMAGE_BASES=offline|public), smoke-check them, push them to the kind registry
	@scripts/kind/images.sh

test-kind: venv k8s-tools ## The kind tier: tests against the cluster of kind-up and the images of `make images`
	$(BIN)/pytest tests/kind $(PYTEST_ARGS)

kind-dev: venv k8s-tools ## skaffold dev on the kind cluster (offline profile): a code change rebuilds, pushes only changed layers, redeploys (SKAFFOLD=run: once)
	@scripts/kind/dev.sh

kind-e2e: venv k8s-tools ## The platform on the kind cluster end to end (after kind-up; builds the images first when missing): skaffold run -p offline, then the checks; last line JSON
	$(BIN)/python scripts/kind/e2e.py

lock: ## Re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o requirements.lock

demo: runtime airflow-venv ## Run the whole pipeline for DURATION seconds (default 180) with a live view, then a summary and the URLs
	$(FS) demo --duration $(DURATION)

test: setup ## Run every test against real services (starts its own platform instance)
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: venv airflow-venv ## Unit tests only (no services; the DAG tests parse the DAGs with Airflow)
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

test-integration: setup ## Integration tests only
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

lint: venv ## ruff lint + format check, mypy on the package
	$(BIN)/ruff check src tests jobs dags bench
	$(BIN)/ruff format --check src tests jobs dags bench
	$(BIN)/mypy

format: venv ## Apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix src tests jobs dags bench
	$(BIN)/ruff format src tests jobs dags bench

typecheck: venv ## mypy on the package
	$(BIN)/mypy

up: runtime ## fraudstream platform up
	$(FS) platform up

down: venv ## fraudstream platform down
	$(FS) platform down

test-platform-down: venv ## Stop the test platform a FRAUDSTREAM_TEST_KEEP_PLATFORM=1 run kept (its offset: FRAUDSTREAM_TEST_PORT_OFFSET)
	$(BIN)/python -m tests.platform_env $(FS) platform down

status: venv ## fraudstream platform status
	$(FS) platform status

logs: venv ## fraudstream platform logs (SERVICE=name for one)
	$(FS) platform logs $(SERVICE)

smoke: venv ## fraudstream platform smoke
	$(FS) platform smoke

reset: venv ## Stop the platform and delete its state (asks first)
	$(FS) platform reset

bench: runtime ## Run the benchmarks (print figures; never part of `make test`)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean: ## Remove the venv and build artefacts (platform state stays; see `make reset`)
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
