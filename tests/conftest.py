"""Shared test settings."""

import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
