r"""The few-shot sinusoid benchmark of MAML with MAML, FO-MAML and HF-MAML (THEORY S1, T2, T3).

**Tasks** exactly as in the MAML benchmark (Finn, Abbeel & Levine 2017): a task is
a sine wave :math:`y = A\sin(x - \varphi)` with amplitude :math:`A \sim U[0.1, 5]`
and phase :math:`\varphi \sim U[0, \pi]`; a task's data are inputs
:math:`x \sim U[-5, 5]`, ``K`` support points for the inner step and ``K`` query
points for the outer gradient. The model is :class:`~hfmaml_core.mlp.MLP`
(1-40-40-1, tanh) and the task loss :math:`f_i` the mean squared error.

**Meta-gradient estimators.** With the support loss :math:`f_i^{s}`, the query
loss :math:`f_i^{q}`, one inner step :math:`\hat w_i = w - \alpha\nabla f_i^{s}(w)`
and :math:`g_i = \nabla f_i^{q}(\hat w_i)`, the three methods use, per task,

.. math::
    \text{MAML: } (I - \alpha\nabla^2 f_i^{s}(w))\,g_i,\qquad
    \text{FO-MAML: } g_i,\qquad
    \text{HF-MAML: } g_i - \alpha\,
      \frac{\nabla f_i^{s}(w + \delta_i g_i) - \nabla f_i^{s}(w - \delta_i g_i)}{2\delta_i},

averaged over the tasks of the batch. MAML's is the exact gradient of the
empirical meta-loss :math:`f_i^{q}(w - \alpha\nabla f_i^{s}(w))` (THEORY S1, with
the Hessian as an exact Hessian-vector product); FO-MAML drops the Hessian term
(THEORY T2); HF-MAML replaces it by a central difference of gradients (THEORY
H1, T3). As in the benchmark, the Hessian batch is the support set (THEORY's
:math:`D_h = D_{in}`), so that MAML's direction is the exact gradient and the
HF-MAML direction differs from it only by the finite-difference error.

**The finite-difference step.** THEORY T3 takes
:math:`\delta_i = 1/(6\rho\alpha\|g_i\|)`; the Hessian-Lipschitz constant
:math:`\rho` of a network is not known in closed form, so here
:math:`\delta_i = \delta/\|g_i\|` with the *radius* :math:`\delta` given directly
(the two gradients are evaluated at distance :math:`\delta` from :math:`w`;
T3's choice is :math:`\delta = 1/(6\rho\alpha)`). By H1 the error of the HF-MAML
direction of task :math:`i` is at most :math:`\alpha\rho\delta\|g_i\|`.

**Outer optimiser.** Adam (Kingma & Ba 2015) with step ``1e-3`` and the usual
:math:`\beta_1 = 0.9`, :math:`\beta_2 = 0.999`, :math:`\epsilon = 10^{-8}`, as in the
original benchmark. Why not the theory's SGD step :math:`\beta = c/\tilde L(w)`:
:math:`L` and :math:`\rho` of a network are not known, and a hand-tuned SGD step
would have to be tuned per method, which would blur the comparison. All three
methods get the same optimiser, initialisation and stream of tasks; only the
direction differs.

Everything is vectorised over the tasks of a batch, and can be over independent
runs too: parameters of shape ``(R, P)`` with tasks of leading shape ``(R, B)``
train ``R`` runs (e.g. seeds) in the same kernel calls. (On a small machine a
Python loop over runs can be faster: the arrays stay small, and the memory
allocator does less work.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import _validate as V
from . import engine
from .hvp import radius_rule
from .layouts import FACTORED_FROM, KERNELS, check_memory, direction_memory, network_kernels
from .methods import LABELS
from .methods import get as get_method
from .mlp import MLP
from .sinusoid_tasks import (
    AMPLITUDE_RANGE,
    INPUT_RANGE,
    PHASE_RANGE,
    SinusoidTasks,
    adapt,
    adaptation_errors,
    check_inputs,
    sample_tasks,
)

__all__ = [
    "AMPLITUDE_RANGE",
    "DEFAULT_DELTA",
    "DIFFERENCES",
    "FACTORED_FROM",
    "INPUT_RANGE",
    "KERNELS",
    "METHODS",
    "PHASE_RANGE",
    "MetaLearner",
    "SinusoidTasks",
    "TrainResult",
    "adapt",
    "adaptation_errors",
    "direction_memory",
    "hessian_term_error",
    "meta_directions",
    "network_kernels",
    "sample_tasks",
    "train",
]

#: Method labels, a view of the one table :data:`hfmaml_core.methods.LABELS`.
METHODS: tuple[str, ...] = LABELS
#: Default finite-difference radius of HF-MAML: the two gradients are taken at
#: distance ``DEFAULT_DELTA`` from ``w`` (see the module docstring).
DEFAULT_DELTA: float = 1e-3

#: Finite differences HF-MAML's Hessian term can be computed with: ``"central"``
#: (THEORY H1, the method's own) and ``"forward"``,
#: :math:`[\nabla f(w+\delta_i g_i) - \nabla f(w)]/\delta_i`, whose error is first
#: order in :math:`\delta` (a deliberately worse estimator, for controls and exercises);
#: the engine's :data:`hfmaml_core.engine.DIFFERENCES`.
DIFFERENCES: tuple[str, ...] = engine.DIFFERENCES


# =============================================================================
# meta-gradients
# =============================================================================


def _check_methods(methods: object) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = (methods,)
    if not isinstance(methods, Sequence) or len(methods) == 0:
        raise ValueError(f"methods must be a non-empty sequence of {METHODS}; got {methods!r}")
    return tuple(V.choice("method", m, METHODS) for m in methods)


def meta_directions(
    net: MLP,
    W: object,
    tasks: SinusoidTasks,
    alpha: float = 0.01,
    methods: Sequence[str] | str = METHODS,
    delta: float = DEFAULT_DELTA,
    difference: str = "central",
    kernels: str = "auto",
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    r"""Meta-gradient estimates of MAML, FO-MAML and HF-MAML on a batch of tasks.

    With :math:`\hat w_i = w - \alpha\nabla f_i^{s}(w)` and
    :math:`g_i = \nabla f_i^{q}(\hat w_i)`:

    .. math::
        u^{\rm MAML} &= \tfrac1B\textstyle\sum_i g_i - \alpha\nabla^2 f_i^{s}(w)\,g_i
            \quad\text{(THEORY S1; exact Hessian-vector product)},\\
        u^{\rm FO} &= \tfrac1B\textstyle\sum_i g_i \quad\text{(THEORY T2)},\\
        u^{\rm HF} &= \tfrac1B\textstyle\sum_i g_i - \alpha\,
            \frac{\nabla f_i^{s}(w+\delta_i g_i) - \nabla f_i^{s}(w-\delta_i g_i)}{2\delta_i},
            \quad \delta_i = \frac{\delta}{\|g_i\|}\quad\text{(THEORY H1, T3)}.

    Each requested direction is computed by the same operations whatever else is
    requested, so its bits do not depend on ``methods``.

    Parameters
    ----------
    net : MLP
        A network with one input and one output.
    W : array, shape (*lead[:-1], P)
        Parameters: ``(P,)`` for a batch of leading shape ``(B,)``, ``(R, P)`` for ``(R, B)``.
    tasks : SinusoidTasks
        The batch; its last leading axis is the task axis that is averaged.
    alpha : float
        Inner step size, > 0 (0.01 in the benchmark).
    methods : str or sequence of str
        Any of ``"MAML"``, ``"FO-MAML"``, ``"HF-MAML"``.
    delta : float
        HF-MAML's finite-difference radius, > 0.
    difference : str
        ``"central"`` (default; THEORY H1, the HF-MAML of the theory) or
        ``"forward"``: HF-MAML's Hessian term as
        :math:`[\nabla f_i^{s}(w+\delta_i g_i) - \nabla f_i^{s}(w)]/\delta_i`, whose
        error is first order in :math:`\delta` (see :data:`DIFFERENCES`).
    kernels : str
        ``"auto"`` (default), ``"dense"`` or ``"factored"``: the layout of the per-task work
        (:data:`KERNELS`, :data:`FACTORED_FROM`); it changes the time, not the mathematics.

    Returns
    -------
    directions : dict
        ``method -> ndarray`` of ``W``'s shape.
    query_losses : ndarray, shape ``lead``
        :math:`f_i^{q}(\hat w_i)`, the post-update losses (the training meta-loss).

    Raises
    ------
    ValueError
        On a bad argument, or when ``W.shape[:-1]`` is not ``tasks.shape[:-1]``.
    """
    net, Wa, tasks, alpha = check_inputs(net, W, tasks, alpha)
    methods = _check_methods(methods)
    delta = V.real("delta", delta, lo=0.0, lo_open=True)
    difference = V.choice("difference", difference, DIFFERENCES)
    kernels = V.choice("kernels", kernels, KERNELS)
    _check_run_shape(net, Wa, tasks)
    check_memory(net, tasks.shape, max(tasks.x_support.shape[-2], tasks.x_query.shape[-2]), kernels)
    return _engine_directions(net, Wa, tasks, alpha, methods, delta, difference, kernels)


def _check_run_shape(net: MLP, Wa: np.ndarray, tasks: SinusoidTasks) -> None:
    if Wa.shape[:-1] != tasks.shape[:-1]:
        raise ValueError(
            f"W must have shape {(*tasks.shape[:-1], net.n_params)} for tasks of leading shape "
            f"{tasks.shape} (one parameter vector per run); got {Wa.shape}"
        )


def hessian_term_error(
    net: MLP,
    W: object,
    tasks: SinusoidTasks,
    alpha: float = 0.01,
    delta: float = DEFAULT_DELTA,
    difference: str = "central",
) -> np.ndarray:
    r"""Relative error of HF-MAML's finite-difference Hessian term on a batch (THEORY H1).

    .. math::
        r = \frac{\|u^{\rm HF} - u^{\rm MAML}\|}{\|u^{\rm FO} - u^{\rm MAML}\|},

    where :math:`u^{\rm FO} - u^{\rm MAML} = \frac{\alpha}{B}\sum_i\nabla^2 f_i^{s}(w)\,g_i`
    *is* the Hessian term (exact Hessian-vector products), so :math:`r` is the
    fraction of it that the finite difference gets wrong. By H1 the central
    difference's error in task :math:`i` is at most :math:`\alpha\rho\delta\|g_i\|`
    (linear in the radius :math:`\delta`; second order for smooth losses).

    Parameters
    ----------
    net, W, tasks, alpha, delta, difference
        As in :func:`meta_directions`.

    Returns
    -------
    ndarray, shape ``W.shape[:-1]``
        :math:`r` per run (``inf`` where the Hessian term is exactly zero).
    """
    net, Wa, tasks, alpha = check_inputs(net, W, tasks, alpha)
    delta = V.real("delta", delta, lo=0.0, lo_open=True)
    difference = V.choice("difference", difference, DIFFERENCES)
    _check_run_shape(net, Wa, tasks)
    check_memory(net, tasks.shape, max(tasks.x_support.shape[-2], tasks.x_query.shape[-2]), "auto")
    dirs, _ = _engine_directions(net, Wa, tasks, alpha, METHODS, delta, difference)
    return _hessian_term_error(dirs)


def _hessian_term_error(dirs: dict[str, np.ndarray]) -> np.ndarray:
    ref = dirs["MAML"]
    num = np.linalg.norm(dirs["HF-MAML"] - ref, axis=-1)
    den = np.linalg.norm(dirs["FO-MAML"] - ref, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)


def _engine_directions(
    net: MLP,
    W: np.ndarray,
    tasks: SinusoidTasks,
    alpha: float,
    methods: tuple[str, ...],
    delta: float,
    difference: str = "central",
    kernels: str = "auto",
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The requested directions through the one engine (:mod:`hfmaml_core.engine`), unchecked.

    The network's kernels (:func:`network_kernels`), batches ``(x, y)``: the
    support set is :math:`D_{in}` and the Hessian batch (:math:`D_h = D_{in}`), the query set
    :math:`D_o`; HF-MAML's rule is :func:`hfmaml_core.hvp.radius_rule`; each task's rows are
    averaged with weight :math:`1/B`.
    """
    kern = network_kernels(net, kernels)
    support = (tasks.x_support, tasks.y_support)
    Wt = W[..., None, :]  # a task axis: broadcasts against the tasks of the batch
    outer = engine.outer_gradients(
        kern, Wt, alpha, support, (tasks.x_query, tasks.y_query), with_loss=True
    )
    rule = radius_rule(delta)
    out: dict[str, np.ndarray] = {}
    for m in methods:
        U, _ = engine.task_directions(
            kern,
            Wt,
            outer.G,
            alpha,
            get_method(m).name,
            support,
            hessian="hvp",
            delta=rule,
            difference=difference,
        )
        out[m] = U.mean(axis=-2)
    return out, outer.loss


# =============================================================================
# training
# =============================================================================


class MetaLearner:
    r"""Meta-training state of one method: parameters, Adam moments and the task stream.

    One call of :meth:`step` is one meta-iteration: draw a batch of
    ``meta_batch`` tasks (per run), compute the method's direction
    :math:`u_k` (:func:`meta_directions`), and take an Adam step

    .. math::
        m_k = \beta_1 m_{k-1} + (1-\beta_1)u_k,\quad
        v_k = \beta_2 v_{k-1} + (1-\beta_2)u_k^2,\quad
        w_{k+1} = w_k - \eta\,\frac{m_k/(1-\beta_1^k)}{\sqrt{v_k/(1-\beta_2^k)} + \epsilon}.

    Parameters
    ----------
    net : MLP
    method : str
        ``"MAML"``, ``"FO-MAML"`` or ``"HF-MAML"``.
    w0 : array, shape (P,) or (R, P)
        Initial parameters (copied); ``R`` independent runs train together.
    stream_seed : int
        Seed of the task stream (>= 0). Learners with the same seed and ``w0``
        shape see the same tasks, whatever their method.
    alpha : float
        Inner step (0.01 in the benchmark).
    meta_batch, k_support, k_query : int
        Tasks per batch (25) and points per task (10 and 10).
    lr : float
        Adam step :math:`\eta` (1e-3 in the benchmark).
    delta : float
        HF-MAML's finite-difference radius.
    kernels : str
        The layout of the per-task work, as in :func:`meta_directions` (``"auto"``).
    """

    def __init__(
        self,
        net: MLP,
        method: str,
        w0: object,
        stream_seed: int,
        *,
        alpha: float = 0.01,
        meta_batch: int = 25,
        k_support: int = 10,
        k_query: int = 10,
        lr: float = 1e-3,
        delta: float = DEFAULT_DELTA,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        kernels: str = "auto",
    ) -> None:
        if not isinstance(net, MLP):
            raise ValueError(f"net must be an hfmaml_core.mlp.MLP; got {type(net).__name__}")
        self.net = net
        self.method = V.choice("method", method, METHODS)
        w = net.check_params("w0", w0)
        if w.ndim > 2:
            raise ValueError(f"w0 must have shape (P,) or (R, P); got {w.shape}")
        self.w = np.array(w, dtype=float)  # a private copy
        self.rng = np.random.default_rng(V.integer("stream_seed", stream_seed, lo=0))
        self.alpha = V.real("alpha", alpha, lo=0.0, lo_open=True)
        self.meta_batch = V.integer("meta_batch", meta_batch)
        self.k_support = V.integer("k_support", k_support)
        self.k_query = V.integer("k_query", k_query)
        self.lr = V.real("lr", lr, lo=0.0, lo_open=True)
        self.delta = V.real("delta", delta, lo=0.0, lo_open=True)
        self.beta1 = V.real("beta1", beta1, lo=0.0, hi=1.0, hi_open=True)
        self.beta2 = V.real("beta2", beta2, lo=0.0, hi=1.0, hi_open=True)
        self.eps = V.real("eps", eps, lo=0.0, lo_open=True)
        self.kernels = V.choice("kernels", kernels, KERNELS)
        check_memory(
            net, (*self.w.shape[:-1], self.meta_batch), max(self.k_support, self.k_query), kernels
        )
        self.m = np.zeros_like(self.w)
        self.v = np.zeros_like(self.w)
        self.k = 0

    def next_batch(self) -> SinusoidTasks:
        """Draw the next batch of the task stream, leading shape ``(*R, meta_batch)``."""
        shape = (*self.w.shape[:-1], self.meta_batch)
        return sample_tasks(self.rng, shape, self.k_support, self.k_query)

    def step(
        self, *, compare: bool = False, batch: SinusoidTasks | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One meta-iteration.

        Parameters
        ----------
        compare : bool
            Also compute the other two methods' directions at the same ``w`` on
            the same batch (for diagnostics); the update uses this learner's
            method only and is bit-identical either way.
        batch : SinusoidTasks, optional
            The batch of this iteration, of leading shape ``(*R, B)``; ``None``
            (default) draws the next batch of the task stream (:meth:`next_batch`).
            Pass a batch drawn with :meth:`next_batch` to keep it for other
            measurements at the same point (as :func:`train` does).

        Returns
        -------
        meta_loss : ndarray, shape ``w.shape[:-1]``
            Batch mean of the post-update query losses at the current ``w``.
        directions : dict
            ``method -> direction`` (only this learner's method unless ``compare``).
        """
        if batch is None:
            batch = self.next_batch()
        elif not isinstance(batch, SinusoidTasks):
            raise ValueError(
                f"batch must be a SinusoidTasks batch or None; got {type(batch).__name__}"
            )
        else:
            _check_run_shape(self.net, self.w, batch)
        methods = METHODS if compare else (self.method,)
        dirs, q_loss = _engine_directions(
            self.net, self.w, batch, self.alpha, methods, self.delta, kernels=self.kernels
        )
        self.update(dirs[self.method])
        return q_loss.mean(axis=-1), dirs

    def update(self, u: np.ndarray) -> None:
        """The Adam step along the direction ``u`` (shape of ``w``); :meth:`step` calls it."""
        if u.shape != self.w.shape:
            raise ValueError(f"u must have the shape of w, {self.w.shape}; got {u.shape}")
        self.k += 1
        self.m *= self.beta1
        self.m += (1.0 - self.beta1) * u
        self.v *= self.beta2
        self.v += (1.0 - self.beta2) * (u * u)
        c1 = 1.0 - self.beta1**self.k
        c2 = 1.0 - self.beta2**self.k
        self.w -= (self.lr / c1) * self.m / (np.sqrt(self.v / c2) + self.eps)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = np.einsum("...p,...p->...", a, b)
    den = np.sqrt(np.einsum("...p,...p->...", a, a) * np.einsum("...p,...p->...", b, b))
    return num / den


@dataclass
class TrainResult:
    r"""What :func:`train` returns.

    Attributes
    ----------
    method : str
    w : ndarray, shape (P,) or (R, P)
        Final parameters.
    meta_loss : ndarray, shape (n_iter, *R)
        Batch-mean post-update query loss at each iteration (before its update).
    log_iters : ndarray, shape (n_log,)
        Iterations at which the three directions were compared.
    cosine : dict
        ``"HF-MAML"`` and ``"FO-MAML"`` -> cosine with the MAML direction, shape (n_log, *R).
    rel_error : dict
        Same keys -> :math:`\|u - u^{\rm MAML}\| / \|u^{\rm MAML}\|`, shape (n_log, *R).
    hf_vs_fo : ndarray, shape (n_log, *R)
        :math:`\|u^{\rm HF} - u^{\rm MAML}\| / \|u^{\rm FO} - u^{\rm MAML}\|`: the
        fraction of the Hessian term that HF-MAML gets wrong.
    hf_vs_fo_variants : dict
        ``(delta, difference) ->`` the same ratio, shape (n_log, *R), for each variant
        of HF-MAML's finite difference requested with ``hf_variants`` in
        :func:`train`, at the same points and on the same batches.
    """

    method: str
    w: np.ndarray
    meta_loss: np.ndarray
    log_iters: np.ndarray
    cosine: dict[str, np.ndarray] = field(default_factory=dict)
    rel_error: dict[str, np.ndarray] = field(default_factory=dict)
    hf_vs_fo: np.ndarray | None = None
    hf_vs_fo_variants: dict[tuple[float, str], np.ndarray] = field(default_factory=dict)


def train(
    net: MLP,
    method: str,
    w0: object,
    n_iter: int,
    stream_seed: int,
    *,
    compare_every: int = 0,
    hf_variants: Sequence[tuple[float, str]] = (),
    **kwargs: object,
) -> TrainResult:
    r"""Meta-train with one method for ``n_iter`` iterations (see :class:`MetaLearner`).

    Parameters
    ----------
    net, method, w0, stream_seed
        As in :class:`MetaLearner`.
    n_iter : int
        Meta-iterations, >= 1.
    compare_every : int
        Every ``compare_every`` iterations (0: never) also compute the other
        methods' directions at the current ``w`` and record their cosine with
        MAML's (the update is unaffected).
    hf_variants : sequence of (delta, difference)
        At the same points and on the same batches, also record the Hessian-term
        error :math:`r` (:func:`hessian_term_error`) of HF-MAML computed with these
        radii and differences (e.g. ``[(1e-3, "forward")]``, a deliberately worse
        estimator); needs ``compare_every > 0``. The update is unaffected.
    **kwargs
        Passed to :class:`MetaLearner` (``alpha``, ``meta_batch``, ``lr``, ``delta``, ...).
    """
    n_iter = V.integer("n_iter", n_iter)
    compare_every = V.integer("compare_every", compare_every, lo=0)
    variants = _check_variants(hf_variants, compare_every)
    learner = MetaLearner(net, method, w0, stream_seed, **kwargs)  # type: ignore[arg-type]
    var_r: dict[tuple[float, str], list[np.ndarray]] = {v: [] for v in variants}
    losses = np.empty((n_iter, *learner.w.shape[:-1]))
    log_iters, cos, rel, hf_fo = (
        [],
        {"HF-MAML": [], "FO-MAML": []},
        {"HF-MAML": [], "FO-MAML": []},
        [],
    )
    for k in range(n_iter):
        compare = compare_every > 0 and k % compare_every == 0
        batch = learner.next_batch()
        hf_var = {}  # the variants at the current w (before the step), on this iteration's batch
        for v in variants if compare else ():
            hf_var[v] = _engine_directions(net, learner.w, batch, learner.alpha, ("HF-MAML",), *v)[
                0
            ]
        losses[k], dirs = learner.step(compare=compare, batch=batch)
        for v, hf in hf_var.items():
            var_r[v].append(_hessian_term_error({**dirs, **hf}))
        if compare:
            ref = dirs["MAML"]
            ref_norm = np.sqrt(np.einsum("...p,...p->...", ref, ref))
            log_iters.append(k)
            for m in ("HF-MAML", "FO-MAML"):
                cos[m].append(_cosine(dirs[m], ref))
                rel[m].append(np.linalg.norm(dirs[m] - ref, axis=-1) / ref_norm)
            hf_fo.append(
                np.linalg.norm(dirs["HF-MAML"] - ref, axis=-1)
                / np.linalg.norm(dirs["FO-MAML"] - ref, axis=-1)
            )
    return TrainResult(
        method=learner.method,
        w=learner.w,
        meta_loss=losses,
        log_iters=np.array(log_iters, dtype=int),
        cosine={m: np.array(c) for m, c in cos.items()} if log_iters else {},
        rel_error={m: np.array(r) for m, r in rel.items()} if log_iters else {},
        hf_vs_fo=np.array(hf_fo) if log_iters else None,
        hf_vs_fo_variants={v: np.array(r) for v, r in var_r.items()},
    )


def _check_variants(hf_variants: object, compare_every: int) -> tuple[tuple[float, str], ...]:
    if isinstance(hf_variants, (str, bytes)) or not isinstance(hf_variants, Sequence):
        raise ValueError(
            f"hf_variants must be a sequence of (delta, difference) pairs; got {hf_variants!r}"
        )
    out = []
    for v in hf_variants:
        if not isinstance(v, Sequence) or isinstance(v, str) or len(v) != 2:
            raise ValueError(
                f"hf_variants must hold (delta, difference) pairs, difference one of "
                f"{DIFFERENCES}; got {v!r}"
            )
        d = V.real("hf_variants delta", v[0], lo=0.0, lo_open=True)
        out.append((d, V.choice("hf_variants difference", v[1], DIFFERENCES)))
    if out and compare_every == 0:
        raise ValueError(
            "hf_variants needs compare_every >= 1 (the points where they are measured)"
        )
    return tuple(out)
