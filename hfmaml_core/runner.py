r"""Run MAML, FO-MAML or HF-MAML for many independent runs at once (THEORY T1, T2, T3).

One iteration of every run is

.. math::
    w_{k+1} = w_k - \beta_k\,u_k, \qquad
    \beta_k = \frac{c}{\tilde L(w_k)} \ \ (\text{or a constant}), \qquad
    \tilde L(w) = 4L + 2\rho\alpha\,\frac{1}{B'}\sum_{j\in B'}\bigl\|\tilde\nabla f_j(w, D_\beta^j)\bigr\|,

with :math:`c = 1/12, 1/18, 1/25` for MAML, FO-MAML, HF-MAML
(:data:`hfmaml_core.stepsize.STEP_CONSTANTS`), the step's own independent task batch
:math:`B'` and data batches :math:`D_\beta` (THEORY "Step size"), and the direction
:math:`u_k` of :func:`hfmaml_core.estimators.direction`. All ``R`` runs advance together:
every quantity of an iteration is one vectorised call over the ``R * B`` (run, task) pairs.

The runner returns the iterates, the *exact* :math:`\|\nabla F(w_k)\|` (the population
meta-gradient of :func:`hfmaml_core.meta.family_gradient`, not an estimate), the step sizes
and the work done.

**Theorem setting.** ``setting="theorem"`` (the default) first checks the hypotheses of the
method's theorem and raises ``ValueError`` naming every violated condition and its bound:

* T1 (MAML): :math:`\alpha \le 1/L`, :math:`B \ge 20`,
  :math:`D_h \ge \lceil 2\alpha^2\sigma_H^2\rceil`, an independent :math:`D_h`;
* T2 (FO-MAML): :math:`\alpha \le 1/(10L)`;
* T3 (HF-MAML): :math:`\alpha \le 1/(6L)`, :math:`D_h \ge \lceil 36(\alpha\sigma_H)^2\rceil`,
  an independent :math:`D_h`, the theorem's :math:`\delta_i` (any :math:`\delta` when
  :math:`\rho = 0`, where the central difference is exact);
* all three: the theorem step :math:`c/\tilde L`, and L2's
  :math:`B' \ge \lceil\frac12(\rho\alpha\sigma/L)^2\rceil`,
  :math:`D_\beta \ge \lceil(2\rho\alpha\tilde\sigma/L)^2\rceil`.

:math:`\sigma, \tilde\sigma, \sigma_H` are suprema over :math:`w` (A4, A5) that a finite
family cannot compute in general; unless given, they are evaluated at the starting points
(the largest value over the runs and, for :math:`\tilde\sigma, \sigma_H`, over the tasks).
After a run, :func:`visited_constants` gives the same maxima over every recorded iterate (the
region the runs actually visited), so that the hypotheses can be checked there with
:func:`theorem_conditions`.
``setting="free"`` runs outside the theorems on purpose (larger ``alpha``, constant steps,
the ``"inner"`` Hessian batch, ...); the conditions are still evaluated and returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import _validate as V
from . import hypotheses
from .estimators import _UNSET, Work, _check_config, _direction
from .meta import family_gradient
from .stepsize import STEP_CONSTANTS
from .tasks import TaskFamily

__all__ = [
    "ALPHA_MAX",
    "SETTINGS",
    "Condition",
    "RunResult",
    "descent_bound",
    "iterations_to_reach",
    "local_constants",
    "run",
    "theorem_conditions",
    "visited_constants",
]

#: The largest inner step of each theorem, in units of ``1/L`` (T1, T2, T3).
ALPHA_MAX = {"maml": 1.0, "fomaml": 0.1, "hfmaml": 1.0 / 6.0}
#: ``"theorem"``: check the theorem's hypotheses and refuse to run outside them; ``"free"``: do not.
SETTINGS = ("theorem", "free")
_THEOREM = {"maml": "T1", "fomaml": "T2", "hfmaml": "T3"}
_GRAD_ROWS = 1 << 19  # bound on (point, task, data point, coordinate) entries per exact call


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


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` returns. ``R`` runs, ``K`` iterations, iterates recorded at ``k``.

    Attributes
    ----------
    method : str
    alpha : float
    k : ndarray of int, shape (n_rec,)
        Recorded iteration indices (``0``, every ``record_every``-th, and ``K``).
    iterates : ndarray, shape (n_rec, R, d)
        :math:`w_k` of every run.
    grad_norm : ndarray, shape (n_rec, R)
        Exact :math:`\\|\\nabla F(w_k)\\|` (``nan`` where a run diverged to non-finite values).
    steps : ndarray, shape (K, R)
        :math:`\\beta_k` of every run and iteration.
    work_per_iteration : Work
        Work of one run in one iteration (direction plus step size).
    conditions : tuple of Condition
        The theorem's hypotheses, evaluated (whatever the setting).
    setting : str
    """

    method: str
    alpha: float
    k: np.ndarray
    iterates: np.ndarray
    grad_norm: np.ndarray
    steps: np.ndarray
    work_per_iteration: Work
    conditions: tuple[Condition, ...]
    setting: str

    @property
    def n_runs(self) -> int:
        """Number of independent runs ``R``."""
        return int(self.grad_norm.shape[1])

    @property
    def work(self) -> dict[str, np.ndarray]:
        """Cumulative work of one run at each recorded ``k``: ``grads``, ``hvps``, ``hessians``, ``cost``."""
        w = self.work_per_iteration
        d = self.iterates.shape[2]
        return {
            "grads": self.k * w.grads,
            "hvps": self.k * w.hvps,
            "hessians": self.k * w.hessians,
            "cost": self.k * w.cost(d),
        }

    @property
    def diverged(self) -> np.ndarray:
        """Runs whose last iterate is not finite, shape (R,)."""
        return ~np.isfinite(self.grad_norm[-1])


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
    th = _THEOREM[method]
    L, rho = family.L, family.rho
    a_max = ALPHA_MAX[method] / L
    frac = {"maml": "1/L", "fomaml": "1/(10L)", "hfmaml": "1/(6L)"}[method]
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


# --------------------------------------------------------------------------- step size
def _lipschitz(
    family: TaskFamily,
    W: np.ndarray,
    alpha: float,
    rng: np.random.Generator,
    batch_tasks: int | None,
    batch_points: int | None,
) -> np.ndarray:
    r"""One draw of :math:`\tilde L(w)` per row of ``W`` (vectorised), shape (R,).

    Same draw order as :func:`hfmaml_core.stepsize.lipschitz_estimate` (tasks, then data),
    so one row reproduces it. ``None`` batches use every task (weights ``probs``) / every
    point; with ``rho = 0`` the estimate is ``4L`` exactly and nothing is drawn.
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


def _step_work(family: TaskFamily, batch_tasks: int | None, batch_points: int | None) -> Work:
    if family.rho == 0:
        return Work()
    bt = family.n_tasks if batch_tasks is None else batch_tasks
    bp = family.n_points if batch_points is None else batch_points
    return Work(grads=bt * bp)


def _exact_grad_norms(family: TaskFamily, P: np.ndarray, alpha: float) -> np.ndarray:
    """Exact ||grad F|| at the rows of P (shape (N, d)); nan for non-finite rows. Chunked."""
    out = np.full(P.shape[0], np.nan)
    ok = np.flatnonzero(np.all(np.isfinite(P), axis=1))
    per = max(1, _GRAD_ROWS // (family.n_tasks * family.n_points * family.dim))
    for s in range(0, ok.size, per):  # chunks bound memory; each is one vectorised call
        rows = ok[s : s + per]
        with np.errstate(over="ignore", invalid="ignore"):
            out[rows] = np.linalg.norm(family_gradient(family, P[rows], alpha), axis=1)
    return out


# --------------------------------------------------------------------------- the runner
def run(
    family: TaskFamily,
    method: str,
    w0: object,
    alpha: float,
    rng: np.random.Generator,
    *,
    n_iter: int,
    n_runs: int | None = None,
    batch_tasks: int | None,
    d_in: int | None,
    d_o: int | None,
    d_h: object = _UNSET,
    delta: float | str | Callable[[np.ndarray], np.ndarray] = "theorem",
    hessian_batch: str = "independent",
    hessian: str = "matrix",
    step: float | str = "theorem",
    step_batch_tasks: object = _UNSET,
    step_batch_points: object = _UNSET,
    setting: str = "theorem",
    constants: dict[str, float] | None = None,
    record_every: int = 1,
) -> RunResult:
    r"""Run ``R`` independent copies of MAML, FO-MAML or HF-MAML for ``n_iter`` iterations.

    .. math::
        w_{k+1} = w_k - \beta_k u_k, \qquad \beta_k = c_{\text{method}}/\tilde L(w_k)
        \ \text{(THEORY T1-T3) or a constant.}

    Parameters
    ----------
    family : TaskFamily
    method : {"maml", "fomaml", "hfmaml"}
    w0 : array, shape (d,) or (R, d)
        Starting point, shared by all runs (then give ``n_runs``) or one per run.
    alpha : float
        Inner step size, ``>= 0`` (the theorem setting bounds it further).
    rng : numpy.random.Generator
        Source of every draw. Each iteration draws the step's batches (all runs), then the
        direction's (:func:`hfmaml_core.estimators.direction`).
    n_iter : int
        Iterations ``K >= 1``.
    n_runs : int, optional
        Number of runs ``R`` when ``w0`` is 1-D.
    batch_tasks, d_in, d_o, d_h, delta, hessian_batch, hessian
        The direction's batches and options, as in :func:`hfmaml_core.estimators.direction`.
    step : "theorem" or float
        ``"theorem"``: :math:`\beta_k = c/\tilde L(w_k)` with :math:`c` from
        :data:`~hfmaml_core.stepsize.STEP_CONSTANTS`; a float ``> 0``: a constant step.
    step_batch_tasks, step_batch_points : int or None
        :math:`B'` and :math:`D_\beta` of the step size (``None``: every task / every point,
        i.e. the exact :math:`L(w)` of L1). Default: ``batch_tasks`` and ``d_o``.
    setting : {"theorem", "free"}
        ``"theorem"`` refuses to run when a hypothesis of the method's theorem fails (see the
        module docstring); ``"free"`` runs anyway, on purpose.
    constants : dict, optional
        ``sigma``, ``sigma_tilde``, ``sigma_h`` for the checks; default
        :func:`local_constants` at ``w0``.
    record_every : int
        Record iterates (and exact gradient norms) every this many iterations (and the last).

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        A bad argument (named, with its allowed range), or, with ``setting="theorem"``, every
        violated hypothesis with its bound. Raised before any iteration.
    """
    cfg = _check_config(
        family, alpha, method, batch_tasks, d_in, d_o, d_h, delta, hessian_batch, hessian
    )
    a = cfg["alpha"]
    setting = V.choice("setting", setting, SETTINGS)
    V.generator(rng)
    K = V.integer("n_iter", n_iter)
    every = V.integer("record_every", record_every)
    W0 = np.asarray(w0)
    if W0.ndim == 1:
        if n_runs is None:
            raise ValueError("n_runs must be given (an integer >= 1) when w0 has shape (d,)")
        R = V.integer("n_runs", n_runs)
        W = np.tile(V.array("w0", W0, shape=(family.dim,)), (R, 1))
    else:
        W = V.array("w0", W0, shape=(None, family.dim)).copy()
        R = W.shape[0]
        if n_runs is not None and V.integer("n_runs", n_runs) != R:
            raise ValueError(f"n_runs must equal w0.shape[0] = {R} when w0 is 2-D; got {n_runs}")
    if isinstance(step, str):
        V.choice("step", step, ["theorem"])
        c = STEP_CONSTANTS[method]
    else:
        beta = V.real("step", step, lo=0.0, lo_open=True)
    sbt = cfg["batch_tasks"] if step_batch_tasks is _UNSET else step_batch_tasks
    sbp = cfg["d_o"] if step_batch_points is _UNSET else step_batch_points
    sbt = None if sbt is None else V.integer("step_batch_tasks", sbt)
    sbp = None if sbp is None else V.integer("step_batch_points", sbp)
    if constants is None:
        constants = local_constants(family, W)
    else:
        constants = {
            k: V.real(k, constants.get(k), lo=0.0) for k in ("sigma", "sigma_tilde", "sigma_h")
        }
    conds = theorem_conditions(
        family,
        method,
        a,
        batch_tasks=cfg["batch_tasks"],
        d_h=cfg["d_h"],
        delta=cfg["delta"],
        hessian_batch=cfg["hessian_batch"],
        step=step,
        step_batch_tasks=sbt,
        step_batch_points=sbp,
        constants=constants,
    )
    bad = [c for c in conds if not c.holds]
    if setting == "theorem" and bad:
        raise ValueError(
            f"setting='theorem' ({_THEOREM[method]}, {method}) is violated: "
            + "; ".join(str(c) for c in bad)
            + ". Pass setting='free' to run outside the theorem on purpose."
        )

    rec = sorted(set(range(0, K + 1, every)) | {K})
    rec_pos = {k: j for j, k in enumerate(rec)}
    iterates = np.empty((len(rec), R, family.dim))
    iterates[0] = W
    steps = np.empty((K, R))
    dir_work = Work()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for k in range(K):  # the iterations are sequential; each one is vectorised over runs
            if isinstance(step, str):
                steps[k] = c / _lipschitz(family, W, a, rng, sbt, sbp)
            else:
                steps[k] = beta
            d = _direction(family, W, rng, cfg)
            dir_work = d.work
            W = W - steps[k][:, None] * d.u
            j = rec_pos.get(k + 1)
            if j is not None:
                iterates[j] = W
    norms = _exact_grad_norms(family, iterates.reshape(-1, family.dim), a).reshape(len(rec), R)
    step_work = _step_work(family, sbt, sbp) if isinstance(step, str) else Work()
    return RunResult(
        method=method,
        alpha=a,
        k=np.array(rec),
        iterates=iterates,
        grad_norm=norms,
        steps=steps,
        work_per_iteration=dir_work + step_work,
        conditions=tuple(conds),
        setting=setting,
    )


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
