"""How the benchmarks time and measure: shared by the scripts in benchmarks/ (not a benchmark).

* :func:`blas_runtime`: the OpenBLAS kernel numpy uses and its thread count, set at run time;
* :func:`timed`, :func:`peak_bytes`: wall time and page faults of one call, and its peak
  memory (tracemalloc, which sees numpy's arrays);
* :func:`interleaved`: rounds that call every method once, in an order that rotates every
  round, so that a change of machine load hits all of them alike;
* :func:`paired_repeats`: a slow method's repeats, each followed by a reference call, so that
  its ratio to the reference is per repeat too;
* :func:`quartiles`, :func:`summary`, :func:`ratio_summary`: median and quartiles of times
  and of ratios.

The scripts import it as ``import _timing`` (Python puts a script's own folder on
``sys.path``); ``make bench`` skips files whose name starts with ``_``.
"""

from __future__ import annotations

import ctypes
import gc
import glob
import resource
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np


# --------------------------------------------------------------------------- BLAS
def _openblas() -> tuple[ctypes.CDLL, str] | None:
    """numpy's bundled OpenBLAS and its symbol suffix, or None (another BLAS, or not found)."""
    folder = Path(np.__file__).resolve().parent
    for lib in sorted(glob.glob(str(folder.parent / "numpy.libs" / "*openblas*"))):
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", "")):
            if hasattr(handle, f"{prefix}get_corename{suffix}"):
                return handle, f"{prefix}{{}}{suffix}"
    return None


def blas_runtime(threads: int | None) -> dict:
    """The OpenBLAS kernel chosen at run time and its thread count (set to ``threads``)."""
    found = _openblas()
    if found is None:
        return {"corename": "unknown", "threads": None}
    handle, name = found
    if threads is not None:
        handle[name.format("set_num_threads")].argtypes = [ctypes.c_int]
        handle[name.format("set_num_threads")](threads)
    corename = handle[name.format("get_corename")]
    corename.restype = ctypes.c_char_p
    nthreads = handle[name.format("get_num_threads")]
    nthreads.restype = ctypes.c_int
    return {"corename": corename().decode(), "threads": int(nthreads())}


# --------------------------------------------------------------------------- one call
def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(call: Callable[[], object]) -> tuple[float, int]:
    """Wall time (s) and minor page faults of one call."""
    f0 = _faults()
    t0 = time.perf_counter()
    call()
    t1 = time.perf_counter()
    return t1 - t0, _faults() - f0


def peak_bytes(call: Callable[[], object]) -> int:
    """Peak memory of one call above what was allocated before it (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        call()
        return int(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------- many calls
def interleaved(
    calls: Mapping[str, Callable[[], object]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """``rounds`` rounds, each calling every method once; the order rotates every round.

    Returns each method's times (s) and page faults, one entry per round, so that entry ``r``
    of two methods comes from the same round. The garbage collector is off meanwhile.
    """
    order = tuple(calls)
    times: dict[str, list[float]] = {key: [] for key in order}
    faults: dict[str, list[int]] = {key: [] for key in order}
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds if order else 0):
            shift = r % len(order)
            for key in order[shift:] + order[:shift]:
                t, f = timed(calls[key])
                times[key].append(t)
                faults[key].append(f)
    finally:
        gc.enable()
    return times, faults


def paired_repeats(
    call: Callable[[], object],
    partner: Callable[[], object],
    min_repeats: int,
    max_repeats: int,
    budget_s: float = 0.0,
    partner_warmup: int = 1,
    partner_calls: int = 5,
) -> tuple[list[float], list[int], list[float]]:
    """Repeats of a slow ``call``, each followed by a timed ``partner`` call (a reference method).

    At least ``min_repeats`` repeats, more until ``budget_s`` seconds have passed, at most
    ``max_repeats``. Before each timed partner call, ``partner_warmup`` untimed ones bring its
    data back into the caches that the slow call flushed, so that the partner is timed as in the
    interleaved rounds (timed cold, right after a Hessian, its time varied by 20 % between runs);
    its time for the repeat is the median of ``partner_calls`` timed calls. Returns the call's times (s) and page faults and the partner's times, so that the ratio of
    the two is per repeat. The garbage collector is off meanwhile.
    """
    times: list[float] = []
    faults: list[int] = []
    partner_times: list[float] = []
    partner()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(times) < max_repeats and (
            len(times) < min_repeats or time.perf_counter() - start < budget_s
        ):
            t, f = timed(call)
            times.append(t)
            faults.append(f)
            for _ in range(partner_warmup):
                partner()
            partner_times.append(
                float(np.median([timed(partner)[0] for _ in range(partner_calls)]))
            )
    finally:
        gc.enable()
    return times, faults, partner_times


# --------------------------------------------------------------------------- summaries
def quartiles(values) -> tuple[float, float, float]:
    """First quartile, median and third quartile (numpy's linear interpolation)."""
    q25, med, q75 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q25), float(med), float(q75)


def summary(ts: list[float], faults: list[int]) -> dict:
    """Median and quartiles in milliseconds, every repeat's time, median page faults."""
    ms = 1e3 * np.asarray(ts)
    q25, med, q75 = quartiles(ms)
    return {
        "median_ms": round(float(med), 5),
        "q25_ms": round(float(q25), 5),
        "q75_ms": round(float(q75), 5),
        "n": int(ms.size),
        "times_ms": [float(f"{t:.5g}") for t in ms],
        "page_faults_median": float(np.median(faults)),
    }


def ratio_summary(numerator: list[float], denominator: list[float]) -> dict:
    """Median and quartiles of the ratios ``numerator[r] / denominator[r]`` (same round ``r``)."""
    ratios = np.asarray(numerator, dtype=float) / np.asarray(denominator, dtype=float)
    q25, med, q75 = quartiles(ratios)
    return {"median": round(med, 4), "q25": round(q25, 4), "q75": round(q75, 4), "n": ratios.size}
