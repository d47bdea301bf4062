"""What machine a benchmark ran on: shared by every script in benchmarks/ (not a benchmark itself).

The scripts import it as ``import _machine`` (Python puts a script's own folder on
``sys.path``); ``make bench`` skips files whose name starts with ``_``.
"""

from __future__ import annotations

import glob
import os
import platform
from pathlib import Path

import numpy as np

#: Environment variables that change how fast numpy's BLAS or the allocator run.
ENV_VARS = (
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "MALLOC_TOP_PAD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def last_level_cache() -> dict:
    """Level and size in bytes of the largest CPU cache, from /sys (Linux); None if unknown."""
    best = {"level": None, "bytes": None}
    for folder in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            level = int(Path(folder, "level").read_text())
            size = Path(folder, "size").read_text().strip()
        except (OSError, ValueError):
            continue
        factor = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1:], 1)
        nbytes = int(size.rstrip("KMG")) * factor
        if best["level"] is None or level > best["level"]:
            best = {"level": level, "bytes": nbytes}
    return best


def blas_build() -> str:
    """Name and version of the BLAS numpy was built with."""
    try:
        cfg = np.show_config(mode="dicts")  # numpy >= 1.25
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # pragma: no cover - older numpy
        return "unknown"


def machine_info() -> dict:
    """The fields every results file records: versions, CPU, platform, relevant environment."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_build(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
    }
