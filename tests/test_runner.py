"""The runner (hfmaml_core.runner): iterates, exact gradient norms, step sizes, work, checks.

Oracles: a plain gradient-descent loop on the task-by-task `meta.gradient`; the existing
`stepsize.lipschitz_estimate` (one run, same draws); closed forms on quadratic tasks (the
exact minimiser of F and FO-MAML's fixed point, solved here from A, c).
"""

from __future__ import annotations

import numpy as np
import pytest

from hfmaml_core import meta, runner, stepsize, tasks
from hfmaml_core.estimators import Work


def welsch_family():
    return tasks.make_welsch_family(4, 5, 16, seed=3, input_scale=2.0)


def quad_family(hess_noise=0.0):
    return tasks.make_quadratic_family(4, 5, 16, seed=3, hess_noise=hess_noise)


FULL = dict(batch_tasks=None, d_in=None, d_o=None, d_h=None)


def test_full_batches_and_a_constant_step_is_gradient_descent_on_F():
    fam = welsch_family()
    alpha, beta, K = 0.5 / fam.L, 0.3, 15
    w0 = np.array([0.5, -0.2, 0.1, 0.3])
    res = runner.run(
        fam,
        "maml",
        w0,
        alpha,
        np.random.default_rng(0),
        n_iter=K,
        n_runs=2,
        step=beta,
        setting="free",
        **FULL,
    )
    w = w0.copy()
    for k in range(K + 1):
        g = meta.gradient(fam.tasks, w, alpha, fam.probs)
        for r in range(2):
            np.testing.assert_allclose(res.iterates[k, r], w, rtol=1e-12, atol=1e-14)
            assert res.grad_norm[k, r] == pytest.approx(np.linalg.norm(g), rel=1e-10)
        w = w - beta * g
    np.testing.assert_array_equal(res.steps, beta)
    np.testing.assert_array_equal(res.k, np.arange(K + 1))


def test_full_batch_fomaml_stops_at_its_closed_form_fixed_point():
    """FO-MAML's fixed point solves sum_i p_i A_i (I - alpha A_i)(w - c_i) = 0; there
    ||grad F|| = ||alpha sum_i p_i A_i^2 (I - alpha A_i)(w - c_i)|| > 0 (THEORY T2's floor)."""
    fam = quad_family()
    alpha = 0.08 / fam.L
    I = np.eye(fam.dim)
    M = sum(p * A @ (I - alpha * A) for p, A in zip(fam.probs, fam.A, strict=True))
    rhs = sum(p * A @ (I - alpha * A) @ c for p, A, c in zip(fam.probs, fam.A, fam.c, strict=True))
    w_fo = np.linalg.solve(M, rhs)
    floor = np.linalg.norm(
        sum(
            p * alpha * A @ A @ (I - alpha * A) @ (w_fo - c)
            for p, A, c in zip(fam.probs, fam.A, fam.c, strict=True)
        )
    )
    res = runner.run(
        fam,
        "fomaml",
        np.zeros(fam.dim),
        alpha,
        np.random.default_rng(0),
        n_iter=3000,
        n_runs=1,
        step=0.5,
        setting="free",
        **FULL,
    )
    np.testing.assert_allclose(res.iterates[-1, 0], w_fo, atol=1e-9)
    assert res.grad_norm[-1, 0] == pytest.approx(floor, rel=1e-7)
    maml = runner.run(
        fam,
        "maml",
        np.zeros(fam.dim),
        alpha,
        np.random.default_rng(0),
        n_iter=3000,
        n_runs=1,
        step=0.5,
        setting="free",
        **FULL,
    )
    assert maml.grad_norm[-1, 0] < 1e-10


def test_theorem_step_on_quadratic_tasks_is_c_over_4L():
    fam = quad_family()
    for method, c in (("maml", 12), ("fomaml", 18), ("hfmaml", 25)):
        res = runner.run(
            fam, method, np.zeros(fam.dim), 0.05 / fam.L, np.random.default_rng(0), n_iter=3, n_runs=4,
            batch_tasks=20, d_in=2, d_o=2, d_h=2, delta=1.0,
        )  # fmt: skip
        np.testing.assert_allclose(res.steps, 1 / (c * 4 * fam.L), rtol=1e-14)
        assert res.work_per_iteration.grads == 20 * (2 + 2) + (
            2 * 20 * 2 if method == "hfmaml" else 0
        )


def test_vectorised_step_size_reproduces_the_stepsize_module():
    fam = welsch_family()
    alpha = 0.5 / fam.L
    W = np.random.default_rng(1).standard_normal((3, fam.dim))
    one = stepsize.lipschitz_draws(fam, W[:1], alpha, np.random.default_rng(7), 4, 3)
    ref = stepsize.lipschitz_estimate(fam, W[0], alpha, np.random.default_rng(7), 4, 3)
    np.testing.assert_allclose(one, ref, rtol=1e-14)
    many = stepsize.lipschitz_draws(fam, W, alpha, np.random.default_rng(7), 4, 3)
    rng = np.random.default_rng(7)
    T = rng.choice(fam.n_tasks, size=12, p=fam.probs).reshape(3, 4)
    idx = rng.integers(0, fam.n_points, size=(12, 3)).reshape(3, 4, 3)
    for r in range(3):
        norms = [
            np.linalg.norm(fam.tasks[t].grad(W[r], i)) for t, i in zip(T[r], idx[r], strict=True)
        ]
        assert many[r] == pytest.approx(4 * fam.L + 2 * fam.rho * alpha * np.mean(norms), rel=1e-13)
    exact = stepsize.lipschitz_draws(fam, W[:1], alpha, np.random.default_rng(0), None, None)
    assert exact[0] == pytest.approx(meta.smoothness_bound(fam, W[0], alpha), rel=1e-13)


def test_theorem_steps_and_work_are_recorded():
    fam = welsch_family()
    alpha = 0.1 / fam.L
    res = runner.run(
        fam, "hfmaml", np.zeros(fam.dim), alpha, np.random.default_rng(3), n_iter=20, n_runs=25,
        batch_tasks=20, d_in=3, d_o=4, d_h=5, step_batch_tasks=6, step_batch_points=7, record_every=7,
    )  # fmt: skip
    assert res.n_runs == 25 and res.steps.shape == (20, 25)
    assert np.all(res.steps <= 1 / (25 * 4 * fam.L)) and np.all(res.steps > 0)
    assert len(np.unique(res.steps)) > 1  # random steps: rho > 0
    np.testing.assert_array_equal(res.k, [0, 7, 14, 20])
    assert res.work_per_iteration == Work(grads=20 * (3 + 4 + 2 * 5) + 6 * 7, paired=20 * 5)
    np.testing.assert_array_equal(res.work["grads"], res.k * res.work_per_iteration.grads)
    assert len({tuple(w) for w in res.iterates[-1]}) == 25  # independent runs
    assert not res.diverged.any()
    again = runner.run(
        fam, "hfmaml", np.zeros(fam.dim), alpha, np.random.default_rng(3), n_iter=20, n_runs=25,
        batch_tasks=20, d_in=3, d_o=4, d_h=5, step_batch_tasks=6, step_batch_points=7, record_every=1,
    )  # fmt: skip
    np.testing.assert_array_equal(again.iterates[res.k], res.iterates)
    np.testing.assert_array_equal(again.steps, res.steps)
    G = meta.family_gradient(fam, res.iterates[-1], alpha)
    np.testing.assert_allclose(res.grad_norm[-1], np.linalg.norm(G, axis=1), rtol=1e-12)


def test_per_run_starting_points():
    fam = quad_family()
    W0 = np.random.default_rng(0).standard_normal((3, fam.dim))
    res = runner.run(
        fam, "maml", W0, 0.1, np.random.default_rng(0), n_iter=2, step=0.1, setting="free", **FULL
    )
    np.testing.assert_array_equal(res.iterates[0], W0)
    with pytest.raises(ValueError, match="n_runs"):
        runner.run(
            fam,
            "maml",
            W0,
            0.1,
            np.random.default_rng(0),
            n_iter=2,
            n_runs=4,
            step=0.1,
            setting="free",
            **FULL,
        )
    with pytest.raises(ValueError, match="n_runs"):
        runner.run(
            fam,
            "maml",
            W0[0],
            0.1,
            np.random.default_rng(0),
            n_iter=2,
            step=0.1,
            setting="free",
            **FULL,
        )


def test_a_diverging_free_run_is_reported_not_raised():
    fam = quad_family()
    res = runner.run(
        fam,
        "maml",
        np.ones(fam.dim),
        0.1,
        np.random.default_rng(0),
        n_iter=400,
        n_runs=2,
        step=50.0,
        setting="free",
        **FULL,
    )
    assert res.diverged.all()
    assert np.isfinite(res.grad_norm[0]).all()


# ----------------------------------------------------------------------------- theorem setting
def theorem_args(fam, **over):
    args = dict(
        w0=np.zeros(fam.dim), alpha=0.05 / fam.L, rng=np.random.default_rng(0), n_iter=1, n_runs=2,
        batch_tasks=20, d_in=2, d_o=2, d_h=2,
    )  # fmt: skip
    args.update(over)
    return args


@pytest.mark.parametrize(
    "method, over, words",
    [
        ("maml", {"alpha": 1.5}, ["T1", "alpha <= 1/L", "bound"]),
        ("maml", {"batch_tasks": 5}, ["T1", "B >= 20", "got 5"]),
        ("maml", {"step": 0.01}, ["T1", "step = c/L~(w) with c = 1/12"]),
        ("maml", {"hessian_batch": "inner"}, ["T1", "independent"]),
        ("fomaml", {"alpha": 0.2}, ["T2", "alpha <= 1/(10L)"]),
        ("hfmaml", {"alpha": 0.2}, ["T3", "alpha <= 1/(6L)"]),
        ("hfmaml", {"delta": 0.1}, ["T3", "delta_i = 1/(6 rho alpha |g_i|)"]),
        (
            "fomaml",
            {"constants": {"sigma": 1e3, "sigma_tilde": 1e3, "sigma_h": 0.0}},
            ["L2", "B' >=", "D_beta >="],
        ),
    ],
)
def test_theorem_setting_names_the_violated_condition(method, over, words):
    fam = welsch_family()
    args = theorem_args(fam, **over)
    if "alpha" in over:
        args["alpha"] = over["alpha"] / fam.L
    with pytest.raises(ValueError) as info:
        runner.run(fam, method, **args)
    msg = str(info.value)
    for word in [*words, "setting='free'"]:
        assert word in msg, msg
    res = runner.run(fam, method, setting="free", **args)  # the documented way out
    assert any(not c.holds for c in res.conditions)


def test_theorem_setting_checks_the_hessian_batch_bound():
    fam = tasks.make_quadratic_family(4, 5, 16, seed=3, hess_noise=1.5)
    sigma_h = runner.local_constants(fam, np.zeros(fam.dim))["sigma_h"]
    alpha = 1.0 / fam.L
    need = int(np.ceil(2 * alpha**2 * sigma_h**2))
    assert need > 2
    with pytest.raises(ValueError, match=rf"D_h >= ceil\(2 alpha\^2 sigma_H\^2\) = {need}"):
        runner.run(fam, "maml", **theorem_args(fam, alpha=alpha, d_h=need - 1))
    runner.run(fam, "maml", **theorem_args(fam, alpha=alpha, d_h=need))
    alpha = 1.0 / (6 * fam.L)
    need = int(np.ceil(36 * (alpha * sigma_h) ** 2))
    with pytest.raises(ValueError, match=r"T3.*D_h >= ceil\(36"):
        runner.run(fam, "hfmaml", **theorem_args(fam, alpha=alpha, d_h=need - 1, delta=1.0))
    # rho = 0: any delta satisfies T3 (the central difference is exact)
    res = runner.run(fam, "hfmaml", **theorem_args(fam, alpha=alpha, d_h=need, delta=1.0))
    assert all(c.holds for c in res.conditions)


def test_local_constants_match_the_family():
    fam = welsch_family()
    W = np.random.default_rng(0).standard_normal((2, fam.dim))
    c = runner.local_constants(fam, W)
    assert c["sigma"] == pytest.approx(np.sqrt(max(fam.sigma_sq(w) for w in W)))
    assert c["sigma_tilde"] == pytest.approx(np.sqrt(max(fam.sigma_tilde_sq(w).max() for w in W)))
    assert c["sigma_h"] == pytest.approx(np.sqrt(max(fam.sigma_h_sq(w).max() for w in W)))


@pytest.mark.parametrize("hess_noise", [0.0, 0.5])
def test_visited_constants_are_the_family_maxima(hess_noise):
    """Oracle: the family's own per-point sigma_sq, sigma_tilde_sq, sigma_h_sq, one point at a time."""
    for fam in (welsch_family(), quad_family(hess_noise)):
        W = np.random.default_rng(1).standard_normal((3, 4, fam.dim))  # any leading shape
        W[0, 0] = np.nan  # a diverged run is skipped
        got = runner.visited_constants(fam, W)
        pts = [w for w in W.reshape(-1, fam.dim) if np.all(np.isfinite(w))]
        assert got["n_points"] == len(pts)
        assert got["sigma"] == pytest.approx(np.sqrt(max(fam.sigma_sq(w) for w in pts)), rel=1e-10)
        st = max(fam.sigma_tilde_sq(w).max() for w in pts)
        assert got["sigma_tilde"] == pytest.approx(np.sqrt(st), rel=1e-10)
        sh = max(fam.sigma_h_sq(w).max() for w in pts)
        assert got["sigma_h"] == pytest.approx(np.sqrt(sh), rel=1e-10, abs=1e-12)
        frob = runner.visited_constants(fam, W, hessian_norm="frobenius")["sigma_h"]
        assert frob >= got["sigma_h"] * (1 - 1e-12)  # the Frobenius norm bounds the operator norm
        assert frob <= got["sigma_h"] * np.sqrt(fam.dim) * (1 + 1e-12)


def test_visited_constants_are_the_maxima_of_hypotheses_moments(monkeypatch):
    """One home for the per-point moments: visited_constants is the max of
    hypotheses.moments over the distinct finite rows, whatever the block size (d^2-aware)."""
    from hfmaml_core import hypotheses

    fam = quad_family(0.5)
    W = np.random.default_rng(4).standard_normal((6, fam.dim))
    W = np.concatenate([W, W[:2], np.full((1, fam.dim), np.inf)])  # repeats, a diverged run
    m = hypotheses.moments(fam, W[:6])
    for norm in ("operator", "frobenius"):
        got = runner.visited_constants(fam, W, hessian_norm=norm)
        assert got["n_points"] == 6 and got["hessian_norm"] == norm
        assert got["sigma"] == np.sqrt(m["sigma_sq"].max())
        assert got["sigma_tilde"] == np.sqrt(m["sigma_tilde_sq"].max())
        assert got["sigma_h"] == pytest.approx(np.sqrt(m[f"sigma_h_sq_{norm}"].max()), rel=1e-15)
    monkeypatch.setattr(hypotheses, "_HESS_BLOCK", 1)  # one point per block
    small = runner.visited_constants(fam, W)
    assert small["sigma_h"] == pytest.approx(np.sqrt(m["sigma_h_sq_operator"].max()), rel=1e-15)
    assert runner.local_constants(fam, W[:6]) == {
        k: small[k] for k in ("sigma", "sigma_tilde", "sigma_h")
    }
    with pytest.raises(ValueError, match="W"):
        runner.local_constants(fam, W)  # local_constants takes finite points only


def test_visited_constants_reject_bad_input():
    fam = welsch_family()
    with pytest.raises(ValueError, match="W must have shape"):
        runner.visited_constants(fam, np.zeros((2, fam.dim + 1)))
    with pytest.raises(ValueError, match="finite point"):
        runner.visited_constants(fam, np.full((2, fam.dim), np.nan))
    with pytest.raises(ValueError, match="hessian_norm"):
        runner.visited_constants(fam, np.zeros(fam.dim), hessian_norm="nuclear")


@pytest.mark.parametrize(
    "over, word",
    [
        ({"n_iter": 0}, "n_iter"),
        ({"setting": "loose"}, "setting"),
        ({"step": "fast"}, "step"),
        ({"step": -1.0}, "step"),
        ({"record_every": 0}, "record_every"),
        ({"step_batch_tasks": 0}, "step_batch_tasks"),
        ({"step_batch_points": 1.5}, "step_batch_points"),
        ({"w0": np.zeros(3)}, "w0"),
        ({"rng": 1}, "rng"),
        ({"constants": {"sigma": 1.0}}, "sigma_tilde"),
    ],
)
def test_run_rejects_bad_input(over, word):
    fam = welsch_family()
    with pytest.raises(ValueError, match=word):
        runner.run(fam, "fomaml", **theorem_args(fam, **over))


def test_descent_bound_formula_and_a_deterministic_run_below_it():
    b = runner.descent_bound(
        np.array([1, 4]), gap=2.0, beta_lo=0.5, beta_hi=1.0, bias_sq=0.1, variance=0.4
    )
    np.testing.assert_allclose(b, np.sqrt(4 * 2.0 / (0.5 * np.array([1, 4])) + 2.0 * (0.3 + 0.2)))
    # full batches: no bias, no variance; constant step beta with L(w) beta <= 1/4 on the path
    fam = welsch_family()
    alpha = 0.5 / fam.L
    w0 = np.array([0.5, -0.2, 0.1, 0.3])
    beta = 1 / (
        4 * (4 * fam.L + 2 * fam.rho * alpha * np.exp(-0.5) * np.linalg.norm(fam.X, axis=2).max())
    )
    res = runner.run(
        fam,
        "maml",
        w0,
        alpha,
        np.random.default_rng(0),
        n_iter=200,
        n_runs=1,
        step=beta,
        setting="free",
        **FULL,
    )
    rms = np.sqrt(np.cumsum(res.grad_norm[:-1, 0] ** 2) / np.arange(1, 201))
    gap = meta.family_objective(fam, w0, alpha)  # Welsch losses are >= 0, so inf F >= 0
    bound = runner.descent_bound(
        np.arange(1, 201), gap=gap, beta_lo=beta, beta_hi=beta, bias_sq=0.0, variance=0.0
    )
    assert np.all(rms <= bound)
    for kw, word in (
        ({"gap": -1.0}, "gap"),
        ({"beta_hi": 0.1}, "beta_hi"),
        ({"variance": np.nan}, "variance"),
    ):
        args = {**dict(gap=1.0, beta_lo=0.5, beta_hi=1.0, bias_sq=0.0, variance=0.0), **kw}
        with pytest.raises(ValueError, match=word):
            runner.descent_bound(3, **args)
    with pytest.raises(ValueError, match="K"):
        runner.descent_bound(0, gap=1.0, beta_lo=0.5, beta_hi=1.0, bias_sq=0.0, variance=0.0)


def test_iterations_to_reach():
    k = np.array([0, 10, 20, 30, 40])
    v = np.array([1.0, 2.0, 0.5, 0.7, 0.1])
    out = runner.iterations_to_reach(k, v, [3.0, 1.0, 0.6, 0.5, 0.2, 0.1, 0.01])
    np.testing.assert_array_equal(out, [0, 0, 20, 20, 40, 40, np.nan])
    loop = [
        next((kk for kk, vv in zip(k, v, strict=True) if vv <= e), np.nan) for e in (0.55, 0.15)
    ]
    np.testing.assert_array_equal(runner.iterations_to_reach(k, v, [0.55, 0.15]), loop)
    with pytest.raises(ValueError, match="increasing"):
        runner.iterations_to_reach([0, 0], [1.0, 1.0], 0.5)
    with pytest.raises(ValueError, match="values"):
        runner.iterations_to_reach([0, 1], [1.0], 0.5)
