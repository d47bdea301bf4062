r"""Hessian-vector products by central differences of gradients (THEORY H1).

.. math::
    \widehat{\nabla^2\varphi(w)v}
      = \frac{\nabla\varphi(w+\delta v) - \nabla\varphi(w-\delta v)}{2\delta},
    \qquad
    \Bigl\|\widehat{\nabla^2\varphi(w)v} - \nabla^2\varphi(w)v\Bigr\| \le \rho\,\delta\,\|v\|^2

when :math:`\nabla^2\varphi` is :math:`\rho`-Lipschitz (THEORY H1; the
finite-difference notebook establishes the sharp constant). This is the
Hessian-free part of HF-MAML (THEORY T3): two gradient calls, no Hessian.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _validate as V

__all__ = ["central_difference", "theorem_delta"]


def central_difference(
    grad: Callable[[np.ndarray], np.ndarray],
    w: object,
    v: object,
    delta: float,
) -> np.ndarray:
    r"""Central-difference approximation of :math:`\nabla^2\varphi(w)\,v` (THEORY H1).

    Parameters
    ----------
    grad : callable
        ``grad(w) -> ndarray of shape (d,)``, the gradient of :math:`\varphi`.
    w : array, shape (d,)
        Point at which the Hessian acts.
    v : array, shape (d,)
        Direction.
    delta : float
        Perturbation size, ``delta > 0``.

    Returns
    -------
    ndarray, shape (d,)
        :math:`[\nabla\varphi(w+\delta v) - \nabla\varphi(w-\delta v)] / (2\delta)`.

    Raises
    ------
    ValueError
        If ``grad`` is not callable, ``w`` or ``v`` is not a finite 1-D array of
        matching length, ``delta`` is not a finite number > 0, or ``grad``
        returns something other than a finite array of shape (d,).
    """
    if not callable(grad):
        raise ValueError(
            f"grad must be callable as grad(w) -> array of shape (d,); got {type(grad).__name__}"
        )
    wa = V.array("w", w, shape=(None,))
    va = V.array("v", v, shape=wa.shape)
    delta = V.real("delta", delta, lo=0.0, lo_open=True)
    g_plus = V.array("grad(w + delta*v)", grad(wa + delta * va), shape=wa.shape)
    g_minus = V.array("grad(w - delta*v)", grad(wa - delta * va), shape=wa.shape)
    return (g_plus - g_minus) / (2.0 * delta)


def theorem_delta(rho: float, alpha: float, g_norm: object) -> np.ndarray | float:
    r"""The perturbation of the HF-MAML theorem (THEORY T3): :math:`\delta_i = 1/(6\rho\alpha\|g_i\|)`.

    With this :math:`\delta_i`, H1 bounds the error of
    :math:`\alpha d_i` against :math:`\alpha\nabla^2 f_i(w) g_i` by
    :math:`\alpha\rho\delta_i\|g_i\|^2 = \|g_i\|/6`.

    Parameters
    ----------
    rho : float
        Hessian-Lipschitz constant, ``rho > 0``.
    alpha : float
        Inner step size, ``alpha > 0``.
    g_norm : float or array
        Norms :math:`\|g_i\|` of the outer gradients, each ``> 0``.

    Returns
    -------
    float or ndarray
        :math:`\delta_i`, with the shape of ``g_norm``.
    """
    rho = V.real("rho", rho, lo=0.0, lo_open=True)
    alpha = V.real("alpha", alpha, lo=0.0, lo_open=True)
    g = np.asarray(g_norm, dtype=float)
    if g.size == 0 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(
            "g_norm must hold finite numbers > 0 (the theorem's delta is 1/(6 rho alpha |g|))"
        )
    out = 1.0 / (6.0 * rho * alpha * g)
    return float(out) if out.ndim == 0 else out
