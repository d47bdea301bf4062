r"""A worst case for the theorems' rate: tasks with a polynomially flat tail (THEORY T1-T3).

Each task is a shifted copy of one profile :math:`\varphi`, one-dimensional,

.. math::
    f_i(w) = \varphi(w - s_i), \qquad
    \varphi(x) = \begin{cases}
        \dfrac{c\,(1+x)^{1-q}}{q-1}, & x \ge 0,\\[1ex]
        \dfrac{c}{q-1} - c\,x + \dfrac{c\,q}{2}\,x^2, & x < 0,
    \end{cases}

with :math:`q > 1`: :math:`\varphi' = -c(1+x)^{-q}`, :math:`\varphi'' = cq(1+x)^{-q-1}`,
:math:`\varphi''' = -cq(q+1)(1+x)^{-q-2}` for :math:`x \ge 0`, and the quadratic cap
matches value, slope and curvature at 0. Hence (THEORY A1-A3) :math:`\inf\varphi = 0`,
:math:`L = \sup|\varphi''| = cq` and :math:`\rho = \sup|\varphi'''| = cq(q+1)` (both attained
at :math:`x = 0`). Every task has one data point (the point is the task), so
:math:`\tilde\sigma = \sigma_H = 0`; with one task also :math:`\sigma = 0` and T1's floor is 0.

Gradient descent with a step :math:`\beta` moves :math:`w` to the right by about
:math:`\beta c (1+w)^{-q}` per iteration; the continuous limit gives
:math:`(1+w_k)^{q+1} \approx (q+1)\beta c\,k`, so :math:`|\nabla F(w_k)| \propto k^{-q/(q+1)}`
and :math:`k(\varepsilon) \propto \varepsilon^{-(q+1)/q}`: the :math:`O(\varepsilon^{-2})` rate
of T1 is attained up to the exponent :math:`(q+1)/q \to 2` as :math:`q \to 1`.

:func:`full_batch_run` is a lean deterministic path for this family (exact full-batch
directions, the theorem step :math:`c/\tilde L(w)` with :math:`\tilde L = L(w)`), for the
:math:`10^5`-iteration runs the rate needs; it agrees with :func:`hfmaml_core.runner.run`
(tested, and a claim in notebook 03).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _validate as V
from .fits import LogLogFit, loglog_fit
from .stepsize import STEP_CONSTANTS
from .tasks import TaskFamily

__all__ = [
    "PowerTailFamily",
    "RateFit",
    "full_batch_run",
    "iterations_to_accuracy",
    "rate_fit",
    "running_outputs",
]


def _profile(x: np.ndarray, q: float, c: float, order: int) -> np.ndarray:
    """``order``-th derivative (0..3) of the profile phi at ``x`` (vectorised)."""
    pos = x >= 0
    xp = np.where(pos, x, 0.0)
    xn = np.where(pos, 0.0, x)
    if order == 0:
        return np.where(
            pos,
            c * (1.0 + xp) ** (1.0 - q) / (q - 1.0),
            c / (q - 1.0) - c * xn + 0.5 * c * q * xn**2,
        )
    if order == 1:
        return np.where(pos, -c * (1.0 + xp) ** (-q), -c + c * q * xn)
    if order == 2:
        return np.where(pos, c * q * (1.0 + xp) ** (-q - 1.0), c * q)
    return np.where(pos, -c * q * (q + 1.0) * (1.0 + xp) ** (-q - 2.0), 0.0)


class PowerTailFamily(TaskFamily):
    r"""One-dimensional tasks :math:`f_i(w) = \varphi(w - s_i)` with a flat tail (module docstring).

    Parameters
    ----------
    q : float
        Tail exponent, ``q > 1`` (:math:`|\varphi'(x)| = c(1+x)^{-q}`).
    scale : float
        :math:`c > 0`.
    shifts : array, shape (m,)
        Task shifts :math:`s_i` (default one task at 0).
    probs : array, shape (m,), optional
        Task probabilities (default uniform).
    """

    name = "power-tail"

    def __init__(
        self, q: float, scale: float = 1.0, shifts: object = (0.0,), probs: object = None
    ) -> None:
        self.q = V.real("q", q, lo=1.0, lo_open=True)
        self.scale = V.real("scale", scale, lo=0.0, lo_open=True)
        s = V.array("shifts", np.atleast_1d(np.asarray(shifts, dtype=float)), shape=(None,))
        super().__init__(1, s.size, 1, probs)
        self.shifts = s.copy()

    @property
    def L_tasks(self) -> np.ndarray:
        """:math:`L_i = cq` (:math:`\\varphi''` is largest at the joint, A2)."""
        return np.full(self.n_tasks, self.scale * self.q)

    @property
    def rho_tasks(self) -> np.ndarray:
        """:math:`\\rho_i = cq(q+1)` (:math:`|\\varphi'''|` is largest at the joint, A3)."""
        return np.full(self.n_tasks, self.scale * self.q * (self.q + 1.0))

    def profile(self, x: object, order: int = 0) -> np.ndarray:
        """The profile :math:`\\varphi^{(order)}(x)`, ``order`` in 0..3, vectorised over ``x``."""
        o = V.integer("order", order, lo=0, hi=3)
        return _profile(np.asarray(x, dtype=float), self.q, self.scale, o)

    def _x(self, W: np.ndarray, T: np.ndarray) -> np.ndarray:
        return W[:, 0] - self.shifts[T]

    # every data batch holds the task's single point, so idx does not change anything
    def loss_kernel(self, W, T, idx):
        return _profile(self._x(W, T), self.q, self.scale, 0)

    def grad_kernel(self, W, T, idx):
        return _profile(self._x(W, T), self.q, self.scale, 1)[:, None]

    def hessian_kernel(self, W, T, idx):
        return _profile(self._x(W, T), self.q, self.scale, 2)[:, None, None]

    def hvp_kernel(self, W, Vv, T, idx):
        return _profile(self._x(W, T), self.q, self.scale, 2)[:, None] * Vv

    def point_grad_kernel(self, w, t):
        return _profile(np.asarray([w[0] - self.shifts[t]]), self.q, self.scale, 1)[:, None]

    def point_hessian_kernel(self, w, t):
        x = np.asarray([w[0] - self.shifts[t]])
        return _profile(x, self.q, self.scale, 2)[:, None, None]


def full_batch_run(
    family: PowerTailFamily, method: str, w0: float, alpha: float, n_iter: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Deterministic full-batch MAML / FO-MAML / HF-MAML with the theorem step (THEORY T1-T3).

    .. math::
        w_{k+1} = w_k - \frac{c}{L(w_k)}\,u(w_k), \qquad
        L(w) = 4L + 2\rho\alpha\sum_i p_i|f_i'(w)|,

    with :math:`c` from :data:`~hfmaml_core.stepsize.STEP_CONSTANTS` (:math:`\tilde L = L(w)`
    with every task and point in the step's batches) and the exact directions
    :math:`u = \sum_i p_i(1-\alpha f_i''(w))g_i` (MAML, :math:`= F'(w)`, S1),
    :math:`\sum_i p_i g_i` (FO-MAML), :math:`\sum_i p_i(g_i - \alpha d_i)` (HF-MAML, the central
    difference :math:`d_i` with T3's :math:`\delta_i = 1/(6\rho\alpha|g_i|)`), where
    :math:`g_i = f_i'(w - \alpha f_i'(w))`. Scalar arithmetic, not numpy over the tasks: the
    iterations are sequential, the family is one-dimensional with few tasks, and the numpy
    version (the same formulas on arrays of tasks) costs about 30 times more per iteration
    (measured: ~80 us against ~2.5 us with one task), which the :math:`10^5`-:math:`10^6`
    iterations of notebook 03 cannot afford. The inner sum is over tasks, not data points
    (each task is one point).

    Parameters
    ----------
    family : PowerTailFamily
    method : {"maml", "fomaml", "hfmaml"}
    w0 : float
        Start.
    alpha : float
        Inner step, ``0 < alpha <= 1/L``.
    n_iter : int
        Iterations ``K >= 1``.

    Returns
    -------
    w : ndarray, shape (K + 1,)
        The iterates :math:`w_0, \dots, w_K`.
    grad_norm : ndarray, shape (K + 1,)
        The exact :math:`|\nabla F(w_k)|` (S1).
    steps : ndarray, shape (K,)
        The steps :math:`\beta_k`.
    """
    if not isinstance(family, PowerTailFamily):
        raise ValueError(f"family must be a PowerTailFamily; got {type(family).__name__}")
    m = V.choice("method", method, sorted(STEP_CONSTANTS))
    w = V.real("w0", w0)
    a = V.real("alpha", alpha, lo=0.0, hi=1.0 / family.L, lo_open=True)
    K = V.integer("n_iter", n_iter)
    q, c, L, rho = family.q, family.scale, family.L, family.rho
    const = STEP_CONSTANTS[m]
    tasks = tuple(zip(family.shifts.tolist(), family.probs.tolist(), strict=True))
    hd = 1.0 / (6.0 * rho * a)  # |delta_i g_i| of T3's delta
    cq, nq, L4, r2a = c * q, -q, 4.0 * L, 2.0 * rho * a
    mode = ("maml", "fomaml", "hfmaml").index(m)

    ws = [0.0] * (K + 1)
    gn = [0.0] * (K + 1)
    steps = [0.0] * K
    for k in range(K + 1):  # sequential iterations; the inner sum runs over the few tasks
        grad = u = abs_g = 0.0
        for s, p in tasks:
            x = w - s
            if x >= 0.0:  # one power gives phi' and phi'' = cq (1+x)^(-q) / (1+x)
                t = (1.0 + x) ** nq
                f1, h = -c * t, cq * t / (1.0 + x)
            else:
                f1, h = -c + cq * x, cq
            y = x - a * f1
            g = -c * (1.0 + y) ** nq if y >= 0.0 else -c + cq * y
            grad += p * (1.0 - a * h) * g
            abs_g += p * abs(f1)
            if mode == 1:
                u += p * g
            elif mode == 2 and g != 0.0:
                e = hd if g >= 0.0 else -hd  # delta_i g_i
                xp, xm = x + e, x - e
                dp = -c * (1.0 + xp) ** nq if xp >= 0.0 else -c + cq * xp
                dm = -c * (1.0 + xm) ** nq if xm >= 0.0 else -c + cq * xm
                u += p * (g - a * (dp - dm) * g / (2.0 * e))
        if mode == 0:
            u = grad
        ws[k], gn[k] = w, abs(grad)
        if k == K:
            break
        beta = const / (L4 + r2a * abs_g)
        steps[k] = beta
        w -= beta * u
    return np.asarray(ws), np.asarray(gn), np.asarray(steps)


def running_outputs(grad_norm: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The two output rules after :math:`K = 1, 2, \dots` iterations (THEORY S2, open point).

    Returns ``K``, the best iterate :math:`\min_{k<K}|\nabla F(w_k)|` and the uniform random
    output :math:`E|\nabla F(w_R)| = \frac1K\sum_{k<K}|\nabla F(w_k)|`, each of shape ``(n,)``
    for a sequence ``grad_norm`` of ``n`` values (finite, ``>= 0``).
    """
    g = V.array("grad_norm", grad_norm, shape=(None,))
    if g.size == 0 or np.any(g < 0):
        raise ValueError("grad_norm must be a non-empty array of values >= 0")
    K = np.arange(1, g.size + 1)
    return K, np.minimum.accumulate(g), np.cumsum(g) / K


def iterations_to_accuracy(K: object, curve: object, eps: object) -> np.ndarray:
    r""":math:`k(\varepsilon) = \min\{K : \text{curve}_K \le \varepsilon\}` (``nan`` if never).

    ``curve`` need not be monotone: its running minimum is used, so that
    :math:`k(\varepsilon)` is non-increasing in :math:`\varepsilon`.
    """
    Ka = V.array("K", K, shape=(None,))
    va = V.array("curve", curve, shape=Ka.shape)
    ea = V.array("eps", np.atleast_1d(np.asarray(eps, dtype=float)), shape=(None,))
    if np.any(ea <= 0):
        raise ValueError("eps must hold accuracies > 0")
    run_min = np.minimum.accumulate(va)
    pos = np.searchsorted(-run_min, -ea, side="left")
    out = np.full(ea.shape, np.nan)
    hit = pos < Ka.size
    out[hit] = Ka[pos[hit]]
    return out


class RateFit(NamedTuple):
    """A fitted rate: accuracies ``eps``, iterations ``k``, the fit of log k on log eps."""

    eps: np.ndarray
    k: np.ndarray
    fit: LogLogFit
    decades: float


def rate_fit(
    K: object, curve: object, g0: float, window: tuple[float, float], n_eps: int = 16
) -> RateFit:
    r"""Slope of :math:`\log k(\varepsilon)` against :math:`\log\varepsilon` (T1's rate).

    :math:`\varepsilon` runs over ``n_eps`` geometric values from ``window[0] * g0`` down to
    ``window[1] * g0`` (a window relative to the initial gradient norm ``g0``), and
    :func:`hfmaml_core.fits.loglog_fit` fits :math:`\log k(\varepsilon)`. Raises ``ValueError``
    when the curve does not reach the smallest accuracy (extend the run).
    """
    g0 = V.real("g0", g0, lo=0.0, lo_open=True)
    hi = V.real("window[0]", window[0], lo=0.0, lo_open=True)
    lo = V.real("window[1]", window[1], lo=0.0, hi=hi, lo_open=True, hi_open=True)
    n = V.integer("n_eps", n_eps, lo=3)
    eps = g0 * np.geomspace(hi, lo, n)
    k = iterations_to_accuracy(K, curve, eps)
    if np.any(np.isnan(k)):
        raise ValueError(
            f"the curve never reaches eps = {eps[np.isnan(k)].max():.3g}; run more iterations"
        )
    return RateFit(eps, k, loglog_fit(eps, k), math.log10(hi / lo))
