"""Kernel tests for :mod:`hfmaml_core.tasks`.

Every exact kernel (loss, gradient, Hessian, HVP; population and mini-batch;
single task and vectorised batch) is checked against oracles that share no code
with the library (``tests/oracles.py``): sympy derivatives of the loss written
out symbolically, and Richardson-extrapolated finite differences. The exact
moments of THEORY A4/A5 are recomputed by brute force, the closed-form constants
``L_i``, ``rho_i`` (THEORY A2/A3) are checked as bounds (and for sharpness where
they are sharp), and sampling is checked for determinism, frequencies and
unbiasedness.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import oracles as O
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from hfmaml_core import tasks as T

HYP = settings(max_examples=25, deadline=None, database=None)
RTOL = 1e-10  # sympy oracle vs library: both are float64 evaluations of the same function
FD_RTOL = 1e-8  # Richardson finite differences (order 8) vs library


# =============================================================================
# helpers
# =============================================================================


def assert_close(actual: object, desired: object, rtol: float, floor: float = 0.0) -> None:
    """Assert ``max|actual - desired| <= rtol * max(max|desired|, floor)``.

    ``floor`` is the natural magnitude of the terms that were summed (see
    :func:`term_scale`), so that a sum which cancels to ~0 is not held to a
    relative tolerance that rounding in its terms cannot meet.
    """
    a = np.asarray(actual, dtype=float)
    d = np.asarray(desired, dtype=float)
    assert a.shape == d.shape, (a.shape, d.shape)
    err = float(np.max(np.abs(a - d))) if a.size else 0.0
    tol = rtol * max(float(np.max(np.abs(d))) if d.size else 0.0, floor)
    assert err <= tol, f"max error {err:.3e} > tolerance {tol:.3e}\nactual={a}\ndesired={d}"


def term_scale(fam: T.TaskFamily, i: int, w: np.ndarray) -> tuple[float, float, float]:
    """Magnitudes of the per-point terms of (loss, gradient, Hessian) of task ``i`` at ``w``."""
    if isinstance(fam, T.WelschRegressionFamily):
        nx = np.linalg.norm(fam.X[i], axis=1)
        return 1.0, float(nx.mean()), float((nx**2).mean())
    L = float(np.linalg.norm(fam.A[i], 2))
    r = float(np.linalg.norm(w - fam.c[i]))
    sb = float(np.max(np.abs(fam.s[i])))
    nb = float(np.max(np.linalg.norm(fam.b[i], axis=1)))
    return 0.5 * sb * L * r * r + nb * r + 1e-300, sb * L * r + nb + 1e-300, sb * L + 1e-300


class OracleTask:
    """sympy oracle for task ``i`` of ``fam`` on data ``idx`` (``None``: population)."""

    def __init__(self, fam: T.TaskFamily, i: int, idx: object = None) -> None:
        self.fam, self.i = fam, i
        if isinstance(fam, T.WelschRegressionFamily):
            X, y = fam.X[i], fam.y[i]
            if idx is not None:
                X, y = X[np.asarray(idx)], y[np.asarray(idx)]
            o = O.welsch_sum_oracle(fam.dim, len(y))
            self.loss = lambda w: o.loss(w, X, y)
            self.grad = lambda w: o.grad(w, X, y)
            self.hess = lambda w: o.hess(w, X, y)
            self.hvp = lambda w, v: o.hvp(w, v, X, y)
        else:
            A, c = fam.A[i], fam.c[i]
            if idx is None:
                o = O.quadratic_sum_oracle(fam.dim, 1)
                s = b = None
            else:
                I = np.asarray(idx)
                o = O.quadratic_sum_oracle(fam.dim, I.size)
                s, b = fam.s[i][I], fam.b[i][I]
            self.loss = lambda w: o.loss(w, A, c, s, b)
            self.grad = lambda w: o.grad(w, A, c, s, b)
            self.hess = lambda w: o.hess(w, A, c, s, b)
            self.hvp = lambda w, v: o.hvp(w, v, A, c, s, b)


def _welsch_class_family() -> T.WelschRegressionFamily:
    r = np.random.default_rng(13)
    X = r.standard_normal((3, 4, 2)) * np.array([0.7, 1.3])
    y = r.standard_normal((3, 4))
    return T.WelschRegressionFamily(X, y, probs=[0.2, 0.3, 0.5])


def _quadratic_class_family() -> T.QuadraticFamily:
    r = np.random.default_rng(16)
    M = r.standard_normal((3, 2, 2))
    A = 0.5 * (M + np.swapaxes(M, 1, 2))  # symmetric and indefinite
    c = r.standard_normal((3, 2))
    s = 1.7 + 0.5 * r.standard_normal((3, 5))  # not centred: the class re-centres
    b = 0.3 + r.standard_normal((3, 5, 2))
    return T.QuadraticFamily(A, c, s, b, probs=[0.5, 0.25, 0.25])


FAMILY_BUILDERS = {
    "welsch-factory-d2": lambda: T.make_welsch_family(2, n_tasks=3, n_points=5, seed=11),
    "welsch-factory-d3": lambda: T.make_welsch_family(3, 2, 6, seed=12, input_scale=1.5),
    "welsch-class": _welsch_class_family,
    "quadratic-factory-d2": lambda: T.make_quadratic_family(2, 3, 5, seed=14, hess_noise=0.4),
    "quadratic-factory-d3": lambda: T.make_quadratic_family(
        3, 2, 6, seed=15, curvature=(-1.0, 2.0), hess_noise=0.2
    ),
    "quadratic-class": _quadratic_class_family,
}


@pytest.fixture(scope="module", params=sorted(FAMILY_BUILDERS))
def family(request: pytest.FixtureRequest) -> T.TaskFamily:
    """One small family per parameter: both kinds, built by factory and by class."""
    return FAMILY_BUILDERS[request.param]()


def sample_ws(fam: T.TaskFamily, seed: int, scales=(0.3, 1.0, 3.0)) -> list[np.ndarray]:
    """A few random points ``w`` at several scales."""
    r = np.random.default_rng(seed)
    return [s * r.standard_normal(fam.dim) for s in scales]


def no_fp_errors():
    """Context: overflow, invalid and divide-by-zero raise (underflow to 0 is legitimate)."""
    return np.errstate(over="raise", invalid="raise", divide="raise")


# =============================================================================
# exact kernels against sympy and Richardson finite differences
# =============================================================================


def test_exact_kernels_match_sympy(family: T.TaskFamily) -> None:
    """Population loss/grad/hess/hvp equal the sympy derivatives of the symbolic loss.

    Checks the Task API and the vectorised family API for every task, at random
    ``w`` on three scales. The oracle differentiates the loss written out from the
    family's data arrays, so a wrong sign or factor in any kernel shows up.
    """
    r = np.random.default_rng(1)
    for w in sample_ws(family, 2):
        v = r.standard_normal(family.dim)
        for i, task in enumerate(family.tasks):
            o = OracleTask(family, i)
            sl, sg, sh = term_scale(family, i, w)
            assert_close(task.loss(w), o.loss(w), RTOL, sl)
            assert_close(task.grad(w), o.grad(w), RTOL, sg)
            assert_close(task.hess(w), o.hess(w), RTOL, sh)
            assert_close(task.hvp(w, v), o.hvp(w, v), RTOL, sh * np.linalg.norm(v))
            Ti = np.array([i])
            assert_close(family.losses(w[None], Ti)[0], o.loss(w), RTOL, sl)
            assert_close(family.grads(w[None], Ti)[0], o.grad(w), RTOL, sg)
            assert_close(family.hessians(w[None], Ti)[0], o.hess(w), RTOL, sh)
            hv = family.hvps(w[None], v[None], Ti)[0]
            assert_close(hv, o.hvp(w, v), RTOL, sh * np.linalg.norm(v))


def test_minibatch_kernels_match_sympy(family: T.TaskFamily) -> None:
    """Mini-batch kernels equal the sympy oracle built on the batch's points.

    Batches include repeated indices (a point drawn twice counts twice, as in
    sampling with replacement) and a single point.
    """
    n = family.n_points
    batches = [
        np.array([0, 0, 2, n - 1]),
        np.array([1]),
        np.array([n - 1, n - 1, n - 1]),
        np.arange(n)[::-1].copy(),
    ]
    r = np.random.default_rng(3)
    for w in sample_ws(family, 4, scales=(0.5, 2.0)):
        v = r.standard_normal(family.dim)
        for i, task in enumerate(family.tasks):
            sl, sg, sh = term_scale(family, i, w)
            for idx in batches:
                o = OracleTask(family, i, idx)
                assert_close(task.loss(w, idx), o.loss(w), RTOL, sl)
                assert_close(task.grad(w, idx), o.grad(w), RTOL, sg)
                assert_close(task.hess(w, idx), o.hess(w), RTOL, sh)
                assert_close(task.hvp(w, v, idx), o.hvp(w, v), RTOL, sh * np.linalg.norm(v))


def test_kernels_match_richardson(family: T.TaskFamily) -> None:
    """grad = FD(loss) and hess = FD(grad), exact and mini-batch (Richardson, order 8).

    An oracle of a different nature from sympy: it only assumes the kernels are
    mutually consistent derivatives, so it also catches an error shared by the
    symbolic model and the library (e.g. a misread formula).
    """
    idx = np.array([0, 1, 1, family.n_points - 1])
    for w in sample_ws(family, 5, scales=(0.5, 1.5)):
        for i, task in enumerate(family.tasks):
            _, sg, sh = term_scale(family, i, w)
            for I in (None, idx):
                g_fd = O.fd_gradient(lambda x, I=I, t=task: t.loss(x, I), w)
                assert_close(task.grad(w, I), g_fd, FD_RTOL, sg)
                H_fd = O.fd_jacobian(lambda x, I=I, t=task: t.grad(x, I), w)
                assert_close(task.hess(w, I), H_fd, FD_RTOL, sh)


def test_population_is_mean_over_points(family: T.TaskFamily) -> None:
    """The population kernels are the uniform average over the task's data points.

    For Welsch this holds exactly (the population *is* the average); for the
    quadratic family the population uses the closed form, which the re-centred
    data average to up to rounding.
    """
    rtol = 1e-14 if isinstance(family, T.WelschRegressionFamily) else 1e-12
    n = family.n_points
    for w in sample_ws(family, 6):
        for i, task in enumerate(family.tasks):
            sl, sg, sh = term_scale(family, i, w)
            single = [np.array([j]) for j in range(n)]
            assert_close(task.loss(w), np.mean([task.loss(w, j) for j in single]), rtol, sl)
            assert_close(task.grad(w), np.mean([task.grad(w, j) for j in single], axis=0), rtol, sg)
            assert_close(task.hess(w), np.mean([task.hess(w, j) for j in single], axis=0), rtol, sh)
            assert_close(task.grad(w), family.point_grads(w, i).mean(axis=0), rtol, sg)
            assert_close(task.hess(w), family.point_hessians(w, i).mean(axis=0), rtol, sh)
            full = np.arange(n)
            assert_close(task.loss(w, full), task.loss(w), rtol, sl)
            assert_close(task.grad(w, full), task.grad(w), rtol, sg)
            assert_close(task.hess(w, full), task.hess(w), rtol, sh)


def test_point_kernels_match_single_point_batches(family: T.TaskFamily) -> None:
    """``point_grads``/``point_hessians`` row ``j`` equals the batch kernel on ``idx=[j]``."""
    for w in sample_ws(family, 7, scales=(1.0,)):
        for i, task in enumerate(family.tasks):
            _, sg, sh = term_scale(family, i, w)
            PG = family.point_grads(w, i)
            PH = family.point_hessians(w, i)
            assert PG.shape == (family.n_points, family.dim)
            assert PH.shape == (family.n_points, family.dim, family.dim)
            for j in range(family.n_points):
                assert_close(PG[j], task.grad(w, [j]), 1e-13, sg)
                assert_close(PH[j], task.hess(w, [j]), 1e-13, sh)


def test_vectorised_batch_equals_per_task_calls(family: T.TaskFamily) -> None:
    """``losses/grads/hessians/hvps`` on B (task, w, idx) triples equal B single calls.

    Tasks repeat in the batch; ``idx`` comes from ``sample_points``; 1-D ``W`` and
    ``V`` broadcast over the batch.
    """
    r = np.random.default_rng(8)
    B, D = 7, 3
    Tb = r.integers(0, family.n_tasks, size=B)
    W = r.standard_normal((B, family.dim))
    Vb = r.standard_normal((B, family.dim))
    idx = family.sample_points(r, B, D)
    for I in (None, idx):
        per = [family.tasks[t] for t in Tb]
        rows = [None if I is None else I[b] for b in range(B)]
        exp_l = np.array([t.loss(W[b], rows[b]) for b, t in enumerate(per)])
        exp_g = np.array([t.grad(W[b], rows[b]) for b, t in enumerate(per)])
        exp_h = np.array([t.hess(W[b], rows[b]) for b, t in enumerate(per)])
        exp_v = np.array([t.hvp(W[b], Vb[b], rows[b]) for b, t in enumerate(per)])
        got_l, got_g = family.losses(W, Tb, I), family.grads(W, Tb, I)
        got_h, got_v = family.hessians(W, Tb, I), family.hvps(W, Vb, Tb, I)
        assert got_l.shape == (B,) and got_g.shape == (B, family.dim)
        assert got_h.shape == (B, family.dim, family.dim) and got_v.shape == (B, family.dim)
        np.testing.assert_allclose(got_l, exp_l, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(got_g, exp_g, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(got_h, exp_h, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(got_v, exp_v, rtol=1e-13, atol=1e-15)
        # 1-D w and v broadcast to every row
        w0, v0 = W[0], Vb[0]
        np.testing.assert_allclose(
            family.grads(w0, Tb, I),
            np.array([t.grad(w0, rows[b]) for b, t in enumerate(per)]),
            rtol=1e-13,
            atol=1e-15,
        )
        np.testing.assert_allclose(
            family.hvps(w0, v0, Tb, I),
            np.array([t.hvp(w0, v0, rows[b]) for b, t in enumerate(per)]),
            rtol=1e-13,
            atol=1e-15,
        )


def test_hvp_equals_hessian_times_v(family: T.TaskFamily) -> None:
    """The matrix-free HVP equals ``hess @ v`` (exact and mini-batch)."""
    r = np.random.default_rng(9)
    for w in sample_ws(family, 10):
        v = r.standard_normal(family.dim)
        for i, task in enumerate(family.tasks):
            _, _, sh = term_scale(family, i, w)
            for I in (None, np.array([0, 2, 2])):
                assert_close(task.hvp(w, v, I), task.hess(w, I) @ v, 1e-13, sh * np.linalg.norm(v))


def test_mean_loss_and_mean_grad_use_probs(family: T.TaskFamily) -> None:
    """``mean_loss``/``mean_grad``/``task_grads`` are the ``probs``-weighted task averages."""
    for w in sample_ws(family, 11):
        G = np.array([OracleTask(family, i).grad(w) for i in range(family.n_tasks)])
        Lv = np.array([OracleTask(family, i).loss(w) for i in range(family.n_tasks)])
        floor_g = max(term_scale(family, i, w)[1] for i in range(family.n_tasks))
        floor_l = max(term_scale(family, i, w)[0] for i in range(family.n_tasks))
        assert_close(family.task_grads(w), G, RTOL, floor_g)
        assert_close(family.mean_grad(w), family.probs @ G, RTOL, floor_g)
        assert_close(family.mean_loss(w), family.probs @ Lv, RTOL, floor_l)


# =============================================================================
# exact moments (THEORY A4, A5) by brute force
# =============================================================================


def brute_point_grads_hessians(fam: T.TaskFamily, i: int, w: np.ndarray):
    """Per-point gradients/Hessians and population gradient/Hessian, computed independently."""
    if isinstance(fam, T.WelschRegressionFamily):
        o = O.welsch_point_oracle(fam.dim)
        PG = o.point_grads(w, fam.X[i], fam.y[i])
        PH = o.point_hessians(w, fam.X[i], fam.y[i])
        return PG, PH, PG.mean(axis=0), PH.mean(axis=0)
    A, c, s, b = fam.A[i], fam.c[i], fam.s[i], fam.b[i]
    PG = np.array([s[j] * (A @ (w - c)) + b[j] for j in range(fam.n_points)])
    PH = np.array([s[j] * A for j in range(fam.n_points)])
    return PG, PH, A @ (w - c), A


def spectral_norm_sym(M: np.ndarray) -> float:
    """Spectral norm of a symmetric matrix via its eigenvalues."""
    return float(np.max(np.abs(np.linalg.eigvalsh(M))))


def test_moments_brute_force(family: T.TaskFamily) -> None:
    """``sigma_sq``, ``sigma_tilde_sq``, ``sigma_h_sq`` equal their definitions (THEORY A4, A5).

    Brute force: explicit loops over tasks and points, ``probs``-weighted task
    dissimilarity, spectral norms from ``eigvalsh``.
    """
    for w in sample_ws(family, 12):
        Gs, st_exp, sh_exp = [], [], []
        for i in range(family.n_tasks):
            PG, PH, g, H = brute_point_grads_hessians(family, i, w)
            Gs.append(g)
            st_exp.append(np.mean([np.sum((PG[j] - g) ** 2) for j in range(family.n_points)]))
            sh_exp.append(
                np.mean([spectral_norm_sym(PH[j] - H) ** 2 for j in range(family.n_points)])
            )
        Gs = np.array(Gs)
        gbar = sum(family.probs[i] * Gs[i] for i in range(family.n_tasks))
        sig = sum(family.probs[i] * np.sum((Gs[i] - gbar) ** 2) for i in range(family.n_tasks))
        floor_g = max(term_scale(family, i, w)[1] for i in range(family.n_tasks))
        floor_h = max(term_scale(family, i, w)[2] for i in range(family.n_tasks))
        assert_close(family.sigma_sq(w), sig, 1e-9, floor_g**2)
        assert_close(family.sigma_tilde_sq(w), np.array(st_exp), 1e-9, floor_g**2)
        assert_close(family.sigma_h_sq(w), np.array(sh_exp), 1e-9, floor_h**2)


def test_quadratic_factory_noise_is_exact() -> None:
    """``make_quadratic_family`` scales its noise exactly as documented.

    ``mean_j ||b_ij||^2 = grad_noise^2``, ``std_j s_ij = hess_noise``, ``s`` centred
    at 1 and ``b`` at 0; hence with ``hess_noise=0`` the gradient noise is
    ``grad_noise^2`` at every ``w`` and with ``hess_noise>0`` the Hessian noise is
    ``hess_noise^2 L_i^2`` (THEORY A5 computed in closed form).
    """
    fam = T.make_quadratic_family(3, 4, 7, seed=21, grad_noise=0.7, hess_noise=0.3)
    np.testing.assert_allclose(np.mean(np.sum(fam.b**2, axis=2), axis=1), 0.49, rtol=1e-13)
    np.testing.assert_allclose(np.std(fam.s, axis=1), 0.3, rtol=1e-13)
    np.testing.assert_allclose(fam.s.mean(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(fam.b.mean(axis=1), 0.0, atol=1e-15)
    w = np.random.default_rng(0).standard_normal(3)
    np.testing.assert_allclose(fam.sigma_h_sq(w), 0.09 * fam.L_tasks**2, rtol=1e-12)
    flat = T.make_quadratic_family(3, 4, 7, seed=21, grad_noise=0.7, hess_noise=0.0)
    for w in sample_ws(flat, 22, scales=(0.0, 1.0, 100.0)):
        np.testing.assert_allclose(flat.sigma_tilde_sq(w), 0.49, rtol=1e-11)
        np.testing.assert_allclose(flat.sigma_h_sq(w), 0.0, atol=1e-24)


def test_quadratic_class_recentres_data() -> None:
    """``QuadraticFamily`` shifts ``s`` to mean 1 and ``b`` to mean 0 per task, keeping spreads."""
    r = np.random.default_rng(23)
    A = np.stack([np.eye(2), 2 * np.eye(2)])
    s = 3.0 + r.standard_normal((2, 4))
    b = 5.0 + r.standard_normal((2, 4, 2))
    fam = T.QuadraticFamily(A, np.zeros((2, 2)), s, b)
    np.testing.assert_allclose(fam.s, s - s.mean(axis=1, keepdims=True) + 1.0, rtol=1e-15)
    np.testing.assert_allclose(fam.b, b - b.mean(axis=1, keepdims=True), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(fam.probs, [0.5, 0.5])
    np.testing.assert_allclose(fam.L_tasks, [1.0, 2.0])
    np.testing.assert_array_equal(fam.rho_tasks, [0.0, 0.0])


# =============================================================================
# closed-form constants (THEORY A2, A3)
# =============================================================================


def test_welsch_max_derivative_constants_match_sympy() -> None:
    """``WELSCH_MAX_D2 = max|phi''|`` and ``WELSCH_MAX_D3 = max|phi'''|`` (sympy, exact).

    sympy solves ``phi'''' = 0`` (resp. ``phi''' = 0``) exactly and takes the largest
    ``|phi'''|`` (resp. ``|phi''|``) at the critical points.
    """
    d2 = float(O.welsch_max_abs_derivative(2).evalf(30))
    d3 = float(O.welsch_max_abs_derivative(3).evalf(30))
    assert T.WELSCH_MAX_D2 == pytest.approx(d2, rel=1e-15)
    assert T.WELSCH_MAX_D3 == pytest.approx(d3, rel=1e-15)
    # and a dense grid never exceeds them (guards against a missed critical point)
    r = np.linspace(-10, 10, 200001)
    assert np.max(np.abs(T.welsch(r, 2))) <= T.WELSCH_MAX_D2 * (1 + 1e-15)
    assert np.max(np.abs(T.welsch(r, 3))) <= T.WELSCH_MAX_D3 * (1 + 1e-15)
    assert np.max(np.abs(T.welsch(r, 3))) >= T.WELSCH_MAX_D3 * (1 - 1e-8)


def test_welsch_constants_closed_form(family: T.TaskFamily) -> None:
    """``L_i`` and ``rho_i`` equal their closed forms recomputed here (THEORY A2, A3).

    Welsch: ``L_i = max|phi''| ||Sigma_i||``, ``rho_i = max|phi'''| ||M_i||``;
    quadratic: ``L_i = ||A_i||_2``, ``rho_i = 0``; ``L``/``rho`` are the maxima and
    each ``Task`` reports its own entry.
    """
    if isinstance(family, T.WelschRegressionFamily):
        d3 = float(O.welsch_max_abs_derivative(3).evalf(30))
        L_exp, rho_exp = [], []
        for i in range(family.n_tasks):
            X = family.X[i]
            Sigma = sum(np.outer(x, x) for x in X) / len(X)
            M = sum(np.linalg.norm(x) * np.outer(x, x) for x in X) / len(X)
            L_exp.append(spectral_norm_sym(Sigma))
            rho_exp.append(d3 * spectral_norm_sym(M))
    else:
        L_exp = [spectral_norm_sym(A) for A in family.A]
        rho_exp = [0.0] * family.n_tasks
    np.testing.assert_allclose(family.L_tasks, L_exp, rtol=1e-13)
    np.testing.assert_allclose(family.rho_tasks, rho_exp, rtol=1e-13, atol=0)
    assert family.L == pytest.approx(max(L_exp), rel=1e-13)
    assert family.rho == pytest.approx(max(rho_exp), rel=1e-13, abs=0)
    for i, task in enumerate(family.tasks):
        assert task.L == family.L_tasks[i] and task.rho == family.rho_tasks[i]
        assert task.index == i and f"index={i}" in repr(task)
    assert f"dim={family.dim}" in repr(family)


def check_L_rho_bounds(fam: T.TaskFamily, seed: int, n_pairs: int, scales) -> None:
    """``||H_i(w)|| <= L_i`` and ``||H_i(w) - H_i(u)|| <= rho_i ||w - u||`` at random points."""
    r = np.random.default_rng(seed)
    for i in range(fam.n_tasks):
        if isinstance(fam, T.WelschRegressionFamily):
            po, X, y = O.welsch_point_oracle(fam.dim), fam.X[i], fam.y[i]
            hess = lambda w, po=po, X=X, y=y: po.hess(w, X, y)  # noqa: E731
        else:
            hess = OracleTask(fam, i).hess
        _, _, sh = term_scale(fam, i, np.zeros(fam.dim))
        for k in range(n_pairs):
            w = scales[k % len(scales)] * r.standard_normal(fam.dim)
            Hw = hess(w)
            assert spectral_norm_sym(Hw) <= fam.L_tasks[i] * (1 + 1e-12) + 1e-14 * sh
            step = 10.0 ** r.uniform(-3, 1)
            u = w + step * r.standard_normal(fam.dim) / math.sqrt(fam.dim)
            ratio = spectral_norm_sym(hess(u) - Hw) / np.linalg.norm(u - w)
            slack = 1e-12 * fam.rho_tasks[i] + 1e-13 * sh / np.linalg.norm(u - w)
            assert ratio <= fam.rho_tasks[i] + slack, (i, w, u, ratio, fam.rho_tasks[i])


def test_L_and_rho_bound_the_hessian(family: T.TaskFamily) -> None:
    """``L_i`` bounds the Hessian norm and ``rho_i`` its Lipschitz ratio at many points.

    Points range from ``1e-3`` to ``1e6`` in size; Hessians come from the sympy
    oracle, so this checks the closed-form constants against the true function.
    """
    check_L_rho_bounds(family, 31, 60, scales=(1e-3, 0.3, 1.0, 3.0, 1e3, 1e6))


def test_welsch_constants_are_sharp_for_one_point() -> None:
    """For one data point in ``d = 1`` both constants are attained.

    ``f(w) = phi(xw - y)``: ``H(w) = x^2 phi''(xw - y)`` so ``L = x^2`` at ``r = 0`` and
    the Lipschitz ratio of ``H`` tends to ``|x|^3 max|phi'''| = rho`` around
    ``r^2 = 3 - sqrt 6``. A constant that is too large (or too small) fails here.
    """
    x, y = -1.7, 0.4
    fam = T.WelschRegressionFamily([[[x]]], [[y]])
    assert fam.L == pytest.approx(x * x, rel=1e-15)
    d3 = float(O.welsch_max_abs_derivative(3).evalf(30))
    assert fam.rho == pytest.approx(abs(x) ** 3 * d3, rel=1e-14)
    task = fam.tasks[0]
    assert abs(task.hess(np.array([y / x]))[0, 0]) == pytest.approx(fam.L, rel=1e-15)
    r0 = math.sqrt(3.0 - math.sqrt(6.0))
    eps = 1e-4
    w1, w2 = np.array([(y + r0 - eps) / x]), np.array([(y + r0 + eps) / x])
    ratio = abs(task.hess(w1)[0, 0] - task.hess(w2)[0, 0]) / abs(w1[0] - w2[0])
    assert fam.rho * (1 - 1e-6) <= ratio <= fam.rho * (1 + 1e-12)


# =============================================================================
# the scalar Welsch loss and numerical stability
# =============================================================================


def test_welsch_function_matches_sympy() -> None:
    """``welsch(r, k)`` equals sympy's ``d^k/dr^k (1 - exp(-r^2/2))`` on a grid, k = 0..3."""
    rs = sp.Symbol("r", real=True)
    phi = O.welsch_phi(rs)
    r = np.concatenate([np.linspace(-8, 8, 401), [1e-3, -2.5e-2, 37.0, -38.0]])
    for k in range(4):
        f = sp.lambdify(rs, sp.diff(phi, rs, k), "numpy")
        np.testing.assert_allclose(T.welsch(r, k), f(r), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match=r"order must be an integer in \[0, 3\]"):
        T.welsch(r, 4)


def test_welsch_small_residual_relative_accuracy() -> None:
    """``phi(r)`` keeps full relative accuracy for tiny ``r`` (no ``1 - exp`` cancellation)."""
    r = np.array([1e-10, 1e-6, -3e-4])
    series = r**2 / 2 - r**4 / 8 + r**6 / 48
    np.testing.assert_allclose(T.welsch(r, 0), series, rtol=1e-14)


@pytest.mark.parametrize("r", [1e6, -1e6, 1e100, 1e300, -1e300, 1.7e308, np.inf, -np.inf])
def test_welsch_huge_residual_is_exact_and_silent(r: float) -> None:
    """For huge ``|r|`` (even inf) ``phi = 1`` and every derivative is 0, with no FP warnings."""
    with warnings.catch_warnings(), no_fp_errors():
        warnings.simplefilter("error")
        vals = [float(T.welsch(np.array([r]), k)[0]) for k in range(4)]
    assert vals == [1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("scale", [1e6, 1e100, 1e300])
@pytest.mark.parametrize("dim", [1, 3, 6])
def test_welsch_kernels_finite_at_huge_w(scale: float, dim: int) -> None:
    """All Welsch kernels are finite and warning-free at ``|w|`` up to 1e300.

    The residuals are then huge, so the exact values are known: loss 1, gradient,
    Hessian, HVP and all noise moments 0.
    """
    fam = T.make_welsch_family(dim, 3, 5, seed=40 + dim)
    r = np.random.default_rng(41)
    w = r.standard_normal(dim)
    w = scale * w / np.max(np.abs(w))
    v = r.standard_normal(dim)
    idx = fam.sample_points(r, 3, 4)
    Tb = np.arange(3)
    with warnings.catch_warnings(), no_fp_errors():
        warnings.simplefilter("error")
        out = {
            "losses": fam.losses(w, Tb),
            "losses_b": fam.losses(w, Tb, idx),
            "grads": fam.grads(w, Tb),
            "grads_b": fam.grads(w, Tb, idx),
            "hessians": fam.hessians(w, Tb, idx),
            "hvps": fam.hvps(w, v, Tb, idx),
            "sigma_sq": np.array(fam.sigma_sq(w)),
            "sigma_tilde_sq": fam.sigma_tilde_sq(w),
            "sigma_h_sq": fam.sigma_h_sq(w),
            "point_grads": fam.point_grads(w, 0),
            "point_hessians": fam.point_hessians(w, 0),
            "mean_loss": np.array(fam.mean_loss(w)),
        }
    for name, val in out.items():
        assert np.all(np.isfinite(val)), name
    np.testing.assert_array_equal(out["losses"], 1.0)
    np.testing.assert_array_equal(out["grads"], 0.0)
    np.testing.assert_array_equal(out["hessians"], 0.0)
    np.testing.assert_array_equal(out["sigma_tilde_sq"], 0.0)


# =============================================================================
# sampling
# =============================================================================


def test_sampling_is_deterministic_per_seed() -> None:
    """Same seed, same draws (tasks, point batches, ``Task.sample``); another seed differs."""
    fam = T.make_welsch_family(2, 5, 9, seed=50, probs=[0.1, 0.2, 0.3, 0.2, 0.2])

    def draws(seed: int):
        r = np.random.default_rng(seed)
        return fam.sample_tasks(r, 30), fam.sample_points(r, 4, 6), fam.tasks[2].sample(r, 11)

    a, b, c = draws(51), draws(51), draws(52)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c, strict=True))
    assert a[0].shape == (30,) and a[1].shape == (4, 6) and a[2].shape == (11,)
    assert a[1].dtype.kind in "iu" and a[2].dtype.kind in "iu"
    assert a[1].min() >= 0 and a[1].max() < fam.n_points


def test_factories_are_deterministic_per_seed() -> None:
    """A factory called twice with one seed builds identical data; another seed differs."""
    for make in (T.make_welsch_family, T.make_quadratic_family):
        f1, f2, f3 = make(3, 2, 4, seed=7), make(3, 2, 4, seed=7), make(3, 2, 4, seed=8)
        arrays = ("X", "y") if make is T.make_welsch_family else ("A", "c", "s", "b")
        for name in arrays:
            np.testing.assert_array_equal(getattr(f1, name), getattr(f2, name))
        assert not np.array_equal(getattr(f1, arrays[0]), getattr(f3, arrays[0]))


def test_sample_tasks_frequencies_follow_probs() -> None:
    """Task frequencies over 40000 draws are within 4 standard errors of ``probs``."""
    probs = np.array([0.05, 0.15, 0.3, 0.5])
    fam = T.make_quadratic_family(2, 4, 3, seed=60, probs=probs)
    N = 40_000
    counts = np.bincount(fam.sample_tasks(np.random.default_rng(61), N), minlength=4)
    se = np.sqrt(probs * (1 - probs) / N)
    assert np.all(np.abs(counts / N - probs) <= 4 * se), counts / N


def test_sample_points_is_uniform() -> None:
    """Data indices over 4000 x 10 draws are uniform on ``[0, n)`` within 4 standard errors."""
    fam = T.make_welsch_family(2, 2, 7, seed=62)
    I = fam.sample_points(np.random.default_rng(63), 4000, 10)
    N = I.size
    freq = np.bincount(I.ravel(), minlength=7) / N
    p = 1 / 7
    assert np.all(np.abs(freq - p) <= 4 * math.sqrt(p * (1 - p) / N)), freq


@pytest.mark.parametrize("kind", ["welsch", "quadratic"])
def test_minibatch_unbiased_by_exact_enumeration(kind: str) -> None:
    """Over all ``n^D`` equally likely batches, the mini-batch gradient/Hessian average to the
    population ones and the gradient variance is exactly ``sigma_tilde_i^2 / D`` (module docstring).
    """
    fam = T.make_family(
        kind,
        2,
        seed=70,
        n_tasks=2,
        n_points=4,
        **({"hess_noise": 0.5} if kind == "quadratic" else {}),
    )
    w = np.array([0.3, -0.8])
    D = 3
    batches = np.array(list(itertools.product(range(4), repeat=D)))
    for i, task in enumerate(fam.tasks):
        Tb = np.full(len(batches), i)
        G = fam.grads(w, Tb, batches)
        H = fam.hessians(w, Tb, batches)
        g = task.grad(w)
        np.testing.assert_allclose(G.mean(axis=0), g, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(H.mean(axis=0), task.hess(w), rtol=1e-12, atol=1e-14)
        var = np.mean(np.sum((G - g) ** 2, axis=1))
        np.testing.assert_allclose(var, fam.sigma_tilde_sq(w)[i] / D, rtol=1e-11)


def test_minibatch_unbiased_monte_carlo() -> None:
    """Mean of 4000 sampled mini-batch gradients is within 4 standard errors of the exact one.

    The standard error per coordinate is ``sqrt(var_k / (D N))`` with ``var_k`` the
    exact per-point variance of coordinate ``k``.
    """
    fam = T.make_welsch_family(3, 2, 20, seed=80)
    w = np.array([0.2, -0.4, 0.9])
    r = np.random.default_rng(81)
    N, D = 4000, 5
    for i, task in enumerate(fam.tasks):
        idx = task.family.sample_points(r, N, D)
        G = fam.grads(w, np.full(N, i), idx)
        PG = fam.point_grads(w, i)
        se = np.sqrt(PG.var(axis=0) / (D * N))
        assert np.all(np.abs(G.mean(axis=0) - task.grad(w)) <= 4 * se)


# =============================================================================
# property-based tests over shapes, seeds and scales
# =============================================================================


@HYP
@given(
    d=st.integers(1, 6),
    n=st.integers(1, 6),
    m=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
)
def test_welsch_kernels_property(d: int, n: int, m: int, seed: int, scale: float) -> None:
    """Any shape/seed/scale: Welsch kernels equal the per-point sympy oracle averaged."""
    fam = T.make_welsch_family(d, m, n, seed=seed)
    r = np.random.default_rng(seed)
    w = scale * r.standard_normal(d)
    v = r.standard_normal(d)
    o = O.welsch_point_oracle(d)
    i = int(r.integers(0, m))
    task = fam.tasks[i]
    idx = r.integers(0, n, size=int(r.integers(1, 8)))
    for I in (None, idx):
        X = fam.X[i] if I is None else fam.X[i][I]
        y = fam.y[i] if I is None else fam.y[i][I]
        _, sg, sh = term_scale(fam, i, w)
        assert_close(task.loss(w, I), o.loss(w, X, y), RTOL, 1.0)
        assert_close(task.grad(w, I), o.grad(w, X, y), RTOL, sg)
        assert_close(task.hess(w, I), o.hess(w, X, y), RTOL, sh)
        assert_close(task.hvp(w, v, I), o.hess(w, X, y) @ v, RTOL, sh * np.linalg.norm(v))


@HYP
@given(
    d=st.integers(1, 6),
    n=st.integers(2, 6),
    m=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
    hess_noise=st.floats(0.0, 1.0),
)
def test_quadratic_kernels_property(
    d: int, n: int, m: int, seed: int, scale: float, hess_noise: float
) -> None:
    """Any shape/seed/scale: quadratic kernels equal the closed forms written out here."""
    fam = T.make_quadratic_family(d, m, n, seed=seed, hess_noise=hess_noise, curvature=(-1.0, 2.0))
    r = np.random.default_rng(seed)
    w = scale * r.standard_normal(d)
    v = r.standard_normal(d)
    i = int(r.integers(0, m))
    task = fam.tasks[i]
    A, c = fam.A[i], fam.c[i]
    diff = w - c
    sl, sg, sh = term_scale(fam, i, w)
    assert_close(task.loss(w), 0.5 * diff @ A @ diff, 1e-12, sl)
    assert_close(task.grad(w), A @ diff, 1e-12, sg)
    assert_close(task.hess(w), A, 1e-15, sh)
    idx = r.integers(0, n, size=int(r.integers(1, 8)))
    sbar, bbar = fam.s[i][idx].mean(), fam.b[i][idx].mean(axis=0)
    assert_close(task.loss(w, idx), 0.5 * sbar * diff @ A @ diff + bbar @ diff, 1e-12, sl)
    assert_close(task.grad(w, idx), sbar * (A @ diff) + bbar, 1e-12, sg)
    assert_close(task.hess(w, idx), sbar * A, 1e-13, sh)
    assert_close(task.hvp(w, v, idx), sbar * (A @ v), 1e-13, sh * np.linalg.norm(v))


@HYP
@given(
    kind=st.sampled_from(["welsch", "quadratic"]),
    d=st.integers(1, 6),
    n=st.integers(2, 6),
    m=st.integers(1, 4),
    B=st.integers(1, 6),
    D=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_batch_equals_per_task_property(
    kind: str, d: int, n: int, m: int, B: int, D: int, seed: int
) -> None:
    """Any shapes: the vectorised batch kernels equal per-task calls row by row."""
    fam = T.make_family(kind, d, seed=seed, n_tasks=m, n_points=n)
    r = np.random.default_rng(seed)
    Tb = fam.sample_tasks(r, B)
    W = r.standard_normal((B, d))
    Vb = r.standard_normal((B, d))
    idx = fam.sample_points(r, B, D)
    G, Hv = fam.grads(W, Tb, idx), fam.hvps(W, Vb, Tb, idx)
    for b in range(B):
        task = fam.tasks[Tb[b]]
        np.testing.assert_allclose(G[b], task.grad(W[b], idx[b]), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(Hv[b], task.hvp(W[b], Vb[b], idx[b]), rtol=1e-13, atol=1e-15)


@HYP
@given(
    d=st.integers(1, 6),
    n=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    input_scale=st.floats(0.1, 3.0),
)
def test_welsch_constants_property(d: int, n: int, seed: int, input_scale: float) -> None:
    """Any shape/seed/input scale: ``L_i`` and ``rho_i`` bound the true Hessian (sympy)."""
    fam = T.make_welsch_family(d, 2, n, seed=seed, input_scale=input_scale)
    check_L_rho_bounds(fam, seed, 8, scales=(1e-3, 0.5, 2.0, 1e3))


# =============================================================================
# additive API: Frobenius Hessian noise, sampling without replacement
# =============================================================================


@pytest.mark.parametrize("kind", ["welsch", "quadratic"])
def test_sigma_h_sq_frobenius_brute_force(kind: str) -> None:
    """``sigma_h_sq(w, "frobenius")`` is the mean squared Frobenius deviation (explicit loops),
    at least the operator value, and the default is unchanged (operator norm)."""
    fam = (
        T.make_welsch_family(3, 3, 6, seed=71, input_scale=2.0)
        if kind == "welsch"
        else T.make_quadratic_family(3, 3, 6, seed=71, hess_noise=0.4)
    )
    for w in sample_ws(fam, 72):
        exp = []
        for i in range(fam.n_tasks):
            _, PH, _, H = brute_point_grads_hessians(fam, i, w)
            exp.append(np.mean([np.sum((PH[j] - H) ** 2) for j in range(fam.n_points)]))
        fro = fam.sigma_h_sq(w, "frobenius")
        floor = max(term_scale(fam, i, w)[2] for i in range(fam.n_tasks))
        assert_close(fro, np.array(exp), 1e-9, floor**2)
        assert np.all(fam.sigma_h_sq(w, "operator") <= fro * (1 + 1e-12) + 1e-300)
        np.testing.assert_array_equal(fam.sigma_h_sq(w), fam.sigma_h_sq(w, "operator"))
    with pytest.raises(ValueError, match="norm must be one of"):
        fam.sigma_h_sq(np.zeros(3), "nuclear")


def test_sample_points_without_replacement() -> None:
    """``replace=False``: distinct indices per batch, uniform marginals, and the default draws
    are unchanged (same generator state gives the same batches as before the option)."""
    fam = T.make_welsch_family(2, 2, 7, seed=62)
    I = fam.sample_points(np.random.default_rng(64), 3000, 5, replace=False)
    assert I.shape == (3000, 5)
    assert all(len(set(row)) == 5 for row in I.tolist())
    freq = np.bincount(I.ravel(), minlength=7) / I.size
    assert np.all(np.abs(freq - 1 / 7) <= 4 * math.sqrt((1 / 7) * (6 / 7) / I.size)), freq
    np.testing.assert_array_equal(
        fam.sample_points(np.random.default_rng(5), 3, 4),
        np.random.default_rng(5).integers(0, 7, size=(3, 4)),
    )
    with pytest.raises(ValueError, match="size must be an integer in"):
        fam.sample_points(np.random.default_rng(0), 2, 8, replace=False)
    with pytest.raises(ValueError, match="replace must be True or False"):
        fam.sample_points(np.random.default_rng(0), 2, 3, replace="no")


def test_without_replacement_noise_by_exact_enumeration() -> None:
    """Over all C(n, D) subsets the gradient noise is sigma_tilde^2/D * (n-D)/(n-1) (oracle)."""
    fam = T.make_welsch_family(2, 1, 6, seed=73, input_scale=2.0)
    w = np.array([0.3, -0.7])
    g = fam.task_grads(w)[0]
    for D in (1, 2, 4, 6):
        subsets = np.array(list(itertools.combinations(range(6), D)))
        err = fam.grads(w, np.zeros(len(subsets), dtype=int), subsets) - g
        var = np.mean(np.sum(err**2, axis=1))
        exp = fam.sigma_tilde_sq(w)[0] / D * (6 - D) / 5
        assert abs(var - exp) <= 1e-12 * max(exp, 1e-3), (D, var, exp)


# --------------------------------------------- the registry and the notebooks' variants
def test_make_family_knows_ridge() -> None:
    from hfmaml_core import formula_tasks, symbolic

    fam = T.make_family("ridge", 3, seed=2, n_tasks=4)
    assert isinstance(fam, formula_tasks.RidgeFamily)
    assert T.RidgeFamily is formula_tasks.RidgeFamily is symbolic.RidgeFamily
    ref = symbolic.make_ridge_family(3, 4, seed=2)
    np.testing.assert_array_equal(fam.a, ref.a)
    np.testing.assert_array_equal(fam.L_tasks, ref.L_tasks)
    with pytest.raises(ValueError, match="name must be one of"):
        T.make_family("ridges", 3, seed=0)


def test_with_leverage_scales_the_first_point() -> None:
    base = T.make_welsch_family(2, 4, 16, seed=3, input_scale=3.0, task_spread=0.3)
    fam = T.with_leverage(base, 12.0)
    np.testing.assert_array_equal(fam.X[:, 0], 12.0 * base.X[:, 0])
    np.testing.assert_array_equal(fam.y[:, 0], 12.0 * base.y[:, 0])
    np.testing.assert_array_equal(fam.X[:, 1:], base.X[:, 1:])
    np.testing.assert_array_equal(fam.probs, base.probs)
    with pytest.raises(ValueError, match="base must be a WelschRegressionFamily"):
        T.with_leverage(T.make_quadratic_family(2, seed=0), 2.0)


def test_split_family_is_the_written_out_construction() -> None:
    fam = T.split_family(64, 24.0, 0.3, seed=5, scale=3.0)
    X = 3.0 * np.random.default_rng(5).standard_normal((4, 64, 1))
    X[:, 0] *= 24.0
    np.testing.assert_array_equal(fam.X, X)
    np.testing.assert_array_equal(fam.y, X[..., 0] * np.array([0.0, 0.0, 0.3, 0.3])[:, None])
    # tasks 0 and 1 are noiseless with zero gradient at w = 0
    np.testing.assert_array_equal(fam.task_grads(np.zeros(1))[:2], 0.0)
    with pytest.raises(ValueError, match="scale"):
        T.split_family(8, 2.0, 0.3, seed=0, scale=0.0)
