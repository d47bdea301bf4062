r"""Full-batch MAML with a step built from L1's constant or from the sharper one (THEORY L1, T1).

With every batch full, MAML's direction is the exact meta-gradient :math:`\nabla F(w)` (S1) and
the theorem's step :math:`\beta_k = c/\tilde L(w_k)` with full step batches is :math:`c/L(w_k)`,
:math:`L(w) = 4L + 2\rho\alpha E_i\|\nabla f_i(w)\|` (L1). Notebook 01 proves the sharper local
constant

.. math:: L_\sharp(w) = L(1+\alpha L)^2 + \rho\alpha(1+\alpha L)\,E_i\|\nabla f_i(w)\|
          \;\le\; L(w) \quad (\alpha \le 1/L),

so the same descent argument admits the step :math:`c/L_\sharp(w_k)`, larger by
:math:`L(w_k)/L_\sharp(w_k)` (between :math:`2/(1+\alpha L)` and :math:`4/(1+\alpha L)^2`).
:func:`exact_descent` runs both, vectorised over starting points, so that notebook 01 can measure
what the sharper constant buys. Also :func:`hessian_singular_values` for THEORY's open point on
:math:`\alpha` near :math:`1/L`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validate as V
from .meta import family_gradient, family_objective, sharp_smoothness_bound, smoothness_bound

__all__ = ["CONSTANTS", "DescentRun", "exact_descent", "hessian_singular_values"]

#: The local smoothness constants a step can be built from: L1's ``L(w)`` and the sharper ``L_sharp(w)``.
CONSTANTS = ("l1", "sharp")


@dataclass(frozen=True)
class DescentRun:
    """Result of :func:`exact_descent` for ``R`` starting points and ``K`` iterations.

    Attributes
    ----------
    grad_norm : ndarray, shape (K + 1, R)
        Exact :math:`\\|\\nabla F(w_k)\\|`, ``k = 0..K``.
    objective0 : ndarray, shape (R,)
        Exact :math:`F(w_0)` (for the gap :math:`\\Delta` of a descent bound).
    steps : ndarray, shape (K, R)
        The steps :math:`\\beta_k` taken.
    bound_times_step : ndarray, shape (K, R)
        :math:`L_\\sharp(w_k)\\,\\beta_k` (the product the descent bound needs ``<= 1/4``).
    """

    grad_norm: np.ndarray
    objective0: np.ndarray
    steps: np.ndarray
    bound_times_step: np.ndarray


def exact_descent(
    family: object,
    w0: object,
    alpha: float,
    *,
    n_iter: int,
    constant: str = "l1",
    c: float = 1.0 / 12.0,
) -> DescentRun:
    r"""Full-batch MAML :math:`w_{k+1} = w_k - \frac{c}{\Lambda(w_k)}\nabla F(w_k)` from every row of ``w0``.

    :math:`\Lambda = L(w)` of L1 (``constant="l1"``: T1's step :math:`1/(12\tilde L)` with every
    batch full) or :math:`\Lambda = L_\sharp(w)` (``constant="sharp"``). Exact :math:`\nabla F` and
    :math:`F(w_0)` from :func:`hfmaml_core.meta.family_gradient` / ``family_objective``; each iteration
    is one vectorised call over the ``R`` runs. Deterministic: nothing is drawn.

    Parameters
    ----------
    family : TaskFamily
    w0 : array, shape (R, d)
        Starting points, one per run.
    alpha : float
        Inner step, ``>= 0``.
    n_iter : int
        Iterations ``K >= 1``.
    constant : {"l1", "sharp"}
    c : float
        Step constant ``> 0`` (T1's ``1/12`` by default).

    Raises
    ------
    ValueError
        A bad argument, named with its allowed range, before any work.
    """
    W = V.array("w0", w0, shape=(None, family.dim)).astype(float).copy()
    a = V.real("alpha", alpha, lo=0.0)
    K = V.integer("n_iter", n_iter)
    constant = V.choice("constant", constant, CONSTANTS)
    c = V.real("c", c, lo=0.0, lo_open=True)
    R = W.shape[0]
    gn, obj = np.empty((K + 1, R)), family_objective(family, W, a)
    steps, prod = np.empty((K, R)), np.empty((K, R))
    for k in range(K + 1):  # sequential in k; vectorised over the runs
        G = family_gradient(family, W, a)
        gn[k] = np.linalg.norm(G, axis=1)
        if k == K:
            break
        # L_sharp(w_k) once per iteration: the "sharp" step and the product both use it
        S = sharp_smoothness_bound(family, W, a)
        steps[k] = c / (smoothness_bound(family, W, a) if constant == "l1" else S)
        prod[k] = S * steps[k]
        W = W - steps[k][:, None] * G
    return DescentRun(grad_norm=gn, objective0=obj, steps=steps, bound_times_step=prod)


def hessian_singular_values(family: object, W: object, alpha: object) -> np.ndarray:
    r"""Smallest singular value of :math:`I - \alpha\nabla^2 f_i(w)` for every task and point.

    .. math:: s_{\min}(w, i, \alpha) = \min_j |1 - \alpha\lambda_j(\nabla^2 f_i(w))|

    (the Hessian is symmetric, so its singular values are the :math:`|1 - \alpha\lambda_j|`).
    At :math:`\alpha = 1/L` it is 0 wherever a task Hessian attains :math:`L` (THEORY, open
    point "α near 1/L").

    Parameters
    ----------
    family : TaskFamily
    W : array, shape (S, d)
        Points.
    alpha : float or array of shape (A,)
        Inner steps ``>= 0``.

    Returns
    -------
    ndarray, shape (A, S, m)
        One value per step, point and task (``A = 1`` for a scalar ``alpha``).
    """
    Wa = V.array("W", W, shape=(None, family.dim))
    al = np.atleast_1d(np.asarray(alpha, dtype=float))
    if al.ndim != 1 or not np.all(np.isfinite(al)) or np.any(al < 0):
        raise ValueError(f"alpha must be finite numbers >= 0; got {alpha!r}")
    S, m = Wa.shape[0], family.n_tasks
    H = family.hessians(np.repeat(Wa, m, axis=0), np.tile(np.arange(m), S))
    lam = np.linalg.eigvalsh(H).reshape(S, m, family.dim)
    return np.abs(1.0 - al[:, None, None, None] * lam[None]).min(axis=3)
