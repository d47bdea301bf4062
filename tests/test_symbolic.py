"""Tests for :mod:`hfmaml_core.symbolic` (THEORY S1, L1, A2, A3).

The symbolic results are checked against oracles of a different nature:
Richardson-extrapolated finite differences (``tests/oracles.py``), the library's
numeric kernels (``meta.gradient``, the task families), dense numeric grids and
closed forms worked out by hand. A final group ties the library's Welsch constants
(``tasks.WELSCH_MAX_D2``, ``tasks.WELSCH_MAX_D3``, and the closed-form ``L_i``,
``rho_i``) to the sympy derivation, so that a test fails if they disagree.
"""

from __future__ import annotations

import math

import numpy as np
import oracles as O
import pytest
import sympy as sp

from hfmaml_core import meta
from hfmaml_core import symbolic as Y
from hfmaml_core import tasks as T

W1 = sp.Symbol("w", real=True)
ALPHA = sp.Symbol("alpha", real=True)
W3 = sp.symbols("w0:3", real=True)
#: A 3-D loss with a non-constant Hessian (quartic, product, sine, log-sum-exp).
F3 = (
    W3[0] ** 4 / 12
    + W3[0] * W3[1] ** 2 / 2
    + W3[1] * sp.sin(W3[2])
    + sp.log(1 + sp.exp(W3[0] - W3[2]))
)
R = sp.Symbol("r", real=True)


def rel_err(actual: object, desired: object) -> float:
    a, d = np.asarray(actual, float), np.asarray(desired, float)
    return float(np.max(np.abs(a - d)) / max(np.max(np.abs(d)), 1e-300))


# =============================================================================
# S1
# =============================================================================


def test_s1_residual_is_zero_for_a_generic_function() -> None:
    f = sp.Function("f")(W1)
    assert Y.s1_residual(f, W1, ALPHA) == sp.zeros(1, 1)


@pytest.mark.parametrize(
    "f, w",
    [
        (F3, W3),
        (W3[0] ** 3 * W3[1] + sp.cos(W3[0] * W3[1]), W3[:2]),
        (sp.exp(-(W3[0] ** 2) - W3[1] ** 2) * W3[0], W3[:2]),
    ],
    ids=["3-D", "2-D poly-cos", "2-D gaussian"],
)
def test_s1_residual_is_zero_in_several_dimensions(f: sp.Expr, w: tuple) -> None:
    assert Y.s1_residual(f, list(w), ALPHA) == sp.zeros(len(w), 1)


def test_s1_residual_detects_a_wrong_formula() -> None:
    """Mutation: (I + alpha H) instead of (I - alpha H) leaves a nonzero residual."""
    wrong = (sp.eye(3) + ALPHA * sp.hessian(F3, W3)) * sp.Matrix([sp.diff(F3, x) for x in W3]).subs(
        {x: x - ALPHA * sp.diff(F3, x) for x in W3}, simultaneous=True
    )
    diff = (Y.maml_gradient(F3, W3, ALPHA) - wrong).applyfunc(sp.expand)
    assert any(e != 0 for e in diff)


def test_maml_gradient_matches_richardson_differences_of_the_objective() -> None:
    """sympy's gradient of F equals high-order finite differences of F itself."""
    a = 0.3
    F = sp.lambdify([W3], Y.maml_objective(F3, W3, a), "numpy")
    G = sp.lambdify([W3], list(Y.maml_gradient(F3, W3, a)), "numpy")
    rng = np.random.default_rng(0)
    for _ in range(5):
        w = rng.standard_normal(3)
        fd = O.fd_gradient(lambda x: F(list(x)), w, h=1e-2)
        assert rel_err(np.array(G(list(w)), float), fd) < 1e-8


def test_meta_gradient_agrees_with_sympy_on_a_symbolic_task() -> None:
    task = Y.SymbolicTask(F3, W3)
    G = sp.lambdify([W3, ALPHA], list(Y.maml_gradient(F3, W3, ALPHA)), "numpy")
    Fobj = sp.lambdify([W3, ALPHA], Y.maml_objective(F3, W3, ALPHA), "numpy")
    rng = np.random.default_rng(1)
    for _ in range(10):
        w, a = rng.standard_normal(3), rng.uniform(0, 0.5)
        assert rel_err(meta.gradient([task], w, a), np.array(G(list(w), a), float)) < 1e-12
        assert meta.objective([task], w, a) == pytest.approx(float(Fobj(list(w), a)), rel=1e-12)


def test_symbolic_task_matches_finite_differences() -> None:
    task = Y.SymbolicTask(F3, W3)
    w = np.array([0.3, -0.7, 1.1])
    assert rel_err(task.grad(w), O.fd_gradient(task.loss, w)) < 1e-9
    assert rel_err(task.hess(w), O.fd_jacobian(task.grad, w)) < 1e-9


def test_welsch_task_expr_matches_the_family_kernels() -> None:
    fam = T.make_welsch_family(3, n_tasks=2, n_points=5, seed=3, input_scale=2.0)
    w = np.array([0.4, -1.2, 0.9])
    for i in range(2):
        f = Y.welsch_task_expr(fam, i, list(W3))
        assert float(f.subs(dict(zip(W3, w, strict=True)))) == pytest.approx(
            fam.tasks[i].loss(w), rel=1e-13
        )
        g = sp.lambdify([W3], [sp.diff(f, x) for x in W3], "numpy")(list(w))
        assert rel_err(fam.tasks[i].grad(w), np.array(g, float)) < 1e-13


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: Y.maml_objective(3.0, W1, ALPHA), "f must be a sympy expression"),
        (lambda: Y.maml_objective(W1**2, "w", ALPHA), "w must be a sympy Symbol"),
        (lambda: Y.maml_objective(W1**2, [W1, W1], ALPHA), "distinct Symbols"),
        (lambda: Y.maml_objective(W1**2, W1, -0.1), "alpha must be a real number >= 0"),
        (lambda: Y.maml_objective(W1**2, W1, "a"), "alpha must be"),
        (lambda: Y.maml_second_derivative(F3, list(W3), ALPHA), "w must be a single sympy Symbol"),
        (lambda: Y.SymbolicTask(W1 * ALPHA, [W1]), "f must depend only on w"),
        (lambda: Y.SymbolicTask(F3, W3).grad(np.zeros(2)), "w must have shape"),
        (lambda: Y.sup_abs(R**2, R), "no finite limit"),
        (lambda: Y.sup_abs(sp.Integer(3), R), "expr must depend on r"),
        (lambda: Y.nonnegative_on_box(R, {R: 0}), "box must be a dict"),
        (lambda: Y.scan_l1_chain_1d(1), "n_grid must be an integer >= 2"),
        (lambda: Y.l1_decomposition(0), "d must be an integer >= 1"),
        (lambda: Y.inflection_profile(-1.0), "gradient must be"),
        (
            lambda: Y.welsch_task_expr(T.make_quadratic_family(2, seed=0), 0, W3[:2]),
            "family must be a WelschRegressionFamily",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# =============================================================================
# L1: identity, chain, proofs, scan
# =============================================================================


def test_l1_identity_holds_for_a_generic_function() -> None:
    ident = Y.l1_identity_1d()
    assert ident.residual == 0
    S = Y.l1_symbols()
    assert ident.structured == (1 - S.alpha * S.h) ** 2 * S.h_hat - S.alpha * S.t * S.g_hat


def test_second_derivative_matches_finite_differences() -> None:
    """sympy's F'' equals a Richardson derivative of Richardson derivatives of F."""
    f = sp.sin(W1) + W1**2 / 5 + sp.exp(-W1)
    a = 0.4
    F = sp.lambdify(W1, Y.maml_objective(f, W1, a), "numpy")
    F2 = sp.lambdify(W1, Y.maml_second_derivative(f, W1, a), "numpy")

    def dF(x: np.ndarray) -> np.ndarray:
        return O.richardson_derivative(F, x, np.ones(1), h=1e-2)

    for w in (-1.3, 0.2, 2.5):
        fd = float(O.richardson_derivative(dF, np.array([w]), np.ones(1), h=5e-2)[0])
        assert float(F2(w)) == pytest.approx(fd, rel=1e-6, abs=1e-7)


def test_l1_chain_steps_2_to_4_are_proved_and_step_1_is_left_to_the_scan() -> None:
    chain = Y.l1_chain_1d()
    assert len(chain) == 4
    assert chain[0].gap_terms is None and not Y.prove_step(chain[0])
    assert all(Y.prove_step(step) for step in chain[1:])
    for a, b in zip(chain[:-1], chain[1:], strict=True):  # consecutive steps chain up
        assert sp.simplify(a.rhs - b.lhs) == 0
    S = Y.l1_symbols()
    assert chain[-1].rhs == 4 * S.L + 2 * S.rho * S.alpha * S.gamma


def test_prove_step_rejects_false_or_mismatched_steps() -> None:
    """Mutations: a too-small right side, or gap terms that do not sum to the gap."""
    step4 = Y.l1_chain_1d()[3]
    S = Y.l1_symbols()
    too_small = Y.Step(
        step4.label,
        step4.reason,
        step4.lhs,
        3 * S.L + 2 * S.rho * S.alpha * S.gamma,
        (S.L * (3 - (1 + S.alpha * S.L) ** 2), step4.gap_terms[1]),
        step4.box,
    )
    assert not Y.prove_step(too_small)
    mismatched = Y.Step(
        step4.label, step4.reason, step4.lhs, step4.rhs, step4.gap_terms[:1], step4.box
    )
    assert not Y.prove_step(mismatched)
    no_alpha_bound = Y.Step(step4.label, step4.reason, step4.lhs, step4.rhs, step4.gap_terms, {})
    assert not Y.prove_step(no_alpha_bound)  # alpha <= 1/L is needed


def test_nonnegative_on_box_known_cases() -> None:
    x, y = sp.symbols("x y", real=True)
    p = sp.Symbol("p", positive=True)
    box = {x: (0, 1), y: (0, 1)}
    assert Y.nonnegative_on_box(x * (1 - x), box)
    assert Y.nonnegative_on_box(1 - x * y, box)
    assert Y.nonnegative_on_box((x - 3) ** 2 * (x + y), box)
    assert Y.nonnegative_on_box(p * (2 - x), box)
    assert Y.nonnegative_on_box(-(x - 1) * (x + 3), {x: (0, 1)})
    assert not Y.nonnegative_on_box(x - sp.Rational(1, 2), box)  # false on the box
    assert not Y.nonnegative_on_box(-x, box)
    assert not Y.nonnegative_on_box(x**3 - x + 1, {x: (0, 1)})  # true but not decidable here


def test_nonnegative_on_box_agrees_with_a_grid() -> None:
    """Whatever it proves holds on a grid (random multilinear products)."""
    x, y = sp.symbols("x y", real=True)
    rng = np.random.default_rng(4)
    gx, gy = np.meshgrid(np.linspace(-1, 2, 31), np.linspace(0, 3, 31))
    proved = 0
    for _ in range(40):
        c = rng.integers(-3, 4, size=(2, 4))
        e = sp.Mul(*[ci[0] + ci[1] * x + ci[2] * y + ci[3] * x * y for ci in c])
        if Y.nonnegative_on_box(e, {x: (-1, 2), y: (0, 3)}):
            proved += 1
            assert np.min(sp.lambdify((x, y), e, "numpy")(gx, gy)) >= -1e-12
    assert proved > 0


def test_scan_of_the_chain_never_exceeds_one_and_is_tight() -> None:
    out = Y.scan_l1_chain_1d(5)
    for k in range(1, 5):
        assert out[f"step {k}"] <= 1.0
        assert out[f"step {k}"] == pytest.approx(1.0, abs=1e-12)  # every step is sharp
    assert out["overall"] == pytest.approx(1.0, abs=1e-12)  # 4L attained at g = 0, alpha = 1/L


def test_final_bound_holds_for_real_functions_by_finite_differences() -> None:
    """|F''(w)| <= 4L + 2 rho alpha |f'(w)| for concrete tasks, F'' from differences of meta.gradient."""
    ridge = Y.make_ridge_family(1, n_tasks=1, seed=2, mu=0.3, amplitude=1.5)
    welsch = T.make_welsch_family(1, n_tasks=1, n_points=6, seed=2, input_scale=2.0)
    for fam in (ridge, welsch):
        task = fam.tasks[0]
        for a in (0.0, 0.5 / fam.L, 1.0 / fam.L):
            for w in np.linspace(-30, 30, 61):
                d2 = O.richardson_derivative(
                    lambda x, a=a, task=task: meta.gradient([task], x, a), np.array([w]), np.ones(1)
                )[0]
                bound = 4 * fam.L + 2 * fam.rho * a * abs(task.grad(np.array([w]))[0])
                assert abs(d2) <= bound * (1 + 1e-8)


def test_concave_quadratic_attains_4l() -> None:
    L = sp.Symbol("L", positive=True)
    assert sp.simplify(Y.maml_second_derivative(-L * W1**2 / 2, W1, 1 / L)) == -4 * L


@pytest.mark.parametrize("d", [1, 2, 3])
def test_l1_decomposition_identity(d: int) -> None:
    _, _, residual = Y.l1_decomposition(d)
    assert residual == sp.zeros(d, 1)


# =============================================================================
# sup |g|
# =============================================================================


@pytest.mark.parametrize(
    "expr, value, argmax",
    [
        (R * sp.exp(-(R**2)), math.exp(-0.5) / math.sqrt(2), {-1 / math.sqrt(2), 1 / math.sqrt(2)}),
        (1 / (1 + R**2), 1.0, {0.0}),
        (sp.tanh(R), 1.0, None),  # approached only as |r| -> infinity
        (sp.cos(2 * R) + sp.sin(R), 2.0, {3 * math.pi / 2}),
        (-sp.sin(R), 1.0, {math.pi / 2, 3 * math.pi / 2}),
    ],
    ids=["r exp(-r^2)", "1/(1+r^2)", "tanh", "cos 2r + sin r", "-sin"],
)
def test_sup_abs_closed_forms(expr: sp.Expr, value: float, argmax: set | None) -> None:
    res = Y.sup_abs(expr, R)
    assert float(res.value) == pytest.approx(value, rel=1e-14)
    if argmax is None:
        assert res.argmax is None
    else:
        assert {round(float(a), 12) for a in res.argmax} == {round(a, 12) for a in argmax}


# =============================================================================
# the library's constants, tied to the sympy derivation
# =============================================================================


def _welsch_derivative(r: np.ndarray, k: int) -> np.ndarray:
    """phi^(k)(r) by hand (independent of sympy and of the library)."""
    e = np.exp(-(r**2) / 2)
    return {2: (1 - r**2) * e, 3: (r**3 - 3 * r) * e}[k]


def test_welsch_constants_derived_by_sympy() -> None:
    c = Y.welsch_constants()
    assert c["d2"].value == 1 and c["d2"].argmax == (0,)
    closed = sp.sqrt(6 * (3 - sp.sqrt(6))) * sp.exp(-(3 - sp.sqrt(6)) / 2)
    assert sp.simplify(c["d3"].value - closed) == 0
    assert {sp.simplify(a**2) for a in c["d3"].argmax} == {3 - sp.sqrt(6)}
    # a dense grid (by hand, not sympy) never exceeds them and comes close
    r = np.linspace(-12, 12, 480001)
    for k in (2, 3):
        grid = np.max(np.abs(_welsch_derivative(r, k)))
        assert grid <= float(c[f"d{k}"].value) * (1 + 1e-15)
        assert grid >= float(c[f"d{k}"].value) * (1 - 1e-8)


def test_library_welsch_max_constants_equal_the_sympy_derivation() -> None:
    """tasks.WELSCH_MAX_D2 / WELSCH_MAX_D3 must equal sympy's max|phi''|, max|phi'''|."""
    c = Y.welsch_constants()
    assert T.WELSCH_MAX_D2 == pytest.approx(float(c["d2"].value.evalf(30)), rel=1e-15, abs=0)
    assert T.WELSCH_MAX_D3 == pytest.approx(float(c["d3"].value.evalf(30)), rel=1e-15, abs=0)


def test_library_welsch_L_and_rho_follow_the_sympy_constants() -> None:
    """L_i = max|phi''| |Sigma_i|_2 and rho_i = max|phi'''| |M_i|_2, with sympy's maxima."""
    c = Y.welsch_constants()
    d2, d3 = float(c["d2"].value.evalf(30)), float(c["d3"].value.evalf(30))
    fam = T.make_welsch_family(4, n_tasks=3, n_points=20, seed=5, input_scale=1.5)
    for i in range(3):
        X = fam.X[i]
        sigma = X.T @ X / len(X)
        M = (np.linalg.norm(X, axis=1)[:, None] * X).T @ X / len(X)
        assert fam.L_tasks[i] == pytest.approx(d2 * np.linalg.norm(sigma, 2), rel=1e-13)
        assert fam.rho_tasks[i] == pytest.approx(d3 * np.linalg.norm(M, 2), rel=1e-13)


@pytest.mark.parametrize("x, y", [(-1.7, 0.4), (0.6, -2.0), (3.0, 1.0)])
def test_library_welsch_L_and_rho_are_attained_for_one_point(x: float, y: float) -> None:
    """For f(w) = phi(x w - y) the closed forms equal sympy's sup|f''| and sup|f'''| exactly."""
    fam = T.WelschRegressionFamily(np.array([[[x]]]), np.array([[y]]))
    c = Y.welsch_constants()
    f = Y.welsch_profile()(sp.Float(x, 17) * W1 - sp.Float(y, 17))
    for k, lib in ((2, fam.L), (3, fam.rho)):
        sup = max(abs(float(sp.diff(f, W1, k).subs(W1, (y + r) / x))) for r in c[f"d{k}"].argmax)
        assert lib == pytest.approx(sup, rel=1e-13)


# =============================================================================
# RidgeFamily
# =============================================================================


@pytest.fixture(scope="module")
def ridge() -> Y.RidgeFamily:
    return Y.make_ridge_family(3, n_tasks=4, seed=7, mu=0.3, amplitude=0.8)


def test_ridge_constants_from_the_profile(ridge: Y.RidgeFamily) -> None:
    np.testing.assert_allclose(ridge.L_tasks, 0.3 + 0.8)
    np.testing.assert_allclose(ridge.rho_tasks, 0.8)
    np.testing.assert_allclose(np.linalg.norm(ridge.a, axis=1), 1.0)
    wfam = Y.make_ridge_family(2, n_tasks=2, seed=0, mu=0.1, profile=Y.welsch_profile())
    np.testing.assert_allclose(wfam.L_tasks, 0.1 + 1.0)
    np.testing.assert_allclose(wfam.rho_tasks, T.WELSCH_MAX_D3, rtol=1e-15)


def test_ridge_kernels_match_finite_differences(ridge: Y.RidgeFamily) -> None:
    rng = np.random.default_rng(8)
    for scale in (0.5, 5.0, 50.0):
        w = scale * rng.standard_normal(3)
        v = rng.standard_normal(3)
        for t in ridge.tasks:
            assert rel_err(t.grad(w), O.fd_gradient(t.loss, w, h=1e-2)) < 1e-8
            H = O.fd_jacobian(t.grad, w, h=1e-2)
            assert rel_err(t.hess(w), H) < 1e-8
            assert rel_err(t.hvp(w, v), H @ v) < 1e-8


def test_ridge_batched_kernels_match_sympy_and_single_calls(ridge: Y.RidgeFamily) -> None:
    rng = np.random.default_rng(9)
    W = 3 * rng.standard_normal((8, 3))
    V = rng.standard_normal((8, 3))
    T_ = np.arange(8) % ridge.n_tasks
    G, H, HV, Lo = (
        ridge.grads(W, T_),
        ridge.hessians(W, T_),
        ridge.hvps(W, V, T_),
        ridge.losses(W, T_),
    )
    for b in range(8):
        f = ridge.task_expr(int(T_[b]), list(W3))
        sub = dict(zip(W3, W[b], strict=True))
        assert Lo[b] == pytest.approx(float(f.subs(sub)), rel=1e-13)
        g = np.array([float(sp.diff(f, x).subs(sub)) for x in W3])
        h = np.array([[float(sp.diff(f, x, y).subs(sub)) for y in W3] for x in W3])
        assert rel_err(G[b], g) < 1e-13 and rel_err(H[b], h) < 1e-13
        assert rel_err(HV[b], h @ V[b]) < 1e-13
    idx = ridge.sample_points(np.random.default_rng(0), 8, 3)  # one data point: batch = population
    np.testing.assert_array_equal(ridge.grads(W, T_, idx), G)


def test_ridge_constants_bound_the_hessian_and_are_nearly_attained(ridge: Y.RidgeFamily) -> None:
    rng = np.random.default_rng(10)
    n = 4000
    T_ = rng.integers(0, ridge.n_tasks, n)
    W = 10 * rng.standard_normal((n, 3))
    U = W + 10 ** rng.uniform(-4, 1, (n, 1)) * rng.standard_normal((n, 3))
    HW, HU = ridge.hessians(W, T_), ridge.hessians(U, T_)
    ratio2 = np.linalg.norm(HW, 2, axis=(1, 2)) / ridge.L_tasks[T_]
    ratio3 = np.linalg.norm(HW - HU, 2, axis=(1, 2)) / (
        ridge.rho_tasks[T_] * np.linalg.norm(W - U, axis=1)
    )
    assert ratio2.max() <= 1 + 1e-14 and ratio2.max() > 0.999
    assert ratio3.max() <= 1 + 1e-9 and ratio3.max() > 0.99


def test_ridge_family_is_not_globally_smooth_but_l1_holds() -> None:
    """Curvature of F along a line grows with |w|; it stays below L(w) (meta.smoothness_bound)."""
    fam = Y.make_ridge_family(1, n_tasks=2, seed=1)
    a = 1.0 / fam.L
    curv = {}
    for w in np.linspace(0, 400, 801):
        d2 = O.richardson_derivative(
            lambda x: meta.gradient(fam.tasks, x, a, weights=fam.probs), np.array([w]), np.ones(1)
        )[0]
        assert abs(d2) <= meta.smoothness_bound(fam, np.array([w]), a)
        curv[w] = abs(d2)
    far = max(v for w, v in curv.items() if w >= 300)
    near = max(v for w, v in curv.items() if w <= 40)
    assert far > 4 * fam.L and far > 4 * near


def test_make_ridge_family_is_deterministic() -> None:
    a, b = Y.make_ridge_family(5, seed=3), Y.make_ridge_family(5, seed=3)
    for attr in ("a", "c", "s", "b"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert not np.array_equal(a.c, Y.make_ridge_family(5, seed=4).c)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mu": -1.0}, "mu must be a finite number >= 0"),
        ({"b": [1.0, -1.0]}, "b must be >= 0"),
        ({"a": [[0.0, 0.0], [1.0, 0.0]]}, "a must have non-zero rows"),
        ({"c": [0.0, 1.0]}, r"c must have shape \(m, d\)"),
        ({"s": [0.0]}, r"s must have shape \(2,\)"),
        ({"profile": sp.sin(R)}, "profile must be a sympy Lambda"),
        ({"profile": sp.Lambda(R, R**3)}, "no finite limit"),
    ],
)
def test_ridge_family_validation(kwargs: dict, match: str) -> None:
    args = {"mu": 0.2, "c": np.zeros((2, 2)), "a": np.eye(2), "s": np.zeros(2), "b": np.ones(2)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Y.RidgeFamily(**args)


# =============================================================================
# controls: plausible mistakes that the same checks must catch
# =============================================================================


@pytest.mark.parametrize("mistake", Y.S1_MISTAKES)
def test_every_s1_mistake_leaves_a_nonzero_residual(mistake: str) -> None:
    f = sp.Function("f")(W1)
    assert any(e != 0 for e in Y.s1_residual(f, W1, ALPHA, mistake=mistake))
    res3 = Y.s1_residual(F3, W3, ALPHA, mistake=mistake)
    assert all(e != 0 for e in res3)
    # the residual is really non-zero: evaluate the wrong formula against finite differences
    fn = sp.lambdify([W3, ALPHA], list(res3), "numpy")
    assert np.max(np.abs(fn([0.3, -0.7, 0.4], 0.2))) > 1e-3


def test_s1_mistakes_are_the_formulas_they_name() -> None:
    """Hand-written wrong formulas (independent of the library's switch)."""
    f = W1**4 / 12 + sp.sin(W1)
    fp, fpp = sp.diff(f, W1), sp.diff(f, W1, 2)
    adapted = W1 - ALPHA * fp
    outer = fp.subs(W1, adapted)
    by_hand = {
        "first-order": outer,
        "plus-sign": (1 + ALPHA * fpp) * outer,
        "hessian-at-adapted": (1 - ALPHA * fpp.subs(W1, adapted)) * outer,
    }
    for m, expr in by_hand.items():
        assert sp.simplify(Y.s1_gradient(f, W1, ALPHA, mistake=m)[0] - expr) == 0
    assert Y.s1_residual(f, W1, ALPHA) == sp.zeros(1, 1)


@pytest.mark.parametrize("mistake", Y.L1_IDENTITY_MISTAKES)
def test_l1_identity_mistakes_leave_a_nonzero_residual(mistake: str) -> None:
    assert Y.l1_identity_1d(mistake=mistake).residual != 0
    assert Y.l1_identity_1d().residual == 0


def test_l1_chain_mistakes_are_not_proved_and_exceed_one_on_the_grid() -> None:
    wrong_step = {"adapted-gradient": 2, "constant-3L": 3}  # 0-based index of the wrong step
    for m, k in wrong_step.items():
        chain = Y.l1_chain_1d(mistake=m)
        proved = [Y.prove_step(st) for st in chain]
        assert proved[k] is False
        assert all(proved[j] for j in (1, 2, 3) if j != k)
        out = Y.scan_l1_chain_1d(5, mistake=m)
        assert out[f"step {k + 1}"] > 1.0
    # the exact worst ratios: 1 + alpha L = 2 at alpha = 1/L, and 4L / 3L
    assert Y.scan_l1_chain_1d(5, g_max=1e6, mistake="adapted-gradient")["overall"] == pytest.approx(
        2.0, rel=1e-5
    )
    assert Y.scan_l1_chain_1d(5, mistake="constant-3L")["overall"] == pytest.approx(
        4 / 3, rel=1e-12
    )


def test_l1_decomposition_mistake_is_caught() -> None:
    _, _, residual = Y.l1_decomposition(2, mistake="mixed-roles")
    assert any(e != 0 for e in residual)


def test_l1_decomposition_of_symbolic_size_agrees_with_explicit_matrices() -> None:
    # n x n with n symbolic: no term is left; the wrong right side leaves exactly the terms
    # whose explicit 2 x 2 expansion is non-zero (an independent expansion, entry by entry)
    assert Y.l1_decomposition(None)[2] == ()
    _, _, terms = Y.l1_decomposition(None, mistake="mixed-roles")
    assert len(terms) == 4
    a = sp.Symbol("alpha", nonnegative=True)
    d = 2
    subs = {
        sp.MatrixSymbol("H_w", d, d): sp.Matrix(d, d, sp.symbols("p0:4")),
        sp.MatrixSymbol("H_u", d, d): sp.Matrix(d, d, sp.symbols("q0:4")),
        sp.MatrixSymbol(r"g_{\hat w}", d, 1): sp.Matrix(sp.symbols("x0:2")),
        sp.MatrixSymbol(r"g_{\hat u}", d, 1): sp.Matrix(sp.symbols("y0:2")),
    }
    n = sp.Symbol("n", integer=True, positive=True)
    total = sum((t.subs(n, d).xreplace(subs).doit() for t in terms), sp.zeros(d, 1)).applyfunc(
        sp.expand
    )
    explicit = Y.l1_decomposition(d, mistake="mixed-roles")[2]
    assert (total - explicit.xreplace(subs)).applyfunc(sp.expand) == sp.zeros(d, 1)
    assert a in total.free_symbols


def test_maml_gradient_cache_returns_independent_copies() -> None:
    g1 = Y.maml_gradient(F3, W3, ALPHA)
    g1[0] = sp.Integer(7)
    g2 = Y.maml_gradient(F3, W3, ALPHA)
    assert g2[0] != 7
    assert Y.s1_residual(F3, W3, ALPHA) == sp.zeros(3, 1)


def test_inflection_profile_derivatives_and_constants() -> None:
    prof = Y.inflection_profile(10.0)
    r = prof.variables[0]
    closed = [10 + sp.sqrt(1 + r**2), r / sp.sqrt(1 + r**2), (1 + r**2) ** sp.Rational(-3, 2)]
    for k, expected in enumerate(closed, 1):
        assert sp.simplify(sp.diff(prof.expr, r, k) - expected) == 0
    fam = Y.make_ridge_family(3, 2, seed=0, mu=0.0, profile=prof)
    assert fam.L == pytest.approx(1.0, rel=1e-15) and fam.rho == pytest.approx(1.0, rel=1e-15)
    assert fam.sup_d2.argmax is None  # sup |psi''| = 1 only as |r| -> infinity
    assert set(fam.sup_d3.argmax) == {0}
    # the kernels against central differences of the profile (an independent oracle)
    x = np.linspace(-3.0, 3.0, 13)
    h = 1e-5
    psi = sp.lambdify(r, prof.expr, "numpy")
    for k in (1, 2):
        fd = (fam._psi_k(k - 1, x + h) - fam._psi_k(k - 1, x - h)) / (2 * h)
        np.testing.assert_allclose(fam._psi_k(k, x), fd, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(fam._psi_k(0, x), psi(x), rtol=1e-14)


@pytest.mark.parametrize("G", [100.0, 1000.0])
def test_inflection_ridge_approaches_the_gradient_term_of_the_sharp_constant(G: float) -> None:
    # exact F'' by sympy at the inflection point r = 0, alpha = 1/L: near
    # L(1 + alpha L)^2 + rho alpha (1 + alpha L)|f'|, and above it with rho alpha instead
    fam = Y.make_ridge_family(1, 1, seed=0, mu=0.0, profile=Y.inflection_profile(G))
    a = 1.0 / fam.L
    w0 = fam.s[0] / fam.a[0, 0]  # r = a w - s = 0
    F2 = sp.diff(Y.maml_objective(fam.task_expr(0, [W1]), W1, a), W1, 2)
    curv = abs(float(F2.subs(W1, w0)))
    g = abs(float(fam.grads(np.array([[w0]]), np.array([0]))[0, 0]))
    assert g == pytest.approx(G + 1, rel=1e-12)
    k = 1 + a * fam.L
    sharp = fam.L * k**2 + fam.rho * a * k * g
    assert curv <= sharp
    assert curv / sharp > 1 - 3 / G
    assert curv / (fam.L * k**2 + fam.rho * a * g) > 2 - 10 / G


@pytest.mark.parametrize(
    "call",
    [
        lambda: Y.s1_gradient(F3, W3, ALPHA, mistake="dropped"),
        lambda: Y.s1_residual(F3, W3, ALPHA, mistake="dropped"),
        lambda: Y.l1_identity_1d(mistake="dropped"),
        lambda: Y.l1_chain_1d(mistake="dropped"),
        lambda: Y.scan_l1_chain_1d(3, mistake="dropped"),
        lambda: Y.l1_decomposition(2, mistake="dropped"),
        lambda: Y.l1_sharp_chain_1d(mistake="constant-3L"),
    ],
)
def test_unknown_mistake_raises_value_error(call) -> None:
    with pytest.raises(ValueError, match="mistake must be None or one of"):
        call()


# =============================================================================
# the sharper constant L(1 + alpha L)^2 + rho alpha (1 + alpha L)|f'|
# =============================================================================


def test_sharp_chain_is_proved_for_every_alpha_and_ends_at_the_sharp_constant() -> None:
    S = Y.l1_symbols()
    chain = Y.l1_sharp_chain_1d()
    assert len(chain) == 3 and chain[0].gap_terms is None
    assert all(Y.prove_step(st) for st in chain[1:])
    k = 1 + S.alpha * S.L
    assert sp.expand(chain[-1].rhs - (S.L * k**2 + S.rho * S.alpha * k * S.gamma)) == 0
    upper = chain[1].box[S.alpha][1]
    assert isinstance(upper, sp.Symbol) and upper.is_positive  # alpha in [0, A] for any A > 0
    wrong = Y.l1_sharp_chain_1d(mistake="adapted-gradient")
    assert Y.prove_step(wrong[2]) is False


def test_sharp_constant_holds_beyond_one_over_l_by_finite_differences() -> None:
    """|F''(w)| <= L(1 + aL)^2 + rho a (1 + aL)|f'(w)| for a up to 3/L, where 4L + 2 rho a|f'| fails."""
    ridge = Y.make_ridge_family(1, n_tasks=1, seed=2, mu=0.3, amplitude=1.5)
    task = ridge.tasks[0]
    L, rho = ridge.L, ridge.rho
    worst_l1 = 0.0
    for a in (0.1 / L, 1.0 / L, 2.0 / L, 3.0 / L):
        for w in np.linspace(-20, 20, 81):
            d2 = O.richardson_derivative(
                lambda x, a=a: meta.gradient([task], x, a), np.array([w]), np.ones(1)
            )[0]
            g = abs(task.grad(np.array([w]))[0])
            k = 1 + a * L
            assert abs(d2) <= (L * k**2 + rho * a * k * g) * (1 + 1e-8)
            worst_l1 = max(worst_l1, abs(d2) / (4 * L + 2 * rho * a * g))
    assert worst_l1 > 1.0  # L1's formula, out of its range alpha <= 1/L, is violated


def test_concave_quadratic_attains_the_sharp_constant_for_every_alpha() -> None:
    L = sp.Symbol("L", positive=True)
    a = sp.Symbol("alpha", nonnegative=True)
    F2 = Y.maml_second_derivative(-L * W1**2 / 2, W1, a)
    assert sp.simplify(F2 + L * (1 + a * L) ** 2) == 0
