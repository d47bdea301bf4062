"""Cost of one meta-gradient direction on the sinusoid network against its width (issue 15).

The sinusoid setting of notebook 05 (B = 25 tasks, K = 10 support + 10 query points,
alpha = 0.01, float64), with the network 1-H-H-1 tanh (``hfmaml_core.mlp.MLP``) for widths
H in (40, 80, 200, 400, 640): d = H^2 + 4H + 1 = 1,761 ... 412,161 parameters. One direction
per method, through the one public API ``hfmaml_core.sinusoid.meta_directions(net, w, tasks,
alpha, methods=(m,), delta=...)`` for m in MAML (exact Hessian-vector product), FO-MAML and
HF-MAML, and, where it fits in memory and in a few seconds, MAML with each task's d x d support
Hessian formed from d exact HVPs (``sinusoid_timing.hessian_direction``).

For each width it records

* wall time in interleaved rounds (each round calls every method once, the order rotating
  every round; warm-up rounds first, untimed); the number of rounds is what fits in
  ``--budget`` seconds (within ``--min-rounds`` and ``--max-rounds``), recorded;
* the **per-round ratios** MAML / FO-MAML and HF-MAML / FO-MAML (median and quartiles over
  rounds of the ratio of two calls in the same round: the number that reproduces on a loaded
  machine, unlike a ratio of medians);
* peak memory of one call above what was allocated before it (tracemalloc), untimed;
* the Hessian-formed MAML: a few repeats, each followed by an FO-MAML call (a per-repeat
  ratio), where its two d x d arrays fit in ``--hessian-max-bytes`` and 25 tasks, extrapolated
  from one task, take at most ``--hessian-budget`` seconds; otherwise why it was skipped.

The tasks are drawn once from a seeded generator (the same tasks at every width and in every
round), the parameters per width from another. BLAS runs on one thread (``--threads``).
Results go to ``benchmarks/results/network_scaling.json`` (no timestamps: machine, BLAS, load
average, every round's time).

**The PyTorch yardstick.** When ``torch`` can be imported (it is not a dependency of the
project: ``make bench-torch`` builds a venv with it), the same directions are computed by a
Python loop over the tasks with PyTorch autograd (``_torch_loop.py``, the way learn2learn-style
code runs), float64, one thread, same tasks and parameters; hfmaml and the loop are timed
interleaved in the same rounds (torch is imported only after the hfmaml-only part), the
directions compared (max relative difference; the script stops if they disagree), and the
result goes to ``benchmarks/results/network_scaling_torch.json``. Without torch that part is
skipped, saying so; nothing is ever downloaded.

Run from the repository root::

    .venv/bin/python benchmarks/network_scaling.py            # about 2 minutes
    .venv/bin/python benchmarks/network_scaling.py --quick    # seconds; writes nothing
    make bench-torch                                          # the PyTorch yardstick
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _machine
import numpy as np
from _timing import blas_runtime, interleaved, paired_repeats, peak_bytes, ratio_summary, summary
from sinusoid_timing import hessian_direction

from hfmaml_core import paths
from hfmaml_core import sinusoid as S
from hfmaml_core._io import write_text_atomic
from hfmaml_core.mlp import MLP

RESULTS = paths.BENCH_RESULTS / "network_scaling.json"
TORCH_RESULTS = paths.BENCH_RESULTS / "network_scaling_torch.json"
WIDTHS = (40, 80, 200, 400, 640)
MAX_WIDTH = 2048  # d = 4.2e6: 25 tasks' rows of d floats are 0.8 GB per array
METHODS = S.METHODS  # "MAML", "FO-MAML", "HF-MAML"
FO = "FO-MAML"
HESSIAN = "MAML (Hessian formed)"
LAYOUT_ROUNDS = 30  # interleaved rounds of both layouts at least (see measure_layouts)
LAYOUTS = ("dense", "factored")  # hfmaml_core.sinusoid.KERNELS without "auto"
RATIOS = {"MAML/FO-MAML": "MAML", "HF-MAML/FO-MAML": "HF-MAML"}
META_BATCH, K_SUPPORT, K_QUERY, ALPHA = 25, 10, 10, 0.01
#: Hessian-vector products timed to estimate how long forming the Hessians would take.
PROBE_HVPS = 200
#: Largest max relative difference (inf norm) between hfmaml's and torch's directions that
#: counts as agreement: both are exact in float64 up to rounding for MAML and FO-MAML; HF-MAML's
#: difference quotient divides rounding errors by delta_i ||g_i|| = delta. Recorded in the
#: torch results, whose agreement claim in notebook 05 uses these same tolerances.
AGREEMENT = {"MAML": 1e-12, "FO-MAML": 1e-12, "HF-MAML": 1e-10}


def n_params(width: int) -> int:
    """d of the 1-H-H-1 network: (1 + 1) H + (H + 1) H + (H + 1) = H^2 + 4H + 1."""
    return MLP((1, width, width, 1)).n_params


# --------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--widths", type=str, default=",".join(map(str, WIDTHS)), help="hidden widths H"
    )
    parser.add_argument("--budget", type=float, default=18.0, help="timed seconds per width (18)")
    parser.add_argument("--min-rounds", type=int, default=10, help="interleaved rounds at least")
    parser.add_argument("--max-rounds", type=int, default=300, help="interleaved rounds at most")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (2)")
    parser.add_argument("--hessian-repeats", type=int, default=3, help="Hessian-formed repeats")
    parser.add_argument("--hessian-budget", type=float, default=5.0, help="seconds per repeat")
    parser.add_argument("--hessian-max-bytes", type=float, default=2**31, help="its two arrays")
    parser.add_argument(
        "--layout-budget", type=float, default=4.0, help="seconds per width for both layouts"
    )
    parser.add_argument("--torch-budget", type=float, default=16.0, help="seconds per width")
    parser.add_argument("--torch-only", action="store_true", help="only the PyTorch yardstick")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch yardstick")
    parser.add_argument("--delta", type=float, default=S.DEFAULT_DELTA, help="HF-MAML's radius")
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS threads (1; 0 leaves them as they are)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="seconds; writes only to --output")
    parser.add_argument("--output", type=Path, default=None, help=f"JSON file ({RESULTS.name})")
    parser.add_argument(
        "--torch-output", type=Path, default=None, help=f"JSON file ({TORCH_RESULTS.name})"
    )
    args = parser.parse_args(argv)
    if args.quick:  # small widths, few rounds; defaults a test can still override
        given = sys.argv[1:] if argv is None else argv
        if not any(a.startswith("--widths") for a in given):
            args.widths = "8,16"
        args.budget, args.min_rounds, args.max_rounds, args.warmup = 0.2, 3, 5, 1
        args.hessian_repeats, args.torch_budget, args.layout_budget = 1, 0.2, 0.1
    try:
        widths = sorted({int(x) for x in args.widths.split(",")})
    except ValueError:
        widths = []
    if not widths or widths[0] < 1 or widths[-1] > MAX_WIDTH:
        parser.error(
            f"--widths must be comma-separated integers in [1, {MAX_WIDTH}]; got {args.widths!r}"
        )
    args.width_list = widths
    checks = [
        ("--budget", args.budget, 0.0, float("inf"), "> 0 seconds"),
        ("--hessian-budget", args.hessian_budget, 0.0, float("inf"), "> 0 seconds"),
        ("--hessian-max-bytes", args.hessian_max_bytes, 0.0, float("inf"), "> 0"),
        ("--torch-budget", args.torch_budget, 0.0, float("inf"), "> 0 seconds"),
        ("--layout-budget", args.layout_budget, 0.0, float("inf"), "> 0 seconds"),
        ("--delta", args.delta, 0.0, 1.0, "in (0, 1]"),
    ]
    for name, value, lo, hi, allowed in checks:
        if not (lo < value <= hi):
            parser.error(f"{name} must be {allowed}; got {value!r}")
    if args.min_rounds < 1 or args.max_rounds < args.min_rounds:
        parser.error(
            f"--min-rounds must be >= 1 and --max-rounds >= --min-rounds; "
            f"got {args.min_rounds} and {args.max_rounds}"
        )
    if args.warmup < 1:  # the last warm-up round sets how many rounds fit in the budget
        parser.error(f"--warmup must be >= 1; got {args.warmup}")
    if args.threads < 0:
        parser.error(f"--threads must be >= 0; got {args.threads}")
    if args.hessian_repeats < 1:
        parser.error(f"--hessian-repeats must be >= 1; got {args.hessian_repeats}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0; got {args.seed}")
    if args.torch_only and args.no_torch:
        parser.error("--torch-only and --no-torch exclude each other")
    return args


# --------------------------------------------------------------------------- one width
class Setting:
    """The network of one width, its parameters and the fixed tasks; hfmaml's calls."""

    def __init__(self, width: int, tasks: S.SinusoidTasks, seed: int, delta: float) -> None:
        self.width = width
        self.net = MLP((1, width, width, 1))
        self.w = self.net.init(np.random.default_rng([seed, width]))
        self.tasks, self.delta = tasks, delta

    def direction(self, method: str, kernels: str = "auto") -> np.ndarray:
        dirs, _ = S.meta_directions(
            self.net,
            self.w,
            self.tasks,
            ALPHA,
            methods=(method,),
            delta=self.delta,
            kernels=kernels,
        )
        return dirs[method]

    def layout_calls(self) -> dict[str, Callable[[], object]]:
        """Every method in both layouts of :data:`hfmaml_core.sinusoid.KERNELS`."""
        return {
            f"{m} [{k}]": (lambda m=m, k=k: self.direction(m, k)) for k in LAYOUTS for m in METHODS
        }

    def calls(self) -> dict[str, Callable[[], object]]:
        return {m: (lambda m=m: self.direction(m)) for m in METHODS}

    def hessian_direction(self) -> np.ndarray:
        return hessian_direction(self.net, self.w, self.tasks, ALPHA)


def rounds_for(calls: dict[str, Callable[[], object]], args: argparse.Namespace, budget: float):
    """Warm-up rounds, then as many rounds as fit in ``budget`` s (from the last warm-up)."""
    per_round = 0.0
    for _ in range(args.warmup):
        t0 = time.perf_counter()
        for call in calls.values():
            call()
        per_round = time.perf_counter() - t0
    return int(np.clip(budget / max(per_round, 1e-9), args.min_rounds, args.max_rounds))


def time_rounds(calls, rounds: int) -> tuple[dict, dict, dict]:
    """Interleaved rounds: per-method summaries and the raw times (s)."""
    times, faults = interleaved(calls, rounds)
    return {k: summary(times[k], faults[k]) for k in calls}, times, faults


def hessian_plan(setting: Setting, args: argparse.Namespace) -> dict:
    """Whether to form the Hessians at this width, and why (memory, then a one-task probe)."""
    P, H = setting.net.n_params, setting.width
    mem = 8 * P * (2 * P + 8 * K_SUPPORT * H)  # eye(P), the Hessian, the HVPs' temporaries
    plan: dict = {"memory_estimate_bytes": int(mem)}
    if mem > args.hessian_max_bytes:
        plan["formed"] = False
        plan["reason"] = (
            f"memory: two {P} x {P} float64 arrays need {mem / 2**30:.1f} GiB, more than "
            f"--hessian-max-bytes = {args.hessian_max_bytes / 2**30:.1f} GiB"
        )
        return plan
    # a probe: m of one task's P Hessian-vector products (best of two), scaled to P and B tasks
    m = min(P, PROBE_HVPS)
    xs, ys = setting.tasks.x_support[:1], setting.tasks.y_support[:1]
    probe = []
    for _ in range(2):
        t0 = time.perf_counter()
        setting.net.hvps(setting.w, np.eye(m, P), xs, ys)
        probe.append(time.perf_counter() - t0)
    estimate = META_BATCH * (P / m) * min(probe)
    plan["time_estimate_s"] = round(estimate, 2)
    if estimate > args.hessian_budget:
        plan["formed"] = False
        plan["reason"] = (
            f"time: {m} of one task's {P} Hessian-vector products took {min(probe):.3f} s, so "
            f"{META_BATCH} Hessians about {estimate:.0f} s, more than --hessian-budget = "
            f"{args.hessian_budget:g} s"
        )
        return plan
    plan["formed"] = True
    plan["reason"] = (
        f"fits: {mem / 2**20:.0f} MiB, about {estimate:.1f} s per direction "
        f"(--hessian-max-bytes {args.hessian_max_bytes / 2**30:.1f} GiB, "
        f"--hessian-budget {args.hessian_budget:g} s)"
    )
    return plan


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b| (0 when both are 0)."""
    scale = float(np.max(np.abs(b)))
    return float(np.max(np.abs(a - b))) / scale if scale > 0 else float(np.max(np.abs(a)))


def measure_width(setting: Setting, args: argparse.Namespace) -> dict:
    """hfmaml's three methods at one width (and the Hessian-formed MAML where feasible)."""
    calls = setting.calls()
    row: dict = {"width": setting.width, "d": setting.net.n_params}
    peaks = {m: peak_bytes(call) for m, call in calls.items()}  # untimed, deterministic
    rounds = rounds_for(calls, args, args.budget)
    methods, times, _ = time_rounds(calls, rounds)
    for m in METHODS:
        methods[m]["peak_bytes"] = peaks[m]
    row["rounds"] = rounds
    row["methods"] = methods
    row["ratios"] = {name: ratio_summary(times[m], times[FO]) for name, m in RATIOS.items()}
    plan = hessian_plan(setting, args)
    if plan["formed"]:
        u = setting.hessian_direction()
        plan["max_relative_difference_to_maml"] = float(
            f"{relative_difference(u, setting.direction('MAML')):.3g}"
        )
        plan["peak_bytes"] = peak_bytes(setting.hessian_direction)
        ts, fs, fo = paired_repeats(
            setting.hessian_direction,
            calls[FO],
            args.hessian_repeats,
            args.hessian_repeats,
        )
        plan.update(summary(ts, fs))
        plan["fomaml_alongside_ms"] = [float(f"{1e3 * t:.5g}") for t in fo]
        plan["ratio_to_fomaml"] = ratio_summary(ts, fo)
    row["hessian_formed"] = plan
    row["layouts"] = measure_layouts(setting, args)
    return row


def measure_layouts(setting: Setting, args: argparse.Namespace) -> dict:
    """Both layouts at this width, interleaved (fewer rounds): the evidence for ``"auto"``'s
    choice, :data:`hfmaml_core.sinusoid.FACTORED_FROM`."""
    calls = setting.layout_calls()
    # at least LAYOUT_ROUNDS rounds: the dense layout's times at large widths are bimodal
    # (its B x P arrays are mapped and faulted in afresh every call), so few rounds do not repeat
    rounds = max(rounds_for(calls, args, args.layout_budget), min(LAYOUT_ROUNDS, args.max_rounds))
    _, times, _ = time_rounds(calls, rounds)
    out: dict = {"rounds": rounds, "auto": type(S.network_kernels(setting.net)).__name__}
    for k in LAYOUTS:
        out[k] = {m: float(f"{1e3 * np.median(times[f'{m} [{k}]']):.5g}") for m in METHODS}
    # the layout is chosen per shape, for all three directions: their summed times per round
    total = {k: np.sum([times[f"{m} [{k}]"] for m in METHODS], axis=0) for k in LAYOUTS}
    out["factored_over_dense"] = ratio_summary(total["factored"], total["dense"])
    return out


def measure_torch_width(setting: Setting, loop_module, args: argparse.Namespace) -> dict:
    """hfmaml and the PyTorch loop at one width: interleaved in the same rounds, and agreement."""
    loop = loop_module.TorchLoop(setting.net.sizes, setting.w, setting.tasks, ALPHA, setting.delta)
    torch_calls = loop.calls()
    agreement = {}
    for m in METHODS:
        diff = relative_difference(torch_calls[m]().numpy(), setting.direction(m))
        agreement[m] = float(f"{diff:.3g}")
    bad = {m: v for m, v in agreement.items() if not v <= AGREEMENT[m]}
    if bad:
        raise SystemExit(
            f"network_scaling: hfmaml and PyTorch disagree at H = {setting.width}: max relative "
            f"difference {bad} above {AGREEMENT}; the torch results are not written"
        )
    calls = {f"hfmaml {m}": call for m, call in setting.calls().items()}
    calls.update({f"torch {m}": call for m, call in torch_calls.items()})
    rounds = rounds_for(calls, args, args.torch_budget)
    summaries, times, _ = time_rounds(calls, rounds)
    row: dict = {"width": setting.width, "d": setting.net.n_params, "rounds": rounds}
    row["hfmaml"] = {m: summaries[f"hfmaml {m}"] for m in METHODS}
    row["torch"] = {m: summaries[f"torch {m}"] for m in METHODS}
    row["torch_over_hfmaml"] = {
        m: ratio_summary(times[f"torch {m}"], times[f"hfmaml {m}"]) for m in METHODS
    }
    row["hfmaml_ratios"] = {
        name: ratio_summary(times[f"hfmaml {m}"], times[f"hfmaml {FO}"])
        for name, m in RATIOS.items()
    }
    row["torch_ratios"] = {
        name: ratio_summary(times[f"torch {m}"], times[f"torch {FO}"]) for name, m in RATIOS.items()
    }
    row["max_relative_difference"] = agreement
    return row


# --------------------------------------------------------------------------- output
def machine_record(blas: dict, load_before: tuple, load_after: tuple) -> dict:
    return {
        **_machine.machine_info(),
        "blas_corename": blas["corename"],
        "blas_threads": blas["threads"],
        "last_level_cache": _machine.last_level_cache(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def config_record(args: argparse.Namespace) -> dict:
    return {
        "sizes": "1-H-H-1 tanh",
        "widths": args.width_list,
        "dims": [n_params(h) for h in args.width_list],
        "meta_batch": META_BATCH,
        "k_support": K_SUPPORT,
        "k_query": K_QUERY,
        "alpha": ALPHA,
        "delta": args.delta,
        "dtype": "float64",
        "seed": args.seed,
        "tasks": f"sample_tasks(default_rng({args.seed}), {META_BATCH}), the same at every width",
        "params": "MLP.init(default_rng([seed, H]))",
        "warmup_rounds": args.warmup,
        "budget_s": args.budget,
        "layout_budget_s": args.layout_budget,
        "min_rounds": args.min_rounds,
        "max_rounds": args.max_rounds,
        "hessian_repeats": args.hessian_repeats,
        "hessian_budget_s": args.hessian_budget,
        "hessian_max_bytes": args.hessian_max_bytes,
        "api": "hfmaml_core.sinusoid.meta_directions(net, w, tasks, alpha, methods=(m,), delta)",
        "factored_from": S.FACTORED_FROM,
    }


def torch_output(args: argparse.Namespace) -> Path:
    """--torch-output; else beside --output (``<stem>_torch.json``); else the committed file."""
    if args.torch_output is not None:
        return args.torch_output
    if args.output is not None:
        return args.output.with_name(args.output.stem + "_torch.json")
    return TORCH_RESULTS


def write(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")
    print(f"wrote {path}")


def print_table(rows: list[dict]) -> None:
    print(
        f"{'H':>4} {'d':>8} {'rounds':>6}  {'FO ms':>9} {'MAML ms':>9} {'HF ms':>9}  "
        f"{'MAML/FO [IQR]':>20} {'HF/FO [IQR]':>20}  {HESSIAN}"
    )
    for r in rows:
        ms = [r["methods"][m]["median_ms"] for m in (FO, "MAML", "HF-MAML")]
        ratios = [
            f"{q['median']:.2f} [{q['q25']:.2f}, {q['q75']:.2f}]"
            for q in (r["ratios"][k] for k in RATIOS)
        ]
        hess = r["hessian_formed"]
        extra = f"{hess['median_ms']:.0f} ms" if hess["formed"] else "skipped: " + hess["reason"]
        print(
            f"{r['width']:>4} {r['d']:>8} {r['rounds']:>6}  "
            + " ".join(f"{t:>9.3f}" for t in ms)
            + f"  {ratios[0]:>20} {ratios[1]:>20}  {extra}"
        )
    peaks = "; ".join(
        f"H={r['width']}: "
        + ", ".join(f"{m} {r['methods'][m]['peak_bytes'] / 2**20:.1f}" for m in METHODS)
        for r in rows
    )
    print(f"peak MiB: {peaks}")
    print("both layouts, median ms FO / MAML / HF (kernels='auto' takes the one named):")
    for r in rows:
        lay = r["layouts"]
        parts = [
            f"{k} " + " / ".join(f"{lay[k][m]:.3g}" for m in (FO, "MAML", "HF-MAML"))
            for k in LAYOUTS
        ]
        print(f"  H = {r['width']:>4}: " + "; ".join(parts) + f"  -> auto: {lay['auto']}")


def print_torch_table(rows: list[dict]) -> None:
    print(
        f"{'H':>4} {'d':>8} {'rounds':>6}  {'hfmaml FO/MAML/HF ms':>26}  "
        f"{'torch FO/MAML/HF ms':>26}  {'torch/hfmaml FO/MAML/HF':>24}  max rel. diff MAML/FO/HF"
    )
    order = (FO, "MAML", "HF-MAML")
    for r in rows:
        hf = " / ".join(f"{r['hfmaml'][m]['median_ms']:.2f}" for m in order)
        tt = " / ".join(f"{r['torch'][m]['median_ms']:.2f}" for m in order)
        ratio = " / ".join(f"{r['torch_over_hfmaml'][m]['median']:.2f}" for m in order)
        diff = " / ".join(f"{r['max_relative_difference'][m]:.1e}" for m in ("MAML", FO, "HF-MAML"))
        print(
            f"{r['width']:>4} {r['d']:>8} {r['rounds']:>6}  {hf:>26}  {tt:>26}  {ratio:>24}  {diff}"
        )


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    blas = blas_runtime(args.threads or None)
    torch_found = importlib.util.find_spec("torch") is not None
    tasks = S.sample_tasks(np.random.default_rng(args.seed), META_BATCH, K_SUPPORT, K_QUERY)
    settings = [Setting(h, tasks, args.seed, args.delta) for h in args.width_list]
    write_files = not args.quick or args.output is not None
    output = args.output or RESULTS
    common = {"config": config_record(args)}
    t_start = time.perf_counter()

    if not args.torch_only:
        load_before = os.getloadavg()
        rows = []
        for setting in settings:
            rows.append(measure_width(setting, args))
            r = rows[-1]
            line = ", ".join(f"{m} {r['methods'][m]['median_ms']:.3f} ms" for m in METHODS)
            print(
                f"H = {setting.width:>4} (d = {r['d']:>7}, {r['rounds']} rounds): {line}",
                flush=True,
            )
        elapsed = time.perf_counter() - t_start
        payload = {
            "description": (
                "One meta-gradient direction (25 sinusoid tasks, K = 10 + 10, alpha = 0.01, "
                "float64) on the 1-H-H-1 tanh network against d = H^2 + 4H + 1, through "
                "sinusoid.meta_directions: median and quartiles over interleaved rounds, the "
                "per-round ratios to FO-MAML, peak memory (tracemalloc), the Hessian-formed "
                "MAML where feasible."
            ),
            "command": ".venv/bin/python benchmarks/network_scaling.py",
            **common,
            "machine": machine_record(blas, load_before, os.getloadavg()),
            "elapsed_s": round(elapsed, 1),
            "results": rows,
        }
        print()
        print_table(rows)
        m = payload["machine"]
        print(
            f"numpy {m['numpy']}, {m['blas']} ({blas['corename']}, {blas['threads']} thread(s)), "
            f"{m['cpu_count']} CPUs; load average {m['load_average_before'][0]} -> "
            f"{m['load_average_after'][0]}; {elapsed:.0f} s"
        )
        if write_files:
            write(output, payload)
        else:
            print("--quick: results not written (give --output to write them)")

    if args.no_torch:
        return 0
    if not torch_found:
        print(
            "torch is not installed here: the PyTorch yardstick is skipped "
            "(make bench-torch runs it in a venv of its own; nothing is downloaded)"
        )
        return 0
    import _torch_loop  # only now: the hfmaml-only part above ran without torch loaded

    info = _torch_loop.setup(threads=1)
    load_before = os.getloadavg()
    t_torch = time.perf_counter()
    rows = []
    for setting in settings:
        rows.append(measure_torch_width(setting, _torch_loop, args))
        print(f"H = {setting.width:>4}: torch yardstick, {rows[-1]['rounds']} rounds", flush=True)
    elapsed = time.perf_counter() - t_torch
    payload = {
        "description": (
            "hfmaml's directions (sinusoid.meta_directions) against a plain PyTorch loop over "
            "the 25 tasks (autograd per task, create_graph=True for MAML; _torch_loop.py), "
            "float64, one thread, same tasks and parameters, timed interleaved in the same "
            "rounds: medians and quartiles, per-round ratios torch/hfmaml, and the max "
            "relative difference of each direction (inf norm). No peak memory: tracemalloc "
            "does not see PyTorch's allocator."
        ),
        "command": ".venv-torch/bin/python benchmarks/network_scaling.py --torch-only",
        **common,
        "config_torch": {"budget_s": args.torch_budget, "agreement_bound": AGREEMENT},
        "machine": {
            **machine_record(blas, load_before, os.getloadavg()),
            "torch": info,
        },
        "elapsed_s": round(elapsed, 1),
        "results": rows,
    }
    print()
    print_torch_table(rows)
    print(f"torch {info['torch']} ({info['threads']} thread(s)); {elapsed:.0f} s")
    if write_files or args.torch_output is not None:
        write(torch_output(args), payload)
    else:
        print("--quick: torch results not written (give --output or --torch-output)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
