"""Vectorised exact meta-gradient, the theorems' random step size, and the HF-MAML delta.

Oracles: the task-by-task `meta.gradient` / `meta.objective` (which form Hessians
explicitly, a different code path from the HVP-based vectorised kernel, itself
tested against sympy in test_meta.py), and formulas written out here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hfmaml_core import hvp, meta, stepsize, tasks

FAMILIES = {
    "welsch": lambda: tasks.make_welsch_family(4, 5, 12, seed=3, input_scale=2.0),
    "quadratic": lambda: tasks.make_quadratic_family(4, 5, 12, seed=3, hess_noise=0.3),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_family_gradient_and_objective_match_the_task_by_task_versions(name):
    fam = FAMILIES[name]()
    W = np.random.default_rng(0).standard_normal((6, fam.dim)) * 2
    alpha = 0.7 / fam.L
    G = meta.family_gradient(fam, W, alpha)
    F = meta.family_objective(fam, W, alpha)
    for k in range(len(W)):
        ref = meta.gradient(fam.tasks, W[k], alpha, fam.probs)
        np.testing.assert_allclose(G[k], ref, rtol=1e-12, atol=1e-14)
        assert F[k] == pytest.approx(meta.objective(fam.tasks, W[k], alpha, fam.probs), rel=1e-13)
    np.testing.assert_allclose(meta.family_gradient(fam, W[0], alpha), G[0], rtol=1e-15)
    assert isinstance(meta.family_objective(fam, W[0], alpha), float)


def test_family_gradient_rejects_bad_input():
    fam = FAMILIES["welsch"]()
    with pytest.raises(ValueError, match="W"):
        meta.family_gradient(fam, np.zeros((2, fam.dim + 1)), 0.1)
    with pytest.raises(ValueError, match="alpha"):
        meta.family_gradient(fam, np.zeros(fam.dim), -0.1)
    with pytest.raises(ValueError, match="W"):
        meta.family_objective(fam, np.full(fam.dim, np.nan), 0.1)


def test_lipschitz_estimate_mean_matches_its_exact_expectation():
    """With B' = 1 and D_beta = n_points drawn with replacement the estimate is random;
    with the draws reproduced by hand from the same generator it is exact."""
    fam = FAMILIES["welsch"]()
    w = np.full(fam.dim, 1.5)
    alpha = 0.5 / fam.L
    draws = stepsize.lipschitz_estimate(fam, w, alpha, np.random.default_rng(7), 3, 4, n_draws=5)
    rng = np.random.default_rng(7)
    T = rng.choice(fam.n_tasks, size=15, p=fam.probs)
    idx = rng.integers(0, fam.n_points, size=(15, 4))
    norms = np.array([np.linalg.norm(fam.tasks[t].grad(w, i)) for t, i in zip(T, idx, strict=True)])
    expected = 4 * fam.L + 2 * fam.rho * alpha * norms.reshape(5, 3).mean(axis=1)
    np.testing.assert_allclose(draws, expected, rtol=1e-13)


def test_lipschitz_estimate_is_unbiased_for_the_mean_gradient_norm_with_full_batches():
    """With B' = D_beta = 1, E[L~(w)] = 4L + 2 rho alpha E_j E_theta ||grad f_j(w, theta)||,
    an exact average over tasks and points; the Monte Carlo mean must match it (4 s.e.)."""
    fam = FAMILIES["welsch"]()
    w = np.full(fam.dim, -1.0)
    alpha = 1.0 / fam.L
    x = stepsize.lipschitz_estimate(fam, w, alpha, np.random.default_rng(1), 1, 1, n_draws=200_000)
    exact_mean_norm = sum(
        p * np.linalg.norm(fam.point_grads(w, t), axis=1).mean() for t, p in enumerate(fam.probs)
    )
    exact = 4 * fam.L + 2 * fam.rho * alpha * exact_mean_norm
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert abs(x.mean() - exact) < 4 * se


def test_theorem_step_uses_the_theorem_constants():
    fam = FAMILIES["quadratic"]()  # rho = 0: L~ = 4L exactly
    w = np.zeros(fam.dim)
    for method, c in (("maml", 12), ("fomaml", 18), ("hfmaml", 25)):
        beta = stepsize.theorem_step(fam, w, 0.1, np.random.default_rng(0), method, 2, 2)
        assert beta == pytest.approx(1 / (c * 4 * fam.L), rel=1e-14)
    with pytest.raises(ValueError, match="method"):
        stepsize.theorem_step(fam, w, 0.1, np.random.default_rng(0), "sgd", 2, 2)


def test_l2_thresholds_formula_and_validation():
    assert stepsize.l2_thresholds(1.0, 2.0, 1.0, 3.0, 0.5) == (18, 4)  # ceil(0.5*36), ceil(4)
    assert stepsize.l2_thresholds(1.0, 0.0, 0.5, 3.0, 0.5) == (1, 1)
    with pytest.raises(ValueError, match="alpha"):
        stepsize.l2_thresholds(1.0, 2.0, 1.5, 3.0, 0.5)
    with pytest.raises(ValueError, match="sigma_tilde"):
        stepsize.l2_thresholds(1.0, 2.0, 0.5, 3.0, -1.0)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"alpha": 10.0}, "alpha"),
        ({"batch_tasks": 0}, "batch_tasks"),
        ({"batch_points": 0}, "batch_points"),
        ({"n_draws": 0}, "n_draws"),
        ({"rng": 0}, "rng"),
        ({"w": [1.0]}, "w"),
    ],
)
def test_lipschitz_estimate_rejects_bad_input(kwargs, word):
    fam = FAMILIES["welsch"]()
    args = dict(
        w=np.zeros(fam.dim), alpha=0.1, rng=np.random.default_rng(0), batch_tasks=1, batch_points=1
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        stepsize.lipschitz_estimate(fam, **args)


def test_theorem_delta():
    assert hvp.theorem_delta(2.0, 0.1, 5.0) == pytest.approx(1 / 6)
    np.testing.assert_allclose(hvp.theorem_delta(1.0, 1.0, np.array([1.0, 2.0])), [1 / 6, 1 / 12])
    for kwargs, word in (
        ({"rho": 0.0}, "rho"),
        ({"alpha": -1.0}, "alpha"),
        ({"g_norm": 0.0}, "g_norm"),
    ):
        args = {"rho": 1.0, "alpha": 0.1, "g_norm": 1.0, **kwargs}
        with pytest.raises(ValueError, match=word):
            hvp.theorem_delta(**args)


@pytest.mark.parametrize("name", FAMILIES)
def test_vectorised_meta_kernels_take_one_alpha_per_point(name):
    """Per-point alphas give row by row what the scalar-alpha calls give."""
    fam = FAMILIES[name]()
    W = np.random.default_rng(2).standard_normal((5, fam.dim)) * 3
    alphas = np.linspace(0.0, 1.0 / fam.L, 5)
    G = meta.family_gradient(fam, W, alphas)
    F = meta.family_objective(fam, W, alphas)
    Lw = meta.smoothness_bound(fam, W, alphas)
    for k in range(5):
        np.testing.assert_allclose(G[k], meta.family_gradient(fam, W[k], alphas[k]), rtol=1e-14)
        assert F[k] == pytest.approx(meta.family_objective(fam, W[k], alphas[k]), rel=1e-14)
        norms = np.linalg.norm(fam.task_grads(W[k]), axis=1)
        assert Lw[k] == pytest.approx(
            4 * fam.L + 2 * fam.rho * alphas[k] * fam.probs @ norms, rel=1e-13
        )
    with pytest.raises(ValueError, match="alpha"):
        meta.smoothness_bound(fam, W, alphas * 2)
    with pytest.raises(ValueError, match="alpha"):
        meta.family_gradient(fam, W, -alphas)
    with pytest.raises(ValueError, match="alpha"):
        meta.family_gradient(fam, W, alphas[:3])
