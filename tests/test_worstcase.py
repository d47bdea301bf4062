"""The flat-tailed worst case (hfmaml_core.worstcase) against sympy and the runner."""

import numpy as np
import pytest
import sympy as sp

from hfmaml_core import meta, runner, worstcase


def _sympy_profile(q, c):
    x = sp.symbols("x", real=True)
    right = c * (1 + x) ** (1 - q) / (q - 1)
    left = c / (q - 1) - c * x + sp.Rational(1, 2) * c * q * x**2
    return x, right, left


@pytest.mark.parametrize("q", [1.1, 1.5, 3.0])
def test_kernels_match_sympy(q):
    fam = worstcase.PowerTailFamily(q, scale=0.7, shifts=(0.0, -0.4, 1.3))
    x, right, left = _sympy_profile(sp.Float(q, 30), sp.Float(0.7, 30))
    W = np.linspace(-3.0, 20.0, 41)[:, None]
    for t, s in enumerate(fam.shifts):
        T = np.full(W.shape[0], t)
        for order, got in zip(
            (0, 1, 2, 2),
            (
                fam.losses(W, T),
                fam.grads(W, T)[:, 0],
                fam.hessians(W, T)[:, 0, 0],
                fam.hvps(W, np.full_like(W, 2.0), T)[:, 0] / 2.0,
            ),
            strict=True,
        ):
            want = [
                float(sp.diff(right if w - s >= 0 else left, x, order).subs(x, w - s))
                for w in W[:, 0]
            ]
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        pg = fam.point_grads([2.0], t)
        np.testing.assert_allclose(pg, fam.grads([2.0], [t]), rtol=0, atol=0)
        ph = fam.point_hessians([2.0], t)
        np.testing.assert_allclose(ph, fam.hessians([2.0], [t]), rtol=0, atol=0)


@pytest.mark.parametrize("q", [1.1, 2.0])
def test_constants_against_dense_scan(q):
    fam = worstcase.PowerTailFamily(q, scale=1.3)
    x = np.linspace(-5.0, 50.0, 200001)
    h2 = fam.profile(x, 2)
    # Lipschitz constant of phi'' by difference quotients, an oracle independent of phi'''
    lip = np.abs(np.diff(h2) / np.diff(x)).max()
    assert np.abs(h2).max() == pytest.approx(fam.L, rel=1e-12)
    assert lip == pytest.approx(fam.rho, rel=1e-3)
    assert lip <= fam.rho * (1 + 1e-9)
    assert fam.profile(x, 0).min() >= 0.0  # A1: bounded below by 0 (the infimum)


def test_one_task_has_no_noise():
    fam = worstcase.PowerTailFamily(1.1)
    for w in (-1.0, 0.0, 3.0):
        assert fam.sigma_sq([w]) == 0.0
        assert float(np.max(fam.sigma_tilde_sq([w]))) == 0.0
        assert float(np.max(fam.sigma_h_sq([w]))) == 0.0


@pytest.mark.parametrize("method", ["maml", "fomaml", "hfmaml"])
def test_lean_path_agrees_with_runner(method):
    fam = worstcase.PowerTailFamily(1.1, shifts=(0.0, 0.5))
    alpha = 0.1 / fam.L
    r = runner.run(
        fam,
        method,
        np.array([-0.5]),
        alpha,
        np.random.default_rng(0),
        n_iter=200,
        n_runs=1,
        batch_tasks=None,
        d_in=None,
        d_o=None,
        d_h=None,
        step_batch_tasks=None,
        step_batch_points=None,
    )
    w, g, b = worstcase.full_batch_run(fam, method, -0.5, alpha, 200)
    np.testing.assert_allclose(w, r.iterates[:, 0, 0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g, r.grad_norm[:, 0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b, r.steps[:, 0], rtol=1e-13)
    np.testing.assert_allclose(
        g, np.abs(meta.family_gradient(fam, w[:, None], alpha)[:, 0]), rtol=1e-12
    )


def test_rate_on_the_tail():
    fam = worstcase.PowerTailFamily(1.1)
    _, g, _ = worstcase.full_batch_run(fam, "maml", 0.0, 0.1 / fam.L, 40000)
    K, best, out = worstcase.running_outputs(g)
    rf = worstcase.rate_fit(K, best, g[0], (0.3, 0.03))
    assert -2.2 <= rf.fit.slope <= -1.8
    assert rf.decades == pytest.approx(1.0)
    with pytest.raises(ValueError, match="never reaches"):
        worstcase.rate_fit(K, best, g[0], (0.3, 1e-4))


def test_outputs_and_k_of_eps():
    K, best, out = worstcase.running_outputs([3.0, 1.0, 2.0])
    np.testing.assert_array_equal(best, [3.0, 1.0, 1.0])
    np.testing.assert_allclose(out, [3.0, 2.0, 2.0])
    np.testing.assert_array_equal(
        worstcase.iterations_to_accuracy(K, out, [2.5, 2.0, 1.0]), [2.0, 2.0, np.nan]
    )


def test_bad_input_raises():
    with pytest.raises(ValueError, match="q"):
        worstcase.PowerTailFamily(1.0)
    with pytest.raises(ValueError, match="scale"):
        worstcase.PowerTailFamily(1.5, scale=0.0)
    fam = worstcase.PowerTailFamily(1.5)
    with pytest.raises(ValueError, match="method"):
        worstcase.full_batch_run(fam, "sgd", 0.0, 0.1, 10)
    with pytest.raises(ValueError, match="alpha"):
        worstcase.full_batch_run(fam, "maml", 0.0, 2.0 / fam.L, 10)
    with pytest.raises(ValueError, match="order"):
        fam.profile(0.0, 4)
    with pytest.raises(ValueError, match="eps"):
        worstcase.iterations_to_accuracy([1, 2], [1.0, 0.5], [0.0])
    with pytest.raises(ValueError, match="grad_norm"):
        worstcase.running_outputs([-1.0])
