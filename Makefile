# hfmaml: `make figures` regenerates every figure and the verification report;
# `make test` runs the test suite. Both bootstrap a virtual environment in .venv
# on first use (only Python >= 3.10 and make are needed) and reinstall it only
# when pyproject.toml changes. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
# Conda users: `make figures VENV=$CONDA_PREFIX` uses the active environment instead
# (see environment.yml); make never creates or deletes that environment.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hfmaml-installed
# Written only when this Makefile created $(VENV); `make distclean` deletes nothing else.
CREATED := $(VENV)/.hfmaml-created-by-make
# Extra arguments for JupyterLab, e.g. `make lab LAB_ARGS='--no-browser --port 8899'`.
LAB_ARGS ?=
# Papermill parameters for `make runs`, e.g. `make runs P='-p seed 3'` (never for figures/).
P ?=

NAMES := $(sort $(basename $(notdir $(wildcard notebooks/*.ipynb))))
# A run with the defaults leaves this stamp; any other run (other parameters, --fast,
# interrupted, failed) removes it, so make reruns that notebook.
RUNS := $(NAMES:%=build/stage/%/defaults.stamp)
EXECUTED := $(NAMES:%=build/executed/%.ipynb)
# book.py and __main__.py make no figure (pipeline.NOT_FIGURE_INPUTS): editing them reruns nothing.
LIB := $(filter-out hfmaml_core/book.py hfmaml_core/__main__.py,$(wildcard hfmaml_core/*.py)) \
  $(wildcard benchmarks/results/*.json)

BENCHES := $(sort $(filter-out benchmarks/_%,$(wildcard benchmarks/*.py)))

.PHONY: help figures runs test test-lab verify book lab lint strip bench bench-torch clean distclean

ifneq ($(strip $(P)),)
ifneq ($(filter figures,$(MAKECMDGOALS)),)
$(error figures/ holds only runs with the default parameters, so `make figures` takes no P. \
  To run every notebook with P='$(P)' (into build/stage/, not figures/): make runs P='$(P)')
endif
endif

help:
	@echo "make figures   run every notebook and regenerate figures/ (main job)"
	@echo "make test      lint, unit tests and every notebook in its fast mode"
	@echo "make test-lab JupyterLab in headless Chromium opens a stripped notebook unmodified"
	@echo "make verify    print figures/VERIFICATION.md; fail if a claim fails, figures are stale or not from the defaults"
	@echo "make runs      run every notebook with P='-p name value' into build/stage/ (not figures/)"
	@echo "make strip     remove outputs from notebooks/ and write them as JupyterLab saves them"
	@echo "make book      the reading edition in build/book/ (after make figures); SOLUTIONS=1: build/book-teachers/"
	@echo "make lab       JupyterLab on notebooks/ with this project's kernel"
	@echo "make lint      ruff on the library, tests and notebooks"
	@echo "make bench     rerun the timing benchmarks; rewrites benchmarks/results/ (then make figures)"
	@echo "make bench-torch the PyTorch yardstick of network_scaling.py, in its own venv $(TORCH_VENV)"
	@echo "make clean     remove build/ (executed notebooks, staged figures)"
	@echo "make distclean also remove the virtual environment, if this Makefile created it"
	@echo "variables: P='-p name value' (for make runs), PYTHON, VENV"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 10) else "hfmaml needs Python >= 3.10; $(PYTHON) is %d.%d" % v[:2])'
	@if [ ! -x $(PY) ]; then \
	  if [ -e $(VENV) ]; then echo "$(VENV) exists but has no bin/python; remove it or pass another VENV" >&2; exit 1; fi; \
	  $(PYTHON) -m venv $(VENV) && echo "created by hfmaml's Makefile; make distclean may delete $(VENV)" > $(CREATED); \
	fi
	@$(PY) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 10) else "hfmaml needs Python >= 3.10; $(PY) is %d.%d" % v[:2])'
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# One stamp per notebook, written by a run with the defaults only; the pipeline prints
# each notebook as it starts and finishes (wall time, claim count).
build/stage/%/defaults.stamp: notebooks/%.ipynb $(LIB) pyproject.toml | $(STAMP)
	@$(PY) -m hfmaml_core.pipeline run $*

# The executed copies (for readers of build/) are written by the same run as the stamp.
build/executed/%.ipynb: build/stage/%/defaults.stamp | $(STAMP)
	@test -f $@ || $(PY) -m hfmaml_core.pipeline run $*

figures: $(RUNS) | $(STAMP)
	$(PY) -m hfmaml_core.pipeline collect

runs: | $(STAMP)
	@for n in $(NAMES); do $(PY) -m hfmaml_core.pipeline run $$n $(P); done

# The reading edition from build/executed/ (what make figures ran): build/book/, or with
# SOLUTIONS=1 the teachers' edition build/book-teachers/. Fails naming any notebook
# without an executed copy; it does not run notebooks itself.
SOLUTIONS ?=
book: | $(STAMP)
	$(PY) -m hfmaml_core.book $(if $(filter-out 0 no false,$(SOLUTIONS)),--solutions)

verify: | $(STAMP)
	@$(PY) -m hfmaml_core.pipeline verify

# Two lanes at once, so neither core waits: (1) every notebook in its fast mode
# (tests/test_notebooks.py, marker `notebook`; only that file is collected), then the reading edition built from those
# runs' executed copies (build/test/executed/) and checked in headless Chromium (that test
# skips, saying why, when Chromium is not installed); (2) the rest of the suite, whose output
# goes to $(SUITE_LOG) and is printed when both lanes are done. Fails if either lane fails.
# Lane (1) is the longer chain (its three steps run one after the other), so lane (2) runs
# niced: it takes the cores lane (1) leaves idle (the book build, the browser test's waits)
# instead of halving lane (1)'s share of them, and the two end closer together.
SUITE_LOG := build/test/suite.log
test: | $(STAMP)
	$(PY) -m ruff check .
	@mkdir -p $(dir $(SUITE_LOG))
	@echo "the suite without the notebooks runs beside them; its output: $(SUITE_LOG)"
	@nice -n 10 $(PY) -m pytest -n 2 -m "not notebook and not browser" > $(SUITE_LOG) 2>&1 & suite=$$!; \
	lane_rc=0; { \
	  $(PY) -m pytest -n 2 -m notebook tests/test_notebooks.py && \
	  $(PY) -m hfmaml_core.book --executed build/test/executed --out build/test/book && \
	  HFMAML_BOOK=build/test/book $(PY) -m pytest -p no:xdist -q -m browser tests/test_book.py; \
	} || lane_rc=$$?; \
	suite_rc=0; wait $$suite || suite_rc=$$?; \
	echo "== the suite without the notebooks ($(SUITE_LOG)):"; cat $(SUITE_LOG); \
	if [ $$lane_rc != 0 ] || [ $$suite_rc != 0 ]; then \
	  echo "make test failed: notebooks, book and browser lane exit $$lane_rc; suite exit $$suite_rc" >&2; exit 1; \
	fi

# JupyterLab itself, in headless Chromium: a stripped notebook opens on the project's kernel
# and unmodified (its control, the unstripped copy, opens modified). Slower than the suite.
test-lab: | $(STAMP)
	$(PY) -m pytest -p no:xdist -q -m browser tests/test_traps.py

lint: | $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check hfmaml_core tests

# Wall-clock measurements live here, not in notebooks, so `make figures` stays deterministic.
bench: | $(STAMP)
	@for b in $(BENCHES); do echo "== $$b"; $(PY) $$b; done

# The PyTorch yardstick (benchmarks/network_scaling.py --torch-only): PyTorch is no dependency
# of the project, so it goes into a venv of its own, with the project installed as for $(VENV);
# pip takes the CPU wheel from its configured sources (a local wheel folder here). Rewrites
# benchmarks/results/network_scaling_torch.json only.
TORCH_VENV ?= .venv-torch
TORCH_VERSION ?= 2.13.0
TORCH_STAMP := $(TORCH_VENV)/.hfmaml-torch-installed
$(TORCH_STAMP): pyproject.toml
	@test -x $(TORCH_VENV)/bin/python || { $(PYTHON) -m venv $(TORCH_VENV) && \
	  echo "created by hfmaml's Makefile; make distclean may delete $(TORCH_VENV)" > $(TORCH_VENV)/.hfmaml-created-by-make; }
	$(TORCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e . torch==$(TORCH_VERSION)
	@touch $@

bench-torch: $(TORCH_STAMP)
	$(TORCH_VENV)/bin/python benchmarks/network_scaling.py --torch-only

strip: | $(STAMP)
	$(PY) -m hfmaml_core.pipeline strip

lab: | $(STAMP)
	$(PY) -c 'from hfmaml_core.pipeline import ensure_kernel; ensure_kernel()'
	JUPYTER_PATH=build/jupyter $(PY) -m jupyterlab $(LAB_ARGS) \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/

clean:
	rm -rf build

# Deletes $(VENV) only if this Makefile created it (marker $(CREATED)); never a conda
# environment or any other folder passed as VENV. The same for $(TORCH_VENV) (make bench-torch).
distclean: clean
	@if [ -f $(TORCH_VENV)/.hfmaml-created-by-make ]; then echo "rm -rf $(TORCH_VENV)"; rm -rf $(TORCH_VENV); fi
	@if [ -f $(CREATED) ]; then \
	  echo "rm -rf $(VENV)"; rm -rf $(VENV); \
	elif [ -e $(VENV) ]; then \
	  rm -f $(STAMP); \
	  echo "left $(VENV) in place: this Makefile did not create it (no $(CREATED))."; \
	  echo "  hfmaml is pip-installed there in editable mode: '$(PY) -m pip uninstall hfmaml' removes it;"; \
	  echo "  a conda environment is removed with 'conda env remove -n hfmaml'."; \
	fi
