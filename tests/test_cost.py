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


# --------------------------------------------------------------------------- the two oracles
def oracle_draws(d=9, rows=8, D=6, seed=11):
    fam = tasks.make_welsch_family(d, 5, 12, seed=seed, input_scale=2.0)
    rng = np.random.default_rng(seed)
    T, idx = rng.integers(0, fam.n_tasks, rows), rng.integers(0, fam.n_points, (rows, D))
    W = rng.standard_normal((rows, d)) / math.sqrt(d)
    return fam, engine.FamilyKernels(fam, T), T, idx, W, rng.standard_normal((rows, d))


def test_default_oracle_is_the_fused_kernel_bit_for_bit():
    """oracle="fused" (the default) is today's path: the family's central_difference_kernel."""
    fam, kern, T, idx, W, G = oracle_draws()
    hf = engine.hf_term(kern, W, G, idx, delta="theorem", rho=fam.rho, alpha=0.3)
    np.testing.assert_array_equal(hf.D, fam.central_difference_kernel(W, G, hf.deltas, T, idx))
    kw = dict(batch_tasks=4, d_in=3, d_o=5, d_h=7)
    Wr = np.random.default_rng(2).standard_normal((3, fam.dim))
    default = E.direction(fam, Wr, 0.3, "hfmaml", np.random.default_rng(5), **kw)
    fused = E.direction(fam, Wr, 0.3, "hfmaml", np.random.default_rng(5), oracle="fused", **kw)
    np.testing.assert_array_equal(default.u, fused.u)
    np.testing.assert_array_equal(default.delta, fused.delta)
    # the direction composed by hand from the kernels, in the engine's order of operations
    rng = np.random.default_rng(5)
    Tr = rng.choice(fam.n_tasks, size=12, p=fam.probs)
    I_in, I_o, I_h = (rng.integers(0, fam.n_points, (12, D)) for D in (3, 5, 7))
    Wb = np.repeat(Wr, 4, axis=0)
    g_in = fam.grad_kernel(Wb, Tr, I_in)
    Gb = fam.grad_kernel(Wb - 0.3 * g_in, Tr, I_o)
    delta = 1.0 / (6 * fam.rho * 0.3 * np.sqrt(np.einsum("bd,bd->b", Gb, Gb)))
    U = Gb - 0.3 * fam.central_difference_kernel(Wb, Gb, delta, Tr, I_h)
    np.testing.assert_array_equal(
        default.u, np.einsum("rbd,b->rd", U.reshape(3, 4, -1), [0.25] * 4)
    )


def rounding_bound(fam, T, idx, W, G, delta):
    r"""Worst-case difference of the two forms' quotients, from how each rounds (per component).

    Both sum :math:`[\phi'(r^+_k) - \phi'(r^-_k)]\,x_k / (2\delta D)` over the batch; they
    differ in how the residuals :math:`r^\pm_k = x_k^\top(w \pm \delta g) - y_k` are rounded
    (fused: :math:`(x^\top w - y) \pm \delta\,x^\top g`; two calls: :math:`x^\top(w \pm
    \delta g) - y`), each within :math:`(d + 2)\,\epsilon\,(|x|^\top(|w| + \delta|g|) + |y|)`,
    and :math:`\phi'` is 1-Lipschitz; the sums over the batch add :math:`(D + 2)\,\epsilon` of
    :math:`\sum_k |x_k|` each (:math:`|\phi'| \le 1`). Everything divided by :math:`2\delta`.
    """
    eps, D = np.finfo(float).eps, idx.shape[1]
    X, y = fam.X[T[:, None], idx], fam.y[T[:, None], idx]
    scale = np.abs(X) @ np.abs(W)[:, :, None] + delta[:, None, None] * (
        np.abs(X) @ np.abs(G)[:, :, None]
    )
    resid = 2 * (fam.dim + 2) * eps * (scale[:, :, 0] + np.abs(y))  # both perturbed points
    per_point = resid[:, :, None] * np.abs(X) + 2 * (D + 2) * eps * np.abs(X)
    return per_point.mean(axis=1) / (2 * delta[:, None])


@pytest.mark.parametrize("delta", ["theorem", 0.3, 1e-5], ids=["theorem", "0.3", "1e-5"])
def test_two_calls_agree_with_the_fused_kernel_to_rounding(delta):
    """Not bit-identical (the residuals are rounded differently), within the rounding bound.

    The bound is what float64 rounding of the two forms allows (:func:`rounding_bound`), not a
    fitted tolerance: ``1e-5`` has cancellation, so the bound is far larger there, and the test
    also checks that the bound is tight enough to catch a wrong quotient (below 1e-6 of it).
    """
    fam, kern, T, idx, W, G = oracle_draws()
    kw = dict(delta=delta, rho=fam.rho, alpha=0.3)
    fused = engine.hf_term(kern, W, G, idx, **kw)
    two = engine.hf_term(kern, W, G, idx, oracle="two-calls", **kw)
    np.testing.assert_array_equal(two.deltas, fused.deltas)
    bound = rounding_bound(fam, T, idx, W, G, fused.deltas)
    assert np.all(np.abs(two.D - fused.D) <= bound)
    assert np.max(bound) < 1e-6 * np.max(np.abs(fused.D))  # not vacuous: a wrong D would fail
    rows = welsch_rows(fam, T, idx)  # and against the gradient written out, point by point
    for b, (X, y) in enumerate(rows):
        s = fused.deltas[b] * G[b]
        expected = (welsch_grad(X, y, W[b] + s) - welsch_grad(X, y, W[b] - s)) / (
            2 * fused.deltas[b]
        )
        assert np.all(np.abs(two.D[b] - expected) <= bound[b])


def test_oracles_count_their_work_and_reads():
    fam = tasks.make_welsch_family(6, 5, 20, seed=7, input_scale=2.0)
    W = np.random.default_rng(8).standard_normal((2, fam.dim))
    kw = dict(batch_tasks=3, d_in=2, d_o=4, d_h=5)
    fused = E.direction(fam, W, 0.2, "hfmaml", np.random.default_rng(1), **kw)
    two = E.direction(fam, W, 0.2, "hfmaml", np.random.default_rng(1), oracle="two-calls", **kw)
    fo = E.direction(fam, W, 0.2, "fomaml", np.random.default_rng(1), **kw)
    hvp = E.direction(fam, W, 0.2, "maml", np.random.default_rng(1), hessian="hvp", **kw)
    assert fused.work == E.Work(grads=3 * (2 + 4 + 2 * 5), paired=3 * 5)
    assert two.work == E.Work(grads=3 * (2 + 4 + 2 * 5))
    assert (fo.work.reads(), hvp.work.reads()) == (3 * (2 + 4), 3 * (2 + 4 + 5))
    assert (fused.work.reads(), two.work.reads()) == (3 * (2 + 4 + 5), 3 * (2 + 4 + 2 * 5))
    assert fused.work.cost(10) == two.work.cost(10)  # the same gradients, read once or twice
    assert (E.Work(1, 2, 3, 1) + E.Work(1, 1, 1, 1)) * 2 == E.Work(4, 6, 8, 4)
    np.testing.assert_allclose(two.u, fused.u, rtol=1e-12, atol=1e-15)
    for method in ("fomaml", "maml"):  # the option is HF-MAML's: the others ignore it
        extra = {"hessian": "hvp"} if method == "maml" else {}
        a = E.direction(fam, W, 0.2, method, np.random.default_rng(1), **kw, **extra)
        b = E.direction(
            fam, W, 0.2, method, np.random.default_rng(1), oracle="two-calls", **kw, **extra
        )
        np.testing.assert_array_equal(a.u, b.u)
        assert a.work == b.work


@pytest.mark.parametrize("bad", ["two_calls", "", None, 2])
def test_a_bad_oracle_is_refused_by_name(bad):
    fam = tasks.make_welsch_family(4, 3, 5, seed=0)
    with pytest.raises(ValueError, match="oracle must be one of 'fused', 'two-calls'"):
        E.direction(
            fam, np.zeros(4), 0.1, "hfmaml", np.random.default_rng(0),
            batch_tasks=2, d_in=2, d_o=2, d_h=2, oracle=bad,
        )  # fmt: skip
    with pytest.raises(ValueError, match="oracle must be one of"):
        E.direction_moments(
            fam, np.zeros(4), 0.1, "hfmaml", np.random.default_rng(0), 4,
            batch_tasks=2, d_in=2, d_o=2, d_h=2, oracle=bad,
        )  # fmt: skip


def test_direction_moments_pass_the_oracle_on():
    fam = tasks.make_welsch_family(5, 4, 9, seed=3, input_scale=2.0)
    kw = dict(batch_tasks=2, d_in=2, d_o=3, d_h=4)
    a = E.direction_moments(fam, np.zeros(5), 0.2, "hfmaml", np.random.default_rng(4), 6, **kw)
    b = E.direction_moments(
        fam, np.zeros(5), 0.2, "hfmaml", np.random.default_rng(4), 6, oracle="two-calls", **kw
    )
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-12, atol=1e-16)


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


def test_benchmark_runs_in_quick_mode_and_writes_nothing(capsys, tmp_path):
    target = tmp_path / "cost.json"
    committed = (paths.BENCH_RESULTS / "cost.json").read_bytes()
    bench = load_benchmark()
    assert bench.main(["--quick", "--threads", "0", "--output", str(target)]) == 0  # 0: leave BLAS
    out = capsys.readouterr().out
    assert "HF-MAML (fused)" in out and "HF-MAML (two calls)" in out
    assert "results not written" in out and not target.exists()
    assert (paths.BENCH_RESULTS / "cost.json").read_bytes() == committed


def test_committed_results_are_complete_and_consistent():
    """benchmarks/results/cost.json: every method and d, work as the estimators count it now."""
    res = json.loads((paths.BENCH_RESULTS / "cost.json").read_text())
    cfg, results = res["config"], res["results"]
    assert set(results) == {"maml_hessian", "maml_hvp", "fomaml", "hfmaml", "hfmaml_two_calls"}
    assert cfg["dims"][0] <= 100 and cfg["dims"][-1] >= 10**4
    fam = tasks.make_welsch_family(5, cfg["n_tasks"], cfg["n_points"], seed=0)
    for key, rows in results.items():
        spec = res["methods"][key]
        extra = {k: spec[k] for k in ("hessian", "oracle") if k in spec}
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
            assert (w["paired"], w["reads"]) == (work.paired, work.reads())
            assert w["cost"] == work.cost(r["d"])
            assert r["peak_bytes"] > 0 and len(r["times_ms"]) == r["n"] >= 3
            q25, med, q75 = np.percentile(r["times_ms"], [25, 50, 75])
            assert r["median_ms"] == pytest.approx(med, rel=1e-3)
            assert r["q25_ms"] == pytest.approx(q25, rel=1e-3)
            assert r["q75_ms"] == pytest.approx(q75, rel=1e-3)
    fo = {r["d"]: np.asarray(r["times_ms"]) for r in results["fomaml"]}
    assert cfg["interleaved"] == ["maml_hvp", "fomaml", "hfmaml", "hfmaml_two_calls"]
    for key in cfg["interleaved"]:  # interleaved: the rounds pair up
        for r in results[key]:
            paired = np.median(np.asarray(r["times_ms"]) / fo[r["d"]])
            assert r["paired_ratio_to_fomaml"] == pytest.approx(paired, rel=1e-3)
    assert res["machine"]["load_average_before"] and res["machine"]["blas"]
