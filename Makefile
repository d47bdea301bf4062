# hfmaml: `make figures` regenerates every figure and the verification report;
# `make test` runs the test suite. Both bootstrap a virtual environment in .venv
# on first use (only Python >= 3.10 and make are needed) and reinstall it only
# when pyproject.toml changes. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
# Conda users: `make figures VENV=$CONDA_PREFIX` uses the active environment instead.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hfmaml-installed
# Extra arguments for JupyterLab, e.g. `make lab LAB_ARGS='--no-browser --port 8899'`.
LAB_ARGS ?=
# Papermill parameters for every notebook, e.g. `make figures P='-p seed 3'`.
P ?=
export P

NAMES := $(sort $(basename $(notdir $(wildcard notebooks/*.ipynb))))
EXECUTED := $(NAMES:%=build/executed/%.ipynb)
LIB := $(wildcard hfmaml_core/*.py) $(wildcard benchmarks/results/*.json)

BENCHES := $(sort $(filter-out benchmarks/_%,$(wildcard benchmarks/*.py)))

.PHONY: help figures test verify lab lint bench clean distclean FORCE

help:
	@echo "make figures   run every notebook and regenerate figures/ (main job)"
	@echo "make test      lint, unit tests and every notebook in its fast mode"
	@echo "make verify    print figures/VERIFICATION.md; fail if a claim fails or figures are stale"
	@echo "make lab       JupyterLab on notebooks/ with this project's kernel"
	@echo "make lint      ruff on the library, tests and notebooks"
	@echo "make bench     rerun the timing benchmarks; rewrites benchmarks/results/ (then make figures)"
	@echo "make clean     remove build/ (executed notebooks, staged figures)"
	@echo "make distclean also remove the virtual environment"
	@echo "variables: P='-p name value' (papermill parameters), PYTHON, VENV"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 10) else "hfmaml needs Python >= 3.10; $(PYTHON) is %d.%d" % v[:2])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# Rebuild notebooks whose parameters changed: the file changes only when P does.
build/params.txt: FORCE
	@mkdir -p build
	@printf '%s\n' "$$P" | cmp -s - $@ || printf '%s\n' "$$P" > $@

build/executed/%.ipynb: notebooks/%.ipynb $(LIB) pyproject.toml build/params.txt | $(STAMP)
	$(PY) -m hfmaml_core.pipeline run $* $(P)

figures: $(EXECUTED) | $(STAMP)
	$(PY) -m hfmaml_core.pipeline collect

verify: | $(STAMP)
	@$(PY) -m hfmaml_core.pipeline verify

test: | $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2

lint: | $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check hfmaml_core tests

# Wall-clock measurements live here, not in notebooks, so `make figures` stays deterministic.
bench: | $(STAMP)
	@for b in $(BENCHES); do echo "== $$b"; $(PY) $$b; done

lab: | $(STAMP)
	$(PY) -c 'from hfmaml_core.pipeline import ensure_kernel; ensure_kernel()'
	JUPYTER_PATH=build/jupyter $(PY) -m jupyter lab $(LAB_ARGS) \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/

clean:
	rm -rf build

distclean: clean
	rm -rf $(VENV)
