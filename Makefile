# Thin wrappers over scripts/ and the drydock CLI. `make build-images` is the main job;
# `make test` runs every test tier on real components (engine, registry, scanners,
# kube-apiserver + etcd), provisioning them first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
JOBS ?= 2
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv host tools build-images test test-unit lint bench clean

help:
	@echo "make build-images   build, scan, gate and publish every image to the local registry"
	@echo "make test           every test tier (provisions what the tests need)"
	@echo "make lint           ruff (with bandit S rules), ruff format, mypy, import-linter"
	@echo "make bench          benchmarks; figures land in bench/results/"

$(BIN)/drydock: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

venv: $(BIN)/drydock

host:
	bash scripts/host.sh up

tools:
	bash scripts/tools.sh

# Build, scan, gate and publish to the local registry, then write the catalogs and apply
# them to the local control plane (started here; `drydock dev cluster down` stops it).
build-images: venv host tools
	$(BIN)/drydock dev cluster up --install-crds
	$(BIN)/drydock run --jobs $(JOBS) --kubeconfig "$$($(BIN)/drydock dev cluster kubeconfig)"

test: venv host tools
	bash scripts/test.sh

test-unit: venv
	$(BIN)/pytest -q tests/unit

lint: venv
	$(BIN)/ruff check pipeline tests bench operator
	$(BIN)/ruff format --check pipeline tests bench operator
	$(BIN)/mypy
	cd operator && ../$(BIN)/mypy  # the operator and the instance manager, strict too
	$(BIN)/lint-imports
	bash scripts/lint-workflows.sh

bench: venv host tools
	$(BIN)/python bench/build_matrix.py
	$(BIN)/python bench/scan_matrix.py
	$(BIN)/python bench/nightly.py
	$(BIN)/python bench/operator_roll.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
