"""Tests for :mod:`hfmaml_core.proof_hf` (notebook 02's derivations) and :mod:`hfmaml_core.hvp_study`.

Oracles share no code with the modules: numpy central differences of ``rho |t|^3 / 6`` for the
sharp profile, a dense grid for ``max |phi''''|``, the library's float64 Welsch family for the
any-dtype gradient and HVP, complex-step derivatives, and synthetic ``a d^2 + b/d`` curves.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from hfmaml_core import hvp_study, proof_hf
from hfmaml_core import tasks as T


def test_sharp_constant_is_one_half_and_attained() -> None:
    p = proof_hf.h1_sharp_constant()
    assert p.identity_residual == 0
    assert p.c_upper == sp.Rational(1, 2) and p.c_attained == sp.Rational(1, 2)
    assert p.far == 0 and p.sharp


@pytest.mark.parametrize("mistake", proof_hf.SHARP_MISTAKES)
def test_planted_mistake_is_caught(mistake: str) -> None:
    assert not proof_hf.h1_sharp_constant(mistake).sharp


def test_bad_mistake_name_raises() -> None:
    with pytest.raises(ValueError, match="mistake"):
        proof_hf.h1_sharp_constant("typo")


def test_profile_against_numpy_central_difference() -> None:
    # phi(t) = rho |t|^3 / 6: gradient rho t |t| / 2, Hessian rho |t|; w at offset s * delta
    p = proof_hf.h1_sharp_constant()
    prof = sp.lambdify(p.sigma, p.profile)
    rho, delta = 1.7, 0.3
    for s in np.linspace(0.0, 1.0, 11):
        w = s * delta
        cd = (rho * (w + delta) * abs(w + delta) / 2 - rho * (w - delta) * abs(w - delta) / 2) / (
            2 * delta
        )
        assert (cd - rho * abs(w)) / (rho * delta) == pytest.approx(prof(s), abs=1e-12)


def test_smooth_constant_and_welsch_fourth_derivative() -> None:
    s = proof_hf.h1_smooth_constant()
    assert s.c_smooth == sp.Rational(1, 6) and s.quartic_residual == 0
    r = np.linspace(-6, 6, 200001)
    phi4 = -(r**4 - 6 * r**2 + 3) * np.exp(-(r**2) / 2)  # closed form, typed independently
    assert float(s.max_phi4) == pytest.approx(np.abs(phi4).max(), rel=1e-9)
    f = sp.lambdify(s.r, s.phi4)
    np.testing.assert_allclose(f(r[::1000]), phi4[::1000], rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def welsch() -> T.WelschRegressionFamily:
    return T.make_welsch_family(3, 2, 7, seed=11, input_scale=2.0)


def test_welsch_grad_and_hvp_match_the_library(welsch: T.WelschRegressionFamily) -> None:
    X, y, task = welsch.X[0], welsch.y[0], welsch.tasks[0]
    rng = np.random.default_rng(0)
    for _ in range(5):
        w, v = rng.standard_normal(3), rng.standard_normal(3)
        np.testing.assert_allclose(
            hvp_study.welsch_grad(X, y, w), task.grad(w), rtol=1e-13, atol=1e-15
        )
        np.testing.assert_allclose(
            hvp_study.welsch_hvp(X, y, w, v), task.hvp(w, v), rtol=1e-12, atol=1e-14
        )
        # complex step of the any-dtype gradient: Im grad(w + i h v) / h = H v
        cs = hvp_study.welsch_grad(X, y, w + 1e-30j * v).imag / 1e-30
        np.testing.assert_allclose(cs, task.hvp(w, v), rtol=1e-12, atol=1e-14)
        ref = hvp_study.welsch_hvp_reference(X, y, w, v, digits=30)
        np.testing.assert_allclose(ref, task.hvp(w, v), rtol=1e-12, atol=1e-14)


def test_welsch_grad_keeps_the_dtype(welsch: T.WelschRegressionFamily) -> None:
    w = np.ones(3, dtype=np.float32)
    assert hvp_study.welsch_grad(welsch.X[0], welsch.y[0], w).dtype == np.float32


def test_fitted_optimum_recovers_the_minimiser() -> None:
    d = 10.0 ** np.linspace(-8, 0, 81)
    a, b = 3.0, 2e-12
    assert hvp_study.fitted_optimum(d, a * d**2 + b / d) == pytest.approx(
        (b / (2 * a)) ** (1 / 3), rel=1e-10
    )
    with pytest.raises(ValueError, match="half_width"):
        hvp_study.fitted_optimum(d, a * d**2 + b / d, half_width=0.0)


def test_misprint_difference_is_the_misprinted_formula(welsch: T.WelschRegressionFamily) -> None:
    task = welsch.tasks[1]
    w, g, dl = np.array([0.1, -0.2, 0.3]), np.array([1.0, 0.5, -0.5]), 1e-3
    expected = (task.grad(w + dl * g) - np.full(3, task.loss(w - dl * g))) / (2 * dl)
    np.testing.assert_allclose(hvp_study.misprint_difference(task, w, g, dl), expected, rtol=1e-14)
