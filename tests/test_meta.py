"""Tests for :mod:`hfmaml_core.meta`: the MAML objective, meta-gradient (THEORY S1) and L1 bound.

The reference meta-gradient is *not* the closed form of S1: ``tests/oracles.py``
builds ``F_i(w) = f_i(w - alpha grad f_i(w))`` symbolically and lets sympy
differentiate it, and a Richardson finite difference of ``meta.objective`` gives a
second, numerical reference.
"""

from __future__ import annotations

import types

import numpy as np
import oracles as O
import pytest
import sympy as sp

from hfmaml_core import meta
from hfmaml_core import tasks as T

RTOL = 1e-10
FD_RTOL = 1e-8


FAMILY_BUILDERS = {
    "welsch-d2": lambda: T.make_welsch_family(2, n_tasks=3, n_points=3, seed=101),
    "welsch-d3": lambda: T.make_welsch_family(3, 2, 3, seed=102, input_scale=1.5),
    "quadratic-d2": lambda: T.make_quadratic_family(2, 3, 4, seed=103),
    "quadratic-d3": lambda: T.make_quadratic_family(3, 2, 4, seed=104, curvature=(-1.0, 2.0)),
}


@pytest.fixture(scope="module", params=sorted(FAMILY_BUILDERS))
def family(request: pytest.FixtureRequest) -> T.TaskFamily:
    """Small families of both kinds (``n <= 3`` points keeps the symbolic ``F`` small)."""
    return FAMILY_BUILDERS[request.param]()


def symbolic(fam: T.TaskFamily, w: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-task ``F_i(w)`` and ``grad F_i(w)`` from the sympy oracle, shapes (m,), (m, d)."""
    if isinstance(fam, T.WelschRegressionFamily):
        o = O.maml_oracle("welsch", fam.dim, fam.n_points)
        params = [O.welsch_params(fam.X[i], fam.y[i]) for i in range(fam.n_tasks)]
    else:
        o = O.maml_oracle("quadratic", fam.dim)
        params = [O.quadratic_params(fam.A[i], fam.c[i]) for i in range(fam.n_tasks)]
    F = np.array([o.objective(w, alpha, p) for p in params])
    G = np.array([o.gradient(w, alpha, p) for p in params])
    return F, G


def scales(fam: T.TaskFamily, w: np.ndarray, alpha: float) -> tuple[float, float]:
    """Natural magnitudes of ``F_i`` and ``grad F_i`` (tolerance floors when sums cancel)."""
    k = 1.0 + alpha * fam.L
    if isinstance(fam, T.WelschRegressionFamily):
        return 1.0, k * float(np.linalg.norm(fam.X, axis=2).mean())
    r = float(np.max(np.linalg.norm(w - fam.c, axis=1)))
    return k * k * fam.L * r * r + 1e-300, k * k * fam.L * r + 1e-300


def assert_close(actual: object, desired: object, rtol: float, floor: float = 0.0) -> None:
    """``max|actual - desired| <= rtol * max(max|desired|, floor)``."""
    a, d = np.asarray(actual, float), np.asarray(desired, float)
    assert a.shape == d.shape, (a.shape, d.shape)
    err = float(np.max(np.abs(a - d)))
    tol = rtol * max(float(np.max(np.abs(d))), floor)
    assert err <= tol, f"error {err:.3e} > {tol:.3e}: {a} vs {d}"


def alphas(fam: T.TaskFamily) -> list[float]:
    """Inner step sizes: 0, small, half and all of the L1 range ``[0, 1/L]``."""
    return [0.0, 0.05, 0.5 / fam.L, 1.0 / fam.L]


def points(fam: T.TaskFamily, seed: int) -> list[np.ndarray]:
    """Random ``w`` on three scales."""
    r = np.random.default_rng(seed)
    return [s * r.standard_normal(fam.dim) for s in (0.3, 1.0, 2.5)]


# =============================================================================
# against the symbolic oracle and finite differences
# =============================================================================


def test_objective_and_gradient_match_symbolic(family: T.TaskFamily) -> None:
    """``objective``/``gradient`` equal the sympy ``F`` and its sympy derivative (uniform weights).

    The oracle never uses ``(I - alpha H) grad f(w - alpha grad f)``, so a wrong
    sign, a missing Hessian term or the wrong evaluation point fails here.
    """
    for w in points(family, 1):
        for a in alphas(family):
            F, G = symbolic(family, w, a)
            sF, sG = scales(family, w, a)
            assert_close(meta.objective(family.tasks, w, a), F.mean(), RTOL, sF)
            assert_close(meta.gradient(family.tasks, w, a), G.mean(axis=0), RTOL, sG)


def test_weighted_objective_and_gradient_match_symbolic(family: T.TaskFamily) -> None:
    """Non-uniform ``weights`` give ``sum_i p_i F_i`` and ``sum_i p_i grad F_i``."""
    r = np.random.default_rng(2)
    p = r.uniform(0.1, 1.0, family.n_tasks)
    p /= p.sum()
    for w in points(family, 3):
        for a in alphas(family)[1:]:
            F, G = symbolic(family, w, a)
            sF, sG = scales(family, w, a)
            assert_close(meta.objective(family.tasks, w, a, weights=p), p @ F, RTOL, sF)
            assert_close(meta.gradient(family.tasks, w, a, weights=p), p @ G, RTOL, sG)


def test_gradient_matches_richardson_of_objective(family: T.TaskFamily) -> None:
    """``gradient`` equals the Richardson finite-difference gradient of ``objective``."""
    p = np.linspace(1.0, 2.0, family.n_tasks)
    p /= p.sum()
    for w in points(family, 4):
        for a in alphas(family)[1:]:
            _, sG = scales(family, w, a)
            fd = O.fd_gradient(lambda x, a=a: meta.objective(family.tasks, x, a, weights=p), w)
            assert_close(meta.gradient(family.tasks, w, a, weights=p), fd, FD_RTOL, sG)


def test_quadratic_closed_form() -> None:
    """For ``f = (w-c)^T A (w-c)/2``: ``F = (w-c)^T (I-aA) A (I-aA) (w-c) / 2`` and
    ``grad F = (I-aA) A (I-aA) (w-c)`` (a third, hand-derived reference)."""
    fam = T.make_quadratic_family(4, 3, 4, seed=105, curvature=(-1.0, 3.0))
    r = np.random.default_rng(5)
    I4 = np.eye(4)
    for _ in range(5):
        w, a = r.standard_normal(4), r.uniform(0, 1 / fam.L)
        Ms = [(I4 - a * A) @ A @ (I4 - a * A) for A in fam.A]
        F = np.mean([0.5 * (w - c) @ M @ (w - c) for M, c in zip(Ms, fam.c, strict=True)])
        G = np.mean([M @ (w - c) for M, c in zip(Ms, fam.c, strict=True)], axis=0)
        np.testing.assert_allclose(meta.objective(fam.tasks, w, a), F, rtol=1e-12)
        np.testing.assert_allclose(meta.gradient(fam.tasks, w, a), G, rtol=1e-11, atol=1e-14)


# =============================================================================
# weights, alpha = 0, duck typing
# =============================================================================


def test_default_weights_are_uniform(family: T.TaskFamily) -> None:
    """Omitting ``weights`` is the same as passing uniform weights (bit for bit)."""
    u = np.full(family.n_tasks, 1.0 / family.n_tasks)
    for w in points(family, 6):
        a = 0.5 / family.L
        np.testing.assert_array_equal(
            meta.gradient(family.tasks, w, a), meta.gradient(family.tasks, w, a, weights=u)
        )
        assert meta.objective(family.tasks, w, a) == meta.objective(family.tasks, w, a, weights=u)


def test_point_mass_weights_select_one_task(family: T.TaskFamily) -> None:
    """Weights ``e_k`` give task ``k``'s own ``F_k`` and ``grad F_k``."""
    w = points(family, 7)[1]
    a = 0.3 / family.L
    for k in range(family.n_tasks):
        e = np.zeros(family.n_tasks)
        e[k] = 1.0
        np.testing.assert_allclose(
            meta.gradient(family.tasks, w, a, weights=e),
            meta.gradient([family.tasks[k]], w, a),
            rtol=1e-15,
            atol=0,
        )
        assert meta.objective(family.tasks, w, a, weights=e) == pytest.approx(
            meta.objective([family.tasks[k]], w, a), rel=1e-15
        )


def test_alpha_zero_is_the_mean_gradient(family: T.TaskFamily) -> None:
    """With ``alpha = 0`` no adaptation happens: ``F = f`` and ``grad F = grad f`` (weighted)."""
    p = np.arange(1.0, family.n_tasks + 1)
    p /= p.sum()
    for w in points(family, 8):
        g = sum(pi * t.grad(w) for pi, t in zip(p, family.tasks, strict=True))
        f = sum(pi * t.loss(w) for pi, t in zip(p, family.tasks, strict=True))
        np.testing.assert_allclose(meta.gradient(family.tasks, w, 0.0, weights=p), g, rtol=1e-14)
        assert meta.objective(family.tasks, w, 0.0, weights=p) == pytest.approx(f, rel=1e-14)
        uniform = np.mean([t.grad(w) for t in family.tasks], axis=0)
        np.testing.assert_allclose(meta.gradient(family.tasks, w, 0), uniform, rtol=1e-14)


class QuarticTask:
    """A user-defined task (not from hfmaml_core): ``f(w) = sum_k a_k (w_k - c_k)^4 / 4 + u.w``."""

    def __init__(self, a: np.ndarray, c: np.ndarray, u: np.ndarray) -> None:
        self.a, self.c, self.u = a, c, u

    def loss(self, w: np.ndarray) -> float:
        return float(np.sum(self.a * (w - self.c) ** 4) / 4 + self.u @ w)

    def grad(self, w: np.ndarray) -> np.ndarray:
        return self.a * (w - self.c) ** 3 + self.u

    def hess(self, w: np.ndarray) -> np.ndarray:
        return np.diag(3 * self.a * (w - self.c) ** 2)


def quartic_oracle(d: int) -> O.SymbolicMAML:
    """Symbolic MAML oracle for :class:`QuarticTask` (parameters ``[*a, *c, *u]``)."""
    w = list(sp.symbols(f"w0:{d}", real=True))
    a = list(sp.symbols(f"a0:{d}", real=True))
    c = list(sp.symbols(f"c0:{d}", real=True))
    u = list(sp.symbols(f"u0:{d}", real=True))
    f = sum(a[k] * (w[k] - c[k]) ** 4 / 4 + u[k] * w[k] for k in range(d))
    return O.SymbolicMAML(f, w, a + c + u)


def test_duck_typed_user_task() -> None:
    """Any object with ``loss``/``grad``/``hess`` works, e.g. a quartic (Hessian not constant,
    not a family task); the result equals the sympy oracle for that quartic."""
    d = 3
    r = np.random.default_rng(9)
    tasks = [
        QuarticTask(r.uniform(0.5, 2, d), r.standard_normal(d), 0.3 * r.standard_normal(d))
        for _ in range(3)
    ]
    o = quartic_oracle(d)
    p = np.array([0.5, 0.3, 0.2])
    for _ in range(4):
        w, a = r.standard_normal(d), r.uniform(0.0, 0.2)
        params = [list(t.a) + list(t.c) + list(t.u) for t in tasks]
        F = np.array([o.objective(w, a, q) for q in params])
        G = np.array([o.gradient(w, a, q) for q in params])
        floor = float(np.max(np.abs(G))) + 1.0
        assert_close(meta.objective(tasks, w, a, weights=p), p @ F, RTOL, 1.0)
        assert_close(meta.gradient(tasks, w, a, weights=p), p @ G, RTOL, floor)
        assert_close(meta.gradient(tuple(tasks), list(w), a), G.mean(axis=0), RTOL, floor)


def test_objective_does_not_need_the_hessian() -> None:
    """``objective`` calls only ``loss`` and ``grad`` (as documented); ``hess`` need only exist."""

    def boom(w: np.ndarray) -> np.ndarray:
        raise AssertionError("objective must not call hess")

    t = types.SimpleNamespace(loss=lambda w: float(w @ w), grad=lambda w: 2 * w, hess=boom)
    w = np.array([1.0, -2.0])
    assert meta.objective([t], w, 0.25) == pytest.approx(float((0.5 * w) @ (0.5 * w)), rel=1e-15)


# =============================================================================
# smoothness_bound (THEORY L1)
# =============================================================================


def test_smoothness_bound_by_hand(family: T.TaskFamily) -> None:
    """``smoothness_bound = 4L + 2 rho alpha sum_i p_i ||grad f_i(w)||`` (THEORY L1).

    The task gradients come from the sympy-checked per-task kernels; the endpoints
    ``alpha = 0`` (gives ``4L``) and ``alpha = 1/L`` are included.
    """
    for w in points(family, 10):
        G = np.array([t.grad(w) for t in family.tasks])
        for a in alphas(family):
            expected = 4 * family.L + 2 * family.rho * a * sum(
                p * np.linalg.norm(g) for p, g in zip(family.probs, G, strict=True)
            )
            assert meta.smoothness_bound(family, w, a) == pytest.approx(expected, rel=1e-13)
        assert meta.smoothness_bound(family, w, 0.0) == 4 * family.L


def test_smoothness_bound_uses_probs() -> None:
    """Non-uniform task probabilities weight the gradient norms."""
    fam = T.make_welsch_family(2, 3, 5, seed=106, probs=[0.6, 0.3, 0.1])
    w = np.array([0.4, -1.1])
    a = 0.7 / fam.L
    norms = np.linalg.norm([t.grad(w) for t in fam.tasks], axis=1)
    expected = 4 * fam.L + 2 * fam.rho * a * (0.6 * norms[0] + 0.3 * norms[1] + 0.1 * norms[2])
    assert meta.smoothness_bound(fam, w, a) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("factor", [-1e-9, -1.0, 1.0 + 1e-9, 2.0, float("nan"), float("inf")])
def test_smoothness_bound_rejects_alpha_outside_range(factor: float) -> None:
    """``alpha`` outside ``[0, 1/L]`` or not finite: ``ValueError`` naming it and the range."""
    fam = T.make_welsch_family(2, 2, 4, seed=107)
    alpha = factor / fam.L if np.isfinite(factor) else factor
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0, "):
        meta.smoothness_bound(fam, np.zeros(2), alpha)


def test_smoothness_bound_rejects_bad_w() -> None:
    """A non-finite or wrongly shaped ``w`` raises ``ValueError`` naming ``w``."""
    fam = T.make_welsch_family(2, 2, 4, seed=108)
    for w in (np.array([np.nan, 0.0]), np.zeros(3)):
        with pytest.raises(ValueError, match=r"\bw must"):
            meta.smoothness_bound(fam, w, 0.1)


def test_smoothness_bound_with_zero_curvature_family() -> None:
    """A family with ``L = 0`` (all-zero curvature, accepted by the factory) must not crash.

    Every ``alpha >= 0`` is then in ``[0, 1/L] = [0, inf)`` and ``L(w) = 0``.
    """
    fam = T.make_quadratic_family(2, 2, 4, seed=109, curvature=(0.0, 0.0))
    assert fam.L == 0.0
    assert meta.smoothness_bound(fam, np.zeros(2), 0.1) == 0.0


# =============================================================================
# bad input
# =============================================================================


class LossOnly:
    """A task lacking ``grad`` and ``hess``."""

    def loss(self, w: np.ndarray) -> float:
        return 0.0


class WrongShapes:
    """A task whose ``hess`` has the wrong shape."""

    def loss(self, w: np.ndarray) -> float:
        return 0.0

    def grad(self, w: np.ndarray) -> np.ndarray:
        return np.zeros_like(w)

    def hess(self, w: np.ndarray) -> np.ndarray:
        return np.zeros((w.size + 1, w.size))


_FAM = T.make_welsch_family(2, 3, 4, seed=110)
_W = np.array([0.1, 0.2])


@pytest.mark.parametrize("fn", [meta.objective, meta.gradient], ids=["objective", "gradient"])
@pytest.mark.parametrize(
    ("tasks", "w", "alpha", "weights", "match"),
    [
        (_FAM.tasks, _W, -0.1, None, r"alpha must be a finite number >= 0"),
        (_FAM.tasks, _W, float("nan"), None, r"alpha must be a finite number >= 0"),
        (_FAM.tasks, _W, float("inf"), None, r"alpha must be a finite number >= 0"),
        (_FAM.tasks, _W, "0.1", None, r"alpha must be"),
        (_FAM.tasks, _W, 0.1, [0.5, 0.5], r"weights must have shape \(3,\)"),
        (_FAM.tasks, _W, 0.1, [0.5, 0.6, -0.1], r"weights must be >= 0"),
        (_FAM.tasks, _W, 0.1, [0.3, 0.3, 0.3], r"weights must sum to 1"),
        (_FAM.tasks, _W, 0.1, [np.nan, 0.5, 0.5], r"weights must contain only finite"),
        ([], _W, 0.1, None, r"tasks must be a non-empty sequence"),
        ((), _W, 0.1, None, r"tasks must be a non-empty sequence"),
        ("abc", _W, 0.1, None, r"tasks must be a non-empty sequence"),
        (iter(_FAM.tasks), _W, 0.1, None, r"tasks must be a non-empty sequence"),
        (_FAM.tasks[0], _W, 0.1, None, r"tasks must be a non-empty sequence"),
        ([object()], _W, 0.1, None, r"tasks\[0\] must provide callable loss, grad, hess"),
        (
            [_FAM.tasks[0], LossOnly()],
            _W,
            0.1,
            None,
            r"tasks\[1\] must provide callable grad, hess",
        ),
        (_FAM.tasks, np.array([np.nan, 0.0]), 0.1, None, r"\bw must contain only finite"),
        (_FAM.tasks, np.zeros((2, 1)), 0.1, None, r"\bw must have shape"),
        (_FAM.tasks, "ab", 0.1, None, r"\bw must be a real array"),
    ],
    ids=O.regex_id,
)
def test_bad_input_raises_value_error_naming_parameter(fn, tasks, w, alpha, weights, match) -> None:
    """Each bad argument of ``objective``/``gradient`` raises ``ValueError`` naming it."""
    with pytest.raises(ValueError, match=match):
        fn(tasks, w, alpha, weights=weights)


def test_gradient_rejects_wrong_shapes_from_task() -> None:
    """A duck-typed task returning a Hessian of the wrong shape is caught with a clear message."""
    with pytest.raises(ValueError, match=r"task\.hess shape \(2, 2\)"):
        meta.gradient([WrongShapes()], np.zeros(2), 0.1)


def test_bad_input_checked_before_any_task_call() -> None:
    """Arguments are validated before any task method runs (errors raised before work)."""
    calls: list[str] = []

    class Spy:
        def loss(self, w):
            calls.append("loss")
            return 0.0

        def grad(self, w):
            calls.append("grad")
            return np.zeros_like(w)

        def hess(self, w):
            calls.append("hess")
            return np.zeros((w.size, w.size))

    for kwargs in ({"alpha": -1.0}, {"weights": [2.0, -1.0]}, {"w": np.array([np.inf, 0.0])}):
        args = {"w": _W, "alpha": 0.1, "weights": None, **kwargs}
        for fn in (meta.objective, meta.gradient):
            with pytest.raises(ValueError):
                fn([Spy(), Spy()], args["w"], args["alpha"], weights=args["weights"])
    assert calls == []


# =============================================================================
# sharp_smoothness_bound and curvature_along
# =============================================================================


def test_sharp_smoothness_bound_by_hand(family: T.TaskFamily) -> None:
    """``L (1 + alpha L)^2 + rho alpha (1 + alpha L) sum_i p_i ||grad f_i(w)||``."""
    for w in points(family, 7):
        for a in [*alphas(family), 3.0 / family.L]:  # any alpha >= 0 is allowed
            k = 1 + a * family.L
            mean = sum(
                p * np.linalg.norm(t.grad(w))
                for p, t in zip(family.probs, family.tasks, strict=True)
            )
            expected = family.L * k * k + family.rho * a * k * mean
            assert meta.sharp_smoothness_bound(family, w, a) == pytest.approx(expected, rel=1e-13)
            if a <= 1.0 / family.L:
                assert meta.sharp_smoothness_bound(family, w, a) <= meta.smoothness_bound(
                    family, w, a
                ) * (1 + 1e-14)
        one = 1.0 / family.L
        assert meta.sharp_smoothness_bound(family, w, one) == pytest.approx(
            meta.smoothness_bound(family, w, one), rel=1e-13
        )


def test_sharp_smoothness_bound_is_attained_by_concave_quadratics() -> None:
    fam = T.make_quadratic_family(3, 4, 2, seed=5, curvature=(-1.0, -1.0))
    r = np.random.default_rng(0)
    for a in (0.0, 0.1, 0.5, 1.0):
        w, u = r.standard_normal(3), r.standard_normal(3)
        slope = np.linalg.norm(
            meta.gradient(fam.tasks, w, a, fam.probs) - meta.gradient(fam.tasks, u, a, fam.probs)
        )
        slope /= np.linalg.norm(w - u)
        assert slope == pytest.approx(meta.sharp_smoothness_bound(fam, w, a), rel=1e-12)


def test_sharp_smoothness_bound_shapes_and_validation() -> None:
    fam = T.make_quadratic_family(2, 3, 2, seed=1)
    W = np.zeros((4, 2))
    assert meta.sharp_smoothness_bound(fam, W, np.full(4, 0.1)).shape == (4,)
    with pytest.raises(ValueError, match="alpha"):
        meta.sharp_smoothness_bound(fam, W, -0.1)
    with pytest.raises(ValueError, match="w"):
        meta.sharp_smoothness_bound(fam, np.zeros(3), 0.1)


def test_curvature_along_equals_the_closed_form_hessian_on_quadratics() -> None:
    """For quadratic tasks grad^2 F = sum_i p_i (I - alpha A_i) A_i (I - alpha A_i) exactly."""
    fam = T.make_quadratic_family(3, 4, 2, seed=9, curvature=(-1.0, 1.0))
    r = np.random.default_rng(3)
    W, V = r.standard_normal((5, 3)), r.standard_normal((5, 3))
    for a in (0.0, 0.4, 1.0 / fam.L):
        I3 = np.eye(3)
        H = sum(p * (I3 - a * A) @ A @ (I3 - a * A) for p, A in zip(fam.probs, fam.A, strict=True))
        expected = np.linalg.norm(V @ H, axis=1) / np.linalg.norm(V, axis=1)
        got = meta.curvature_along(fam, W, V, a, delta=1e-3)
        assert_close(got, expected, 1e-9)
        assert meta.curvature_along(fam, W[0], V[0], a) == pytest.approx(expected[0], rel=1e-7)


def test_curvature_along_matches_richardson_on_welsch() -> None:
    fam = T.make_welsch_family(2, 3, 4, seed=4)
    w, v = np.array([0.3, -0.5]), np.array([1.0, 2.0])
    a = 0.5 / fam.L
    hv = O.richardson_derivative(lambda x: meta.gradient(fam.tasks, x, a, fam.probs), w, v)
    expected = np.linalg.norm(hv) / np.linalg.norm(v)
    assert meta.curvature_along(fam, w, v, a, delta=1e-5) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"directions": np.zeros((2, 2))}, "directions must have non-zero rows"),
        ({"directions": np.ones((3, 2))}, "directions"),
        ({"delta": 0.0}, "delta"),
        ({"alpha": -1.0}, "alpha"),
    ],
)
def test_curvature_along_validation(kwargs: dict, match: str) -> None:
    fam = T.make_quadratic_family(2, 3, 2, seed=1)
    args = {"W": np.zeros((2, 2)), "directions": np.ones((2, 2)), "alpha": 0.1, "delta": 1e-4}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        meta.curvature_along(fam, args["W"], args["directions"], args["alpha"], args["delta"])
