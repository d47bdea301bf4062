"""Tests for :mod:`hfmaml_core.sharpstep` against oracles that share no code with it.

* ``exact_descent(constant="l1")`` is T1's step with every batch full: ``runner.run`` (the
  estimator engine's batch kernels, its own exact step estimate) must give the same iterates.
* On quadratic tasks ``grad F`` is linear with the closed-form matrix ``E[A_i (I - alpha A_i)^2]``
  and ``L_sharp = L (1 + alpha L)^2``: gradient descent is a matrix iteration.
* ``hessian_singular_values`` against ``numpy.linalg.svd`` of ``I - alpha H`` formed from the
  task's own quadratic matrices.
"""

from __future__ import annotations

import numpy as np
import pytest

from hfmaml_core import runner, sharpstep
from hfmaml_core import tasks as T


def test_l1_step_is_runner_full_batch_maml() -> None:
    fam = T.make_welsch_family(3, 4, 6, seed=3, input_scale=2.0)
    a = 0.3 / fam.L
    W0 = np.random.default_rng(1).standard_normal((3, 3))
    ours = sharpstep.exact_descent(fam, W0, a, n_iter=25, constant="l1")
    ref = runner.run(
        fam,
        "maml",
        W0,
        a,
        np.random.default_rng(0),
        n_iter=25,
        batch_tasks=None,
        d_in=None,
        d_o=None,
        d_h=None,
        step_batch_tasks=None,
        step_batch_points=None,
        setting="free",
    )
    np.testing.assert_allclose(ours.steps, ref.steps, rtol=1e-12)
    np.testing.assert_allclose(ours.grad_norm, ref.grad_norm, rtol=1e-9, atol=1e-14)


def test_sharp_step_on_quadratics_is_a_matrix_iteration() -> None:
    fam = T.make_quadratic_family(2, 3, 4, seed=5, curvature=(-1.0, 1.0))
    a, c, K = 0.4 / fam.L, 1.0 / 12.0, 30
    A, C, p = fam.A, fam.c, fam.probs
    I2 = np.eye(2)
    M = [A[i] @ (I2 - a * A[i]) @ (I2 - a * A[i]) for i in range(3)]  # grad F_i = M_i (w - c_i)
    beta = c / (fam.L * (1 + a * fam.L) ** 2)  # rho = 0: L_sharp is constant
    w = np.array([[2.0, -1.0]])
    run = sharpstep.exact_descent(fam, w, a, n_iter=K, constant="sharp", c=c)
    x = w[0].copy()
    for k in range(K + 1):
        g = sum(p[i] * M[i] @ (x - C[i]) for i in range(3))
        assert run.grad_norm[k, 0] == pytest.approx(np.linalg.norm(g), rel=1e-10, abs=1e-13)
        x = x - beta * g
    np.testing.assert_allclose(run.steps, beta, rtol=1e-13)
    np.testing.assert_allclose(run.bound_times_step, c, rtol=1e-13)


def test_hessian_singular_values_against_svd() -> None:
    fam = T.make_quadratic_family(3, 4, 4, seed=7, curvature=(-1.0, 1.0))
    W = np.random.default_rng(2).standard_normal((2, 3))
    al = np.array([0.5, 1.0, 1.1]) / fam.L
    got = sharpstep.hessian_singular_values(fam, W, al)
    assert got.shape == (3, 2, 4)
    for ia, a in enumerate(al):
        for i in range(4):
            s = np.linalg.svd(np.eye(3) - a * fam.A[i], compute_uv=False).min()
            np.testing.assert_allclose(got[ia, :, i], s, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"alpha": -1.0}, "alpha"),
        ({"n_iter": 0}, "n_iter"),
        ({"constant": "L"}, "constant"),
        ({"c": 0.0}, "c"),
    ],
)
def test_bad_input_names_the_parameter(kw: dict, name: str) -> None:
    fam = T.make_quadratic_family(2, 2, 4, seed=1)
    args = {"alpha": 0.1, "n_iter": 3, **kw}
    with pytest.raises(ValueError, match=name):
        sharpstep.exact_descent(fam, np.zeros((1, 2)), args.pop("alpha"), **args)
