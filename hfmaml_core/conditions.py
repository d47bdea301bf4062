r"""The hypotheses of the theorems, evaluated (THEORY T1, T2, T3, L2), and the noise constants they need.

:func:`theorem_conditions` gives one :class:`Condition` per hypothesis of the method's theorem
(the :math:`\alpha` range and the theorem's step from :data:`hfmaml_core.methods.TABLE`, the batch
thresholds of T1, T3 and L2); :func:`local_constants` and :func:`visited_constants` evaluate the
suprema :math:`\sigma, \tilde\sigma, \sigma_H` of A4, A5 over given points (the starting points,
or every iterate a run visited); :func:`descent_bound` (L1's descent inequality summed over a
run) and :func:`iterations_to_reach` read a run against the theory. :func:`hfmaml_core.runner.run`
uses them; they are importable from :mod:`hfmaml_core.runner` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _validate as V
from . import hypotheses
from .methods import METHODS, TABLE
from .stepsize import STEP_CONSTANTS
from .tasks import TaskFamily

__all__ = [
    "ALPHA_MAX",
    "Condition",
    "descent_bound",
    "iterations_to_reach",
    "local_constants",
    "theorem_conditions",
    "visited_constants",
]

#: The largest inner step of each theorem, in units of ``1/L`` (T1, T2, T3): a view of
#: :data:`hfmaml_core.methods.TABLE`.
ALPHA_MAX = {m.name: m.alpha_max for m in TABLE}


@dataclass(frozen=True)
class Condition:
    """One hypothesis of a theorem, evaluated.

    Attributes
    ----------
    theory : str
        The THEORY item (``"T1"``, ``"T2"``, ``"T3"`` or ``"L2"``).
    name : str
        The condition as a formula, e.g. ``"alpha <= 1/L"``.
    holds : bool
    detail : str
        The numbers: the bound and the value given.
    """

    theory: str
    name: str
    holds: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.theory}: {self.name} ({self.detail})"


# --------------------------------------------------------------------------- constants
def local_constants(family: TaskFamily, W: object) -> dict[str, float]:
    r"""The noise constants of THEORY A4, A5 evaluated at the points ``W``.

    .. math::
        \sigma = \max_{w\in W}\sqrt{E_i\|\nabla f_i(w)-\nabla f(w)\|^2},\quad
        \tilde\sigma = \max_{w, i}\tilde\sigma_i(w),\quad
        \sigma_H = \max_{w, i}\sigma_{H,i}(w)\ \text{(operator norm)}.

    These are the theory's suprema restricted to ``W`` (lower bounds of them). ``W`` has
    shape ``(d,)`` or ``(R, d)`` and must be finite; distinct rows are evaluated once each,
    by :func:`hfmaml_core.hypotheses.moments` (as :func:`visited_constants`).
    """
    Wa = np.asarray(W)
    Wa = V.array("W", Wa[None] if Wa.ndim == 1 else Wa, shape=(None, family.dim))
    c = visited_constants(family, Wa)
    return {k: c[k] for k in ("sigma", "sigma_tilde", "sigma_h")}


def visited_constants(
    family: TaskFamily, W: object, *, hessian_norm: str = "operator"
) -> dict[str, float]:
    r"""The noise constants of THEORY A4, A5 maximised over many points (vectorised).

    .. math::
        \sigma^2 = \max_{w\in W} E_i\|\nabla f_i(w)-\nabla f(w)\|^2,\quad
        \tilde\sigma^2 = \max_{w\in W,\,i} E_\theta\|\nabla f_i(w,\theta)-\nabla f_i(w)\|^2,\quad
        \sigma_H^2 = \max_{w\in W,\,i} E_\theta\|\nabla^2 f_i(w,\theta)-\nabla^2 f_i(w)\|_2^2

    (operator norm, as :meth:`~hfmaml_core.tasks.TaskFamily.sigma_h_sq`, or the Frobenius
    norm, an upper bound of it that is about 20 times cheaper for small ``d``: with it every
    lower bound on :math:`D_h` is checked conservatively). The per-point moments are those of
    :func:`hfmaml_core.hypotheses.moments` (their one home), evaluated for all distinct finite
    rows at once through the family's batch kernels, in blocks whose per-point Hessians hold
    a bounded number of entries whatever ``d``; thousands of iterates -- e.g. every recorded
    iterate of :func:`run`, the region the runs visited -- cost about a second. They are the
    suprema of A4, A5 restricted to ``W``.

    Parameters
    ----------
    family : TaskFamily
    W : array, shape (..., d)
        Points, any leading shape (e.g. ``RunResult.iterates``, shape (n_rec, R, d)); rows
        that are not finite (diverged runs) are skipped, distinct rows are evaluated once.
    hessian_norm : {"operator", "frobenius"}

    Returns
    -------
    dict
        ``sigma``, ``sigma_tilde``, ``sigma_h`` (standard deviations), ``n_points`` (the
        number of distinct finite points evaluated) and ``hessian_norm``.
    """
    if not isinstance(family, TaskFamily):
        raise ValueError(f"family must be a TaskFamily; got {type(family).__name__}")
    norm = V.choice("hessian_norm", hessian_norm, ["operator", "frobenius"])
    Wa = np.asarray(W, dtype=float)
    if Wa.ndim < 1 or Wa.shape[-1] != family.dim:
        raise ValueError(f"W must have shape (..., {family.dim}); got shape {Wa.shape}")
    Wa = Wa.reshape(-1, family.dim)
    Wa = Wa[np.all(np.isfinite(Wa), axis=1)]
    if Wa.shape[0] == 0:
        raise ValueError("W must hold at least one finite point")
    P = np.unique(Wa, axis=0)
    mom = hypotheses.moments(family, P, operator=norm == "operator")
    return {
        "sigma": math.sqrt(float(mom["sigma_sq"].max())),
        "sigma_tilde": math.sqrt(float(mom["sigma_tilde_sq"].max())),
        "sigma_h": math.sqrt(float(mom[f"sigma_h_sq_{norm}"].max())),
        "n_points": int(P.shape[0]),
        "hessian_norm": norm,
    }


def _ge(theory: str, label: str, value: int | None, bound: int) -> Condition:
    ok = value is None or value >= bound
    shown = "None (all of them)" if value is None else str(value)
    return Condition(theory, label, ok, f"bound {bound}, got {shown}")


def theorem_conditions(
    family: TaskFamily,
    method: str,
    alpha: float,
    *,
    batch_tasks: int | None,
    d_h: int | None,
    delta: object,
    hessian_batch: str,
    step: object,
    step_batch_tasks: int | None,
    step_batch_points: int | None,
    constants: dict[str, float],
) -> list[Condition]:
    r"""Evaluate the hypotheses of the method's theorem (THEORY T1, T2, T3 and L2).

    Arguments as in :func:`run`; ``constants`` holds ``sigma``, ``sigma_tilde``, ``sigma_h``
    (standard deviations). Batch sizes ``None`` (whole data set / every task) satisfy every
    lower bound. Returns one :class:`Condition` per hypothesis, in a fixed order.
    """
    th = METHODS[method].theorem
    L, rho = family.L, family.rho
    a_max = ALPHA_MAX[method] / L
    frac = METHODS[method].alpha_text
    out = [
        Condition(
            th,
            f"0 < alpha <= {frac}",
            0.0 < alpha <= a_max * (1.0 + 1e-12),
            f"bound {a_max:.6g}, got {alpha:.6g}",
        ),
        Condition(
            th,
            f"step = c/L~(w) with c = 1/{round(1 / STEP_CONSTANTS[method])}",
            isinstance(step, str) and step == "theorem",
            f"got step = {step!r}",
        ),
    ]
    sig, sig_t, sig_h = constants["sigma"], constants["sigma_tilde"], constants["sigma_h"]
    b_min = max(1, math.ceil(0.5 * (rho * alpha * sig / L) ** 2))
    d_min = max(1, math.ceil((2.0 * rho * alpha * sig_t / L) ** 2))
    out.append(
        _ge("L2", f"B' >= ceil((rho alpha sigma / L)^2 / 2) = {b_min}", step_batch_tasks, b_min)
    )
    out.append(
        _ge("L2", f"D_beta >= ceil((2 rho alpha sigma~ / L)^2) = {d_min}", step_batch_points, d_min)
    )
    if method == "maml":
        out.append(_ge(th, "B >= 20", batch_tasks, 20))
    if method != "fomaml":
        out.append(
            Condition(
                th,
                "hessian_batch = 'independent' (D_h independent of D_in)",
                hessian_batch == "independent",
                f"got {hessian_batch!r}",
            )
        )
        factor, text = (
            (2.0, "2 alpha^2 sigma_H^2") if method == "maml" else (36.0, "36 (alpha sigma_H)^2")
        )
        dh_min = max(1, math.ceil(factor * (alpha * sig_h) ** 2))
        dh = d_h if hessian_batch == "independent" else None
        out.append(_ge(th, f"D_h >= ceil({text}) = {dh_min}", dh, dh_min))
    if method == "hfmaml":
        ok = (isinstance(delta, str) and delta == "theorem") or rho == 0
        out.append(
            Condition(
                th,
                "delta_i = 1/(6 rho alpha |g_i|) (any delta when rho = 0)",
                ok,
                f"rho = {rho:.4g}, got delta = {delta!r}",
            )
        )
    return out


def descent_bound(
    K: object,
    *,
    gap: float,
    beta_lo: float,
    beta_hi: float,
    bias_sq: float,
    variance: float,
) -> np.ndarray:
    r"""A bound on :math:`\sqrt{\frac1K\sum_{k<K} E\|\nabla F(w_k)\|^2}` from L1's descent inequality.

    .. math::
        \frac1K\sum_{k<K} E\|\nabla F(w_k)\|^2 \le
        \frac{4\Delta}{\beta_{lo} K} + \frac{\beta_{hi}}{\beta_{lo}}
        \Bigl(3\bar b^2 + \frac{\bar s^2}{2}\Bigr).

    *Derivation.* With :math:`u_k` the direction, :math:`E[u_k\mid w_k] = \nabla F(w_k) + b_k`,
    :math:`\|b_k\|\le\bar b`, :math:`E\|u_k - E[u_k\mid w_k]\|^2 \le \bar s^2`, and a step
    :math:`\beta_k\in[\beta_{lo},\beta_{hi}]` independent of :math:`u_k` given :math:`w_k`,
    L1's descent inequality
    :math:`F(w_{k+1}) \le F(w_k) - \beta_k\nabla F^\top u_k + \frac{L(w_k)}2\beta_k^2\|u_k\|^2`,
    :math:`\nabla F^\top(\nabla F + b) \ge \frac12\|\nabla F\|^2 - \frac12\|b\|^2`,
    :math:`\|\nabla F + b\|^2 \le 2\|\nabla F\|^2 + 2\|b\|^2` and
    :math:`L(w_k)\beta_{hi} \le \frac14` give
    :math:`\frac{\beta_{lo}}4\|\nabla F(w_k)\|^2 \le F(w_k) - E[F(w_{k+1})\mid w_k]
    + \beta_{hi}(\frac34\bar b^2 + \frac18\bar s^2)`; sum over :math:`k` and use
    :math:`F(w_0) - F(w_K) \le \Delta`. By Jensen the same bound holds for
    :math:`E\|\nabla F(w_{\hat k})\|` with :math:`\hat k` uniform in :math:`\{0,\dots,K-1\}`
    (THEORY S2's random output).

    Parameters
    ----------
    K : int or array of int
        Iteration counts ``>= 1``.
    gap : float
        :math:`\Delta \ge F(w_0) - \inf F`, ``>= 0``.
    beta_lo, beta_hi : float
        Bounds on the step, ``0 < beta_lo <= beta_hi``; the caller must check
        :math:`L(w_k)\beta_{hi} \le 1/4` along the run (L1's :math:`L(w)`).
    bias_sq, variance : float
        :math:`\bar b^2` and :math:`\bar s^2`, ``>= 0``.

    Returns
    -------
    ndarray
        The bound for each ``K``.
    """
    Ka = np.asarray(K)
    if Ka.size == 0 or Ka.dtype.kind not in "iu" or np.any(Ka < 1):
        raise ValueError(f"K must hold integers >= 1; got {K!r}")
    gap = V.real("gap", gap, lo=0.0)
    beta_lo = V.real("beta_lo", beta_lo, lo=0.0, lo_open=True)
    beta_hi = V.real("beta_hi", beta_hi, lo=beta_lo)
    bias_sq = V.real("bias_sq", bias_sq, lo=0.0)
    variance = V.real("variance", variance, lo=0.0)
    floor = beta_hi / beta_lo * (3.0 * bias_sq + 0.5 * variance)
    return np.sqrt(4.0 * gap / (beta_lo * Ka) + floor)


def iterations_to_reach(k: object, values: object, eps: object) -> np.ndarray:
    r"""First recorded iteration at which a curve is at or below each accuracy.

    .. math:: k(\varepsilon) = \min\{k_j : v_j \le \varepsilon\}

    (``nan`` where the curve never gets there). Vectorised over ``eps``: the running
    minimum of ``values`` is non-increasing, so one ``searchsorted`` answers every
    :math:`\varepsilon`.

    Parameters
    ----------
    k : array of int, shape (n,)
        Increasing iteration indices.
    values : array, shape (n,)
        The curve at those iterations (e.g. a mean of :math:`\|\nabla F(w_k)\|`).
    eps : float or array
        Accuracies.
    """
    ka = V.array("k", k, shape=(None,))
    va = np.asarray(values, dtype=float)
    if va.shape != ka.shape:
        raise ValueError(f"values must have the shape of k, {ka.shape}; got {va.shape}")
    if np.any(np.diff(ka) <= 0):
        raise ValueError("k must be strictly increasing")
    ea = np.atleast_1d(np.asarray(eps, dtype=float))
    run_min = np.minimum.accumulate(np.where(np.isnan(va), np.inf, va))
    pos = np.searchsorted(-run_min, -ea, side="left")
    out = np.full(ea.shape, np.nan)
    hit = pos < ka.size
    out[hit] = ka[pos[hit]]
    return out
