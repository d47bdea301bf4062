"""Wall time of one meta-iteration of MAML, FO-MAML and HF-MAML on the sinusoid benchmark.

One meta-iteration (``hfmaml_core.sinusoid.MetaLearner.step``) draws a batch of
25 sinusoid tasks (10 support + 10 query points each), computes the method's
meta-gradient estimate with the 1-40-40-1 tanh network, vectorised over the 25
tasks, and takes an Adam step. For scale, two variants of the same estimators
are timed as well:

* ``HF-MAML (loop over tasks)``: the same kernels called once per task in a
  Python loop (batch of 1), as task-by-task meta-learning code does;
* ``MAML (Hessian formed)``: each task's 1761 x 1761 Hessian is formed (from
  1761 exact Hessian-vector products) and multiplied with the outer gradient,
  the ``O(d^2)`` cost per task of THEORY's table.

The methods are timed in interleaved rounds (so a change in machine load hits
all of them alike); each reported number is the median over all timed
iterations, with the quartiles. Results go to
``benchmarks/results/sinusoid_timing.json`` (no timestamps: the file changes
only when the numbers do); the notebook ``05_sinusoid`` reads that file, so no
wall-clock number enters ``make figures`` directly.

Run from the repository root::

    .venv/bin/python benchmarks/sinusoid_timing.py            # about a minute
    .venv/bin/python benchmarks/sinusoid_timing.py --quick    # a few seconds, not written
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

import _machine
import numpy as np
from _timing import blas_runtime, paired_repeats, quartiles, ratio_summary, timed

from hfmaml_core import paths
from hfmaml_core import sinusoid as S
from hfmaml_core._io import write_text_atomic
from hfmaml_core.mlp import MLP

RESULTS = paths.BENCH_RESULTS / "sinusoid_timing.json"


def loop_step(learner: S.MetaLearner) -> None:
    """HF-MAML meta-iteration with the tasks handled one at a time in a Python loop."""
    batch = learner.next_batch()
    u = np.zeros_like(learner.w)
    for b in range(batch.shape[-1]):
        dirs, _ = S.meta_directions(
            learner.net, learner.w, batch[b : b + 1], learner.alpha, "HF-MAML", learner.delta
        )
        u += dirs["HF-MAML"]
    learner.update(u / batch.shape[-1])


def hessian_direction(net: MLP, w: np.ndarray, batch: S.SinusoidTasks, a: float) -> np.ndarray:
    """MAML's direction with each task's Hessian formed (P Hessian-vector products per task).

    ``w`` of shape ``(P,)``, ``batch`` of leading shape ``(B,)``; also used by
    ``network_scaling.py``.
    """
    P = net.n_params
    eye = np.eye(P)
    u = np.zeros_like(w)
    for b in range(batch.shape[-1]):
        xs, ys = batch.x_support[b], batch.y_support[b]
        w_hat = w - a * net.grads(w, xs, ys)
        g = net.grads(w_hat, batch.x_query[b], batch.y_query[b])
        H = net.hvps(w, eye, xs[None], ys[None])  # row j is H e_j: the Hessian (symmetric)
        u += g - a * (H @ g)
    return u / batch.shape[-1]


def hessian_step(learner: S.MetaLearner) -> None:
    """MAML meta-iteration that forms each task's Hessian (P Hessian-vector products)."""
    learner.update(hessian_direction(learner.net, learner.w, learner.next_batch(), learner.alpha))


def summary(ts: list[float], faults: list[int]) -> dict:
    """Median and quartiles in milliseconds, and the median page faults per step."""
    q25, med, q75 = quartiles(1e3 * np.asarray(ts))
    return {
        "median_ms": round(med, 4),
        "q25_ms": round(q25, 4),
        "q75_ms": round(q75, 4),
        "n": len(ts),
        "page_faults_median": float(np.median(faults)),
    }


def blocks(steps: dict, rounds: int, per_round: int) -> tuple[dict, dict]:
    """Interleaved rounds; in each, every method takes ``per_round`` steps (the order rotates).

    Returns per method the steps' times (s) and page faults, grouped by round.
    """
    names = tuple(steps)
    times = {n: [] for n in names}
    faults = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            got = [timed(steps[name]) for _ in range(per_round)]
            times[name].append([t for t, _ in got])
            faults[name].append([f for _, f in got])
    return times, faults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (10)")
    parser.add_argument("--per-round", type=int, default=60, help="timed steps per round (60)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first (30)")
    parser.add_argument("--hessian-repeats", type=int, default=3, help="Hessian-formed steps (3)")
    parser.add_argument("--quick", action="store_true", help="a few steps; print, do not write")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.per_round, args.warmup, args.hessian_repeats = 2, 10, 5, 1
    if min(args.rounds, args.per_round, args.hessian_repeats) < 1 or args.warmup < 0:
        parser.error("--rounds, --per-round and --hessian-repeats must be >= 1, --warmup >= 0")

    config = {
        "sizes": list(MLP().sizes),
        "n_params": MLP().n_params,
        "meta_batch": 25,
        "k_support": 10,
        "k_query": 10,
        "alpha": 0.01,
        "delta": S.DEFAULT_DELTA,
        "outer_optimiser": "Adam, lr 1e-3",
        "rounds": args.rounds,
        "steps_per_round": args.per_round,
        "warmup_steps": args.warmup,
        "hessian_repeats": args.hessian_repeats,
        "seed": 0,
    }
    blas = blas_runtime(1)  # one BLAS thread, as the other benchmarks (reproducible ratios)
    net = MLP()
    w0 = net.init(np.random.default_rng(0))
    load_before = os.getloadavg()

    runners = {m: S.MetaLearner(net, m, w0, 1) for m in S.METHODS}
    loop_learner = S.MetaLearner(net, "HF-MAML", w0, 1)
    steps = {m: lrn.step for m, lrn in runners.items()}
    steps["HF-MAML (loop over tasks)"] = lambda: loop_step(loop_learner)
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    gc.collect()
    gc.disable()
    try:
        times, faults = blocks(steps, args.rounds, args.per_round)
        hess_learner = S.MetaLearner(net, "MAML", w0, 1)
        ht, hf, fo_after = paired_repeats(
            lambda: hessian_step(hess_learner),
            runners["FO-MAML"].step,
            args.hessian_repeats,
            args.hessian_repeats,
        )
    finally:
        gc.enable()
    flat = lambda per_round: [x for block in per_round for x in block]  # noqa: E731
    results = {name: summary(flat(times[name]), flat(faults[name])) for name in steps}
    for name, r in results.items():  # per round: median over its steps against FO-MAML's
        r["ratio_to_fo_maml"] = ratio_summary(
            [np.median(b) for b in times[name]], [np.median(b) for b in times["FO-MAML"]]
        )["median"]
    results["MAML (Hessian formed)"] = summary(ht, hf)
    results["MAML (Hessian formed)"]["ratio_to_fo_maml"] = ratio_summary(ht, fo_after)["median"]
    machine = {
        **_machine.machine_info(),
        "blas_corename": blas["corename"],
        "blas_threads": blas["threads"],
        "load_average_1min_before": round(load_before[0], 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    payload = {
        "description": (
            "Wall time of one meta-iteration (draw 25 sinusoid tasks, meta-gradient "
            "estimate, Adam step) with the 1-40-40-1 tanh network; median and quartiles "
            "over all timed iterations; each ratio to FO-MAML is the median over the "
            "interleaved rounds of the two methods' medians in the same round (the "
            "Hessian-formed MAML's: per repeat, against an FO-MAML step after it, once its "
            "data are back in the caches)."
        ),
        "command": ".venv/bin/python benchmarks/sinusoid_timing.py",
        "config": config,
        "machine": machine,
        "results": results,
    }
    width = max(map(len, results))
    print(f"{'method':<{width}}  {'median ms':>10}  {'IQR ms':>17}  {'/ FO-MAML':>9}")
    for name, r in results.items():
        iqr = f"[{r['q25_ms']:.3f}, {r['q75_ms']:.3f}]"
        print(f"{name:<{width}}  {r['median_ms']:>10.3f}  {iqr:>17}  {r['ratio_to_fo_maml']:>9.2f}")
    print(
        f"numpy {machine['numpy']}, {machine['blas']}, {machine['cpu_count']} CPUs "
        f"({machine['cpu']}); load average {machine['load_average_1min_before']} -> "
        f"{machine['load_average_1min_after']}"
    )
    if args.quick:
        print("--quick: results not written")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
