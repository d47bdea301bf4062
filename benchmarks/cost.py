"""Per-iteration cost against the dimension d: MAML, FO-MAML and HF-MAML (THEORY T1, T3).

One iteration's direction (``hfmaml_core.estimators.direction``: draw ``B`` tasks and their
batches ``D_in``, ``D_o``, ``D_h``, compute the method's direction) on Welsch regression
tasks, whose per-point gradient costs ``O(d)``, for ``d`` from 10^2 to 10^5 in steps of a
quarter decade, by four methods:

* ``maml_hessian``: MAML with each task's mini-batch Hessian formed (``hessian="matrix"``,
  the ``O(d^2)`` of THEORY's table; the estimator forms the Hessians one task at a time once
  ``d^2`` passes its memory budget, so memory stays ``O(d^2)``, not ``O(B d^2)``);
* ``maml_hvp``: MAML with an exact Hessian-vector product (``hessian="hvp"``, no Hessian
  formed, ``O(d)``);
* ``fomaml``: FO-MAML;
* ``hfmaml``: HF-MAML with the theorem's ``delta_i`` (two perturbed gradients on ``D_h``,
  evaluated together: one pass over each batch's data for both, ``oracle="fused"``);
* ``hfmaml_two_calls``: the same direction with its two perturbed gradients from two separate
  gradient calls (``oracle="two-calls"``), what any black-box gradient oracle needs: every
  point of ``D_h`` is read twice.

For each ``d`` it records

* wall time: the three ``O(d)`` methods are timed in interleaved rounds (the order rotates
  every round), so a change in machine load hits all of them alike, for every ``d`` first;
  the explicit-Hessian method is timed after them (its gigabyte allocations would disturb
  the others' memory traffic), with fewer repeats at large ``d`` (a time budget per ``d``),
  and only up to ``--hessian-max-dim`` (10^4 by default: one Hessian is then 800 MB; at
  10^5 it would be 80 GB);
* peak memory of one iteration above what was allocated before it (the task family's data
  set is not counted), from ``tracemalloc`` (numpy reports its array allocations to it), in
  a separate, untimed call;
* counted work (``Direction.work``: gradient evaluations, Hessian-vector products,
  Hessians formed and fused gradient pairs per data point, the data points read
  ``Work.reads()`` and the leading-order multiply-adds ``Work.cost(d)``);
* minor page faults per call (median), a diagnostic: a fault costs microseconds on a virtual
  machine, so an allocator that returns memory to the system every call shows up here.

Every number except the times and page faults is deterministic. Results go to
``benchmarks/results/cost.json`` (no timestamps: machine, BLAS, load average before and
after, the median and quartiles of every series and every repeat's time, for the notebook's
bootstrap); ``notebooks/06_cost.ipynb`` reads that file, so no wall-clock number enters
``make figures`` directly. BLAS runs on one thread (``--threads``), so that the slopes
measure work, not how many cores a matrix product happens to use.

Run from the repository root::

    .venv/bin/python benchmarks/cost.py            # about a minute; rewrites the JSON file
    .venv/bin/python benchmarks/cost.py --quick    # a few seconds, not written
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import glob
import json
import math
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import _machine
import numpy as np

from hfmaml_core import estimators as E
from hfmaml_core import paths, tasks
from hfmaml_core._io import write_text_atomic
from hfmaml_core.methods import label

RESULTS = paths.BENCH_RESULTS / "cost.json"
#: key -> (label, estimators.direction method, extra keyword arguments)
#: (labels from the one method table, hfmaml_core.methods)
METHODS: dict[str, tuple[str, str, dict]] = {
    "maml_hessian": (f"{label('maml')} (Hessian formed)", "maml", {"hessian": "matrix"}),
    "maml_hvp": (f"{label('maml')} (exact HVP)", "maml", {"hessian": "hvp"}),
    "fomaml": (label("fomaml"), "fomaml", {}),
    "hfmaml": (f"{label('hfmaml')} (fused)", "hfmaml", {"delta": "theorem"}),
    "hfmaml_two_calls": (
        f"{label('hfmaml')} (two calls)",
        "hfmaml",
        {"delta": "theorem", "oracle": "two-calls"},
    ),
}
INTERLEAVED = ("maml_hvp", "fomaml", "hfmaml", "hfmaml_two_calls")
DIMS = [int(round(10 ** (2 + k / 4))) for k in range(13)]  # 100, 178, 316, ..., 10^5


# --------------------------------------------------------------------------- machine
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


# --------------------------------------------------------------------------- measuring
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


def summary(ts: list[float], faults: list[int]) -> dict:
    """Median and quartiles in milliseconds, every repeat's time, median page faults."""
    ms = 1e3 * np.asarray(ts)
    q25, med, q75 = np.percentile(ms, [25, 50, 75])
    return {
        "median_ms": round(float(med), 5),
        "q25_ms": round(float(q25), 5),
        "q75_ms": round(float(q75), 5),
        "n": int(ms.size),
        "times_ms": [float(f"{t:.5g}") for t in ms],
        "page_faults_median": float(np.median(faults)),
    }


def work_dict(work: E.Work, dim: int) -> dict:
    return {
        "grads": work.grads,
        "hvps": work.hvps,
        "hessians": work.hessians,
        "paired": work.paired,
        "reads": work.reads(),
        "cost": work.cost(dim),
    }


def measure_dim(d: int, args: argparse.Namespace, keys: tuple[str, ...]) -> dict:
    """The methods ``keys`` at one dimension: times, peak memory, counted work.

    The methods of ``INTERLEAVED`` are timed in interleaved rounds (the order rotates every
    round); the explicit-Hessian method alone, until ``args.hessian_budget`` seconds are
    spent (at least 3 repeats, at most ``args.rounds``).
    """
    fam = tasks.make_welsch_family(d, args.n_tasks, args.n_points, seed=args.seed)
    w = np.random.default_rng(args.seed).standard_normal(d) / math.sqrt(d)
    batches = {"batch_tasks": args.batch_tasks, "d_in": args.d_in, "d_o": args.d_o}
    batches["d_h"] = args.d_h

    def make_call(key: str, seed: int) -> Callable[[], E.Direction]:
        _, method, extra = METHODS[key]
        rng = np.random.default_rng(seed)
        return lambda: E.direction(fam, w, args.alpha, method, rng, **batches, **extra)

    out: dict[str, dict] = {}
    for key in keys:  # deterministic: memory and counted work
        i = list(METHODS).index(key)
        direction = make_call(key, args.seed + i)()
        out[key] = {
            "d": d,
            "work": work_dict(direction.work, d),
            "peak_bytes": peak_bytes(make_call(key, args.seed + i)),
        }
    calls = {key: make_call(key, args.seed + 100 + list(METHODS).index(key)) for key in keys}
    for key in keys:  # the first Hessians of a run are much slower (fresh pages): warm up too
        for _ in range(args.warmup if key in INTERLEAVED else min(args.warmup, 1)):
            calls[key]()
    times: dict[str, list[float]] = {key: [] for key in keys}
    faults: dict[str, list[int]] = {key: [] for key in keys}
    fo_alongside: list[float] = []  # FO-MAML timed right after each Hessian-formed repeat
    order = tuple(k for k in INTERLEAVED if k in keys)
    gc.collect()
    gc.disable()
    try:
        for r in range(args.rounds if order else 0):  # interleaved; the order rotates
            shift = r % len(order)
            for key in order[shift:] + order[:shift]:
                t, f = timed(calls[key])
                times[key].append(t)
                faults[key].append(f)
        if "maml_hessian" in keys:  # slow at large d: repeats until the budget is spent
            # each repeat is paired with an FO-MAML call right after it, so that its ratio to
            # FO-MAML is a per-repeat ratio (as for the interleaved methods), not a ratio of
            # medians taken minutes apart
            fo_call = make_call("fomaml", args.seed + 200)
            fo_call()
            start = time.perf_counter()
            while len(times["maml_hessian"]) < args.rounds and (
                len(times["maml_hessian"]) < 3 or time.perf_counter() - start < args.hessian_budget
            ):
                t, f = timed(calls["maml_hessian"])
                times["maml_hessian"].append(t)
                faults["maml_hessian"].append(f)
                fo_alongside.append(timed(fo_call)[0])
    finally:
        gc.enable()
    for key in keys:
        out[key].update(summary(times[key], faults[key]))
    if fo_alongside:
        out["maml_hessian"]["fomaml_alongside_ms"] = [float(f"{1e3 * t:.5g}") for t in fo_alongside]
    return out


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=str, default=",".join(map(str, DIMS)))
    parser.add_argument("--rounds", type=int, default=60, help="interleaved rounds (60)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per method (3)")
    parser.add_argument("--hessian-max-dim", type=int, default=10_000)
    parser.add_argument(
        "--hessian-budget", type=float, default=10.0, help="seconds of Hessian repeats per d"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS threads (1; 0 leaves them as they are)"
    )
    parser.add_argument("--n-tasks", type=int, default=8)
    parser.add_argument("--n-points", type=int, default=64)
    parser.add_argument("--batch-tasks", type=int, default=4)
    parser.add_argument("--d-in", type=int, default=16)
    parser.add_argument("--d-o", type=int, default=16)
    parser.add_argument("--d-h", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small sweep; print, do not write")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.quick:
        args.dims, args.rounds, args.warmup, args.hessian_max_dim = "100,316,1000", 5, 1, 316
    dims = sorted({int(x) for x in args.dims.split(",")})
    if min(dims) < 1 or args.rounds < 1 or min(args.warmup, args.threads) < 0:
        parser.error("--dims and --rounds must be >= 1, --warmup and --threads >= 0")

    blas = blas_runtime(args.threads or None)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    per_dim = []
    for d in dims:  # the O(d) methods first, undisturbed by the Hessians' gigabytes
        per_dim.append(measure_dim(d, args, INTERLEAVED))
        line = ", ".join(f"{k} {v['median_ms']:.3f} ms" for k, v in per_dim[-1].items())
        print(f"d = {d:>6}: {line}", flush=True)
    for r in per_dim:  # then the Hessians, in the same process
        d = r["fomaml"]["d"]
        if d <= args.hessian_max_dim:
            r["maml_hessian"] = measure_dim(d, args, ("maml_hessian",))["maml_hessian"]
            print(f"d = {d:>6}: maml_hessian {r['maml_hessian']['median_ms']:.3f} ms", flush=True)
    elapsed = time.perf_counter() - t_start
    load_after = os.getloadavg()

    results = {key: [r[key] for r in per_dim if key in r] for key in METHODS}
    for key, rows in results.items():
        for row in rows:
            fo = next(x for x in results["fomaml"] if x["d"] == row["d"])
            row["ratio_of_medians_to_fomaml"] = round(row["median_ms"] / fo["median_ms"], 4)
            if key in INTERLEAVED:  # median over rounds of the per-round ratio (same round)
                paired = np.asarray(row["times_ms"]) / np.asarray(fo["times_ms"])
                row["paired_ratio_to_fomaml"] = round(float(np.median(paired)), 4)
            elif "fomaml_alongside_ms" in row:  # each Hessian repeat with its own FO-MAML call
                paired = np.asarray(row["times_ms"]) / np.asarray(row["fomaml_alongside_ms"])
                row["paired_ratio_to_fomaml"] = round(float(np.median(paired)), 4)
    config = {
        "family": "welsch",
        "n_tasks": args.n_tasks,
        "n_points": args.n_points,
        "batch_tasks": args.batch_tasks,
        "d_in": args.d_in,
        "d_o": args.d_o,
        "d_h": args.d_h,
        "alpha": args.alpha,
        "delta": "theorem",
        "seed": args.seed,
        "dims": dims,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "hessian_max_dim": args.hessian_max_dim,
        "hessian_budget_s": args.hessian_budget,
        "interleaved": list(INTERLEAVED),
    }
    machine = {
        **_machine.machine_info(),
        "blas_corename": blas["corename"],
        "blas_threads": blas["threads"],
        "last_level_cache": last_level_cache(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }
    payload = {
        "description": (
            "Cost of one iteration's direction (B tasks, batches D_in, D_o, D_h) on Welsch "
            "regression tasks against the dimension d: wall time (median, quartiles and every "
            "repeat), peak memory above the data set (tracemalloc), counted work per data point."
        ),
        "command": ".venv/bin/python benchmarks/cost.py",
        "config": config,
        "machine": machine,
        "elapsed_s": round(elapsed, 1),
        "methods": {k: {"label": v[0], "method": v[1], **v[2]} for k, v in METHODS.items()},
        "results": results,
    }

    print()
    print(f"{'d':>6}  " + "  ".join(f"{METHODS[k][0]:>22}" for k in METHODS) + "   (ms, x FO-MAML)")
    print(
        "  (median ms; in brackets the median over rounds of the ratio to FO-MAML in the same round)"
    )
    for r in per_dim:
        cells = []
        for k in METHODS:
            cells.append(
                f"{r[k]['median_ms']:>10.3f} ({r[k].get('paired_ratio_to_fomaml', r[k]['ratio_of_medians_to_fomaml']):>7.2f}x)"
                if k in r
                else f"{'-':>22}"
            )
        print(f"{r['fomaml']['d']:>6}  " + "  ".join(cells))
    print(f"{'d':>6}  " + "  ".join(f"{METHODS[k][0]:>22}" for k in METHODS) + "   (peak MB)")
    for r in per_dim:
        cells = [
            f"{r[k]['peak_bytes'] / 2**20:>22.2f}" if k in r else f"{'-':>22}" for k in METHODS
        ]
        print(f"{r['fomaml']['d']:>6}  " + "  ".join(cells))
    print(
        f"numpy {machine['numpy']}, {machine['blas']} ({blas['corename']}, "
        f"{blas['threads']} thread(s)), {machine['cpu_count']} CPUs ({machine['cpu']}); "
        f"load average {machine['load_average_before'][0]} -> "
        f"{machine['load_average_after'][0]}; {elapsed:.0f} s"
    )
    if args.quick:
        print("--quick: results not written")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output, json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
