"""Straight-line fits on log-log axes: the one slope helper of the notebooks.

A rate claim ("the floor falls like :math:`B^{-1/2}`", "time grows like :math:`d^2`")
is a least-squares slope of :math:`\\log y` against :math:`\\log x`. Every notebook
fits it with :func:`loglog_fit`, so the fit (and its standard error) is written once.
For slopes of Monte Carlo means with standard errors use
:func:`hfmaml_core.montecarlo.loglog_slope`, which weights each point by its s.e.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _validate as V

__all__ = ["LogLogFit", "loglog_fit"]


class LogLogFit(NamedTuple):
    """``log y ≈ slope · log x + intercept``; ``se`` is the slope's least-squares s.e.

    ``se`` is NaN for two points (no residual degree of freedom).
    """

    slope: float
    intercept: float
    se: float

    def predict(self, x: object) -> np.ndarray:
        """The fitted line :math:`e^{\\text{intercept}} x^{\\text{slope}}` at ``x`` (> 0)."""
        xs = np.asarray(x, dtype=float)
        return np.exp(np.polyval([self.slope, self.intercept], np.log(xs)))


def loglog_fit(x: object, y: object) -> LogLogFit:
    r"""Ordinary least squares of :math:`\log y` on :math:`\log x` (unweighted).

    .. math:: \hat p = \frac{\sum_j (u_j - \bar u)(v_j - \bar v)}{\sum_j (u_j - \bar u)^2},
              \qquad u = \log x,\; v = \log y,

    with :math:`\mathrm{se}(\hat p)^2 = \frac{\sum_j r_j^2}{(n-2)\sum_j (u_j-\bar u)^2}`
    from the residuals :math:`r` (NaN for two points). Computed by :func:`numpy.polyfit` (degree 1), so the
    numbers are those of the hand-written fits this helper replaced.

    Raises ``ValueError`` unless ``x`` and ``y`` are 1-D of the same length, hold at least
    two points with two distinct ``x``, and are positive and finite.
    """
    xs = V.array("x", x, shape=(None,))
    ys = V.array("y", y, shape=(xs.size,))
    if xs.size < 2 or np.unique(xs).size < 2:
        raise ValueError(f"x must hold at least 2 distinct values; got {xs.size} points")
    for name, a in (("x", xs), ("y", ys)):
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(f"{name} must be positive and finite (log-log fit); got {a!r}")
    u, v = np.log(xs), np.log(ys)
    if xs.size == 2:
        slope, intercept = np.polyfit(u, v, 1)
        return LogLogFit(float(slope), float(intercept), float("nan"))
    (slope, intercept), cov = np.polyfit(u, v, 1, cov="unscaled")
    resid = v - np.polyval([slope, intercept], u)
    se = float(np.sqrt(cov[0, 0] * (resid @ resid) / (xs.size - 2)))
    return LogLogFit(float(slope), float(intercept), se)
