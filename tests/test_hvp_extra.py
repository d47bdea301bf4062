"""Tests for the additions to :mod:`hfmaml_core.hvp` used by the finite-difference notebook.

``central_difference(..., dtype=float32)``, ``complex_step``, ``error_model``,
``optimal_delta``, ``delta_rule``, ``theorem_delta`` with one ``rho`` per batch and
``welsch_batch_rho``. The references are closed forms written out
here (polynomial gradients, the attaining function of H1's sharp constant), sympy
(Hessians of a Welsch task, the minimiser of the error model) and a brute-force
grid search; none of them calls the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from hfmaml_core import hvp, tasks

HYP = settings(max_examples=40, deadline=None, database=None)
EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


# =============================================================================
# helpers: gradients with closed-form Hessians
# =============================================================================


def _quadratic(seed: int, d: int = 4) -> tuple[np.ndarray, object]:
    """A symmetric ``A`` and the gradient ``w -> A w`` computed in the dtype of ``w``."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((d, d))
    A = (M + M.T) / 2

    def grad(w: np.ndarray) -> np.ndarray:
        return A.astype(w.dtype) @ w

    return A, grad


def _cubic(seed: int, d: int = 3):
    """phi(w) = sum_k c_k w_k^3 + w^T B w / 2: gradient 3 c w^2 + B w, Hessian diag(6 c w) + B."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal(d)
    M = rng.standard_normal((d, d))
    B = (M + M.T) / 2

    def grad(z: np.ndarray) -> np.ndarray:
        return 3 * c.astype(z.dtype) * z * z + B.astype(z.dtype) @ z

    def hess(w: np.ndarray) -> np.ndarray:
        return np.diag(6 * c * w) + B

    return grad, hess


def _welsch_sympy(seed: int, d: int = 3, n: int = 5):
    """A Welsch task f(w) = mean_j 1 - exp(-(x_j.w - y_j)^2 / 2): complex-capable gradient, sympy Hessian."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    ws = sp.symbols(f"w0:{d}", real=True)
    f = (
        sum(
            1 - sp.exp(-((sum(X[j, k] * ws[k] for k in range(d)) - y[j]) ** 2) / 2)
            for j in range(n)
        )
        / n
    )
    hess = sp.lambdify([ws], sp.hessian(f, ws), "numpy")

    def grad(z: np.ndarray) -> np.ndarray:
        Xz, yz = X.astype(z.dtype), y.astype(z.dtype)
        r = Xz @ z - yz
        return Xz.T @ (r * np.exp(-r * r / 2)) / n

    return grad, lambda w: np.array(hess(w), dtype=float)


# =============================================================================
# central_difference: the float32 path
# =============================================================================


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_central_difference_is_float32_and_accurate_on_quadratics(seed):
    A, grad = _quadratic(seed)
    rng = np.random.default_rng(seed + 10)
    w, v = rng.standard_normal(4), rng.standard_normal(4)
    out = hvp.central_difference(grad, w, v, 1e-2, dtype=np.float32)
    assert out.dtype == np.float32
    # exact in real arithmetic; float32 rounding of A(w +- dv) amplified by 1/(2 delta)
    scale = np.abs(A).sum(axis=1).max() * (np.abs(w).max() + 1e-2 * np.abs(v).max())
    tol = 64 * EPS32 * scale / 1e-2
    np.testing.assert_allclose(out.astype(float), A @ v, rtol=0, atol=tol)


def test_float32_step_below_resolution_is_refused_or_exactly_zero():
    """1 + 1e-8 rounds to 1 in float32: refused by default; unchecked, the product is 0."""
    A, grad = _quadratic(3)
    w, v = np.ones(4), np.ones(4)
    with pytest.raises(ValueError, match=r"delta = 1e-08 cannot resolve anything in float32"):
        hvp.central_difference(grad, w, v, 1e-8, dtype="float32")
    # asked for explicitly (a study of the rounding error), the quotient is exactly zero
    out32 = hvp.central_difference(grad, w, v, 1e-8, dtype="float32", check_resolution=False)
    out64 = hvp.central_difference(grad, w, v, 1e-8)
    assert np.all(out32 == 0)
    np.testing.assert_allclose(out64, A @ v, rtol=1e-6)


def test_float64_default_unchanged_by_the_dtype_keyword():
    _, grad = _quadratic(4)
    rng = np.random.default_rng(5)
    w, v = rng.standard_normal(4), rng.standard_normal(4)
    a = hvp.central_difference(grad, w, v, 1e-3)
    b = hvp.central_difference(grad, w, v, 1e-3, dtype=np.float64)
    c = hvp.central_difference(grad, w, v, 1e-3, dtype="float64")
    assert a.dtype == np.float64 and np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dtype": "float16"}, r"dtype must be one of float64, float32; got float16"),
        ({"dtype": np.complex128}, r"dtype must be one of float64, float32"),
        ({"dtype": None}, r"dtype must be one of float64, float32"),
        ({"dtype": "not-a-dtype"}, r"dtype must be one of float64, float32"),
        ({"dtype": np.float32, "delta": 1e-40}, r"delta must be a finite number in \[1.18e-38"),
        ({"dtype": np.float32, "w": np.full(2, 1e39)}, r"w must be representable in float32"),
        ({"dtype": np.float32, "delta": -1.0}, r"delta must be a finite number > 0"),
    ],
)
def test_float32_arguments_rejected_before_any_gradient_call(kwargs, match):
    calls = []

    def grad(w):
        calls.append(w)
        return w.astype(np.float32)

    args = {"w": np.ones(2), "v": np.ones(2), "delta": 1e-3} | kwargs
    with pytest.raises(ValueError, match=match):
        hvp.central_difference(grad, args.pop("w"), args.pop("v"), args.pop("delta"), **args)
    assert calls == []


@pytest.mark.parametrize(
    ("bad_grad", "match"),
    [
        (lambda w: w.astype(np.float64), r"must be an array of dtype float32.*got float64"),
        (lambda w: np.ones(3, np.float32), r"must have shape \(2,\)"),
        (lambda w: np.full(2, np.inf, np.float32), r"must contain only finite values"),
    ],
)
def test_float32_gradient_output_checked(bad_grad, match):
    with pytest.raises(ValueError, match=match):
        hvp.central_difference(bad_grad, np.ones(2), np.ones(2), 1e-3, dtype=np.float32)


# =============================================================================
# H1's sharp constant: the attaining function, in closed form
# =============================================================================


@given(
    st.floats(0.1, 10.0),
    st.floats(1e-4, 1e2),
    st.floats(-3.0, 3.0),
    st.integers(0, 2**31 - 1),
)
@HYP
def test_attaining_function_has_error_rho_delta_over_two_at_the_kink(rho, delta, offset, seed):
    """phi = rho/6 |u.w|^3, v parallel to u: error / (rho delta |v|^2) = (1 - |sigma|)^2 / 2, 0 beyond."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(3)
    u /= np.linalg.norm(u)
    v = 0.5 * u
    w = rng.standard_normal(3)
    w -= (u @ w) * u  # on the kink
    w += offset * delta * np.linalg.norm(v) * u  # offset sigma = offset

    def grad(x):
        s = u @ x
        return 0.5 * rho * s * abs(s) * u

    exact = rho * abs(u @ w) * (u @ v) * u
    ratio = np.linalg.norm(hvp.central_difference(grad, w, v, delta) - exact) / (
        rho * delta * (v @ v)
    )
    expected = 0.5 * max(0.0, 1.0 - abs(offset)) ** 2
    assert ratio == pytest.approx(expected, abs=1e-9)


# =============================================================================
# complex_step
# =============================================================================


@pytest.mark.parametrize("h", [1e-100, 1e-8, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_complex_step_exact_for_cubics_at_any_step(h, seed):
    """For a cubic phi, Im grad(w + ihv)/h = hess(w) v exactly (no h^2 term: phi'''' = 0)."""
    grad, hess = _cubic(seed)
    rng = np.random.default_rng(seed + 20)
    w, v = rng.standard_normal(3), rng.standard_normal(3)
    out = hvp.complex_step(grad, w, v, h)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, hess(w) @ v, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("h", [0.5, 0.1])
def test_complex_step_truncation_term(h):
    """phi = w^4/24 in 1-D: Im grad(w + ih)/h = w^2/2 - h^2/6 (the docstring's -h^2/6 phi'''')."""
    w = 0.7
    out = hvp.complex_step(lambda z: z**3 / 6, [w], [1.0], h)
    assert out[0] == pytest.approx(w * w / 2 - h * h / 6, rel=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_complex_step_matches_sympy_hessian_to_working_precision(seed):
    grad, hess = _welsch_sympy(seed)
    rng = np.random.default_rng(seed + 30)
    w, v = rng.standard_normal(3), rng.standard_normal(3)
    ref = hess(w) @ v
    scale = np.linalg.norm(ref)
    out64 = hvp.complex_step(grad, w, v, 1e-20)
    assert np.linalg.norm(out64 - ref) <= 64 * EPS64 * max(scale, 1.0)
    out32 = hvp.complex_step(grad, w, v, 1e-10, dtype=np.complex64)
    assert out32.dtype == np.float32
    assert np.linalg.norm(out32.astype(float) - ref) <= 64 * EPS32 * max(scale, 1.0)
    # ...while a central difference at the same tiny step cannot see it: w +- 1e-20 v round
    # to w, and the quotient would be exactly zero, so it is refused before grad is called
    calls = []
    with pytest.raises(ValueError, match=r"delta = 1e-20 cannot resolve anything in float64"):
        hvp.central_difference(lambda x: calls.append(x) or grad(x), w, v, 1e-20)
    assert calls == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dtype": np.float64}, r"dtype must be one of complex128, complex64"),
        ({"dtype": "complex256"}, r"dtype must be one of complex128, complex64"),
        ({"h": 0.0}, r"h must be a finite number > 0"),
        ({"h": float("nan")}, r"h must be a finite number > 0"),
        ({"h": 1e-320}, r"h must be a finite number in \[2.23e-308"),
        ({"h": 1e-40, "dtype": np.complex64}, r"h must be a finite number in \[1.18e-38"),
        ({"w": np.array([1.0 + 1j, 0.0])}, r"w must be a real array"),
        ({"v": np.ones(3)}, r"v must have shape \(2,\)"),
    ],
)
def test_complex_step_arguments_rejected_before_any_gradient_call(kwargs, match):
    calls = []

    def grad(z):
        calls.append(z)
        return z

    args = {"w": np.ones(2), "v": np.ones(2), "h": 1e-20} | kwargs
    with pytest.raises(ValueError, match=match):
        hvp.complex_step(grad, args.pop("w"), args.pop("v"), args.pop("h"), **args)
    assert calls == []


@pytest.mark.parametrize(
    ("bad_grad", "dtype", "match"),
    [
        (lambda z: z.real, np.complex128, r"dtype complex128.*got float64"),
        (lambda z: z.astype(np.complex128), np.complex64, r"dtype complex64.*got complex128"),
        (lambda z: z[:1], np.complex128, r"must have shape \(2,\)"),
        (lambda z: z * np.nan, np.complex128, r"must contain only finite values"),
    ],
)
def test_complex_step_gradient_output_checked(bad_grad, dtype, match):
    with pytest.raises(ValueError, match=match):
        hvp.complex_step(bad_grad, np.ones(2), np.ones(2), 1e-20, dtype=dtype)


def test_complex_step_refuses_non_callable():
    with pytest.raises(ValueError, match="grad must be callable"):
        hvp.complex_step(np.ones(2), np.ones(2), np.ones(2), 1e-20)


# =============================================================================
# error_model and optimal_delta
# =============================================================================


def test_optimal_delta_matches_sympy():
    a, s, e, d = sp.symbols("a s epsilon delta", positive=True)
    E = a * d**2 + e * s / d
    (d_star,) = sp.solve(sp.diff(E, d), d)
    floor = sp.simplify(E.subs(d, d_star))
    vals = {a: 0.37, s: 2.5, e: 1.2e-7}
    got_d, got_floor = hvp.optimal_delta(0.37, 2.5, 1.2e-7)
    assert got_d == pytest.approx(float(d_star.subs(vals)), rel=1e-12)
    assert got_floor == pytest.approx(float(floor.subs(vals)), rel=1e-12)


@given(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3), st.floats(1e-17, 1e-3))
@HYP
def test_optimal_delta_minimises_the_model_on_a_grid(trunc, scale, eps):
    d_star, floor = hvp.optimal_delta(trunc, scale, eps)
    grid = d_star * np.logspace(-2, 2, 4001)  # brute force around the claimed minimiser
    values = trunc * grid**2 + eps * scale / grid
    assert grid[values.argmin()] == pytest.approx(d_star, rel=3e-3)
    assert values.min() == pytest.approx(floor, rel=1e-5)
    assert floor <= values.min() * (1 + 1e-12)


def test_error_model_values_and_shapes():
    assert hvp.error_model(0.1, 2.0, 3.0, 1e-3) == pytest.approx(2.0 * 0.01 + 1e-3 * 3.0 / 0.1)
    assert isinstance(hvp.error_model(0.1, 2.0, 3.0, 1e-3), float)
    out = hvp.error_model(np.array([[1e-3, 1e-2]]), 1.0, 1.0, 1e-16)
    assert out.shape == (1, 2)
    np.testing.assert_allclose(out, [[1e-6 + 1e-13, 1e-4 + 1e-14]], rtol=1e-14)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: hvp.error_model(0.0, 1, 1, 1e-16), r"delta must hold finite real numbers > 0"),
        (lambda: hvp.error_model([], 1, 1, 1e-16), r"delta must hold finite real numbers > 0"),
        (lambda: hvp.error_model("x", 1, 1, 1e-16), r"delta must hold finite real numbers > 0"),
        (lambda: hvp.error_model([1.0, np.nan], 1, 1, 1e-16), r"delta must hold finite"),
        (lambda: hvp.error_model(1e-3, 0.0, 1, 1e-16), r"trunc must be a finite number > 0"),
        (lambda: hvp.optimal_delta(1.0, -1.0, 1e-16), r"scale must be a finite number > 0"),
        (lambda: hvp.optimal_delta(1.0, 1.0, 1.0), r"eps must be a finite number in \(0, 1\)"),
        (lambda: hvp.optimal_delta(1.0, 1.0, True), r"eps must be a finite number in \(0, 1\)"),
    ],
)
def test_error_model_arguments_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# =============================================================================
# delta_rule
# =============================================================================


def test_delta_rules_written_out():
    g = np.array([0.5, 2.0, 8.0])
    np.testing.assert_array_equal(hvp.delta_rule("fixed", g, fixed=1e-3), [1e-3] * 3)
    np.testing.assert_allclose(hvp.delta_rule("per-tensor", g), [1 / 3, 1 / 12, 1 / 48], rtol=1e-15)
    np.testing.assert_allclose(
        hvp.delta_rule("theorem", g, rho=2.0, alpha=0.25),
        [1 / (6 * 2.0 * 0.25 * x) for x in g],
        rtol=1e-15,
    )
    assert hvp.delta_rule("per-tensor", 3.0) == pytest.approx(1 / 18)
    assert isinstance(hvp.delta_rule("fixed", 3.0), float)
    assert hvp.DELTA_RULES == ("fixed", "per-tensor", "theorem")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: hvp.delta_rule("adaptive", 1.0),
            r"rule must be one of 'fixed', 'per-tensor', 'theorem'",
        ),
        (lambda: hvp.delta_rule("fixed", 0.0), r"g_norm must hold finite real numbers > 0"),
        (lambda: hvp.delta_rule("per-tensor", [1.0, np.inf]), r"g_norm must hold finite"),
        (
            lambda: hvp.delta_rule("theorem", 1.0, rho=1.0),
            r"rule 'theorem' needs rho > 0 and alpha > 0",
        ),
        (
            lambda: hvp.delta_rule("theorem", 1.0, rho=-1.0, alpha=0.1),
            r"rho must be a finite number > 0",
        ),
        (lambda: hvp.delta_rule("fixed", 1.0, fixed=0.0), r"fixed must be a finite number > 0"),
    ],
)
def test_delta_rule_arguments_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_complex_step_refuses_an_underflowing_imaginary_part():
    with pytest.raises(ValueError, match=r"h\*v must stay a normal float64 number"):
        hvp.complex_step(lambda z: z, np.ones(2), np.array([1e-20, 0.0]), 1e-300)
    hvp.complex_step(lambda z: z, np.ones(2), np.array([1.0, 0.0]), 1e-300)  # zeros in v are fine


# =============================================================================
# theorem_delta with one rho per batch; welsch_batch_rho
# =============================================================================


def test_theorem_delta_accepts_one_rho_per_batch():
    rho, g = np.array([1.0, 2.0, 4.0]), np.array([3.0, 1.0, 0.5])
    np.testing.assert_allclose(hvp.theorem_delta(rho, 0.5, g), 1 / (3 * rho * g), rtol=1e-15)
    # the scalar path is unchanged, to the last bit
    assert hvp.theorem_delta(2.0, 0.1, 5.0) == 1.0 / (6.0 * 2.0 * 0.1 * 5.0)
    with pytest.raises(ValueError, match="rho"):
        hvp.theorem_delta(np.array([1.0, 0.0]), 0.1, 1.0)
    with pytest.raises(ValueError, match="broadcast"):
        hvp.theorem_delta(np.ones(3), 0.1, np.ones(2))


def _welsch_hess(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Hessian of the mean of phi(x_j.w) over the rows of ``x``, written out (phi'' = (1 - r^2) e^{-r^2/2})."""
    r = x @ w
    return np.einsum("j,jd,je->de", (1 - r**2) * np.exp(-(r**2) / 2), x, x) / len(x)


def test_welsch_batch_rho_one_point_is_sharp():
    """rho_theta = max|phi'''| |x|^3 (sympy's max), attained along x where |phi'''| peaks."""
    r = sp.Symbol("r", real=True)
    d3 = sp.diff(1 - sp.exp(-(r**2) / 2), r, 3)
    crit = sp.solve(sp.diff(d3, r), r)
    max_d3 = float(max(sp.Abs(d3.subs(r, c)) for c in crit))
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 1, 3)) * 2
    got = hvp.welsch_batch_rho(X)
    np.testing.assert_allclose(got, max_d3 * np.linalg.norm(X[:, 0], axis=1) ** 3, rtol=1e-12)
    r_star = float(next(c for c in crit if abs(float(d3.subs(r, c))) == pytest.approx(max_d3)))
    for x, rho in zip(X[:, 0], got, strict=True):
        u = x / np.linalg.norm(x)
        w = r_star / np.linalg.norm(x) * u  # x.w = r_star
        t = 1e-6
        change = np.linalg.norm(_welsch_hess(x[None], w + t * u) - _welsch_hess(x[None], w), 2)
        assert change / t == pytest.approx(rho, rel=1e-4)


def test_welsch_batch_rho_bounds_the_hessian_change_and_is_the_task_constant():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 5, 3)) * rng.uniform(0.5, 3, (6, 5, 1))
    rho = hvp.welsch_batch_rho(X)
    for b in range(len(X)):
        for _ in range(50):
            w, u = rng.standard_normal((2, 3)) * 2
            change = np.linalg.norm(_welsch_hess(X[b], u) - _welsch_hess(X[b], w), 2)
            assert change <= rho[b] * np.linalg.norm(u - w) * (1 + 1e-12)
    fam = tasks.WelschRegressionFamily(X, np.zeros(X.shape[:2]))
    np.testing.assert_allclose(rho, fam.rho_tasks, rtol=1e-12)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.ones((2, 3)), "shape"),
        (np.ones((2, 0, 3)), "shape"),
        (np.full((1, 1, 2), np.nan), "finite"),
        (np.ones((1, 1, 2), dtype=complex), "real"),
    ],
)
def test_welsch_batch_rho_rejects_bad_input(X, match):
    with pytest.raises(ValueError, match=match):
        hvp.welsch_batch_rho(X)


# ---------------------------------------------------------------------------
# central_difference at the extremes of delta: refused, never silent zeros
# ---------------------------------------------------------------------------
def _welsch_task():
    from hfmaml_core import tasks

    return tasks.make_welsch_family(3, 2, 5, seed=0).tasks[0]


@pytest.mark.parametrize(
    ("delta", "dtype", "match"),
    [
        (1e-320, "float64", r"delta = 1e-320 cannot resolve anything in float64.*exceed about"),
        (1e-20, "float64", r"delta = 1e-20 cannot resolve anything in float64"),
        (1e-12, "float32", r"delta = 1e-12 cannot resolve anything in float32"),
        (1e300, "float64", r"delta = 1e\+300 is so large that w is lost in float64.*below about"),
        (1e30, "float32", r"delta = 1e\+30 is so large that w is lost in float32"),
        (1e308, "float64", r"delta = 1e\+308 overflows float64"),
    ],
)
def test_central_difference_refuses_a_delta_that_resolves_nothing(delta, dtype, match):
    task = _welsch_task()
    rng = np.random.default_rng(5)
    w, v = rng.standard_normal(3), rng.standard_normal(3)
    calls = []

    def grad(x):
        calls.append(x)
        g = task.grad(x.astype(np.float64))
        return g.astype(np.float32) if dtype == "float32" else g

    with pytest.raises(ValueError, match=match):
        hvp.central_difference(grad, w, v, delta, dtype=dtype)
    assert calls == []  # refused before any gradient is evaluated


def test_central_difference_thresholds_in_the_message_are_where_it_starts_to_work():
    """The delta the error names is (within a factor 4) where the points start to move."""
    task = _welsch_task()
    rng = np.random.default_rng(6)
    w, v = rng.standard_normal(3), rng.standard_normal(3)
    for lo_side, pattern in (
        (True, r"exceed about ([0-9.e+-]+)"),
        (False, r"below about ([0-9.e+-]+)"),
    ):
        bad = 1e-25 if lo_side else 1e295
        with pytest.raises(ValueError) as err:
            hvp.central_difference(task.grad, w, v, bad)
        import re

        edge = float(re.search(pattern, str(err.value)).group(1))
        inside, outside = (4 * edge, edge / 4) if lo_side else (edge / 4, 4 * edge)
        hvp.central_difference(task.grad, w, v, inside)  # resolves something: no error
        with pytest.raises(ValueError):
            hvp.central_difference(task.grad, w, v, outside)


def test_central_difference_allows_what_it_can_resolve():
    task = _welsch_task()
    rng = np.random.default_rng(7)
    w, v = rng.standard_normal(3), rng.standard_normal(3)
    # v = 0: the product is exactly zero, whatever delta
    assert np.all(hvp.central_difference(task.grad, w, np.zeros(3), 1e-20) == 0)
    # w = 0: nothing to lose, a huge step is a (useless but) well-defined quotient
    assert np.all(np.isfinite(hvp.central_difference(task.grad, np.zeros(3), v, 1e300)))
    # a tiny delta deep on the rounding branch still moves the points: allowed (notebook 02)
    out = hvp.central_difference(task.grad, w, v, 1e-14)
    assert np.linalg.norm(out - task.hvp(w, v)) > 1e-6 * np.linalg.norm(task.hvp(w, v))


def test_check_resolution_false_returns_the_unresolved_quotient_and_is_validated():
    task = _welsch_task()
    rng = np.random.default_rng(8)
    w, v = rng.standard_normal(3), rng.standard_normal(3)
    assert np.all(hvp.central_difference(task.grad, w, v, 1e-20, check_resolution=False) == 0)
    with pytest.raises(ValueError, match=r"check_resolution must be True or False; got 'no'"):
        hvp.central_difference(task.grad, w, v, 1e-3, check_resolution="no")
    with pytest.raises(ValueError, match=r"overflows float64"):  # overflow is refused always
        hvp.central_difference(task.grad, w, v, 1e308, check_resolution=False)


def test_central_difference_refuses_an_overflowing_quotient():
    v = np.array([1.0, -2.0, 0.5])
    with pytest.raises(ValueError, match=r"difference quotient .* overflows float64"):
        hvp.central_difference(np.sign, np.zeros(3), v, 1e-320)
