r"""The random step size of the theorems and the batch thresholds of THEORY L2.

.. math::
    \tilde L(w) = 4L + 2\rho\alpha\,\frac{1}{B'}\sum_{j\in B'}\bigl\|\tilde\nabla f_j(w, D_\beta^j)\bigr\|,
    \qquad \beta_k = \frac{c}{\tilde L(w_k)},

with a task batch :math:`B'` and data batches :math:`D_\beta^j` drawn independently of
everything else in the iteration (THEORY "Step size"), and
:math:`c = 1/12, 1/18, 1/25` for MAML, FO-MAML, HF-MAML (THEORY T1, T2, T3).
"""

from __future__ import annotations

import math

import numpy as np

from . import _validate as V
from .methods import TABLE
from .tasks import TaskFamily

__all__ = [
    "STEP_CONSTANTS",
    "l2_thresholds",
    "lipschitz_draws",
    "lipschitz_estimate",
    "theorem_step",
]

#: The constant ``c`` of ``beta_k = c / L~(w_k)`` in THEORY T1, T2, T3 (a view of
#: :data:`hfmaml_core.methods.TABLE`).
STEP_CONSTANTS = {m.name: m.step_constant for m in TABLE}

_CHUNK_ROWS = 1 << 15  # rows of (task, batch) pairs per vectorised call: bounds memory


def lipschitz_estimate(
    family: TaskFamily,
    w: object,
    alpha: float,
    rng: np.random.Generator,
    batch_tasks: int,
    batch_points: int,
    n_draws: int = 1,
) -> np.ndarray:
    r"""``n_draws`` independent draws of :math:`\tilde L(w)`, shape ``(n_draws,)``.

    Each draw samples :math:`B'` = ``batch_tasks`` tasks from ``family.probs`` and,
    for each, :math:`D_\beta` = ``batch_points`` data points with replacement.
    Vectorised over draws and tasks (memory is bounded by processing the draws
    in chunks).

    Parameters
    ----------
    family : TaskFamily
        Supplies ``L``, ``rho`` and the mini-batch gradients.
    w : array, shape (d,)
    alpha : float
        Inner step size, ``0 <= alpha <= 1/L`` (the range of THEORY L1 and L2).
    rng : numpy.random.Generator
    batch_tasks, batch_points : int
        :math:`B' \ge 1` and :math:`D_\beta \ge 1`.
    n_draws : int
        Number of independent draws, ``>= 1``.
    """
    wa = V.array("w", w, shape=(family.dim,))
    a = V.real("alpha", alpha, lo=0.0, hi=1.0 / family.L if family.L > 0 else None)
    V.generator(rng)
    bt = V.integer("batch_tasks", batch_tasks)
    bp = V.integer("batch_points", batch_points)
    n = V.integer("n_draws", n_draws)
    means = np.empty(n)
    per_chunk = max(1, _CHUNK_ROWS // bt)
    for start in range(0, n, per_chunk):  # loop over chunks of draws, not data points
        k = min(per_chunk, n - start)
        T = family.sample_tasks(rng, k * bt)
        idx = family.sample_points(rng, k * bt, bp)
        G = family.grad_kernel(np.broadcast_to(wa, (k * bt, family.dim)), T, idx)
        means[start : start + k] = np.linalg.norm(G, axis=1).reshape(k, bt).mean(axis=1)
    return 4.0 * family.L + 2.0 * family.rho * a * means


def lipschitz_draws(
    family: TaskFamily,
    W: np.ndarray,
    alpha: float,
    rng: np.random.Generator,
    batch_tasks: int | None,
    batch_points: int | None,
) -> np.ndarray:
    r"""One draw of :math:`\tilde L(w)` per row of ``W`` (vectorised over the rows), shape (R,).

    .. math::
        \tilde L(w_r) = 4L + 2\rho\alpha\,\sum_{j\in B'_r} q_j\,
            \bigl\|\tilde\nabla f_j(w_r, D_\beta^j)\bigr\|,

    with :math:`q_j = 1/B'` for a sampled batch. Unchecked (the runner calls it every
    iteration with arguments it validated once). Same draw order as
    :func:`lipschitz_estimate` (tasks, then data), so one row reproduces it. ``None``
    batches use every task (weights :math:`q_j = p_j`, nothing drawn) / every point; with
    ``rho = 0`` the estimate is ``4L`` exactly and nothing is drawn.

    Parameters
    ----------
    family : TaskFamily
    W : ndarray, shape (R, d)
        One point per run.
    alpha : float
    rng : numpy.random.Generator
    batch_tasks, batch_points : int or None
        :math:`B'` and :math:`D_\beta` (``None``: every task / every point).
    """
    R = W.shape[0]
    if family.rho == 0:
        return np.full(R, 4.0 * family.L)
    if batch_tasks is None:
        bt, T, weights = family.n_tasks, np.tile(np.arange(family.n_tasks), R), family.probs
    else:
        bt = batch_tasks
        T = rng.choice(family.n_tasks, size=R * bt, p=family.probs)
        weights = np.full(bt, 1.0 / bt)
    idx = (
        None
        if batch_points is None
        else rng.integers(0, family.n_points, size=(R * bt, batch_points))
    )
    G = family.grad_kernel(np.repeat(W, bt, axis=0), T, idx)
    means = np.linalg.norm(G, axis=1).reshape(R, bt) @ weights
    return 4.0 * family.L + 2.0 * family.rho * alpha * means


def theorem_step(
    family: TaskFamily,
    w: object,
    alpha: float,
    rng: np.random.Generator,
    method: str,
    batch_tasks: int,
    batch_points: int,
) -> float:
    r"""One draw of the theorems' step :math:`\beta = c_{\text{method}}/\tilde L(w)` (THEORY T1-T3)."""
    c = STEP_CONSTANTS[V.choice("method", method, sorted(STEP_CONSTANTS))]
    return c / float(lipschitz_estimate(family, w, alpha, rng, batch_tasks, batch_points)[0])


def l2_thresholds(
    L: float, rho: float, alpha: float, sigma: float, sigma_tilde: float
) -> tuple[int, int]:
    r"""Smallest batch sizes THEORY L2 allows: :math:`(B'_{\min}, D_{\beta,\min})`.

    .. math::
        B' \ge \Bigl\lceil \tfrac12 \Bigl(\frac{\rho\alpha\sigma}{L}\Bigr)^2 \Bigr\rceil,
        \qquad
        D_\beta \ge \Bigl\lceil \Bigl(\frac{2\rho\alpha\tilde\sigma}{L}\Bigr)^2 \Bigr\rceil,

    each at least 1. ``sigma`` and ``sigma_tilde`` are standard deviations
    (square roots of THEORY A4's and A5's bounds).
    """
    L = V.real("L", L, lo=0.0, lo_open=True)
    rho = V.real("rho", rho, lo=0.0)
    alpha = V.real("alpha", alpha, lo=0.0, hi=1.0 / L if L > 0 else None)
    sigma = V.real("sigma", sigma, lo=0.0)
    sigma_tilde = V.real("sigma_tilde", sigma_tilde, lo=0.0)
    b = math.ceil(0.5 * (rho * alpha * sigma / L) ** 2)
    d = math.ceil((2.0 * rho * alpha * sigma_tilde / L) ** 2)
    return max(1, b), max(1, d)
