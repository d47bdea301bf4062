"""Shared test settings."""

import os

import matplotlib
from hypothesis import settings

matplotlib.use("Agg")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

# Property tests draw a fixed sequence of examples, so a CI run is reproducible like every
# other random draw in the project. `HYPOTHESIS_PROFILE=explore make test` draws fresh
# random examples instead (a failure there prints the example to add as an @example).
settings.register_profile("hfmaml", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", derandomize=False, database=None, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hfmaml"))


# The suite runs on two xdist workers; the notebook runs take most of its time. Collected
# first (the slowest first), they start at once on both workers and the many short tests
# fill the gaps, instead of one worker finishing a notebook run after everything else.
_SLOW_FIRST = ("test_notebooks.py::test_notebook_runs", "test_mutations.py::", "test_cost.py::")
# Within the notebook runs, the slowest first (as measured on this machine type).
_NOTEBOOKS_SLOWEST_FIRST = ("03_", "02_", "01_", "07_", "05_", "00_", "04_", "06_")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        for i, key in enumerate(_SLOW_FIRST):
            if key in item.nodeid:
                sub = [
                    j for j, nb in enumerate(_NOTEBOOKS_SLOWEST_FIRST) if f"[{nb}" in item.nodeid
                ]
                return (i, sub[0] if sub else 0)
        return (len(_SLOW_FIRST), 0)

    items.sort(key=rank)  # stable: the order within each group is kept
