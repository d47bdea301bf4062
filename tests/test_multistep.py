"""Multi-step MAML (hfmaml_core.multistep) against oracles that share no code with it.

Oracles: sympy differentiates f(w_N(w)) of a 1-D Welsch task written out as a formula
(N = 1, 2, 3); Richardson-extrapolated central differences of F_N (family and network);
the quadratic family's closed form w_N - c = (I - alpha A)^N (w - c).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from hfmaml_core import meta, tasks
from hfmaml_core import multistep as M
from hfmaml_core import symbolic as Y
from hfmaml_core.mlp import MLP


def richardson(fun, h: float = 1e-2) -> float:
    """Derivative at 0 of a scalar function of t, central differences with two Richardson steps."""

    def D(k):
        return (fun(k) - fun(-k)) / (2 * k)

    d1, d2, d3 = D(h), D(h / 2), D(h / 4)
    r1, r2 = (4 * d2 - d1) / 3, (4 * d3 - d2) / 3
    return (16 * r2 - r1) / 15


@pytest.mark.parametrize("n_steps", [1, 2, 3])
def test_gradient_matches_sympy_1d(n_steps):
    fam = tasks.make_welsch_family(1, n_tasks=1, n_points=2, seed=3, input_scale=2.0)
    w = sp.Symbol("w", real=True)
    f = Y.welsch_task_expr(fam, 0, [w])
    a = 0.7 / fam.L
    df = sp.diff(f, w)  # the same expression at every step: differentiated once
    wn = w
    for _ in range(n_steps):
        wn = wn - a * df.subs(w, wn)
    FN = f.subs(w, wn)
    dF = sp.lambdify(w, sp.diff(FN, w), "math", cse=True)  # cse: the same function, built faster
    FN_num = sp.lambdify(w, FN, "math")
    for w0 in (-1.3, 0.2, 2.5):
        got = M.gradient(fam, np.array([w0]), a, n_steps)[0]
        assert got == pytest.approx(dF(w0), rel=1e-11, abs=1e-13)
        assert M.objective(fam, np.array([w0]), a, n_steps) == pytest.approx(
            float(FN_num(w0)), rel=1e-12
        )


@pytest.mark.parametrize("kind", ["quadratic", "welsch", "ridge"])
@pytest.mark.parametrize("n_steps", [2, 7])
def test_gradient_matches_richardson(kind, n_steps):
    rng = np.random.default_rng(1)
    if kind == "quadratic":
        fam = tasks.make_quadratic_family(3, 3, 4, seed=0, curvature=(-1.0, 1.0))
    elif kind == "welsch":
        fam = tasks.make_welsch_family(3, 3, 8, seed=0, input_scale=2.0)
    else:
        fam = Y.make_ridge_family(3, 3, seed=0)
    a = 0.4 / fam.L
    for _ in range(3):
        w, v = rng.standard_normal(3), rng.standard_normal(3)
        d = richardson(lambda t, w=w, v=v: M.objective(fam, w + t * v, a, n_steps))
        g = M.gradient(fam, w, a, n_steps)
        assert g @ v == pytest.approx(d, rel=1e-8, abs=1e-10)


def test_quadratic_closed_form_and_n1_matches_meta():
    fam = tasks.make_quadratic_family(4, 3, 4, seed=2, curvature=(-1.0, 1.5))
    rng = np.random.default_rng(0)
    w, a, N = rng.standard_normal(4), 0.3 / fam.L, 5
    expect = np.zeros(4)
    for i in range(fam.n_tasks):
        J = np.linalg.matrix_power(np.eye(4) - a * fam.A[i], N)
        expect += fam.probs[i] * J @ fam.A[i] @ J @ (w - fam.c[i])
    np.testing.assert_allclose(M.gradient(fam, w, a, N), expect, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        M.gradient(fam, w, a, 1), meta.family_gradient(fam, w, a), rtol=1e-12
    )
    assert M.smoothness_bound(fam, w, a, 1) == pytest.approx(meta.sharp_smoothness_bound(fam, w, a))
    assert M.gradient(fam, w, a, 0) == pytest.approx(fam.mean_grad(w))


def test_concave_attains_smoothness_bound():
    fam = tasks.make_quadratic_family(2, 2, 2, seed=0, curvature=(-1.0, -1.0))
    a, N = 0.5, 6
    W = np.array([[0.3, -0.2], [1.0, 2.0]])
    k = M.curvature_along(fam, W, np.array([[1.0, 0.0], [0.3, 1.0]]), a, N)
    np.testing.assert_allclose(k, (1 + a) ** (2 * N), rtol=1e-8)
    assert np.all(k <= M.smoothness_bound(fam, W, a, N) * (1 + 1e-8))


def test_fomaml_and_hfmaml():
    fam = tasks.make_welsch_family(3, 4, 8, seed=1, input_scale=2.0)
    rng = np.random.default_rng(2)
    W, T = rng.standard_normal((4, 3)), np.arange(4)
    a, N = 0.5 / fam.L, 4
    exact = M.meta_gradients(fam, W, T, a, N)
    path = M.adapt(fam, W, T, a, N)
    np.testing.assert_allclose(
        M.meta_gradients(fam, W, T, a, N, method="fomaml"), fam.grads(path[-1], T)
    )
    hf = M.meta_gradients(fam, W, T, a, N, method="hfmaml", delta=1e-5)
    np.testing.assert_allclose(hf, exact, rtol=1e-6, atol=1e-9)
    hf_t = M.meta_gradients(fam, W, T, a, N, method="hfmaml")
    assert np.all(np.isfinite(hf_t)) and not np.allclose(hf_t, exact, rtol=1e-10)


def test_minibatch_adaptation_uses_one_batch_per_step():
    fam = tasks.make_welsch_family(2, 3, 16, seed=0)
    rng = np.random.default_rng(0)
    T = np.array([0, 2])
    idx = np.stack([fam.sample_points(rng, 2, 4) for _ in range(3)])
    path = M.adapt(fam, np.zeros(2), T, 0.3, 3, idx)
    w = np.zeros((2, 2))
    for j in range(3):
        w = w - 0.3 * fam.grads(w, T, idx[j])
    np.testing.assert_allclose(path[-1], w)
    with pytest.raises(ValueError, match="idx must be None or an integer array of shape"):
        M.adapt(fam, np.zeros(2), T, 0.3, 2, idx)


def test_network_matches_richardson():
    net = MLP((1, 5, 5, 1))
    rng = np.random.default_rng(0)
    W = net.init(rng, 2)
    X = rng.uniform(-3, 3, (2, 6, 1))
    Yv = np.sin(X)
    Xq = rng.uniform(-3, 3, (2, 4, 1))
    Yq = np.sin(Xq)
    a, N = 0.05, 3
    G = M.net_meta_gradients(net, W, X, Yv, a, N, Xq=Xq, Yq=Yq)
    Vd = rng.standard_normal(W.shape)
    for b in range(2):
        d = richardson(
            lambda t, b=b: M.net_objective(net, W + t * Vd, X, Yv, a, N, Xq, Yq)[b], h=1e-2
        )
        assert G[b] @ Vd[b] == pytest.approx(d, rel=1e-7)
    hf = M.net_meta_gradients(net, W, X, Yv, a, N, Xq=Xq, Yq=Yq, method="hfmaml", delta=1e-5)
    np.testing.assert_allclose(hf, G, rtol=1e-5, atol=1e-8)
    fo = M.net_meta_gradients(net, W, X, Yv, a, N, Xq=Xq, Yq=Yq, method="fomaml")
    np.testing.assert_allclose(fo, net.grads(M.net_adapt(net, W, X, Yv, a, N)[-1], Xq, Yq))


def test_run_converges_and_validates():
    fam = tasks.make_welsch_family(2, 3, 8, seed=0, input_scale=2.0)
    r = M.run(fam, np.full(2, 3.0), 0.5 / fam.L, 3, 2000, tol=1e-3)
    assert r["grad_norm"][-1] <= 1e-3
    with pytest.raises(ValueError, match="n_steps must be an integer >= 0"):
        M.gradient(fam, np.zeros(2), 0.1, -1)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        M.gradient(fam, np.zeros(2), -0.1, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        M.meta_gradients(fam, np.zeros(2), np.array([0]), 0.1, 2, method="sgd")
    with pytest.raises(ValueError, match="delta must be"):
        M.meta_gradients(fam, np.zeros(2), np.array([0]), 0.1, 2, method="hfmaml", delta=0.0)
    with pytest.raises(ValueError, match="step must be one of"):
        M.run(fam, np.zeros(2), 0.1, 2, 5, step="big")


def test_stationary_point_matches_quadratic_closed_form():
    # convex quadratics: F_N(w) = E_i (1/2)(w - c_i)^T A_i (I - alpha A_i)^(2N) (w - c_i), so the
    # minimiser solves (E_i B_i) w = E_i B_i c_i with B_i = A_i (I - alpha A_i)^(2N), Hessian E_i B_i
    fam = tasks.make_quadratic_family(3, 4, 4, seed=5, curvature=(0.5, 2.0))
    a, N = 0.3 / fam.L, 4
    B = [
        fam.A[i] @ np.linalg.matrix_power(np.eye(3) - a * fam.A[i], 2 * N)
        for i in range(fam.n_tasks)
    ]
    H = sum(p * b for p, b in zip(fam.probs, B, strict=True))
    rhs = sum(p * b @ c for p, b, c in zip(fam.probs, B, fam.c, strict=True))
    w, Hn = M.stationary_point(fam, np.full(3, 4.0), a, N)
    np.testing.assert_allclose(w, np.linalg.solve(H, rhs), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(Hn, H, rtol=1e-6, atol=1e-9)
    # a concave family has no minimiser: refused, not a saddle or maximum returned
    conc = tasks.make_quadratic_family(2, 2, 2, seed=0, curvature=(-1.0, -1.0))
    with pytest.raises(ValueError, match="no local minimiser of F_N"):
        M.stationary_point(conc, np.zeros(2), 0.3, 2, n_iter=20)
    with pytest.raises(ValueError, match="max_step must be"):
        M.stationary_point(fam, np.zeros(3), a, N, max_step=0.0)
