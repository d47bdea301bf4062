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
**Configuration.** :func:`run`'s keyword arguments are validated once into a frozen
:class:`RunConfig` (:meth:`RunConfig.build`) and :func:`run_with` runs it. ``alpha`` goes
notebook → ``RunConfig.alpha`` → ``DirectionConfig.alpha`` → the inner step of
:func:`hfmaml_core.engine.outer_gradients` and the :math:`\tilde L` of
:func:`hfmaml_core.stepsize.lipschitz_draws` → the update :math:`w_{k+1} = w_k - \beta_k u_k`.

``setting="free"`` runs outside the theorems on purpose (larger ``alpha``, constant steps,
the ``"inner"`` Hessian batch, ...); the conditions are still evaluated and returned.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import _validate as V
from .conditions import (
    ALPHA_MAX,
    Condition,
    descent_bound,
    iterations_to_reach,
    local_constants,
    theorem_conditions,
    visited_constants,
)
from .estimators import UNSET, DirectionConfig, Work, draw_direction
from .meta import family_gradient
from .methods import METHODS
from .stepsize import STEP_CONSTANTS, lipschitz_draws
from .tasks import TaskFamily

__all__ = [
    "ALPHA_MAX",
    "SETTINGS",
    "Condition",
    "RunConfig",
    "RunResult",
    "descent_bound",
    "iterations_to_reach",
    "local_constants",
    "machine_memory",
    "run",
    "run_memory",
    "run_with",
    "theorem_conditions",
    "visited_constants",
]

#: ``"theorem"``: check the theorem's hypotheses and refuse to run outside them; ``"free"``: do not.
SETTINGS = ("theorem", "free")
_GRAD_ROWS = 1 << 19  # bound on (point, task, data point, coordinate) entries per exact call


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


# --------------------------------------------------------------------------- step size
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
@dataclass(frozen=True)
class RunConfig:
    r"""The validated configuration of :func:`run`: one frozen, typed record, checked in one place.

    Build it with :meth:`build` (which :func:`run` calls on its keyword arguments) and pass it
    to :func:`run_with`. ``alpha`` is followed from the notebook to the update as
    ``run(..., alpha=a)`` → ``RunConfig.alpha`` → ``DirectionConfig.alpha`` (the inner step
    :math:`\hat w_i = w - \alpha\tilde\nabla f_i(w, D_{in}^i)` of
    :func:`hfmaml_core.engine.outer_gradients`) and the step size's
    :math:`\tilde L(w) = 4L + 2\rho\alpha\,\overline{\|\tilde\nabla f_j\|}`
    (:func:`hfmaml_core.stepsize.lipschitz_draws`); the update is
    :math:`w_{k+1} = w_k - \beta_k u_k` in :func:`run_with`.

    Attributes
    ----------
    method : str
    alpha : float
    n_iter : int
    batch_tasks, d_in, d_o, d_h : int or None
    delta, hessian_batch, hessian
        The direction's options (:class:`hfmaml_core.estimators.DirectionConfig`).
    step : "theorem" or float
    step_batch_tasks, step_batch_points : int or None
        :math:`B'` and :math:`D_\beta` (defaults resolved: ``batch_tasks`` and ``d_o``).
    setting : {"theorem", "free"}
    record_every : int
    """

    method: str
    alpha: float
    n_iter: int
    batch_tasks: int | None
    d_in: int | None
    d_o: int | None
    d_h: int | None
    delta: object
    hessian_batch: str
    hessian: str
    step: float | str
    step_batch_tasks: int | None
    step_batch_points: int | None
    setting: str
    record_every: int

    @property
    def direction(self) -> DirectionConfig:
        """The direction's part (what :func:`hfmaml_core.estimators.draw_direction` reads)."""
        return DirectionConfig(
            method=self.method,
            alpha=self.alpha,
            batch_tasks=self.batch_tasks,
            d_in=self.d_in,
            d_o=self.d_o,
            d_h=self.d_h,
            delta=self.delta,
            hessian_batch=self.hessian_batch,
            hessian=self.hessian,
        )

    @property
    def step_constant(self) -> float | None:
        """:math:`c` of the theorem step (:data:`~hfmaml_core.stepsize.STEP_CONSTANTS`), ``None`` for a constant step."""
        return STEP_CONSTANTS[self.method] if isinstance(self.step, str) else None

    @classmethod
    def build(
        cls,
        family: TaskFamily,
        method: str,
        alpha: float,
        *,
        n_iter: int,
        batch_tasks: int | None,
        d_in: int | None,
        d_o: int | None,
        d_h: object = UNSET,
        delta: float | str | Callable[[np.ndarray], np.ndarray] = "theorem",
        hessian_batch: str = "independent",
        hessian: str = "matrix",
        step: float | str = "theorem",
        step_batch_tasks: object = UNSET,
        step_batch_points: object = UNSET,
        setting: str = "theorem",
        record_every: int = 1,
    ) -> RunConfig:
        """Validate the options of :func:`run` (arguments as there); ``ValueError`` names the bad one."""
        dc = DirectionConfig.build(
            family, alpha, method, batch_tasks, d_in, d_o, d_h, delta, hessian_batch, hessian
        )
        setting = V.choice("setting", setting, SETTINGS)
        K = V.integer("n_iter", n_iter)
        every = V.integer("record_every", record_every)
        if isinstance(step, str):
            V.choice("step", step, ["theorem"])
        else:
            step = V.real("step", step, lo=0.0, lo_open=True)
        sbt = dc.batch_tasks if step_batch_tasks is UNSET else step_batch_tasks
        sbp = dc.d_o if step_batch_points is UNSET else step_batch_points
        return cls(
            method=dc.method,
            alpha=dc.alpha,
            n_iter=K,
            batch_tasks=dc.batch_tasks,
            d_in=dc.d_in,
            d_o=dc.d_o,
            d_h=dc.d_h,
            delta=dc.delta,
            hessian_batch=dc.hessian_batch,
            hessian=dc.hessian,
            step=step,
            step_batch_tasks=None if sbt is None else V.integer("step_batch_tasks", sbt),
            step_batch_points=None if sbp is None else V.integer("step_batch_points", sbp),
            setting=setting,
            record_every=every,
        )


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
    d_h: object = UNSET,
    delta: float | str | Callable[[np.ndarray], np.ndarray] = "theorem",
    hessian_batch: str = "independent",
    hessian: str = "matrix",
    step: float | str = "theorem",
    step_batch_tasks: object = UNSET,
    step_batch_points: object = UNSET,
    setting: str = "theorem",
    constants: dict[str, float] | None = None,
    record_every: int = 1,
) -> RunResult:
    r"""Run ``R`` independent copies of MAML, FO-MAML or HF-MAML for ``n_iter`` iterations.

    .. math::
        w_{k+1} = w_k - \beta_k u_k, \qquad \beta_k = c_{\text{method}}/\tilde L(w_k)
        \ \text{(THEORY T1-T3) or a constant.}

    The options are validated into a :class:`RunConfig` (:meth:`RunConfig.build`), then
    :func:`run_with` runs it: ``run(family, m, w0, a, rng, **opts)`` is
    ``run_with(family, RunConfig.build(family, m, a, **opts), w0, rng, n_runs=..., constants=...)``.

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
    cfg = RunConfig.build(
        family,
        method,
        alpha,
        n_iter=n_iter,
        batch_tasks=batch_tasks,
        d_in=d_in,
        d_o=d_o,
        d_h=d_h,
        delta=delta,
        hessian_batch=hessian_batch,
        hessian=hessian,
        step=step,
        step_batch_tasks=step_batch_tasks,
        step_batch_points=step_batch_points,
        setting=setting,
        record_every=record_every,
    )
    return run_with(family, cfg, w0, rng, n_runs=n_runs, constants=constants)


def machine_memory() -> int | None:
    """Physical memory of this machine in bytes (``None`` where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux/macOS
        return None


def run_memory(family: TaskFamily, config: RunConfig, n_runs: int) -> dict[str, int]:
    r"""Bytes a run holds at once, by what the sizes set (float64 and int64 entries of 8 bytes).

    ``iterates``: :math:`(\lceil K/\text{record\_every}\rceil + 1)\,R\,d` recorded points and
    :math:`K R` steps; ``rows``: about 8 arrays of :math:`R B d` entries per iteration (points,
    inner and outer gradients, perturbed points, the rows :math:`u_i`); ``batches``: the
    :math:`R B (D_{in} + D_o + D_h)` data indices of one iteration. A lower estimate: the
    kernels' own temporaries are bounded separately.
    """
    R, d = n_runs, family.dim
    B = family.n_tasks if config.batch_tasks is None else config.batch_tasks
    n_rec = -(-config.n_iter // config.record_every) + 1
    sizes = [D for D in (config.d_in, config.d_o, config.d_h) if D is not None]
    return {
        "iterates": 8 * (n_rec * R * d + config.n_iter * R),
        "rows": 8 * 8 * R * B * d,
        "batches": 8 * R * B * sum(sizes),
    }


def _check_memory(family: TaskFamily, config: RunConfig, n_runs: int) -> None:
    """Refuse, before any work, a run whose arrays alone would exceed the machine's memory."""
    total = machine_memory()
    if total is None:
        return
    parts = run_memory(family, config, n_runs)
    need = sum(parts.values())
    if need <= total:
        return
    culprit = max(parts, key=parts.get)
    advice = {
        "iterates": "lower n_runs or n_iter, or raise record_every",
        "rows": "lower n_runs or batch_tasks",
        "batches": "lower n_runs, batch_tasks or the batch sizes d_in, d_o, d_h",
    }[culprit]
    raise ValueError(
        f"this run would hold about {need / 2**30:.3g} GiB ({culprit}: "
        f"{parts[culprit] / 2**30:.3g} GiB), more than this machine's {total / 2**30:.3g} GiB: "
        f"{advice}"
    )


def run_with(
    family: TaskFamily,
    config: RunConfig,
    w0: object,
    rng: np.random.Generator,
    *,
    n_runs: int | None = None,
    constants: dict[str, float] | None = None,
) -> RunResult:
    r"""Run a validated :class:`RunConfig` from ``w0`` (what :func:`run` does after validating).

    Each iteration of every run: :math:`\beta_k = c/\tilde L(w_k)` (one draw of
    :func:`hfmaml_core.stepsize.lipschitz_draws` with ``config.alpha``) or the constant
    ``config.step``, then the direction :math:`u_k`
    (:func:`hfmaml_core.estimators.draw_direction` with ``config.direction``), then
    :math:`w_{k+1} = w_k - \beta_k u_k`. ``w0``, ``rng``, ``n_runs``, ``constants`` as in
    :func:`run`.
    """
    if not isinstance(config, RunConfig):
        raise ValueError(f"config must be a RunConfig; got {type(config).__name__}")
    if not isinstance(family, TaskFamily):
        raise ValueError(f"family must be a TaskFamily; got {type(family).__name__}")
    cfg = config
    a = cfg.alpha
    V.generator(rng)
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
    _check_memory(family, cfg, R)
    if constants is None:
        constants = local_constants(family, W)
    else:
        constants = {
            k: V.real(k, constants.get(k), lo=0.0) for k in ("sigma", "sigma_tilde", "sigma_h")
        }
    conds = theorem_conditions(
        family,
        cfg.method,
        a,
        batch_tasks=cfg.batch_tasks,
        d_h=cfg.d_h,
        delta=cfg.delta,
        hessian_batch=cfg.hessian_batch,
        step=cfg.step,
        step_batch_tasks=cfg.step_batch_tasks,
        step_batch_points=cfg.step_batch_points,
        constants=constants,
    )
    bad = [c for c in conds if not c.holds]
    if cfg.setting == "theorem" and bad:
        raise ValueError(
            f"setting='theorem' ({METHODS[cfg.method].theorem}, {cfg.method}) is violated: "
            + "; ".join(str(c) for c in bad)
            + ". Pass setting='free' to run outside the theorem on purpose."
        )

    K, c, dcfg = cfg.n_iter, cfg.step_constant, cfg.direction
    sbt, sbp = cfg.step_batch_tasks, cfg.step_batch_points
    rec = sorted(set(range(0, K + 1, cfg.record_every)) | {K})
    rec_pos = {k: j for j, k in enumerate(rec)}
    iterates = np.empty((len(rec), R, family.dim))
    iterates[0] = W
    steps = np.empty((K, R))
    dir_work = Work()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for k in range(K):  # the iterations are sequential; each one is vectorised over runs
            if c is not None:
                steps[k] = c / lipschitz_draws(family, W, a, rng, sbt, sbp)
            else:
                steps[k] = cfg.step
            d = draw_direction(family, W, rng, dcfg)
            dir_work = d.work
            W = W - steps[k][:, None] * d.u
            j = rec_pos.get(k + 1)
            if j is not None:
                iterates[j] = W
    norms = _exact_grad_norms(family, iterates.reshape(-1, family.dim), a).reshape(len(rec), R)
    step_work = _step_work(family, sbt, sbp) if c is not None else Work()
    return RunResult(
        method=cfg.method,
        alpha=a,
        k=np.array(rec),
        iterates=iterates,
        grad_norm=norms,
        steps=steps,
        work_per_iteration=dir_work + step_work,
        conditions=tuple(conds),
        setting=cfg.setting,
    )
