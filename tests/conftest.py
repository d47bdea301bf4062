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
