# Strategy Engine — the two commands a newcomer types: `make run` and `make test`.
# Set-up lives here: each target creates .venv when missing and installs the pinned requirements.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
SYSTEM_STAMP := $(VENV)/.system-deps
SYSTEM_DEPS := faketime chromium
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q --no-compile
# uv installs the pinned requirements (pip bootstraps it, pinned): downloads and unpacking in parallel, ~20 s where
# pip took 85-120 s from nothing here, same versions resolved. uv does not read pip's configuration, so pip's
# find-links (where this machine keeps torch's CPU wheel) is passed on; without it a CUDA build is pulled.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
FIND_LINKS = $(or $(PIP_FIND_LINKS),$(shell $(BIN)/python -m pip config get global.find-links 2>/dev/null))
UV_INSTALL = $(UV) pip install -q $(foreach d,$(FIND_LINKS),--find-links $(d)) --python
# Bytecode is written by the processes that import a module, once (PYTHONDONTWRITEBYTECODE, set on this machine, is
# cleared for every command make runs): compiling all of site-packages up front (18,000 files, most never imported)
# took ~36 s of the set-up on two cores, and without bytecode every process (each CLI run, each kernel) recompiles
# every module it imports.
export PYTHONDONTWRITEBYTECODE :=
# checkov lives in its own environment (its pins would downgrade packages of .venv): infra/requirements-checkov.txt
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: run test warm-kernels lint sync-check nbtest pytest lab docs bench clean-venv help infra-check image-check

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): $(BIN)/python
	$(PIP) uv==$(UV_VERSION)

# Stamp files, not the .venv directory: a half-failed install must not count as done.
$(RUNTIME_STAMP): $(UV) requirements.txt setup.py settings.ini
	$(UV_INSTALL) $(BIN)/python -r requirements.txt
	$(UV_INSTALL) $(BIN)/python --no-deps -e .
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(UV_INSTALL) $(BIN)/python -r requirements.txt -r requirements-dev.txt
	touch $@

$(CHECKOV_STAMP): $(UV) infra/requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(UV_INSTALL) $(CHECKOV_VENV)/bin/python -r infra/requirements-checkov.txt
	touch $@

# System packages some tests use (faketime fakes the clock for a process tree; chromium renders the run viewer); installed with
# apt-get when running as root (CI, this machine), otherwise the tests that need them say so and skip.
$(SYSTEM_STAMP): $(BIN)/python
	@missing=""; for p in $(SYSTEM_DEPS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "note: missing system packages:$$missing (apt-get install$$missing); tests that need them will skip"; fi; \
	fi
	touch $@

run: $(RUNTIME_STAMP)  ## run the daily production job for the last date of the data (NSE sample when present, else synthetic)
	$(BIN)/strategy-engine run daily --as-of latest

# The three set-ups are independent: built side by side (-j3), the checkov environment and the system packages
# cost nothing beside .venv's install. warm-kernels (numba compiling on one core), lint (mypy on one core) and the
# notebook tests (two workers, each idle at times: a notebook's subprocesses, the last notebooks' tail) are
# independent too: run side by side they keep both cores busy, each target's output printed whole. pytest waits for
# all three (its CLI runs need the warmed kernels).
test:  ## sync check + lint + notebook tests + pytest (infra checks included)
	$(MAKE) --no-print-directory -j3 $(DEV_STAMP) $(SYSTEM_STAMP) $(CHECKOV_STAMP)
	$(MAKE) --no-print-directory sync-check
	$(MAKE) --no-print-directory -j3 --output-sync=target warm-kernels lint nbtest
	$(MAKE) --no-print-directory pytest

sync-check: $(DEV_STAMP)  ## fail when nbdev_export + nbdev_clean would change anything, or a module has no notebook
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	@st=$$(git status --porcelain -- nbs strategy_engine) || { echo "sync-check: not a git work tree"; exit 1; }; \
	if [ -n "$$st" ]; then echo "sync-check: notebooks and strategy_engine/ are out of sync (run nbdev_export && nbdev_clean, commit both):"; echo "$$st"; exit 1; fi
	@$(BIN)/python tools/orphan_modules.py

lint: $(DEV_STAMP)  ## ruff + mypy over the package, tests and benchmarks; lines to 110 columns in notebooks too
	$(BIN)/ruff check strategy_engine tests bench tools scripts
	$(BIN)/mypy strategy_engine
	$(BIN)/python tools/fit_lines.py --check

# The daily job's numba kernels compiled once into the user cache (what the image's warm-up does), before the
# tests start: on a cold cache every run the tests start at once (ten at a time in the crash tests) would
# compile them side by side (~45 s of CPU each). A few seconds when the cache is warm.
WARM_DIR := $(shell mktemp -u /tmp/strategy-engine-warm-XXXXXX)
warm-kernels: $(RUNTIME_STAMP)  ## compile the daily job's numba kernels into the user cache (one synthetic daily run)
	@$(BIN)/strategy-engine run daily --as-of latest --data synthetic --archive $(WARM_DIR) \
	  --warehouse duckdb:///$(WARM_DIR)/wh.duckdb --no-alerts --no-log-output > /dev/null; \
	  code=$$?; rm -rf $(WARM_DIR); exit $$code

nbtest: $(DEV_STAMP)  ## run the test cells of every library notebook
	$(BIN)/nbdev_test --n_workers 2 --timing

# Two workers; a test file is one unit (its module fixtures built once, in one process) except the files
# tests/conftest.py spreads test by test, and the costliest units start first (conftest: unit_of, COSTLIEST_FIRST);
# a test that hangs fails after 15 minutes instead of holding CI; the ten slowest items are listed at the end.
pytest: $(DEV_STAMP)  ## integration, CLI and service tests
	$(BIN)/pytest -q -n 2 --dist loadgroup --timeout=900 --durations=10 tests

infra-check: $(DEV_STAMP) $(CHECKOV_STAMP)  ## infra/ (python-hcl2 + checkov), workflow schema, hadolint, deploy and verify scripts (~25 s)
	$(BIN)/pytest -q tests/test_infra.py tests/test_deploy.py

image-check:  ## build the image with buildah (vfs, chroot) on an mmdebstrap base, run the daily job in it (~6 min; root)
	bash scripts/image_check.sh

lab: $(DEV_STAMP)  ## open JupyterLab on nbs/ (--allow-root when run as root)
	$(BIN)/jupyter lab --notebook-dir=nbs $$([ "$$(id -u)" = 0 ] && echo --allow-root)

docs: $(DEV_STAMP)  ## execute every library and research notebook into a static HTML site in _docs/, links and images checked
	$(BIN)/python tools/build_docs.py --out _docs

bench: $(DEV_STAMP)  ## print the benchmark figures
	@for b in bench/*_bench.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-venv:  ## remove the virtual environment
	rm -rf $(VENV)
