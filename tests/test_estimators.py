"""One iteration's directions of MAML, FO-MAML and HF-MAML (hfmaml_core.estimators).

Oracles, none sharing code with the estimators:

* with full-data batches, the task-by-task `meta.gradient` (explicit Hessians, itself
  checked against sympy in test_meta.py);
* closed forms on quadratic tasks, written here from the family's data arrays (A, c, s, b):
  FO-MAML's bias and the bias of the "inner" Hessian batch;
* on Welsch tasks with D_in = 1, the exact expectation over the inner batch by enumerating
  the n possible points, with the Welsch derivatives written out here.

Statistical tests use fixed seeds; a mean "matches" an expectation when every coordinate is
within 4.5 standard errors (a false alarm has probability < 1e-4 per test), and a bias is
"detected" when it exceeds 10 standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from hfmaml_core import estimators as E
from hfmaml_core import meta, tasks

Z_MATCH = 4.5
Z_DETECT = 10.0


def welsch_family():
    return tasks.make_welsch_family(4, 5, 16, seed=3, input_scale=2.0)


def quad_family(hess_noise=0.5):
    return tasks.make_quadratic_family(4, 5, 16, seed=3, hess_noise=hess_noise)


FAMILIES = {"welsch": welsch_family, "quadratic": quad_family}


def points(fam, k=3, seed=0):
    return np.random.default_rng(seed).standard_normal((k, fam.dim))


def mc(fam, w, alpha, method, n, seed, **kw):
    """Mean and standard error of n draws of the direction at w (the test's own averaging)."""
    d = E.direction(fam, np.tile(w, (n, 1)), alpha, method, np.random.default_rng(seed), **kw)
    return d.u.mean(axis=0), d.u.std(axis=0, ddof=1) / np.sqrt(n)


def assert_matches(mean, se, expected):
    z = np.abs(mean - expected) / se
    assert z.max() < Z_MATCH, f"mean differs from expectation by {z.max():.2f} standard errors"


# ----------------------------------------------------------------------------- exact batches
@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("hessian", E.HESSIAN_MODES)
@pytest.mark.parametrize("hessian_batch", E.HESSIAN_BATCHES)
def test_maml_with_full_batches_is_the_exact_meta_gradient(name, hessian, hessian_batch):
    fam = FAMILIES[name]()
    W = points(fam)
    alpha = 0.6 / fam.L
    d = E.direction(
        fam,
        W,
        alpha,
        "maml",
        np.random.default_rng(0),
        batch_tasks=None,
        d_in=None,
        d_o=None,
        d_h=None,
        hessian=hessian,
        hessian_batch=hessian_batch,
    )
    for k, w in enumerate(W):
        ref = meta.gradient(fam.tasks, w, alpha, fam.probs)
        np.testing.assert_allclose(d.u[k], ref, rtol=0, atol=1e-10 * max(1.0, np.abs(ref).max()))


def test_hfmaml_with_full_batches_is_within_the_h1_bound():
    fam = welsch_family()
    alpha = 0.15 / fam.L
    for w in points(fam, 4, seed=1) * 1.5:
        d = E.direction(
            fam,
            w,
            alpha,
            "hfmaml",
            np.random.default_rng(0),
            batch_tasks=None,
            d_in=None,
            d_o=None,
            d_h=None,
        )
        ref = meta.gradient(fam.tasks, w, alpha, fam.probs)
        G = np.array([t.grad(w - alpha * t.grad(w)) for t in fam.tasks])
        gn = np.linalg.norm(G, axis=1)
        np.testing.assert_allclose(d.delta, 1 / (6 * fam.rho * alpha * gn), rtol=1e-14)
        # H1 per task: |alpha (d_i - H_i g_i)| <= alpha rho_i delta_i |g_i|^2 (= |g_i|/6 at rho_i = rho)
        bound = fam.probs @ (alpha * fam.rho_tasks * d.delta * gn**2)
        err = np.linalg.norm(d.u - ref)
        assert err <= bound
        assert bound <= fam.probs @ gn / 6 * (1 + 1e-12)
        assert err > 1e-10  # the theorem's delta is large: the error is real, not rounding


def test_hessian_term_error_against_a_task_by_task_loop():
    """Oracle: Task.grad / Task.hvp on the drawn batches, one (run, task) pair at a time, with
    the draws replayed in the documented order (tasks, then D_in, D_o, D_h)."""
    fam = welsch_family()
    alpha = 0.15 / fam.L
    W = points(fam, 3, seed=2)
    B, D = 5, 3
    for delta in ("theorem", 0.7):
        got = E.hessian_term_error(
            fam,
            W,
            alpha,
            np.random.default_rng(4),
            batch_tasks=B,
            d_in=D,
            d_o=D,
            d_h=D,
            delta=delta,
        )
        rng = np.random.default_rng(4)
        T = rng.choice(fam.n_tasks, size=3 * B, p=fam.probs)
        I_in, I_o, I_h = (rng.integers(0, fam.n_points, size=(3 * B, D)) for _ in range(3))
        want = np.empty(3 * B)
        for j, t in enumerate(T):
            task, w = fam.tasks[t], W[j // B]
            g = task.grad(w - alpha * task.grad(w, I_in[j]), I_o[j])
            dl = 1 / (6 * fam.rho * alpha * np.linalg.norm(g)) if delta == "theorem" else delta
            cd = (task.grad(w + dl * g, I_h[j]) - task.grad(w - dl * g, I_h[j])) / (2 * dl)
            want[j] = alpha * np.linalg.norm(cd - task.hvp(w, g, I_h[j])) / np.linalg.norm(g)
        np.testing.assert_allclose(got, want.reshape(3, B), rtol=1e-9, atol=1e-15)
    # population Hessians: H1 with each task's rho_i <= rho gives the 1/6 of THEORY T3
    pop = E.hessian_term_error(
        fam, W, alpha, np.random.default_rng(0), batch_tasks=B, d_in=D, d_o=D, d_h=None
    )
    assert np.all(pop <= 1 / 6) and np.all(pop > 0)


def test_direction_and_hessian_term_error_share_their_draws():
    """direction(hfmaml) and hessian_term_error draw through the same helpers: with the same
    rng state, the direction rebuilt from the replayed draws (task-by-task oracle) is
    direction's, and its Hessian-term error is hessian_term_error's."""
    fam = welsch_family()
    alpha = 0.15 / fam.L
    W = points(fam, 2, seed=5)
    B, D = 4, 3
    kw = dict(batch_tasks=B, d_in=D, d_o=D, d_h=D)
    u = E.direction(fam, W, alpha, "hfmaml", np.random.default_rng(8), **kw).u
    r = E.hessian_term_error(fam, W, alpha, np.random.default_rng(8), **kw)
    rng = np.random.default_rng(8)
    T = rng.choice(fam.n_tasks, size=2 * B, p=fam.probs)
    I_in, I_o, I_h = (rng.integers(0, fam.n_points, size=(2 * B, D)) for _ in range(3))
    want_u, want_r = np.zeros((2, fam.dim)), np.empty(2 * B)
    for j, t in enumerate(T):
        task, w = fam.tasks[t], W[j // B]
        g = task.grad(w - alpha * task.grad(w, I_in[j]), I_o[j])
        dl = 1 / (6 * fam.rho * alpha * np.linalg.norm(g))
        cd = (task.grad(w + dl * g, I_h[j]) - task.grad(w - dl * g, I_h[j])) / (2 * dl)
        want_u[j // B] += (g - alpha * cd) / B
        want_r[j] = alpha * np.linalg.norm(cd - task.hvp(w, g, I_h[j])) / np.linalg.norm(g)
    np.testing.assert_allclose(u, want_u, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(r, want_r.reshape(2, B), rtol=1e-9, atol=1e-15)


def test_hessian_term_error_vanishes_on_quadratic_tasks():
    fam = tasks.make_quadratic_family(3, 4, 16, seed=0, hess_noise=0.3)
    r = E.hessian_term_error(
        fam,
        np.ones((2, 3)),
        0.1,
        np.random.default_rng(0),
        batch_tasks=4,
        d_in=2,
        d_o=2,
        d_h=2,
        delta=5.0,
    )
    assert r.shape == (2, 4) and np.all(r < 1e-12)
    with pytest.raises(ValueError, match="d_h"):
        E.hessian_term_error(
            fam,
            np.ones(3),
            0.1,
            np.random.default_rng(0),
            batch_tasks=4,
            d_in=2,
            d_o=2,
            d_h=0,
            delta=1.0,
        )


def test_hfmaml_with_fixed_and_callable_delta():
    fam = welsch_family()
    alpha = 0.15 / fam.L
    w = points(fam, 1)[0]
    ref = meta.gradient(fam.tasks, w, alpha, fam.probs)
    kw = dict(batch_tasks=None, d_in=None, d_o=None, d_h=None)
    errs = []
    for delta in (1e-1, 1e-2, 1e-3):
        u = E.direction(fam, w, alpha, "hfmaml", np.random.default_rng(0), delta=delta, **kw).u
        errs.append(np.linalg.norm(u - ref))
    assert errs[0] > errs[1] > errs[2]  # central differences: error ~ delta^2 here
    assert errs[2] < 1e-6
    seen = []

    def rule(g_norms):
        seen.append(g_norms.shape)
        return 1e-3 / g_norms

    u = E.direction(
        fam, np.tile(w, (2, 1)), alpha, "hfmaml", np.random.default_rng(0), delta=rule, **kw
    )
    assert seen == [(2 * fam.n_tasks,)]
    assert np.linalg.norm(u.u[0] - ref) < 1e-6
    with pytest.raises(ValueError, match="delta"):
        E.direction(fam, w, alpha, "hfmaml", np.random.default_rng(0), delta=lambda g: -g, **kw)


def fo_bias_closed_form(fam, w, alpha):
    r"""E[u_FO] - grad F = alpha sum_i p_i A_i^2 (I - alpha A_i)(w - c_i) on quadratic tasks."""
    I = np.eye(fam.dim)
    return sum(
        p * alpha * A @ A @ (I - alpha * A) @ (w - c)
        for p, A, c in zip(fam.probs, fam.A, fam.c, strict=True)
    )


def test_fomaml_bias_equals_its_closed_form_on_quadratic_tasks():
    fam = quad_family()
    alpha = 0.4 / fam.L
    for w in points(fam, 3, seed=2):
        u = E.direction(
            fam, w, alpha, "fomaml", np.random.default_rng(0), batch_tasks=None, d_in=None, d_o=None
        ).u
        bias = u - meta.gradient(fam.tasks, w, alpha, fam.probs)
        np.testing.assert_allclose(bias, fo_bias_closed_form(fam, w, alpha), rtol=1e-10, atol=1e-13)
        assert np.linalg.norm(bias) > 1e-3


# ----------------------------------------------------------------------------- statistics
def inner_bias_closed_form(fam, w, alpha, D):
    r"""Bias of MAML with the Hessian on D_in, quadratic tasks (derived in the notebook):
    alpha^2 sum_i p_i [ (v_i/D) A_i^3 (w - c_i) + A_i^2 c_i^{sb} / D ],
    v_i = mean_j (s_ij - 1)^2,  c_i^{sb} = mean_j (s_ij - 1) b_ij."""
    out = np.zeros(fam.dim)
    for i, p in enumerate(fam.probs):
        A, e = fam.A[i], w - fam.c[i]
        v = np.mean((fam.s[i] - 1) ** 2)
        csb = np.mean((fam.s[i] - 1)[:, None] * fam.b[i], axis=0)
        out += p * alpha**2 * (v / D * A @ A @ A @ e + A @ A @ csb / D)
    return out


@pytest.mark.parametrize("method", ["maml", "hfmaml"])
def test_independent_hessian_batch_is_unbiased_and_inner_has_its_closed_form_bias(method):
    fam = quad_family(hess_noise=0.8)
    alpha = 0.8 / fam.L
    w = np.full(fam.dim, 1.5)
    exact = meta.gradient(fam.tasks, w, alpha, fam.probs)
    kw = dict(batch_tasks=3, d_in=2, d_o=2, d_h=2, delta=0.5)
    mean, se = mc(fam, w, alpha, method, 60_000, 1, **kw)
    assert_matches(mean, se, exact)
    mean, se = mc(fam, w, alpha, method, 60_000, 2, hessian_batch="inner", **kw)
    bias = inner_bias_closed_form(fam, w, alpha, 2)
    assert_matches(mean, se, exact + bias)
    assert np.abs(bias / se).max() > Z_DETECT


def test_fomaml_minibatch_mean_has_the_closed_form_bias():
    fam = quad_family(hess_noise=0.3)
    alpha = 0.5 / fam.L
    w = np.full(fam.dim, -1.0)
    mean, se = mc(fam, w, alpha, "fomaml", 40_000, 3, batch_tasks=4, d_in=3, d_o=2)
    bias = fo_bias_closed_form(fam, w, alpha)
    assert_matches(mean, se, meta.gradient(fam.tasks, w, alpha, fam.probs) + bias)
    assert np.abs(bias / se).max() > Z_DETECT


def welsch_d1(r):
    return r * np.exp(-0.5 * r * r)


def welsch_d2(r):
    return (1 - r * r) * np.exp(-0.5 * r * r)


def welsch_grad(X, y, w):
    return welsch_d1(X @ w - y) @ X / len(y)


def welsch_hess(X, y, w):
    return (welsch_d2(X @ w - y)[:, None] * X).T @ X / len(y)


def test_welsch_inner_batch_of_one_has_the_enumerated_expectation_l3():
    """D_in = 1: E over the inner point is an average over the n points, computed exactly.
    The estimator's mean must match it, and differ from grad F (THEORY L3's bias e_i)."""
    fam = welsch_family()
    alpha = 0.9 / fam.L
    w = np.array([0.4, -0.3, 0.2, 0.1])
    expected_maml = np.zeros(fam.dim)
    expected_fo = np.zeros(fam.dim)
    for i, p in enumerate(fam.probs):
        X, y = fam.X[i], fam.y[i]
        pts = welsch_d1(X @ w - y)[:, None] * X  # per-point gradients at w
        outer = np.mean([welsch_grad(X, y, w - alpha * g) for g in pts], axis=0)
        expected_fo += p * outer
        expected_maml += p * (outer - alpha * welsch_hess(X, y, w) @ outer)
    kw = dict(batch_tasks=None, d_in=1, d_o=None, d_h=None)
    mean, se = mc(fam, w, alpha, "maml", 40_000, 4, **kw)
    assert_matches(mean, se, expected_maml)
    exact = meta.gradient(fam.tasks, w, alpha, fam.probs)
    assert np.abs((expected_maml - exact) / se).max() > Z_DETECT
    mean, se = mc(fam, w, alpha, "fomaml", 40_000, 5, batch_tasks=None, d_in=1, d_o=None)
    assert_matches(mean, se, expected_fo)


def test_welsch_maml_with_exact_inner_step_is_unbiased():
    fam = welsch_family()
    alpha = 0.9 / fam.L
    w = np.array([0.4, -0.3, 0.2, 0.1])
    mean, se = mc(fam, w, alpha, "maml", 40_000, 6, batch_tasks=2, d_in=None, d_o=3, d_h=2)
    assert_matches(mean, se, meta.gradient(fam.tasks, w, alpha, fam.probs))


def test_direction_moments_agrees_with_a_direct_average():
    fam = welsch_family()
    alpha = 0.5 / fam.L
    w = np.array([0.4, -0.3, 0.2, 0.1])
    kw = dict(batch_tasks=3, d_in=2, d_o=2, d_h=2)
    n = 5000
    mom = E.direction_moments(fam, w, alpha, "maml", np.random.default_rng(8), n, **kw)
    U = E.direction(fam, np.tile(w, (n, 1)), alpha, "maml", np.random.default_rng(8), **kw).u
    np.testing.assert_allclose(mom.mean, U.mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mom.variance, U.var(axis=0, ddof=1).sum(), rtol=1e-10)
    np.testing.assert_allclose(
        mom.bias, U.mean(axis=0) - meta.gradient(fam.tasks, w, alpha, fam.probs), atol=1e-14
    )
    np.testing.assert_allclose(mom.bias_se, U.std(axis=0, ddof=1) / np.sqrt(n), rtol=1e-10)


# ----------------------------------------------------------------------------- mechanics
def test_hvp_and_matrix_modes_agree_and_count_their_work():
    fam = welsch_family()
    W = points(fam, 5)
    kw = dict(batch_tasks=3, d_in=2, d_o=4, d_h=5)
    a = E.direction(fam, W, 0.2, "maml", np.random.default_rng(9), hessian="matrix", **kw)
    b = E.direction(fam, W, 0.2, "maml", np.random.default_rng(9), hessian="hvp", **kw)
    np.testing.assert_allclose(a.u, b.u, rtol=1e-12, atol=1e-15)
    assert a.work == E.Work(grads=3 * (2 + 4), hessians=3 * 5)
    assert b.work == E.Work(grads=3 * (2 + 4), hvps=3 * 5)
    hf = E.direction(fam, W, 0.2, "hfmaml", np.random.default_rng(9), **kw)
    # fused: each of the 5 points of D_h is read once for both perturbed gradients
    assert hf.work == E.Work(grads=3 * (2 + 4 + 2 * 5), paired=3 * 5)
    fo = E.direction(fam, W, 0.2, "fomaml", np.random.default_rng(9), **kw)
    assert fo.work == E.Work(grads=3 * (2 + 4))
    inner = E.direction(fam, W, 0.2, "maml", np.random.default_rng(9), hessian_batch="inner", **kw)
    assert inner.work == E.Work(grads=3 * (2 + 4), hessians=3 * 2)
    full = E.direction(
        fam,
        W,
        0.2,
        "hfmaml",
        np.random.default_rng(9),
        batch_tasks=None,
        d_in=None,
        d_o=None,
        d_h=None,
    )
    assert full.work == E.Work(
        grads=fam.n_tasks * 4 * fam.n_points, paired=fam.n_tasks * fam.n_points
    )
    assert (E.Work(1, 2, 3) + E.Work(1, 1, 1)) * 2 == E.Work(4, 6, 8)
    assert E.Work(grads=2, hvps=1, hessians=1).cost(4) == 4 * 3 + 16


def test_hfmaml_evaluates_its_two_perturbed_gradients_in_one_call(monkeypatch):
    fam = welsch_family()
    calls = []
    gathers = []
    originals = {
        name: getattr(fam, name) for name in ("grad_kernel", "central_difference_kernel", "_data")
    }

    def counting(name):
        def wrapped(*args):
            calls.append((name, args[0].shape[0]))
            return originals[name](*args)

        return wrapped

    def counting_data(T, idx):
        gathers.append(T.shape[0])
        return originals["_data"](T, idx)

    monkeypatch.setattr(fam, "grad_kernel", counting("grad_kernel"))
    monkeypatch.setattr(fam, "central_difference_kernel", counting("central_difference_kernel"))
    monkeypatch.setattr(fam, "_data", counting_data)
    E.direction(
        fam,
        points(fam, 4),
        0.2,
        "hfmaml",
        np.random.default_rng(0),
        batch_tasks=3,
        d_in=2,
        d_o=2,
        d_h=2,
    )
    # inner, outer, then w + delta g and w - delta g together, each batch's data read once
    assert calls == [("grad_kernel", 12), ("grad_kernel", 12), ("central_difference_kernel", 12)]
    assert gathers == [12, 12, 12]


def test_runs_are_independent_and_reproducible():
    fam = quad_family()
    W = np.zeros((6, fam.dim))
    kw = dict(batch_tasks=2, d_in=2, d_o=2, d_h=2)
    a = E.direction(fam, W, 0.2, "maml", np.random.default_rng(5), **kw).u
    b = E.direction(fam, W, 0.2, "maml", np.random.default_rng(5), **kw).u
    np.testing.assert_array_equal(a, b)
    assert len({tuple(row) for row in a}) == 6
    assert E.direction(fam, W[0], 0.2, "maml", np.random.default_rng(5), **kw).u.shape == (fam.dim,)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"method": "sgd"}, "method"),
        ({"alpha": -0.1}, "alpha"),
        ({"batch_tasks": 0}, "batch_tasks"),
        ({"d_in": 0}, "d_in"),
        ({"d_o": 1.5}, "d_o"),
        ({"d_h": 0}, "d_h"),
        ({"hessian_batch": "outer"}, "hessian_batch"),
        ({"hessian": "dense"}, "hessian"),
        ({"delta": -1.0}, "delta"),
        ({"delta": "tiny"}, "delta"),
        ({"W": np.zeros((2, 3))}, "W"),
        ({"W": np.full(4, np.nan)}, "W"),
        ({"rng": 0}, "rng"),
    ],
)
def test_direction_rejects_bad_input(kwargs, word):
    fam = welsch_family()
    args = dict(
        W=np.zeros(fam.dim),
        alpha=0.1,
        method="hfmaml",
        rng=np.random.default_rng(0),
        batch_tasks=2,
        d_in=2,
        d_o=2,
        d_h=2,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        E.direction(fam, **args)


def test_direction_needs_d_h_and_a_usable_theorem_delta():
    fam = welsch_family()
    with pytest.raises(ValueError, match="d_h"):
        E.direction(
            fam, np.zeros(4), 0.1, "maml", np.random.default_rng(0), batch_tasks=2, d_in=2, d_o=2
        )
    # not needed for FO-MAML or the inner Hessian batch
    E.direction(
        fam, np.zeros(4), 0.1, "fomaml", np.random.default_rng(0), batch_tasks=2, d_in=2, d_o=2
    )
    E.direction(
        fam,
        np.zeros(4),
        0.1,
        "maml",
        np.random.default_rng(0),
        batch_tasks=2,
        d_in=2,
        d_o=2,
        hessian_batch="inner",
    )
    with pytest.raises(ValueError, match="rho"):
        E.direction(
            quad_family(),
            np.zeros(4),
            0.1,
            "hfmaml",
            np.random.default_rng(0),
            batch_tasks=2,
            d_in=2,
            d_o=2,
            d_h=2,
        )
    with pytest.raises(ValueError, match="alpha"):
        E.direction(
            fam,
            np.zeros(4),
            0.0,
            "hfmaml",
            np.random.default_rng(0),
            batch_tasks=2,
            d_in=2,
            d_o=2,
            d_h=2,
        )
    with pytest.raises(ValueError, match="unknown"):
        E.direction_moments(fam, np.zeros(4), 0.1, "fomaml", np.random.default_rng(0), 10, batch=2)


# ----------------------------------------------------------------------------- closed forms
def test_quadratic_closed_forms_match_the_test_formulas():
    fam = quad_family(hess_noise=0.7)
    alpha = 0.6 / fam.L
    W = points(fam, 3, seed=4)
    for method in ("maml", "hfmaml"):
        got = E.quadratic_expected_direction(fam, W, alpha, method)
        for k, w in enumerate(W):
            exact = meta.gradient(fam.tasks, w, alpha, fam.probs)
            np.testing.assert_allclose(got[k], exact, rtol=1e-12, atol=1e-13)
            inner = E.quadratic_expected_direction(
                fam, w, alpha, method, d_in=3, hessian_batch="inner"
            )
            np.testing.assert_allclose(
                inner, exact + inner_bias_closed_form(fam, w, alpha, 3), rtol=1e-12, atol=1e-13
            )
    fo = E.quadratic_expected_direction(fam, W, alpha, "fomaml")
    for k, w in enumerate(W):
        expected = meta.gradient(fam.tasks, w, alpha, fam.probs) + fo_bias_closed_form(
            fam, w, alpha
        )
        np.testing.assert_allclose(fo[k], expected, rtol=1e-12, atol=1e-13)


def test_quadratic_fixed_points():
    fam = quad_family()
    alpha = 0.3 / fam.L
    w_star = E.quadratic_fixed_point(fam, alpha, "maml")
    assert np.linalg.norm(meta.gradient(fam.tasks, w_star, alpha, fam.probs)) < 1e-12
    w_fo = E.quadratic_fixed_point(fam, alpha, "fomaml")
    u = E.direction(
        fam, w_fo, alpha, "fomaml", np.random.default_rng(0), batch_tasks=None, d_in=None, d_o=None
    ).u
    assert np.linalg.norm(u) < 1e-12
    floor = np.linalg.norm(meta.gradient(fam.tasks, w_fo, alpha, fam.probs))
    assert floor == pytest.approx(np.linalg.norm(fo_bias_closed_form(fam, w_fo, alpha)), rel=1e-10)
    with pytest.raises(ValueError, match="QuadraticFamily"):
        E.quadratic_fixed_point(welsch_family(), alpha, "maml")
    with pytest.raises(ValueError, match="method"):
        E.quadratic_expected_direction(fam, w_fo, alpha, "sgd")
