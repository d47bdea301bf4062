"""Monte Carlo estimators of THEORY L2, L3, L4 and the decision rule.

Oracles share no code with ``hfmaml_core.montecarlo``:

* closed forms for quadratic tasks (the L3 bias is exactly 0; the L3 second moment
  and the L4 gap are written out by hand below);
* exact enumeration of every batch of a tiny Welsch family (``n = 3`` points,
  batches of ``D = 2`` drawn with replacement: all ``n^D`` ordered tuples, each
  with probability ``n^-D``), with the Welsch gradient and Hessian written here from
  the family's data arrays ``X``, ``y``;
* hand-computed numbers for the generic tools;
* for :class:`~hfmaml_core.montecarlo.KinkFamily` (A3 violated), the piecewise-quadratic
  gradient written here and the bias at the kink by enumeration of every batch.

The Monte Carlo estimates must agree with the exact expectations within 4 standard
errors (fixed seeds), coordinate by coordinate for vectors.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from hfmaml_core import claims, tasks
from hfmaml_core import montecarlo as mc

Z = 4.0  # tolerance in standard errors for comparisons with exact expectations


# ----------------------------------------------------------------------- oracles
def _phi1(r):
    return r * np.exp(-0.5 * r * r)


def _phi2(r):
    return (1.0 - r * r) * np.exp(-0.5 * r * r)


def welsch_grad(fam, t, w, idx=None):
    """Gradient of task t on the points idx (all points if None), from X and y only."""
    X, y = fam.X[t], fam.y[t]
    if idx is not None:
        X, y = X[list(idx)], y[list(idx)]
    r = X @ w - y
    return (_phi1(r)[:, None] * X).mean(axis=0)


def welsch_hess(fam, t, w, idx=None):
    X, y = fam.X[t], fam.y[t]
    if idx is not None:
        X, y = X[list(idx)], y[list(idx)]
    r = X @ w - y
    return np.einsum("k,kd,ke->de", _phi2(r), X, X) / len(r)


def batches(n, D):
    """All ordered batches of D indices from n with replacement, each of probability n^-D."""
    return list(itertools.product(range(n), repeat=D))


def tiny_welsch():
    return tasks.make_welsch_family(2, 2, 3, seed=5, input_scale=2.0, noise=0.5)


def zscores(draws, exact):
    m = draws.mean(axis=0)
    se = draws.std(axis=0, ddof=1) / math.sqrt(len(draws))
    return np.abs(m - exact) / se


# ------------------------------------------------------------------ generic tools
def test_mean_and_standard_error_by_hand():
    est = mc.mean([1.0, 2.0, 3.0, 4.0])
    assert est.value == 2.5
    # sample variance 5/3, divided by N = 4
    assert est.se == pytest.approx(math.sqrt(5.0 / 3.0 / 4.0), rel=1e-15)
    assert mc.mean(np.full(10, 7.0)) == (7.0, 0.0)


def test_norm_of_mean_and_its_conservative_standard_error_by_hand():
    X = np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 4.0]])  # mean (2, 2)
    est = mc.norm_of_mean(X, [2.0, -2.0])
    assert est.value == pytest.approx(4.0, rel=1e-15)
    # coordinate variances (ddof=1): 1 and 4; trace 5 over N = 3
    assert est.se == pytest.approx(math.sqrt(5.0 / 3.0), rel=1e-15)


def test_norm_of_mean_standard_error_is_the_rms_error_of_the_mean():
    """For N(0, I_d) draws and e = 0, E||mean||^2 = d/N; the s.e. estimates its root."""
    rng = np.random.default_rng(0)
    d, N, reps = 3, 200, 400
    norms = [mc.norm_of_mean(rng.standard_normal((N, d)), np.zeros(d)) for _ in range(reps)]
    rms = math.sqrt(np.mean([e.value**2 for e in norms]))
    assert rms == pytest.approx(math.sqrt(d / N), rel=0.1)
    assert np.mean([e.se for e in norms]) == pytest.approx(math.sqrt(d / N), rel=0.02)


@pytest.mark.parametrize(
    ("est", "bound", "relation", "expected"),
    [
        ((0.9, 0.03), 1.0, "<=", True),  # 1.0 - 0.9 = 0.1 > 0.09
        ((0.9, 0.04), 1.0, "<=", False),  # 0.1 < 0.12
        ((0.9, 0.04), 1.0, "<", False),
        ((1.2, 0.05), 1.0, ">=", True),  # 0.2 > 0.15
        ((1.2, 0.1), 1.0, ">", False),
        ((1.0, 0.0), 1.0, "<=", False),  # the rule is strict: a tie does not hold
    ],
)
def test_decision_rule(est, bound, relation, expected):
    e = mc.Estimate(*est)
    assert mc.holds(e, bound, relation) is expected
    rec = claims.ClaimRecorder("test")
    c = rec.check("x", "L2", "rule", kind="check", **mc.claim_kwargs(e, bound, relation))
    assert c.holds is expected  # the recorded claim applies the same rule
    assert c.uncertainty == est[1] and c.details["estimate"] == est[0] and c.bound == bound


def test_claim_kwargs_records_the_confidence_limit_and_extra_details():
    kw = mc.claim_kwargs(mc.Estimate(0.5, 0.125), 1.0, "<=", details={"D": 4})
    assert kw["measured"] == 0.875 and kw["relation"] == "<" and kw["details"]["D"] == 4
    kw = mc.claim_kwargs(mc.Estimate(0.5, 0.125), 0.0, ">=", k=2.0)
    assert kw["measured"] == 0.25 and kw["relation"] == ">"


@pytest.mark.parametrize(
    ("est", "bound", "relation"),
    [
        ((0.9, 0.03), 1.0, "<="),  # clears the bound: the control would hold
        ((0.9, 0.04), 1.0, "<="),  # within 3 s.e.: the control fails
        ((1.1, 0.01), 1.0, "<"),  # clearly on the wrong side: fails
        ((1.2, 0.05), 1.0, ">="),
        ((0.785, 0.001), 0.8, ">="),  # L2's first moment below the D_beta threshold
        ((1.0, 0.0), 1.0, ">"),  # a tie does not hold
    ],
)
def test_control_kwargs_applies_the_claims_decision_rule(est, bound, relation):
    """A control is judged by the same 3-s.e. rule as the claim (independent oracle: holds)."""
    e = mc.Estimate(*est)
    ctrl = mc.control_kwargs(e, "the same estimate on a case that should fail", relation=relation)
    rec = claims.ClaimRecorder("test")
    claim = mc.claim_kwargs(mc.Estimate(bound - 1.0 if "<" in relation else bound + 1.0, 0.0),
                            bound, relation)  # fmt: skip
    c = rec.check("x", "L2", "rule", kind="theory", control=ctrl, **claim)
    assert c.holds  # the claim itself clears its bound
    assert c.control.holds is mc.holds(e, bound, relation)  # the control: the same rule
    assert c.control.bound == bound and c.control.uncertainty == est[1]
    # the confidence limit on the claim's side, compared strictly
    k = mc.RULE_K
    assert ctrl["measured"] == (est[0] + k * est[1] if "<" in relation else est[0] - k * est[1])
    assert ctrl["relation"] == ("<" if "<" in relation else ">") and "bound" not in ctrl


def test_control_kwargs_with_its_own_bound_and_k():
    ctrl = mc.control_kwargs(mc.Estimate(2.0, 0.5), "wrong constant", relation="<=", bound=2.5, k=1)
    assert ctrl == {
        "statement": "wrong constant",
        "measured": 2.5,
        "relation": "<",
        "uncertainty": 0.5,
        "bound": 2.5,
    }
    rec = claims.ClaimRecorder("test")
    c = rec.check(
        "y", "L2", "s", kind="finding", measured=1.0, relation="<", bound=3.0, control=ctrl
    )
    assert c.holds and not c.control.holds and c.discriminates  # 2.5 < 2.5 is false


def test_a_control_that_clears_its_bound_makes_the_claim_fail():
    ctrl = mc.control_kwargs(mc.Estimate(0.5, 0.01), "should fail but does not", relation="<=")
    rec = claims.ClaimRecorder("test")
    c = rec.check("z", "L3", "s", kind="theory", control=ctrl,
                  **mc.claim_kwargs(mc.Estimate(0.4, 0.01), 1.0, "<="))  # fmt: skip
    assert c.holds and c.control.holds and not c.ok and rec.failed == [c]


def test_loglog_slope_of_an_exact_power_law_and_two_point_standard_error():
    x = [1.0, 2.0, 4.0, 8.0]
    est = [mc.Estimate(3.0 * xi**-0.75, 1e-3 * xi**-0.75) for xi in x]
    assert mc.loglog_slope(x, est).value == pytest.approx(-0.75, abs=1e-12)
    # two points: slope = dlog y / dlog x, se = sqrt(s1^2 + s2^2) / |dlog x| (relative s.e.)
    two = mc.loglog_slope([1.0, 4.0], [mc.Estimate(1.0, 0.03), mc.Estimate(0.5, 0.02)])
    assert two.value == pytest.approx(math.log(0.5) / math.log(4.0), rel=1e-12)
    assert two.se == pytest.approx(math.hypot(0.03, 0.04) / math.log(4.0), rel=1e-12)


# ----------------------------------------------------------------------- THEORY L2
def test_step_moments_match_exact_enumeration_over_all_task_and_data_batches():
    fam = tiny_welsch()
    w = np.array([0.4, -0.3])
    alpha = 0.9 / fam.L
    Bp, D = 2, 2
    Lw = 4 * fam.L + 2 * fam.rho * alpha * sum(
        p * np.linalg.norm(welsch_grad(fam, t, w)) for t, p in enumerate(fam.probs)
    )
    norms = {
        (t, b): np.linalg.norm(welsch_grad(fam, t, w, b))
        for t in range(fam.n_tasks)
        for b in batches(fam.n_points, D)
    }
    m1 = m2 = 0.0
    for combo in itertools.product(norms, repeat=Bp):  # (m n^D)^B' = 324 cases
        prob = np.prod([fam.probs[t] / fam.n_points**D for t, _ in combo])
        Lt = 4 * fam.L + 2 * fam.rho * alpha * np.mean([norms[c] for c in combo])
        m1 += prob * Lw / Lt
        m2 += prob * (Lw / Lt) ** 2
    e1, e2 = mc.step_moments(fam, w, alpha, np.random.default_rng(3), Bp, D, 200_000)
    assert abs(e1.value - m1) < Z * e1.se
    assert abs(e2.value - m2) < Z * e2.se
    assert e1.se < 1e-3 and e2.se < 2e-3  # the comparison is sharp


def test_step_moments_are_exactly_one_when_rho_is_zero():
    fam = tasks.make_quadratic_family(3, 4, 10, seed=1, hess_noise=0.3)
    e1, e2 = mc.step_moments(fam, np.ones(3), 1.0 / fam.L, np.random.default_rng(0), 3, 5, 50)
    assert e1 == (1.0, 0.0) and e2 == (1.0, 0.0)


# ----------------------------------------------------------------------- THEORY L3
@pytest.mark.parametrize("d_out", [None, 2])
def test_adapted_gradient_mean_matches_exact_enumeration(d_out):
    fam = tiny_welsch()
    w, t, alpha, D = np.array([0.7, 0.2]), 1, 1.0 / fam.L, 2
    exact = np.mean(
        [welsch_grad(fam, t, w - alpha * welsch_grad(fam, t, w, b)) for b in batches(3, D)], axis=0
    )
    draws = mc.adapted_gradients(fam, w, t, alpha, np.random.default_rng(1), 100_000, D, d_out)
    assert draws.shape == (100_000, 2)
    assert np.all(zscores(draws, exact) < Z)
    # and the bias is resolved: e_i differs from zero by many standard errors
    target = welsch_grad(fam, t, w - alpha * welsch_grad(fam, t, w))
    est = mc.l3_bias(fam, w, t, alpha, np.random.default_rng(2), 100_000, D)
    assert est.value == pytest.approx(np.linalg.norm(exact - target), abs=Z * est.se)
    assert np.linalg.norm(exact - target) > 10 * est.se


def test_l3_bias_with_the_linear_control_variate_matches_exact_enumeration():
    """Same expectation as the plain estimator (E eps = 0), much smaller s.e."""
    fam = tiny_welsch()
    w, t, alpha, D = np.array([0.7, 0.2]), 1, 1.0 / fam.L, 2
    exact = np.mean(
        [welsch_grad(fam, t, w - alpha * welsch_grad(fam, t, w, b)) for b in batches(3, D)], axis=0
    )
    target = welsch_grad(fam, t, w - alpha * welsch_grad(fam, t, w))
    cv = mc.l3_bias(fam, w, t, alpha, np.random.default_rng(2), 100_000, D, linear_control=True)
    plain = mc.l3_bias(fam, w, t, alpha, np.random.default_rng(2), 100_000, D)
    assert cv.value == pytest.approx(np.linalg.norm(exact - target), abs=Z * cv.se)
    assert cv.se < plain.se
    # the reduction grows with D_in: the linear term, removed by the control variate, dominates
    w32 = [
        mc.l3_bias(fam, w, t, alpha, np.random.default_rng(3), 20_000, 32, linear_control=lc)
        for lc in (True, False)
    ]
    assert w32[0].value == pytest.approx(w32[1].value, abs=Z * w32[1].se)
    assert w32[0].se < 0.5 * w32[1].se


def test_adapted_gradients_across_chunk_boundaries(monkeypatch):
    """Small chunks (many loop iterations) give the same expectation."""
    monkeypatch.setattr(mc, "_CHUNK_ELEMENTS", 64)
    fam = tiny_welsch()
    w, t, alpha, D = np.array([0.7, 0.2]), 0, 1.0 / fam.L, 2
    exact = np.mean(
        [welsch_grad(fam, t, w - alpha * welsch_grad(fam, t, w, b)) for b in batches(3, D)], axis=0
    )
    draws = mc.adapted_gradients(fam, w, t, alpha, np.random.default_rng(4), 20_001, D, 3)
    assert np.all(zscores(draws, exact) < Z)


def test_l3_second_moment_matches_exact_enumeration_over_both_batches():
    fam = tiny_welsch()
    w, t, alpha = np.array([-0.5, 0.9]), 0, 1.0 / fam.L
    exact = 0.0
    for b_in in batches(3, 2):
        u = w - alpha * welsch_grad(fam, t, w, b_in)
        for b_o in batches(3, 2):
            exact += np.sum(welsch_grad(fam, t, u, b_o) ** 2) / 81
    est = mc.l3_second_moment(fam, w, t, alpha, np.random.default_rng(5), 100_000, 2, 2)
    assert abs(est.value - exact) < Z * est.se


def quadratic_additive(seed=2):
    return tasks.make_quadratic_family(4, 3, 20, seed=seed, grad_noise=1.5, hess_noise=0.0)


def test_l3_bias_is_zero_for_quadratic_tasks():
    """The adapted gradient is affine in the batch noise, so e_i = 0 exactly."""
    fam = quadratic_additive()
    w = np.array([1.0, -2.0, 0.5, 3.0])
    for D in (1, 5):
        draws = mc.adapted_gradients(fam, w, 2, 1.0 / fam.L, np.random.default_rng(D), 50_000, D)
        A, c = fam.A[2], fam.c[2]
        u = w - c
        target = A @ (u - A @ u / fam.L)  # grad f_i(w - alpha grad f_i(w)), alpha = 1/L
        assert np.all(zscores(draws, target) < Z)
        est = mc.l3_bias(fam, w, 2, 1.0 / fam.L, np.random.default_rng(10 + D), 50_000, D)
        assert est.value < Z * est.se


@pytest.mark.parametrize(("d_in", "d_out"), [(1, 1), (3, 7)])
def test_l3_second_moment_closed_form_for_quadratic_tasks_with_additive_noise(d_in, d_out):
    r"""E||g||^2 = ||A(I - aA)u||^2 + a^2 tr(A C A)/D_in + tr(C)/D_o, C = (1/n) sum_j b_j b_j^T."""
    fam = quadratic_additive()
    w, t = np.array([0.3, 1.0, -1.0, 2.0]), 1
    a = 0.8 / fam.L
    A, u, b = fam.A[t], w - fam.c[t], fam.b[t]
    C = b.T @ b / fam.n_points
    mean_part = A @ (u - a * A @ u)
    exact = mean_part @ mean_part + a**2 * np.trace(A @ C @ A) / d_in + np.trace(C) / d_out
    est = mc.l3_second_moment(fam, w, t, a, np.random.default_rng(6), 200_000, d_in, d_out)
    assert abs(est.value - exact) < Z * est.se


# ----------------------------------------------------------------------- THEORY L4
def test_empirical_meta_gradient_matches_exact_enumeration():
    fam = tiny_welsch()
    w, alpha, D = np.array([0.2, -0.6]), 1.0 / fam.L, 2
    exact = np.zeros(2)
    for t, p in enumerate(fam.probs):
        for b in batches(3, D):
            g_out = welsch_grad(fam, t, w - alpha * welsch_grad(fam, t, w, b))
            exact += p / 9 * (g_out - alpha * welsch_hess(fam, t, w, b) @ g_out)
    draws = mc.empirical_meta_gradients(fam, w, alpha, np.random.default_rng(7), 100_000, D)
    assert np.all(zscores(draws, exact) < Z)


def test_first_order_empirical_gradient_matches_exact_enumeration():
    """hessian=False drops (I - alpha H~): E_i E_D grad f_i(w - alpha grad~ f_i(w, D))."""
    fam = tiny_welsch()
    w, alpha, D = np.array([0.2, -0.6]), 1.0 / fam.L, 2
    exact = sum(
        p / 9 * welsch_grad(fam, t, w - alpha * welsch_grad(fam, t, w, b))
        for t, p in enumerate(fam.probs)
        for b in batches(3, D)
    )
    draws = mc.empirical_meta_gradients(fam, w, alpha, np.random.default_rng(7), 50_000, D, False)
    assert np.all(zscores(draws, exact) < Z)


def quadratic_gap_vector(fam, w, a, D):
    """(a^2/D) sum_i p_i (v_i A_i^3 u_i + A_i^2 kappa_i), written out task by task."""
    out = np.zeros(fam.dim)
    for i, p in enumerate(fam.probs):
        s, b, A = fam.s[i], fam.b[i], fam.A[i]
        v = np.mean((s - 1.0) ** 2)
        kappa = ((s - 1.0)[:, None] * b).mean(axis=0)
        out += p * (v * A @ A @ A @ (w - fam.c[i]) + A @ A @ kappa)
    return a**2 / D * out


@pytest.mark.parametrize("D", [1, 4])
def test_l4_gap_closed_form_for_quadratic_tasks_with_noisy_curvature(D):
    fam = tasks.make_quadratic_family(3, 3, 12, seed=4, hess_noise=0.5, grad_noise=1.0)
    w, a = np.array([2.0, -1.0, 1.5]), 1.0 / fam.L
    exact_gap = quadratic_gap_vector(fam, w, a, D)
    # the family's exact meta-gradient, written out: (I - aA)A(I - aA)u averaged over tasks
    grad_F = sum(
        p * (np.eye(3) - a * fam.A[i]) @ fam.A[i] @ (np.eye(3) - a * fam.A[i]) @ (w - fam.c[i])
        for i, p in enumerate(fam.probs)
    )
    draws = mc.empirical_meta_gradients(fam, w, a, np.random.default_rng(8), 100_000, D)
    assert np.all(zscores(draws, grad_F + exact_gap) < Z)
    est = mc.l4_gap(fam, w, a, np.random.default_rng(9), 100_000, D)
    assert abs(est.value - np.linalg.norm(exact_gap)) < Z * est.se
    assert np.linalg.norm(exact_gap) > 10 * est.se  # resolved, not just noise


# ------------------------------------------------------------- validation, seeds
# ---------------------------------------------------------- KinkFamily (A3 fails)
def _kink_grad(c, b, kappa, w):
    """Gradient of sum_k psi_kappa(w_k - c_k) + b.(w - c), written out per coordinate."""
    r = w - c
    return np.array([rk if rk >= 0 else kappa * rk for rk in r]) + b


def tiny_kink(kappa=0.25):
    b = np.array([[[1.0, -0.5], [-2.0, 0.25], [1.0, 0.25]]])  # mean 0 per task already
    return mc.KinkFamily(np.array([[0.3, -0.2]]), b, kappa)


def test_kink_family_kernels_match_the_formula_written_out():
    fam = tiny_kink()
    assert fam.L == 1.0 and fam.rho == np.inf
    assert mc.KinkFamily(fam.c, fam.b, 1.0).rho == 0.0 and mc.KinkFamily(fam.c, fam.b, 3.0).L == 3.0
    w = np.array([0.1, 0.5])  # one coordinate on each side of the kink
    idx = np.array([[0, 2]])
    bbar = fam.b[0, [0, 2]].mean(axis=0)
    np.testing.assert_allclose(fam.grads(w, [0], idx)[0], _kink_grad(fam.c[0], bbar, 0.25, w))
    np.testing.assert_allclose(fam.grads(w, [0])[0], _kink_grad(fam.c[0], 0.0, 0.25, w))
    np.testing.assert_allclose(fam.hessians(w, [0])[0], np.diag([0.25, 1.0]))
    np.testing.assert_allclose(fam.hvps(w, [2.0, 3.0], [0])[0], [0.5, 3.0])
    G = fam.point_grads(w, 0)
    np.testing.assert_allclose(G, [_kink_grad(fam.c[0], bj, 0.25, w) for bj in fam.b[0]])
    # loss: central differences of the loss give the gradient (away from the kink)
    h = 1e-6
    num = [
        (fam.losses(w + h * e, [0], idx)[0] - fam.losses(w - h * e, [0], idx)[0]) / (2 * h)
        for e in np.eye(2)
    ]
    np.testing.assert_allclose(num, fam.grads(w, [0], idx)[0], rtol=1e-6)
    assert fam.point_hessians(w, 0).shape == (3, 2, 2)


def test_kink_family_l3_bias_is_first_order_and_matches_enumeration():
    """At the kink e = alpha (1 - kappa)/2 E|eps|: enumeration over all 3^2 batches."""
    fam, D = tiny_kink(), 2
    w, alpha = fam.c[0], 1.0 / fam.L
    exact = np.mean(
        [
            _kink_grad(fam.c[0], 0.0, 0.25, w - alpha * fam.b[0, list(bt)].mean(axis=0))
            for bt in batches(3, D)
        ],
        axis=0,
    )
    eps_abs = np.mean([np.abs(fam.b[0, list(bt)].mean(axis=0)) for bt in batches(3, D)], axis=0)
    np.testing.assert_allclose(exact, alpha * 0.75 / 2 * eps_abs)
    for lc in (False, True):
        est = mc.l3_bias(fam, w, 0, alpha, np.random.default_rng(4), 50_000, D, linear_control=lc)
        assert est.value == pytest.approx(np.linalg.norm(exact), abs=Z * est.se)


def test_kink_family_bad_arguments():
    with pytest.raises(ValueError, match="kappa"):
        mc.KinkFamily(np.zeros((1, 1)), np.zeros((1, 2, 1)), 0.0)
    with pytest.raises(ValueError, match="c must"):
        mc.KinkFamily(np.zeros(2), np.zeros((1, 2, 1)), 0.5)
    with pytest.raises(ValueError, match="b"):
        mc.KinkFamily(np.zeros((1, 2)), np.zeros((1, 2, 1)), 0.5)


def test_same_seed_same_numbers():
    fam = tiny_welsch()
    w = np.array([0.1, 0.2])
    runs = [
        mc.adapted_gradients(fam, w, 0, 0.5 / fam.L, np.random.default_rng(11), 100, 3, 2)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*runs)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda f, r: mc.adapted_gradients(f, np.zeros(2), 0, 0.1, r, 1, 2), "n_draws"),
        (lambda f, r: mc.adapted_gradients(f, np.zeros(2), 0, 0.1, r, 10, 0), "d_in"),
        (lambda f, r: mc.adapted_gradients(f, np.zeros(2), 0, 0.1, r, 10, 2, 0), "d_out"),
        (lambda f, r: mc.adapted_gradients(f, np.zeros(2), 2, 0.1, r, 10, 2), "task"),
        (lambda f, r: mc.adapted_gradients(f, np.zeros(3), 0, 0.1, r, 10, 2), "w"),
        (lambda f, r: mc.adapted_gradients(f, np.zeros(2), 0, 2.0 / f.L, r, 10, 2), "alpha"),
        (lambda f, r: mc.adapted_gradients(f, np.zeros(2), 0, 0.1, 0, 10, 2), "rng"),
        (lambda f, r: mc.adapted_gradients("f", np.zeros(2), 0, 0.1, r, 10, 2), "family"),
        (lambda f, r: mc.l3_second_moment(f, np.zeros(2), 0, 0.1, r, 10, 2, None), "d_out"),
        (lambda f, r: mc.empirical_meta_gradients(f, np.zeros(2), 0.1, r, 10, 0), "d_test"),
        (lambda f, r: mc.l4_gap(f, [np.nan, 0.0], 0.1, r, 10, 1), "w"),
        (lambda f, r: mc.step_moments(f, np.zeros(2), 0.1, r, 0, 1, 10), "batch_tasks"),
        (lambda f, r: mc.step_moments(f, np.zeros(2), 0.1, r, 1, 1, 1), "n_draws"),
        (lambda f, r: mc.mean([1.0]), "draws"),
        (lambda f, r: mc.norm_of_mean(np.zeros((3, 2)), np.zeros(3)), "center"),
        (lambda f, r: mc.holds(mc.Estimate(1.0, -1.0), 1.0, "<="), "estimate.se"),
        (lambda f, r: mc.holds(mc.Estimate(1.0, 0.1), 1.0, "=="), "relation"),
        (lambda f, r: mc.holds(mc.Estimate(1.0, 0.1), 1.0, "<", k=-1), "k"),
        (lambda f, r: mc.claim_kwargs(1.0, 1.0, "<"), "estimate"),
        (lambda f, r: mc.claim_kwargs(mc.Estimate(1.0, 0.1), 1.0, "<", details=[1]), "details"),
        (lambda f, r: mc.loglog_slope([1.0, 1.0], [mc.Estimate(1, 0.1)] * 2), "x"),
        (lambda f, r: mc.control_kwargs(mc.Estimate(1.0, 0.1), " ", relation="<"), "statement"),
        (lambda f, r: mc.control_kwargs(mc.Estimate(1.0, 0.1), "c", relation="=="), "relation"),
        (lambda f, r: mc.control_kwargs(mc.Estimate(1.0, -1), "c", relation="<"), "estimate.se"),
        (lambda f, r: mc.l3_bias(f, np.zeros(2), 0, 0.1, r, 10, 2, linear_control=1), "linear"),
        (lambda f, r: mc.l4_gap(f, np.zeros(2), 0.1, r, 10, 1, hessian="no"), "hessian"),
        (lambda f, r: mc.loglog_slope([1.0, 2.0], [mc.Estimate(0.0, 0.1)] * 2), "estimates"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call(tiny_welsch(), np.random.default_rng(0))
