r"""Numerical helpers of notebook 02's study of the central-difference HVP (THEORY H1, T3).

* :func:`welsch_grad`, :func:`welsch_hvp`: one Welsch task's gradient and exact Hessian-vector
  product **in the dtype of** ``w`` (float32/64, complex64/128), for the floating-point study (the
  library's kernels work in float64);
* :func:`welsch_hvp_reference`: the same product with ``mpmath`` at many significant digits;
* :func:`fitted_optimum`: the minimiser of :math:`a\delta^2 + b/\delta` fitted to a measured error curve;
* :func:`misprint_difference`: the misprinted HF-MAML term with a loss *value* in place of a gradient.

For a task with data :math:`(x_j, y_j)_{j \le n}` and :math:`\phi(r) = 1 - e^{-r^2/2}`,

.. math:: \nabla f(w) = \frac1n\sum_j r_j e^{-r_j^2/2}x_j, \qquad
          \nabla^2 f(w)v = \frac1n\sum_j (1 - r_j^2)e^{-r_j^2/2}(x_j^\top v)\,x_j, \qquad r_j = x_j^\top w - y_j .
"""

from __future__ import annotations

import mpmath
import numpy as np

from . import _validate as V

__all__ = [
    "fitted_optimum",
    "misprint_difference",
    "welsch_grad",
    "welsch_hvp",
    "welsch_hvp_reference",
]


def _data(X: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    Xa = V.array("X", X, shape=(None, None))
    ya = V.array("y", y, shape=(Xa.shape[0],))
    return Xa, ya


def welsch_grad(X: object, y: object, w: np.ndarray) -> np.ndarray:
    r"""Gradient of one Welsch task, :math:`\frac1n X^\top(r\,e^{-r^2/2})`, computed in ``w.dtype``.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array, shape (n,)
    w : ndarray, shape (d,), any float or complex dtype

    Returns
    -------
    ndarray, shape (d,), dtype of ``w``
    """
    Xa, ya = _data(X, y)
    Xw, yw = Xa.astype(w.dtype), ya.astype(w.dtype)
    res = Xw @ w - yw
    return Xw.T @ (res * np.exp(-res * res / 2)) / len(yw)


def welsch_hvp(X: object, y: object, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    r"""Exact HVP of one Welsch task, :math:`\frac1n X^\top((1 - r^2)e^{-r^2/2}\,Xv)`, in ``w.dtype``."""
    Xa, ya = _data(X, y)
    Xw, yw = Xa.astype(w.dtype), ya.astype(w.dtype)
    res = Xw @ w - yw
    return Xw.T @ ((1 - res * res) * np.exp(-res * res / 2) * (Xw @ v)) / len(yw)


def welsch_hvp_reference(
    X: object, y: object, w: np.ndarray, v: np.ndarray, *, digits: int = 40
) -> np.ndarray:
    """The Welsch HVP of :func:`welsch_hvp` in ``mpmath`` at ``digits`` significant digits, rounded to float64.

    An oracle: a Python loop over the data is fine here. ``digits`` must be an integer >= 16.
    """
    Xa, ya = _data(X, y)
    digits = V.integer("digits", digits, lo=16)
    with mpmath.workdps(digits):
        out = [mpmath.mpf(0)] * Xa.shape[1]
        for x, yj in zip(Xa.tolist(), ya.tolist(), strict=True):
            res = mpmath.fsum(mpmath.mpf(a) * b for a, b in zip(x, w.tolist(), strict=True)) - yj
            c = (
                (1 - res * res)
                * mpmath.exp(-res * res / 2)
                * mpmath.fsum(mpmath.mpf(a) * b for a, b in zip(x, v.tolist(), strict=True))
            )
            out = [o + c * a for o, a in zip(out, x, strict=True)]
        return np.array([float(o / len(ya)) for o in out])


def fitted_optimum(d: object, E: object, half_width: float = 1.5) -> float:
    r"""Minimiser :math:`(b/2a)^{1/3}` of :math:`a\delta^2 + b/\delta` fitted to an error curve.

    Least squares with relative residuals over the grid points within ``half_width`` decades of
    the lowest point, in units of that point (a well-conditioned fit).

    Parameters
    ----------
    d : array, shape (n,)
        Steps ``> 0``.
    E : array, shape (n,)
        Errors ``> 0``.
    half_width : float
        Decades ``> 0`` on each side of the lowest point.
    """
    da = V.array("d", d, shape=(None,))
    Ea = V.array("E", E, shape=da.shape)
    if np.any(da <= 0) or np.any(Ea <= 0):
        raise ValueError("d and E must be > 0")
    half_width = V.real("half_width", half_width, lo=0.0, lo_open=True)
    d0, E0 = da[Ea.argmin()], Ea.min()
    x = da / d0
    near = np.abs(np.log10(x)) <= half_width
    A = np.column_stack([x[near] ** 2, 1 / x[near]]) / (Ea[near, None] / E0)
    (a_fit, b_fit), *_ = np.linalg.lstsq(A, np.ones(near.sum()), rcond=None)
    return d0 * (b_fit / (2 * a_fit)) ** (1 / 3)


def misprint_difference(task: object, w: np.ndarray, g: np.ndarray, delta: float) -> np.ndarray:
    r"""The misprinted HF-MAML term :math:`[\nabla f(w + \delta g) - f(w - \delta g)\mathbf 1]/(2\delta)`.

    The second term is a loss *value*, broadcast to a vector (THEORY, Algorithms). ``task`` has
    ``grad`` and ``loss``.
    """
    return (task.grad(w + delta * g) - task.loss(w - delta * g)) / (2 * delta)
