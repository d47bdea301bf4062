r"""The exact MAML objective and meta-gradient (THEORY S1, L1).

For tasks :math:`f_i` with probabilities :math:`p_i` and inner step :math:`\alpha`:

.. math::
    F(w) = \sum_i p_i f_i\bigl(w - \alpha\nabla f_i(w)\bigr),
    \qquad
    \nabla F(w) = \sum_i p_i \bigl(I - \alpha\nabla^2 f_i(w)\bigr)
                  \nabla f_i\bigl(w - \alpha\nabla f_i(w)\bigr).

The functions are duck-typed: a task is any object with ``loss(w)``,
``grad(w)`` and ``hess(w)`` (exact, population quantities). Plug in your own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from . import _validate as V

__all__ = [
    "SupportsTask",
    "curvature_along",
    "difference_curvature",
    "family_gradient",
    "family_objective",
    "gradient",
    "objective",
    "sharp_smoothness_bound",
    "smoothness_bound",
]


class SupportsTask(Protocol):
    """What :func:`objective` and :func:`gradient` need of a task."""

    def loss(self, w: np.ndarray) -> float: ...

    def grad(self, w: np.ndarray) -> np.ndarray: ...

    def hess(self, w: np.ndarray) -> np.ndarray: ...


def _check(
    tasks: Sequence[SupportsTask], w: object, alpha: object, weights: object
) -> tuple[np.ndarray, float, np.ndarray]:
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence) or len(tasks) == 0:
        raise ValueError("tasks must be a non-empty sequence of objects with loss, grad and hess")
    for k, t in enumerate(tasks):
        missing = [m for m in ("loss", "grad", "hess") if not callable(getattr(t, m, None))]
        if missing:
            raise ValueError(f"tasks[{k}] must provide callable {', '.join(missing)}")
    wa = V.array("w", w, shape=(None,))
    a = V.real("alpha", alpha, lo=0.0)
    m = len(tasks)
    p = np.full(m, 1.0 / m) if weights is None else V.probabilities("weights", weights, m)
    return wa, a, p


def objective(
    tasks: Sequence[SupportsTask], w: object, alpha: float, weights: object = None
) -> float:
    r"""Exact MAML objective :math:`F(w) = \sum_i p_i f_i(w - \alpha\nabla f_i(w))`.

    Parameters
    ----------
    tasks : sequence of task objects
        Each provides ``loss(w)``, ``grad(w)``, ``hess(w)`` (only ``loss`` and
        ``grad`` are called here).
    w : array, shape (d,)
    alpha : float
        Inner step size, ``alpha >= 0``.
    weights : array, shape (len(tasks),), optional
        Task probabilities (>= 0, summing to 1); uniform by default.
    """
    wa, a, p = _check(tasks, w, alpha, weights)
    vals = np.array([t.loss(wa - a * np.asarray(t.grad(wa))) for t in tasks], dtype=float)
    return float(p @ vals)


def gradient(
    tasks: Sequence[SupportsTask], w: object, alpha: float, weights: object = None
) -> np.ndarray:
    r"""Exact meta-gradient (THEORY S1).

    .. math::
        \nabla F(w) = \sum_i p_i (I - \alpha\nabla^2 f_i(w))\,\nabla f_i(w - \alpha\nabla f_i(w)).

    Arguments as in :func:`objective`. Returns an array of shape (d,).
    """
    wa, a, p = _check(tasks, w, alpha, weights)
    out = np.zeros_like(wa)
    for pi, t in zip(p, tasks, strict=True):
        g_out = np.asarray(t.grad(wa - a * np.asarray(t.grad(wa))), dtype=float)
        H = np.asarray(t.hess(wa), dtype=float)
        if H.shape != (wa.size, wa.size) or g_out.shape != wa.shape:
            raise ValueError(
                f"task.grad must return shape ({wa.size},) and task.hess shape "
                f"({wa.size}, {wa.size}); got {g_out.shape} and {H.shape}"
            )
        out += pi * (g_out - a * (H @ g_out))
    return out


def _family_points(
    family: object, W: object, alpha: object, *, alpha_max: float | None = None, name: str = "W"
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate ``W`` ((d,) or (S, d)) and ``alpha`` (scalar or (S,)); alpha as a column (S*m, 1)."""
    d, m = family.dim, family.n_tasks  # type: ignore[attr-defined]
    Wa = np.asarray(W)
    single = Wa.ndim == 1
    Wa = V.array(name, Wa[None] if single else Wa, shape=(None, d))
    S = Wa.shape[0]
    allowed = f"[0, {alpha_max:g}]" if alpha_max is not None else ">= 0"
    if np.ndim(alpha) == 0:
        a = np.full(S, V.real("alpha", alpha, lo=0.0, hi=alpha_max))
    else:
        a = V.array("alpha", alpha, shape=(S,))
        if np.any(a < 0) or (alpha_max is not None and np.any(a > alpha_max)):
            raise ValueError(
                f"alpha must hold numbers in {allowed}; got range [{a.min()!r}, {a.max()!r}]"
            )
    return Wa, np.repeat(a, m)[:, None], single


def _pairs(family: object, Wa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (point, task) pair: rows ``W[s]`` repeated over the ``m`` tasks, and task indices."""
    m = family.n_tasks  # type: ignore[attr-defined]
    return np.repeat(Wa, m, axis=0), np.tile(np.arange(m), Wa.shape[0])


def smoothness_bound(family: object, w: object, alpha: object) -> np.ndarray | float:
    r"""The local smoothness constant of THEORY L1 at one or many points.

    .. math:: L(w) = 4L + 2\rho\alpha\,E_i\|\nabla f_i(w)\|,

    valid for :math:`\alpha \in [0, 1/L]`. ``family`` is a
    :class:`~hfmaml_core.tasks.TaskFamily` (it supplies ``L``, ``rho``, ``probs``
    and the exact task gradients). ``w`` has shape ``(d,)`` (returns a float) or
    ``(S, d)`` (returns shape ``(S,)``); ``alpha`` is a number or one per point.
    """
    L = float(family.L)  # type: ignore[attr-defined]
    Wa, a, single = _family_points(family, w, alpha, alpha_max=1.0 / L if L > 0 else None, name="w")
    m = family.n_tasks  # type: ignore[attr-defined]
    out = 4.0 * L + 2.0 * float(family.rho) * a[::m, 0] * _mean_task_gradient_norm(family, Wa)
    return float(out[0]) if single else out


def _mean_task_gradient_norm(family: object, Wa: np.ndarray) -> np.ndarray:
    r""":math:`E_i\|\nabla f_i(w)\|` at every row of ``Wa`` (one call to the kernels)."""
    Wr, T = _pairs(family, Wa)
    norms = np.linalg.norm(family.grad_kernel(Wr, T, None), axis=1).reshape(len(Wa), -1)  # type: ignore[attr-defined]
    return norms @ family.probs  # type: ignore[attr-defined]


def sharp_smoothness_bound(family: object, w: object, alpha: object) -> np.ndarray | float:
    r"""The sharper local smoothness constant inside the proof of THEORY L1, for every alpha >= 0.

    .. math:: L_\sharp(w) = L(1 + \alpha L)^2 + \rho\alpha(1 + \alpha L)\,E_i\|\nabla f_i(w)\| .

    The proof of L1 bounds :math:`\|\nabla F(w) - \nabla F(u)\|` by
    :math:`L_\sharp(u)\|w - u\|` before it uses :math:`\alpha \le 1/L`; only then does
    it relax :math:`(1+\alpha L)^2 \le 4` and :math:`1 + \alpha L \le 2`, which gives
    :func:`smoothness_bound`. So :math:`L_\sharp(w) \le L(w)` on :math:`[0, 1/L]`, with
    equality at :math:`\alpha = 1/L`; at :math:`\alpha = 1/(10L)` and zero gradients it is
    :math:`4/1.21 \approx 3.3` times smaller. Not a result stated by THEORY (a finding of
    notebook 01). Arguments as in :func:`smoothness_bound`, except that any
    ``alpha >= 0`` is allowed.
    """
    L = float(family.L)  # type: ignore[attr-defined]
    Wa, a, single = _family_points(family, w, alpha, name="w")
    m = family.n_tasks  # type: ignore[attr-defined]
    al = a[::m, 0]
    k = 1.0 + al * L
    out = L * k**2 + float(family.rho) * al * k * _mean_task_gradient_norm(family, Wa)  # type: ignore[attr-defined]
    return float(out[0]) if single else out


def curvature_along(
    family: object, W: object, directions: object, alpha: object, delta: float = 1e-4
) -> np.ndarray | float:
    r"""The curvature of the MAML objective along directions, by central differences of S1.

    .. math::
        \kappa(w, v) = \frac{\|\nabla F(w + \delta v) - \nabla F(w - \delta v)\|}{2\delta\,\|v\|}
        \approx \|\nabla^2 F(w)\,v\| / \|v\| ,

    with the exact :math:`\nabla F` of :func:`family_gradient` (THEORY S1). It tends to
    :math:`\|\nabla^2F(w)v\|/\|v\|` as :math:`\delta \to 0` and is exact when
    :math:`F` is quadratic; THEORY L1 bounds it by :math:`L(w)` of
    :func:`smoothness_bound` (up to :math:`O(\delta)`).

    Parameters
    ----------
    family : TaskFamily
    W : array, shape (d,) or (S, d)
        Points.
    directions : array, same shape as ``W``
        Directions :math:`v` (non-zero rows).
    alpha : float or array, shape (S,)
        Inner step, >= 0.
    delta : float
        Half-width of the difference, > 0.

    Returns
    -------
    float or array, shape (S,)
    """
    Wa, a, single = _family_points(family, W, alpha)
    al = a[:: family.n_tasks, 0]  # type: ignore[attr-defined]
    out = difference_curvature(lambda X: family_gradient(family, X, al), Wa, directions, delta)
    return float(out[0]) if single else out


def difference_curvature(
    gradient: Callable[[np.ndarray], np.ndarray], W: np.ndarray, directions: object, delta: float
) -> np.ndarray:
    r"""Curvature along ``directions`` from a central difference of a gradient map.

    .. math:: \kappa(w, v) = \frac{\|g(w + \delta v) - g(w - \delta v)\|}{2\delta\|v\|},

    for points ``W`` of shape (S, d) and ``gradient`` mapping (S, d) to (S, d): the one
    measurement behind :func:`curvature_along` (the one-step ``F``) and
    :func:`hfmaml_core.multistep.curvature_along` (``F_N``). ``directions`` has shape (S, d)
    or (d,) for S = 1, with non-zero rows; ``delta`` > 0.
    """
    Va = np.asarray(directions)
    Va = V.array("directions", Va[None] if Va.ndim == 1 else Va, shape=W.shape)
    norms = np.linalg.norm(Va, axis=1)
    if np.any(norms == 0):
        raise ValueError("directions must have non-zero rows")
    h = V.real("delta", delta, lo=0.0, lo_open=True)
    diff = gradient(W + h * Va) - gradient(W - h * Va)
    return np.linalg.norm(diff, axis=1) / (2.0 * h * norms)


def family_objective(family: object, W: object, alpha: object) -> np.ndarray | float:
    r"""Exact :math:`F(w)` of a :class:`~hfmaml_core.tasks.TaskFamily` at one or many points.

    Vectorised version of :func:`objective`: ``W`` has shape ``(d,)`` (returns a
    float) or ``(S, d)`` (returns shape ``(S,)``), ``alpha`` is a number or one per
    point; all ``S * m`` (point, task) pairs are evaluated in one call to the
    family's kernels.
    """
    Wa, a, single = _family_points(family, W, alpha)
    Wr, T = _pairs(family, Wa)
    U = Wr - a * family.grad_kernel(Wr, T, None)  # type: ignore[attr-defined]
    vals = family.loss_kernel(U, T, None).reshape(len(Wa), -1) @ family.probs  # type: ignore[attr-defined]
    return float(vals[0]) if single else vals


def family_gradient(family: object, W: object, alpha: object) -> np.ndarray:
    r"""Exact :math:`\nabla F(w)` (THEORY S1) of a task family at one or many points.

    .. math::
        \nabla F(w) = \sum_i p_i \bigl(g_i - \alpha\nabla^2 f_i(w)\,g_i\bigr),
        \qquad g_i = \nabla f_i(w - \alpha\nabla f_i(w)),

    with the Hessian applied as an exact Hessian-vector product (no Hessian is
    formed). ``W`` has shape ``(d,)`` or ``(S, d)``; the result has the same shape;
    ``alpha`` is a number or one per point. Agrees with :func:`gradient` (tested);
    use this one inside loops.
    """
    Wa, a, single = _family_points(family, W, alpha)
    Wr, T = _pairs(family, Wa)
    G_out = family.grad_kernel(Wr - a * family.grad_kernel(Wr, T, None), T, None)  # type: ignore[attr-defined]
    dirs = G_out - a * family.hvp_kernel(Wr, G_out, T, None)  # type: ignore[attr-defined]
    S, d = Wa.shape
    out = np.einsum("smd,m->sd", dirs.reshape(S, -1, d), family.probs)  # type: ignore[attr-defined]
    return out[0] if single else out
