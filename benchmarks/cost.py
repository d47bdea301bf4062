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
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _machine
import numpy as np
from _timing import blas_runtime, interleaved, paired_repeats, peak_bytes, summary

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


# --------------------------------------------------------------------------- measuring
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
    order = tuple(k for k in INTERLEAVED if k in keys)
    times, faults = interleaved({key: calls[key] for key in order}, args.rounds)
    fo_alongside: list[float] = []  # FO-MAML timed after each Hessian-formed repeat
    if "maml_hessian" in keys:  # slow at large d: repeats until the budget is spent
        # each repeat is paired with an FO-MAML call after it (once an untimed call has brought
        # its data back into the caches), so that its ratio to FO-MAML is a per-repeat ratio
        # (as for the interleaved methods), not a ratio of medians taken minutes apart
        times["maml_hessian"], faults["maml_hessian"], fo_alongside = paired_repeats(
            calls["maml_hessian"],
            make_call("fomaml", args.seed + 200),
            min(3, args.rounds),
            args.rounds,
            args.hessian_budget,
        )
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
            # the Hessian-formed repeats run minutes after the interleaved FO-MAML rounds: their
            # ratio of medians is taken against the FO-MAML calls made alongside them
            fo_med = (
                np.median(row["fomaml_alongside_ms"])
                if "fomaml_alongside_ms" in row
                else fo["median_ms"]
            )
            row["ratio_of_medians_to_fomaml"] = round(float(row["median_ms"] / fo_med), 4)
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
        "last_level_cache": _machine.last_level_cache(),
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
