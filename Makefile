# Thin wrappers over scripts/ and the drydock CLI. `make build-images` is the main job;
# `make test` runs every test tier on real components (engine, registry, scanners,
# kube-apiserver + etcd, a real node), provisioning them first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
JOBS ?= 2
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv host tools build-images test test-unit test-integration test-e2e lint bench clean \
	nightly-plan nightly-shard nightly-promote nightly-catalogs nightly-publish-catalogs \
	nightly-rehearsal

help:
	@echo "make build-images   build, scan, gate and publish every image to the local registry"
	@echo "make test           every test tier (provisions what the tests need)"
	@echo "make lint           ruff (with bandit S rules), ruff format, mypy, import-linter"
	@echo "make bench          benchmarks; figures land in bench/results/"
	@echo "make nightly-rehearsal  the nightly workflow's jobs in order, on this machine"

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
# them to the local cluster (control plane and node, started here: the README's loop runs
# its PostgreSQL Clusters on it; `drydock dev cluster down` stops it).
# No `tools` prerequisite: `drydock run` builds the pinned tools its later steps need in the
# background while the bases and images build, and the control plane's after publishing.
# Clair (its PostgreSQL and feed front too) scans beside Dockle and Trivy: with
# DRYDOCK_CLAIR_URL=local (the default here) the run builds Clair in the background too and
# starts it when the first image is scanned; it keeps running afterwards
# (`drydock dev clair down` stops it). Set DRYDOCK_CLAIR_URL to use a Clair of your own.
# The run's exit code (1: a gate failed) is the target's, after the catalogs of what was
# published are applied.
build-images: venv host
	rc=0; DRYDOCK_CLAIR_URL="$${DRYDOCK_CLAIR_URL:-local}" $(BIN)/drydock run --jobs $(JOBS) || rc=$$?; \
	$(BIN)/drydock dev cluster up --install-crds && \
	$(BIN)/drydock catalog apply --kubeconfig "$$($(BIN)/drydock dev cluster kubeconfig)" && \
	exit $$rc

test: venv host tools
	bash scripts/test.sh

test-unit: venv
	bash scripts/test.sh --tier unit

test-integration: venv host tools
	bash scripts/test.sh --tier integration

test-e2e: venv host tools
	bash scripts/test.sh --tier e2e

lint: venv
	bash scripts/lint.sh $(LINT_FLAGS)

bench: venv host tools
	$(BIN)/python bench/build_matrix.py
	$(BIN)/python bench/scan_matrix.py
	$(BIN)/python bench/nightly.py
	$(BIN)/python bench/operator_roll.py
	$(BIN)/python bench/package_delta.py
	$(BIN)/python bench/fresh_machine.py
	$(BIN)/python bench/vulnfeed.py
	$(BIN)/python bench/node_start.py

# The nightly workflow's jobs (.github/workflows/nightly.yml calls exactly these), handing
# artifacts through $(NIGHTLY_OUT). SHARDS, TARGETS, RUN_FLAGS and DRYDOCK_REGISTRY pass through.
NIGHTLY_OUT ?= out/nightly
SHARD ?= 1/1

nightly-plan: venv
	bash scripts/nightly.sh plan $(NIGHTLY_OUT)

nightly-shard: venv
	bash scripts/nightly.sh shard $(NIGHTLY_OUT) $(SHARD)

nightly-promote: venv
	bash scripts/nightly.sh promote $(NIGHTLY_OUT)

nightly-catalogs: venv
	bash scripts/nightly.sh catalogs $(NIGHTLY_OUT)

CATALOG_BRANCH ?= catalogs
nightly-publish-catalogs:
	bash scripts/nightly.sh publish $(NIGHTLY_OUT) $(CATALOG_BRANCH)

# All of them in order against a registry namespace (default: acme on the local registry).
nightly-rehearsal: venv host tools
	DRYDOCK_REGISTRY=$${DRYDOCK_REGISTRY:-127.0.0.1:5000/acme} bash scripts/nightly.sh rehearse $(NIGHTLY_OUT)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
