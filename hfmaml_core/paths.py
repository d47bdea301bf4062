"""Every path the project uses, resolved from the repository root in one place.

JupyterLab runs a notebook from its own folder, papermill from the caller's:
nothing else in the project builds a path by hand.

Output goes to ``output_dir()``: the folder named by the environment variable
``HFMAML_OUT`` when it is set (``make figures`` sets it to a staging folder per
notebook, the tests to a temporary one), otherwise ``build/interactive/``. Only
``make figures`` writes ``figures/``, so the committed figures always match
their manifest.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT: Path = Path(__file__).resolve().parent.parent
PACKAGE: Path = ROOT / "hfmaml_core"
NOTEBOOKS: Path = ROOT / "notebooks"
FIGURES: Path = ROOT / "figures"
BUILD: Path = ROOT / "build"
EXECUTED: Path = BUILD / "executed"
STAGE: Path = BUILD / "stage"
INTERACTIVE: Path = BUILD / "interactive"
BENCHMARKS: Path = ROOT / "benchmarks"
BENCH_RESULTS: Path = BENCHMARKS / "results"

OUTPUT_ENV = "HFMAML_OUT"


def output_dir() -> Path:
    """Where figures and claim files of the running notebook go (created if missing)."""
    env = os.environ.get(OUTPUT_ENV)
    out = Path(env).resolve() if env else INTERACTIVE
    out.mkdir(parents=True, exist_ok=True)
    return out
