"""Tests for :func:`hfmaml_core.hvp.central_difference` (THEORY H1).

The reference Hessian-vector products come from closed forms (quadratics,
polynomials) and from the sympy oracle of ``tests/oracles.py`` (Welsch tasks), not
from the library's own HVP kernel.
"""

from __future__ import annotations

import math

import numpy as np
import oracles as O
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hfmaml_core import hvp
from hfmaml_core import tasks as T

HYP = settings(max_examples=30, deadline=None, database=None)
EPS = np.finfo(float).eps
#: max|phi'''| of the Welsch loss, from sympy (not the library's constant).
D3 = float(O.welsch_max_abs_derivative(3).evalf(30))


def rounding_allowance(grad_scale: float, delta: float) -> float:
    """Floating-point error allowed in ``[g(w+dv) - g(w-dv)] / (2d)``.

    Each gradient carries an error of a few ulps of the magnitude of the terms it
    sums (``grad_scale``); the difference divided by ``2 delta`` amplifies it by
    ``1/delta``. 64 ulps is a generous constant for sums of <= 8 terms.
    """
    return 64.0 * EPS * grad_scale / delta


# =============================================================================
# exactness on quadratics and polynomial gradients
# =============================================================================


@HYP
@given(
    d=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    w_scale=st.floats(1e-3, 1e3),
    log_delta=st.floats(-2.0, 3.0),
    hess_noise=st.floats(0.0, 1.0),
)
def test_exact_on_quadratics(
    d: int, seed: int, w_scale: float, log_delta: float, hess_noise: float
) -> None:
    """On a quadratic the central difference is exact: only rounding separates it from ``A v``.

    Exact and mini-batch gradients (both affine in ``w``) are checked against the
    closed forms ``A v`` and ``mean(s[idx]) A v``; the error is ~1e-12 relative plus
    the ``1/delta`` rounding allowance.
    """
    fam = T.make_quadratic_family(d, 2, 5, seed=seed, curvature=(-2.0, 3.0), hess_noise=hess_noise)
    r = np.random.default_rng(seed)
    w = w_scale * r.standard_normal(d)
    v = r.standard_normal(d)
    delta = 10.0**log_delta
    task = fam.tasks[1]
    A, c = fam.A[1], fam.c[1]
    idx = np.array([0, 3, 3])
    for I, factor in ((None, 1.0), (idx, fam.s[1][idx].mean())):
        est = hvp.central_difference(lambda x, I=I: task.grad(x, I), w, v, delta)
        exact = factor * (A @ v)
        L = np.linalg.norm(A, 2) * max(1.0, abs(factor))
        g_scale = L * (np.linalg.norm(w - c) + delta * np.linalg.norm(v)) + 1.0
        tol = 1e-12 * L * np.linalg.norm(v) + rounding_allowance(g_scale, delta)
        assert np.linalg.norm(est - exact) <= tol


def test_exact_for_cubic_lambda() -> None:
    """Any gradient callable works: for a cubic the gradient is quadratic, so the central
    difference equals the closed-form Hessian times ``v`` up to rounding, for every ``delta``.

    ``f(w) = sum_k c_k w_k^3 / 6 + (a.w)^3 / 6``: ``grad = c*w^2/2 + a (a.w)^2/2``,
    ``hess = diag(c*w) + (a.w) a a^T``.
    """
    r = np.random.default_rng(0)
    d = 4
    a, c = r.standard_normal(d), r.standard_normal(d)

    def grad(w: np.ndarray) -> list[float]:  # a plain list is accepted too
        return list(c * w**2 / 2 + a * (a @ w) ** 2 / 2)

    for _ in range(10):
        w, v = r.standard_normal(d), r.standard_normal(d)
        H = np.diag(c * w) + (a @ w) * np.outer(a, a)
        for delta in (1e-3, 1e-1, 1.0, 10.0):
            est = hvp.central_difference(grad, w, v, delta)
            g_scale = (
                np.abs(c) @ (np.abs(w) + delta * np.abs(v)) ** 2
                + (a @ a) ** 1.5 * (np.linalg.norm(w) + delta * np.linalg.norm(v)) ** 2
            )
            tol = 1e-13 * np.linalg.norm(H @ v) + rounding_allowance(g_scale, delta)
            assert np.linalg.norm(est - H @ v) <= tol


def test_quartic_error_is_exactly_quadratic_in_delta() -> None:
    """For ``f = (a.w)^4 / 24`` the error is exactly ``delta^2 (a.v)^3 / 6 * a``.

    ``grad = a t^3 / 6`` with ``t = a.w``; ``[(t+ds)^3 - (t-ds)^3] / (12 d) = t^2 s/2 + d^2 s^3/6``
    with ``s = a.v``. So the estimate minus ``hess v = a t^2 s / 2`` is known in closed form.
    """
    r = np.random.default_rng(1)
    a, w, v = r.standard_normal(3), r.standard_normal(3), r.standard_normal(3)
    t, s = a @ w, a @ v
    for delta in np.logspace(-3, 0, 7):
        est = hvp.central_difference(lambda x: a * (a @ x) ** 3 / 6, w, v, delta)
        err = est - a * t * t * s / 2
        np.testing.assert_allclose(err, delta**2 * s**3 / 6 * a, rtol=1e-5)


def test_antisymmetric_in_v_and_zero_direction() -> None:
    """``CD(w, -v) = -CD(w, v)`` exactly (IEEE subtraction is antisymmetric), ``CD(w, 0) = 0``."""
    fam = T.make_welsch_family(3, 1, 6, seed=2)
    r = np.random.default_rng(3)
    g = fam.tasks[0].grad
    for _ in range(5):
        w, v = r.standard_normal(3), r.standard_normal(3)
        np.testing.assert_array_equal(
            hvp.central_difference(g, w, -v, 0.01), -hvp.central_difference(g, w, v, 0.01)
        )
        np.testing.assert_array_equal(hvp.central_difference(g, w, np.zeros(3), 0.01), 0.0)


def test_two_gradient_calls_at_w_plus_minus_delta_v() -> None:
    """The estimate costs exactly two gradient calls, at ``w + delta v`` and ``w - delta v``
    (THEORY T3: O(d) per task), and does not modify its inputs."""
    calls: list[np.ndarray] = []
    M = np.array([[2.0, 1.0], [1.0, 3.0]])

    def grad(x: np.ndarray) -> np.ndarray:
        calls.append(np.array(x, copy=True))
        return M @ x

    w, v = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    w0, v0 = w.copy(), v.copy()
    est = hvp.central_difference(grad, w, v, 0.125)
    assert len(calls) == 2
    assert sorted(map(tuple, calls)) == sorted([tuple(w + 0.125 * v), tuple(w - 0.125 * v)])
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(v, v0)
    np.testing.assert_allclose(est, M @ v, rtol=1e-15)
    assert est.shape == (2,) and est.dtype == np.float64


# =============================================================================
# THEORY H1 on Welsch tasks
# =============================================================================


@HYP
@given(
    d=st.integers(1, 6),
    n=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    w_scale=st.floats(1e-3, 1e3),
    v_scale=st.floats(1e-2, 1e2),
    log_delta=st.floats(-4.0, 1.0),
    input_scale=st.floats(0.2, 3.0),
)
def test_h1_bound_on_welsch(
    d: int,
    n: int,
    seed: int,
    w_scale: float,
    v_scale: float,
    log_delta: float,
    input_scale: float,
) -> None:
    """THEORY H1: ``||CD - H v|| <= rho delta ||v||^2`` (+ rounding) on Welsch tasks.

    ``H`` comes from the sympy oracle. Checked for the population gradient (with
    ``rho_i``) and for a mini-batch gradient, whose Hessian is Lipschitz with the
    batch's own constant ``max|phi'''| ||mean_j ||x_j|| x_j x_j^T||`` computed here.
    """
    fam = T.make_welsch_family(d, 1, n, seed=seed, input_scale=input_scale)
    r = np.random.default_rng(seed)
    w = w_scale * r.standard_normal(d)
    v = v_scale * r.standard_normal(d) / math.sqrt(d)
    delta = 10.0**log_delta
    task = fam.tasks[0]
    o = O.welsch_point_oracle(d)
    idx = r.integers(0, n, size=int(r.integers(1, 6)))
    for I in (None, idx):
        X = fam.X[0] if I is None else fam.X[0][I]
        y = fam.y[0] if I is None else fam.y[0][I]
        norms = np.linalg.norm(X, axis=1)
        M = np.einsum("k,kd,ke->de", norms, X, X) / len(y)
        rho = fam.rho_tasks[0] if I is None else D3 * np.max(np.abs(np.linalg.eigvalsh(M)))
        est = hvp.central_difference(lambda x, I=I: task.grad(x, I), w, v, delta)
        err = np.linalg.norm(est - o.hess(w, X, y) @ v)
        bound = rho * delta * (v @ v)
        assert err <= bound * (1 + 1e-9) + rounding_allowance(norms.mean(), delta), (err, bound)


def test_error_decreases_like_delta_squared() -> None:
    """For a smooth Welsch task the error is ``O(delta^2)``: log-log slope in [1.8, 2.2]
    over ``delta in [1e-4, 1e-2]``, where truncation dominates rounding."""
    fam = T.make_welsch_family(3, 1, 6, seed=4)
    task = fam.tasks[0]
    o = O.welsch_point_oracle(3)
    r = np.random.default_rng(5)
    slopes = []
    for _ in range(3):
        w, v = 0.5 * r.standard_normal(3), r.standard_normal(3)
        Hv = o.hess(w, fam.X[0], fam.y[0]) @ v
        deltas = np.logspace(-4, -2, 9)
        errs = [np.linalg.norm(hvp.central_difference(task.grad, w, v, dl) - Hv) for dl in deltas]
        slopes.append(np.polyfit(np.log(deltas), np.log(errs), 1)[0])
    assert all(1.8 <= s <= 2.2 for s in slopes), slopes


# =============================================================================
# bad input
# =============================================================================


def _grad(x: np.ndarray) -> np.ndarray:
    return 2.0 * np.asarray(x)


W2, V2 = np.array([1.0, 2.0]), np.array([0.5, -0.5])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"delta": 0.0}, r"delta must be a finite number > 0"),
        ({"delta": -1e-3}, r"delta must be a finite number > 0"),
        ({"delta": float("nan")}, r"delta must be a finite number > 0"),
        ({"delta": float("inf")}, r"delta must be a finite number > 0"),
        ({"delta": "0.1"}, r"delta must be"),
        ({"delta": True}, r"delta must be"),
        ({"delta": None}, r"delta must be"),
        ({"grad": None}, r"grad must be callable"),
        ({"grad": np.ones(2)}, r"grad must be callable"),
        ({"v": np.ones(3)}, r"v must have shape \(2,\)"),
        ({"w": np.ones((2, 1))}, r"w must have shape"),
        ({"w": np.array([]), "v": np.array([])}, r"w must be non-empty"),
        ({"w": np.array([np.nan, 1.0])}, r"w must contain only finite"),
        ({"v": np.array([np.inf, 1.0])}, r"v must contain only finite"),
        ({"w": np.array([1 + 1j, 0])}, r"w must be a real array"),
        ({"grad": lambda x: x[:1]}, r"grad\(w \+ delta\*v\) must have shape \(2,\)"),
        ({"grad": lambda x: np.full(2, np.nan)}, r"grad\(w \+ delta\*v\) must contain only finite"),
        ({"grad": lambda x: "ab"}, r"grad\(w \+ delta\*v\) must be a real array"),
        (
            {"grad": lambda x: x if x[0] > 1.0 else np.ones(3)},
            r"grad\(w - delta\*v\) must have shape \(2,\)",
        ),
    ],
    ids=O.regex_id,
)
def test_bad_input_raises_value_error_naming_parameter(kwargs: dict, match: str) -> None:
    """Every bad argument raises ``ValueError`` naming the parameter (and the allowed range)."""
    args = {"grad": _grad, "w": W2, "v": V2, "delta": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        hvp.central_difference(args["grad"], args["w"], args["v"], args["delta"])


@pytest.mark.parametrize(
    "kwargs",
    [{"delta": 0.0}, {"delta": float("nan")}, {"v": np.ones(3)}, {"w": np.array([np.nan, 1.0])}],
)
def test_bad_input_rejected_before_any_gradient_call(kwargs: dict) -> None:
    """Arguments are checked before work: ``grad`` is never called when one is bad."""
    calls: list[object] = []

    def grad(x: np.ndarray) -> np.ndarray:
        calls.append(x)
        return x

    args = {"w": W2, "v": V2, "delta": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError):
        hvp.central_difference(grad, args["w"], args["v"], args["delta"])
    assert calls == []
