"""The kernels behind the per-iteration cost, and the cost benchmark's results file.

Oracles, none sharing code with the library:

* the Welsch loss's gradient, Hessian-vector product and loss written out here,
  :math:`\\phi'(r) = r e^{-r^2/2}`, :math:`\\phi''(r) = (1 - r^2) e^{-r^2/2}`, one data point
  at a time, and the sympy model of ``oracles.py`` at small ``d``;
* the quadratic task's mini-batch gradient :math:`\\bar s A (w - c) + \\bar b` from the
  family's data arrays;
* the Welsch constants from explicit ``d x d`` matrices and their eigenvalues.

No test here times anything: the benchmark's timings are checked for internal consistency
(medians and quartiles against the stored repeats), never against a bound.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import numpy as np
import oracles as O
import pytest

from hfmaml_core import engine, paths, symbolic, tasks
from hfmaml_core import estimators as E

RTOL = 1e-12


# --------------------------------------------------------------------------- oracles
def phi1(r):
    return r * math.exp(-0.5 * r * r)


def phi2(r):
    return (1.0 - r * r) * math.exp(-0.5 * r * r)


def welsch_rows(fam, T, idx):
    """The data points of each row: list of (X_rows, y_rows)."""
    out = []
    for b, t in enumerate(T):
        pts = range(fam.n_points) if idx is None else idx[b]
        out.append((np.array([fam.X[t, j] for j in pts]), np.array([fam.y[t, j] for j in pts])))
    return out


def welsch_grad(X, y, w):
    g = np.zeros_like(w)
    for x, yy in zip(X, y, strict=True):
        g += phi1(float(x @ w) - yy) * x
    return g / len(y)


def welsch_hvp(X, y, w, v):
    h = np.zeros_like(w)
    for x, yy in zip(X, y, strict=True):
        h += phi2(float(x @ w) - yy) * float(x @ v) * x
    return h / len(y)


def welsch_loss(X, y, w):
    return sum(
        1.0 - math.exp(-0.5 * (float(x @ w) - yy) ** 2) for x, yy in zip(X, y, strict=True)
    ) / len(y)


def quadratic_grad(fam, t, pts, w):
    s = np.mean([fam.s[t, j] for j in pts]) if pts is not None else 1.0
    b = np.mean([fam.b[t, j] for j in pts], axis=0) if pts is not None else 0.0
    return s * (fam.A[t] @ (w - fam.c[t])) + b


def draws(fam, rows, D, seed):
    rng = np.random.default_rng(seed)
    T = rng.integers(0, fam.n_tasks, rows)
    idx = rng.integers(0, fam.n_points, (rows, D))
    W = rng.standard_normal((rows, fam.dim)) / math.sqrt(fam.dim)
    G = rng.standard_normal((rows, fam.dim))
    delta = rng.uniform(0.01, 0.5, rows)
    return T, idx, W, G, delta


def assert_close(actual, expected, rtol=RTOL):
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * max(scale, 1e-300))


# --------------------------------------------------------------------------- HF-MAML's kernel
@pytest.mark.parametrize("with_idx", [True, False], ids=["minibatch", "exact"])
def test_welsch_central_differences_match_the_written_out_gradient(with_idx):
    fam = tasks.make_welsch_family(7, 5, 12, seed=4, input_scale=2.0)
    T, idx, W, G, delta = draws(fam, 9, 6, seed=1)
    idx = idx if with_idx else None
    got = fam.central_difference_kernel(W, G, delta, T, idx) * (2 * delta[:, None])  # numerators
    for b, (X, y) in enumerate(welsch_rows(fam, T, idx)):
        s = delta[b] * G[b]
        assert_close(got[b], welsch_grad(X, y, W[b] + s) - welsch_grad(X, y, W[b] - s), 1e-11)


def test_welsch_central_differences_match_sympy_at_small_d():
    fam = tasks.make_welsch_family(2, 3, 8, seed=5, input_scale=2.0)
    T, idx, W, G, delta = draws(fam, 4, 5, seed=2)
    oracle = O.welsch_point_oracle(2)
    got = fam.central_difference_kernel(W, G, delta, T, idx) * (2 * delta[:, None])  # numerators
    for b, (X, y) in enumerate(welsch_rows(fam, T, idx)):
        s = delta[b] * G[b]
        expected = oracle.grad(W[b] + s, X, y) - oracle.grad(W[b] - s, X, y)
        assert_close(got[b], expected, 1e-10)


@pytest.mark.parametrize("with_idx", [True, False], ids=["minibatch", "exact"])
def test_quadratic_central_differences_match_the_closed_form(with_idx):
    fam = tasks.make_quadratic_family(5, 4, 10, seed=6, hess_noise=0.4)
    T, idx, W, G, delta = draws(fam, 7, 3, seed=3)
    idx = idx if with_idx else None
    got = fam.central_difference_kernel(W, G, delta, T, idx) * (2 * delta[:, None])  # numerators
    for b, t in enumerate(T):
        pts = None if idx is None else idx[b]
        s = delta[b] * G[b]
        expected = quadratic_grad(fam, t, pts, W[b] + s) - quadratic_grad(fam, t, pts, W[b] - s)
        assert_close(got[b], expected, 1e-11)


def test_default_central_differences_stack_the_two_points():
    """Families without their own kernel (here RidgeFamily) use the stacked default."""
    fam = symbolic.make_ridge_family(3, 4, seed=1)
    T, _, W, G, delta = draws(fam, 5, 1, seed=4)
    got = fam.central_difference_kernel(W, G, delta, T, None) * (2 * delta[:, None])
    for b, t in enumerate(T):
        s = delta[b] * G[b]
        task = fam.tasks[t]
        assert_close(got[b], task.grad(W[b] + s) - task.grad(W[b] - s), 1e-13)


def test_hfmaml_direction_is_the_central_difference_written_out():
    """The whole HF-MAML direction against the algorithm of THEORY T3, task by task."""
    fam = tasks.make_welsch_family(6, 5, 20, seed=7, input_scale=2.0)
    W = np.random.default_rng(8).standard_normal((3, fam.dim))
    a, delta, B, (d_in, d_o, d_h) = 0.3, 0.05, 4, (3, 5, 7)
    got = E.direction(
        fam, W, a, "hfmaml", np.random.default_rng(9),
        batch_tasks=B, d_in=d_in, d_o=d_o, d_h=d_h, delta=delta,
    )  # fmt: skip
    rng = np.random.default_rng(9)  # the documented draw order: tasks, then D_in, D_o, D_h
    T = rng.choice(fam.n_tasks, size=3 * B, p=fam.probs)
    I_in, I_o, I_h = (rng.integers(0, fam.n_points, (3 * B, D)) for D in (d_in, d_o, d_h))
    for r in range(3):
        u = np.zeros(fam.dim)
        for k in range(r * B, (r + 1) * B):
            t = T[k]
            X_in, y_in = fam.X[t, I_in[k]], fam.y[t, I_in[k]]
            X_o, y_o = fam.X[t, I_o[k]], fam.y[t, I_o[k]]
            X_h, y_h = fam.X[t, I_h[k]], fam.y[t, I_h[k]]
            g = welsch_grad(X_o, y_o, W[r] - a * welsch_grad(X_in, y_in, W[r]))
            d = welsch_grad(X_h, y_h, W[r] + delta * g) - welsch_grad(X_h, y_h, W[r] - delta * g)
            u += (g - a * d / (2 * delta)) / B
        assert_close(got.u[r], u, 1e-10)


# --------------------------------------------------------------------------- blocks and pieces
@pytest.mark.parametrize("block", [1, 40, 1 << 17], ids=["row-by-row", "blocks-of-2", "one-block"])
@pytest.mark.parametrize("columns", [3, 8192], ids=["pieces-of-3", "whole"])
def test_welsch_kernels_do_not_depend_on_blocks_or_pieces(monkeypatch, block, columns):
    monkeypatch.setattr(tasks, "_BLOCK_ENTRIES", block)
    monkeypatch.setattr(tasks, "_PAIR_COLUMNS", columns)
    fam = tasks.make_welsch_family(10, 4, 6, seed=2, input_scale=2.0)
    T, idx, W, G, delta = draws(fam, 5, 2, seed=5)  # block 40 = 2 rows of 2 points x d = 10
    for I in (idx, None):
        rows = welsch_rows(fam, T, I)
        assert_close(
            fam.loss_kernel(W, T, I), [welsch_loss(X, y, W[b]) for b, (X, y) in enumerate(rows)]
        )
        assert_close(
            fam.grad_kernel(W, T, I), [welsch_grad(X, y, W[b]) for b, (X, y) in enumerate(rows)]
        )
        assert_close(
            fam.hvp_kernel(W, G, T, I),
            [welsch_hvp(X, y, W[b], G[b]) for b, (X, y) in enumerate(rows)],
        )
        S = delta[:, None] * G
        expected = [
            welsch_grad(X, y, W[b] + S[b]) - welsch_grad(X, y, W[b] - S[b])
            for b, (X, y) in enumerate(rows)
        ]
        got = fam.central_difference_kernel(W, G, delta, T, I) * (2 * delta[:, None])
        assert_close(got, expected, 1e-11)


def test_pairs_times_in_pieces_of_the_dimension(monkeypatch):
    rng = np.random.default_rng(0)
    P, X = rng.standard_normal((3, 2, 11)), rng.standard_normal((3, 4, 11))
    expected = np.array(
        [[[P[b, j] @ X[b, k] for k in range(4)] for j in range(2)] for b in range(3)]
    )
    for columns in (1, 4, 11, 100):
        monkeypatch.setattr(tasks, "_PAIR_COLUMNS", columns)
        assert_close(tasks._pairs_times(P, X), expected)


@pytest.mark.parametrize(
    "kernel", ["grad_kernel", "hvp_kernel", "central_difference_kernel", "hessian_kernel"]
)
@pytest.mark.parametrize(
    "make",
    [
        lambda: tasks.make_welsch_family(4, 3, 5, seed=0),
        lambda: tasks.make_quadratic_family(4, 3, 5, seed=0),
        lambda: symbolic.make_ridge_family(4, 3, seed=0),
    ],
    ids=["welsch", "quadratic", "ridge"],
)
def test_kernels_return_new_arrays(make, kernel):
    """The estimators update the kernels' results in place: they must own their memory."""
    fam = make()
    D = 1 if fam.n_points == 1 else 3
    T, idx, W, G, delta = draws(fam, 4, D, seed=6)
    args = {
        "grad_kernel": (W, T, idx),
        "hvp_kernel": (W, G, T, idx),
        "central_difference_kernel": (W, G, delta, T, idx),
        "hessian_kernel": (W, T, idx),
    }[kernel]
    out = getattr(fam, kernel)(*args)
    owned = [a for a in (*args, *vars(fam).values()) if isinstance(a, np.ndarray)]
    assert out.flags.writeable
    assert not any(np.shares_memory(out, a) for a in owned)


# --------------------------------------------------------------------------- constants
@pytest.mark.parametrize("shape", [(3, 5, 12), (2, 20, 6)], ids=["n-below-d", "n-above-d"])
def test_welsch_constants_equal_the_d_by_d_eigenvalues(shape):
    m, n, d = shape
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal(shape), rng.standard_normal((m, n))
    fam = tasks.WelschRegressionFamily(X, y)
    for i in range(m):
        Sigma = sum(np.outer(x, x) for x in X[i]) / n
        M = sum(np.linalg.norm(x) * np.outer(x, x) for x in X[i]) / n
        assert fam.L_tasks[i] == pytest.approx(np.linalg.eigvalsh(Sigma)[-1], rel=1e-12)
        assert fam.rho_tasks[i] == pytest.approx(
            tasks.WELSCH_MAX_D3 * np.linalg.eigvalsh(M)[-1], rel=1e-12
        )


# --------------------------------------------------------------------------- MAML's Hessians
def test_matrix_mode_forms_the_hessians_in_chunks(monkeypatch):
    fam = tasks.make_welsch_family(6, 5, 16, seed=3, input_scale=2.0)
    W = np.random.default_rng(4).standard_normal((2, fam.dim))
    kw = dict(batch_tasks=3, d_in=2, d_o=4, d_h=5)
    rows = []
    original = fam.hessian_kernel

    def recording(Wc, T, idx):
        rows.append(len(T))
        return original(Wc, T, idx)

    monkeypatch.setattr(fam, "hessian_kernel", recording)
    hvp = E.direction(fam, W, 0.2, "maml", np.random.default_rng(1), hessian="hvp", **kw)
    for budget, expected in ((1, [1] * 6), (2 * 36, [2, 2, 2]), (1 << 20, [6])):
        monkeypatch.setattr(engine, "_HESSIAN_ENTRIES", budget)  # the engine forms them
        rows.clear()
        mat = E.direction(fam, W, 0.2, "maml", np.random.default_rng(1), hessian="matrix", **kw)
        assert rows == expected
        assert_close(mat.u, hvp.u, 1e-12)
        assert mat.work == E.Work(grads=3 * 6, hessians=3 * 5)


# --------------------------------------------------------------------------- the benchmark
def load_benchmark():
    if str(paths.BENCHMARKS) not in sys.path:  # as when run as a script: its folder is importable
        sys.path.insert(0, str(paths.BENCHMARKS))
    spec = importlib.util.spec_from_file_location("cost_benchmark", paths.BENCHMARKS / "cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tracemalloc_sees_numpy_arrays():
    bench = load_benchmark()
    assert bench.peak_bytes(lambda: np.ones(10**6)) >= 8 * 10**6
    assert bench.peak_bytes(lambda: None) < 10**5


def test_benchmark_runs_in_quick_mode(capsys):
    assert load_benchmark().main(["--quick", "--threads", "0"]) == 0  # 0: leave BLAS alone
    out = capsys.readouterr().out
    assert "HF-MAML" in out and "results not written" in out


def test_committed_results_are_complete_and_consistent():
    """benchmarks/results/cost.json: every method and d, work as the estimators count it now."""
    res = json.loads((paths.BENCH_RESULTS / "cost.json").read_text())
    cfg, results = res["config"], res["results"]
    assert set(results) == {"maml_hessian", "maml_hvp", "fomaml", "hfmaml"}
    assert cfg["dims"][0] <= 100 and cfg["dims"][-1] >= 10**4
    fam = tasks.make_welsch_family(5, cfg["n_tasks"], cfg["n_points"], seed=0)
    for key, rows in results.items():
        spec = res["methods"][key]
        extra = {"hessian": spec["hessian"]} if "hessian" in spec else {}
        work = E.direction(
            fam, np.zeros(5), cfg["alpha"], spec["method"], np.random.default_rng(0),
            batch_tasks=cfg["batch_tasks"], d_in=cfg["d_in"], d_o=cfg["d_o"], d_h=cfg["d_h"],
            **extra,
        ).work  # fmt: skip
        dims = [r["d"] for r in rows]
        limit = cfg["hessian_max_dim"] if key == "maml_hessian" else math.inf
        assert dims == [d for d in cfg["dims"] if d <= limit]
        for r in rows:
            w = r["work"]
            assert (w["grads"], w["hvps"], w["hessians"]) == (work.grads, work.hvps, work.hessians)
            assert w["cost"] == work.cost(r["d"])
            assert r["peak_bytes"] > 0 and len(r["times_ms"]) == r["n"] >= 3
            q25, med, q75 = np.percentile(r["times_ms"], [25, 50, 75])
            assert r["median_ms"] == pytest.approx(med, rel=1e-3)
            assert r["q25_ms"] == pytest.approx(q25, rel=1e-3)
            assert r["q75_ms"] == pytest.approx(q75, rel=1e-3)
    fo = {r["d"]: np.asarray(r["times_ms"]) for r in results["fomaml"]}
    for key in ("maml_hvp", "fomaml", "hfmaml"):  # interleaved: the rounds pair up
        for r in results[key]:
            paired = np.median(np.asarray(r["times_ms"]) / fo[r["d"]])
            assert r["paired_ratio_to_fomaml"] == pytest.approx(paired, rel=1e-3)
    assert res["machine"]["load_average_before"] and res["machine"]["blas"]
