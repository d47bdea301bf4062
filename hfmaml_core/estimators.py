r"""One iteration's meta-gradient direction of MAML, FO-MAML and HF-MAML (THEORY "Algorithms").

At the point :math:`w` draw a batch :math:`\mathcal B` of :math:`B` tasks and, for each task
:math:`i`, independent data batches :math:`D_{in}^i, D_o^i, D_h^i`. With

.. math::
    \hat w_i = w - \alpha\tilde\nabla f_i(w, D_{in}^i), \qquad
    g_i = \tilde\nabla f_i(\hat w_i, D_o^i),

the three directions are :math:`u = \frac1B\sum_{i\in\mathcal B} u_i` with

.. math::
    u_i^{\mathrm{MAML}} &= \bigl(I - \alpha\tilde\nabla^2 f_i(w, D_h^i)\bigr) g_i, \\
    u_i^{\mathrm{FO}} &= g_i, \\
    u_i^{\mathrm{HF}} &= g_i - \alpha\,
        \frac{\tilde\nabla f_i(w + \delta_i g_i, D_h^i) - \tilde\nabla f_i(w - \delta_i g_i, D_h^i)}
             {2\delta_i}.

``hessian_batch="inner"`` evaluates the Hessian term on :math:`D_{in}^i` (the batch that made
the inner step) instead of an independent :math:`D_h^i`: what reverse-mode autodiff computes
when it differentiates through the inner step. Its bias is what the convergence notebook
measures.

Everything is vectorised over the tasks of the batch *and* over independent runs: ``W`` holds
one point per run, shape ``(R, d)``, and all ``R * B`` (run, task) pairs go through the task
family's public batch kernels in one call per quantity (through
:mod:`hfmaml_core.engine`, the one implementation of the three directions). HF-MAML evaluates its two perturbed
gradients in a single call (``central_difference_kernel``: each task's batch :math:`D_h^i` is read once
for both points :math:`w\pm\delta_i g_i`; ``oracle="two-calls"`` makes two gradient calls
instead, as a black-box gradient oracle must). MAML's ``"matrix"`` mode forms the Hessians in
chunks of rows, so that memory stays :math:`O(d^2)` rather than :math:`O(B d^2)`.

A batch size ``None`` means the exact population quantity: ``batch_tasks=None`` averages over
all tasks with their probabilities :math:`p_i` (instead of sampling), ``d_in=None`` etc. use
the task's whole data set. With everything ``None``, MAML's direction *is* :math:`\nabla F(w)`
(THEORY S1).

Work is counted per run in data-point evaluations: a mini-batch gradient on :math:`D` points
is :math:`D` gradient evaluations, an exact one is ``n_points`` of them; likewise for
Hessian-vector products and Hessians formed.

:func:`hessian_term_error` measures HF-MAML's error in each task's Hessian term against the
exact (mini-batch or population) Hessian-vector product, relative to :math:`\|g_i\|` (T3's
:math:`1/6`, via H1).

On quadratic tasks the expectations of the directions are known in closed form
(:func:`quadratic_expected_direction`, :func:`quadratic_fixed_point`): FO-MAML's fixed point and
its floor :math:`\|\nabla F(w_{FO})\|` (THEORY T2), and the bias of the ``"inner"`` variant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import _validate as V
from . import closed_forms, engine
from .closed_forms import quadratic_expected_direction, quadratic_fixed_point
from .engine import FamilyKernels
from .meta import family_gradient
from .methods import NAMES
from .tasks import TaskFamily

__all__ = [
    "HESSIAN_BATCHES",
    "HESSIAN_MODES",
    "METHODS",
    "ORACLES",
    "UNSET",
    "Direction",
    "DirectionConfig",
    "Moments",
    "Work",
    "direction",
    "direction_moments",
    "draw_direction",
    "hessian_term_error",
    "quadratic_expected_direction",
    "quadratic_fixed_point",
]

#: Method names, a view of the one table :data:`hfmaml_core.methods.NAMES`.
METHODS = NAMES
#: Where the Hessian term is evaluated: an independent batch ``D_h`` or the inner batch ``D_in``.
HESSIAN_BATCHES = closed_forms.HESSIAN_BATCHES
#: How MAML applies its Hessian: form it (``"matrix"``, O(d^2)) or an exact HVP (``"hvp"``, O(d)).
HESSIAN_MODES = ("matrix", "hvp")
#: How HF-MAML gets its two perturbed gradients (:data:`hfmaml_core.engine.ORACLES`): in one
#: pass over the data (``"fused"``) or by two gradient calls (``"two-calls"``, a black box).
ORACLES = engine.ORACLES

#: Default of ``d_h``: "not given" (``None`` means the whole data set).
UNSET = object()
_CHUNK_ROWS = 1 << 14  # (run, task) rows per vectorised call in direction_moments


@dataclass(frozen=True)
class Work:
    r"""Work of one run, counted in data-point evaluations.

    Attributes
    ----------
    grads : int
        Per-data-point gradient evaluations.
    hvps : int
        Per-data-point Hessian-vector products (no Hessian formed).
    hessians : int
        Per-data-point Hessians formed (``d x d`` each).
    paired : int
        Per-data-point *pairs* of gradients evaluated in one read of the point: HF-MAML's
        fused central difference (``oracle="fused"``) gets :math:`\phi'(r \pm s)\,x` from one
        read of :math:`x`. Each pair is also two of ``grads``; :meth:`reads` subtracts it.
    """

    grads: int = 0
    hvps: int = 0
    hessians: int = 0
    paired: int = 0

    def __add__(self, other: Work) -> Work:
        if not isinstance(other, Work):
            return NotImplemented
        return Work(
            self.grads + other.grads,
            self.hvps + other.hvps,
            self.hessians + other.hessians,
            self.paired + other.paired,
        )

    def __mul__(self, k: int) -> Work:
        k = V.integer("k", k, lo=0)
        return Work(self.grads * k, self.hvps * k, self.hessians * k, self.paired * k)

    __rmul__ = __mul__

    def cost(self, dim: int) -> int:
        r"""Arithmetic cost in multiply-adds, to leading order: :math:`d(\text{grads}+\text{hvps}) + d^2\,\text{hessians}`."""
        dim = V.integer("dim", dim)
        return dim * (self.grads + self.hvps) + dim * dim * self.hessians

    def reads(self) -> int:
        """Data points read, each once per evaluation except a pair's: ``grads + hvps + hessians - paired``.

        The count that predicts time when reading the data dominates (an HVP reads its point
        once for :math:`x^\top w` and :math:`x^\top v`, like a fused pair).
        """
        return self.grads + self.hvps + self.hessians - self.paired


@dataclass(frozen=True)
class Direction:
    """The result of :func:`direction`.

    Attributes
    ----------
    u : ndarray, shape (R, d) or (d,)
        The direction of each run (shape (d,) when a single point was given).
    work : Work
        Work of one run for this direction.
    delta : ndarray or None
        HF-MAML's perturbations :math:`\\delta_i`, shape (R, B); ``None`` for the other methods.
    """

    u: np.ndarray
    work: Work
    delta: np.ndarray | None = None


@dataclass(frozen=True)
class Moments:
    """Monte Carlo moments of a direction at one point (:func:`direction_moments`).

    Attributes
    ----------
    mean : ndarray, shape (d,)
        Mean direction over the draws.
    bias : ndarray, shape (d,)
        ``mean - grad F(w)`` with the exact meta-gradient.
    bias_se : ndarray, shape (d,)
        Standard error of each coordinate of ``bias``.
    variance : float
        :math:`E\\|u - E u\\|^2` (unbiased sample estimate).
    n_draws : int
    """

    mean: np.ndarray
    bias: np.ndarray
    bias_se: np.ndarray
    variance: float
    n_draws: int


# --------------------------------------------------------------------------- validation
def _batch(name: str, value: object) -> int | None:
    return None if value is None else V.integer(name, value)


def _check_delta(delta: object) -> object:
    """Validate HF-MAML's ``delta``: ``"theorem"``, a float > 0, or a callable."""
    if isinstance(delta, str):
        if delta != "theorem":
            raise ValueError(
                f"delta must be 'theorem', a finite number > 0 or a callable; got {delta!r}"
            )
        return delta
    if callable(delta):
        return delta
    return V.real("delta", delta, lo=0.0, lo_open=True)


@dataclass(frozen=True)
class DirectionConfig:
    r"""The validated options of one direction (:func:`direction`), built by :meth:`build`.

    Attributes
    ----------
    method : str
        ``"maml"``, ``"fomaml"`` or ``"hfmaml"`` (:data:`hfmaml_core.methods.NAMES`).
    alpha : float
        The inner step :math:`\alpha` of :math:`\hat w_i = w - \alpha\tilde\nabla f_i(w, D_{in}^i)`.
    batch_tasks, d_in, d_o, d_h : int or None
        :math:`B`, :math:`|D_{in}|`, :math:`|D_o|`, :math:`|D_h|` (``None``: every task / point;
        ``d_h`` is ``None`` when unused).
    delta : "theorem", float, callable or None
        HF-MAML's rule (:func:`hfmaml_core.hvp.hf_deltas`); ``None`` for the other methods.
    hessian_batch : {"independent", "inner"}
    hessian : {"matrix", "hvp"}
    oracle : {"fused", "two-calls"}
        HF-MAML's two perturbed gradients in one pass or two gradient calls
        (:data:`hfmaml_core.engine.ORACLES`).
    """

    method: str
    alpha: float
    batch_tasks: int | None
    d_in: int | None
    d_o: int | None
    d_h: int | None = None
    delta: object = None
    hessian_batch: str = "independent"
    hessian: str = "matrix"
    oracle: str = "fused"

    @classmethod
    def build(
        cls,
        family: object,
        alpha: object,
        method: object,
        batch_tasks: object,
        d_in: object,
        d_o: object,
        d_h: object = UNSET,
        delta: object = "theorem",
        hessian_batch: object = "independent",
        hessian: object = "matrix",
        oracle: object = "fused",
    ) -> DirectionConfig:
        """Validate every option against ``family`` (the one place); ``ValueError`` names the bad one."""
        if not isinstance(family, TaskFamily):
            raise ValueError(f"family must be a TaskFamily; got {type(family).__name__}")
        method = V.choice("method", method, METHODS)
        a = V.real("alpha", alpha, lo=0.0)
        hb = V.choice("hessian_batch", hessian_batch, HESSIAN_BATCHES)
        hm = V.choice("hessian", hessian, HESSIAN_MODES)
        orc = V.choice("oracle", oracle, ORACLES)
        dh, rule = None, None
        if method != "fomaml" and hb == "independent":
            if d_h is UNSET:
                raise ValueError(
                    f"d_h must be given for method {method!r} with hessian_batch='independent' "
                    "(an integer >= 1, or None for the whole data set)"
                )
            dh = _batch("d_h", d_h)
        if method == "hfmaml":
            rule = _check_delta(delta)
            if isinstance(rule, str):
                if family.rho <= 0:
                    raise ValueError(
                        "delta='theorem' (1/(6 rho alpha |g_i|), THEORY T3) needs rho > 0; this "
                        "family has rho = 0, where the central difference is exact for every "
                        "delta: pass a fixed delta > 0"
                    )
                if a <= 0:
                    raise ValueError(
                        "alpha must be > 0 with delta='theorem' (1/(6 rho alpha |g_i|)); got 0"
                    )
        return cls(
            method=method,
            alpha=a,
            batch_tasks=_batch("batch_tasks", batch_tasks),
            d_in=_batch("d_in", d_in),
            d_o=_batch("d_o", d_o),
            d_h=dh,
            delta=rule,
            hessian_batch=hb,
            hessian=hm,
            oracle=orc,
        )


def _as_points(family: TaskFamily, W: object) -> tuple[np.ndarray, bool]:
    Wa = np.asarray(W)
    single = Wa.ndim == 1
    Wa = V.array("W", Wa[None] if single else Wa, shape=(None, family.dim))
    return Wa, single


# --------------------------------------------------------------------------- the draws
def _sample(
    family: TaskFamily, rng: np.random.Generator, R: int, cfg: DirectionConfig
) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """Task indices, their weights and the data batches, in a fixed draw order."""
    B = cfg.batch_tasks
    if B is None:
        m = family.n_tasks
        T = np.tile(np.arange(m), R)
        weights = family.probs
        B = m
    else:
        T = rng.choice(family.n_tasks, size=R * B, p=family.probs)
        weights = np.full(B, 1.0 / B)
    idx = {}
    for key in ("d_in", "d_o", "d_h"):
        D = getattr(cfg, key)
        idx[key] = None if D is None else rng.integers(0, family.n_points, size=(R * B, D))
    return T, weights, B, idx


def _points(D: int | None, family: TaskFamily) -> int:
    return family.n_points if D is None else D


def _outer(
    family: TaskFamily, W: np.ndarray, rng: np.random.Generator, cfg: DirectionConfig
) -> tuple[FamilyKernels, np.ndarray, np.ndarray, int, dict, np.ndarray]:
    """The draws and the outer gradients ``g_i`` of every (run, task) row (:mod:`~hfmaml_core.engine`).

    Shared by :func:`direction` and :func:`hessian_term_error`, so both draw through the
    same code: tasks, then ``D_in``, ``D_o``, ``D_h`` (:func:`_sample`), then
    :func:`hfmaml_core.engine.outer_gradients`. Returns ``(kern, Wr, weights, B, idx, G)``
    with ``Wr`` the point of each row.
    """
    R, d = W.shape
    T, weights, B, idx = _sample(family, rng, R, cfg)
    kern = FamilyKernels(family, T)
    Wr = np.broadcast_to(W[:, None], (R, B, d)).reshape(R * B, d)  # a view when R = 1
    G = engine.outer_gradients(kern, Wr, cfg.alpha, idx["d_in"], idx["d_o"]).G
    return kern, Wr, weights, B, idx, G


def draw_direction(
    family: TaskFamily, W: np.ndarray, rng: np.random.Generator, cfg: DirectionConfig
) -> Direction:
    """Unchecked :func:`direction` for a validated ``cfg`` and ``W`` of shape (R, d).

    The runner calls it every iteration: draws (:func:`_sample`), the engine's rows
    (:func:`hfmaml_core.engine.task_directions`), their weighted mean and the work.
    """
    R, d = W.shape
    kern, Wr, weights, B, idx, G = _outer(family, W, rng, cfg)
    n_in, n_o = _points(cfg.d_in, family), _points(cfg.d_o, family)
    work = Work(grads=B * (n_in + n_o))
    inner = cfg.hessian_batch == "inner"
    idx_h = idx["d_in"] if inner else idx["d_h"]
    n_h = n_in if inner else _points(cfg.d_h, family)
    U, deltas = engine.task_directions(
        kern,
        Wr,
        G,
        cfg.alpha,
        cfg.method,
        idx_h,
        hessian=cfg.hessian,
        delta=cfg.delta,
        rho=family.rho,
        oracle=cfg.oracle,
    )
    if cfg.method == "maml":
        work = work + (Work(hessians=B * n_h) if cfg.hessian == "matrix" else Work(hvps=B * n_h))
    elif cfg.method == "hfmaml":
        pairs = B * n_h if cfg.oracle == "fused" else 0  # one read of each point for both
        work = work + Work(grads=2 * B * n_h, paired=pairs)
        deltas = deltas.reshape(R, B)
    u = np.einsum("rbd,b->rd", U.reshape(R, B, d), weights)
    return Direction(u=u, work=work, delta=deltas)


# --------------------------------------------------------------------------- public API
def direction(
    family: TaskFamily,
    W: object,
    alpha: float,
    method: str,
    rng: np.random.Generator,
    *,
    batch_tasks: int | None,
    d_in: int | None,
    d_o: int | None,
    d_h: object = UNSET,
    delta: float | str | Callable[[np.ndarray], np.ndarray] = "theorem",
    hessian_batch: str = "independent",
    hessian: str = "matrix",
    oracle: str = "fused",
) -> Direction:
    r"""One iteration's stochastic meta-gradient direction of MAML, FO-MAML or HF-MAML.

    .. math::
        u = \frac1B\sum_{i\in\mathcal B} u_i, \qquad
        u_i = \begin{cases}
          (I - \alpha\tilde\nabla^2 f_i(w, D_h^i))\,g_i & \text{MAML (T1)}\\
          g_i & \text{FO-MAML (T2)}\\
          g_i - \alpha\,[\tilde\nabla f_i(w+\delta_i g_i, D_h^i)
               - \tilde\nabla f_i(w-\delta_i g_i, D_h^i)]/(2\delta_i) & \text{HF-MAML (T3)}
        \end{cases}

    with :math:`g_i = \tilde\nabla f_i(w - \alpha\tilde\nabla f_i(w, D_{in}^i), D_o^i)`
    (THEORY "Algorithms"). Vectorised over the tasks of the batch and over the ``R`` rows of
    ``W`` (independent runs: each row gets its own task and data batches).

    Parameters
    ----------
    family : TaskFamily
    W : array, shape (R, d) or (d,)
        The current point of each run.
    alpha : float
        Inner step size, ``alpha >= 0``.
    method : {"maml", "fomaml", "hfmaml"}
    rng : numpy.random.Generator
        Source of every draw, in this order: the ``R * B`` tasks (from ``family.probs``), then
        the index arrays of ``D_in``, ``D_o``, ``D_h`` (each ``(R * B, D)``, with replacement).
    batch_tasks : int or None
        ``B >= 1``; ``None``: every task, weighted by ``family.probs`` (no sampling).
    d_in, d_o : int or None
        Sizes of :math:`D_{in}` and :math:`D_o` (``>= 1``); ``None``: the whole data set.
    d_h : int or None
        Size of :math:`D_h`, required for MAML and HF-MAML with
        ``hessian_batch="independent"``; ignored otherwise.
    delta : "theorem", float or callable
        HF-MAML's perturbation: ``"theorem"`` is
        :math:`\delta_i = 1/(6\rho\alpha\|g_i\|)` (THEORY T3, needs ``rho > 0``); a float
        ``> 0`` is used for every task; a callable gets the array of :math:`\|g_i\|` (one per
        (run, task) row) and returns the :math:`\delta_i` (finite, > 0).
    hessian_batch : {"independent", "inner"}
        Evaluate the Hessian term on an independent :math:`D_h` (the theory) or on
        :math:`D_{in}` (what autodiff through the inner step computes).
    hessian : {"matrix", "hvp"}
        MAML only: form the mini-batch Hessians (the theory's :math:`O(d^2)` cost, counted in
        ``Work.hessians``) or apply them as exact Hessian-vector products (``Work.hvps``).
        Both give the same direction up to rounding.
    oracle : {"fused", "two-calls"}
        HF-MAML only: its two perturbed gradients on :math:`D_h^i` in one pass over the data
        (``"fused"``, the kernel's ``central_difference_kernel``; ``Work.paired`` counts the
        shared reads) or by two separate gradient calls (``"two-calls"``, what a black-box
        gradient oracle allows: every point of :math:`D_h^i` read twice). The same direction
        up to rounding.

    Returns
    -------
    Direction
        ``u`` (shape (R, d), or (d,) for a 1-D ``W``), the ``Work`` of one run and, for HF-MAML,
        the perturbations used.

    Raises
    ------
    ValueError
        On a bad argument (named, with its allowed range), before any draw is made.
    """
    cfg = DirectionConfig.build(
        family, alpha, method, batch_tasks, d_in, d_o, d_h, delta, hessian_batch, hessian, oracle
    )
    Wa, single = _as_points(family, W)
    V.generator(rng)
    out = draw_direction(family, Wa, rng, cfg)
    if single:
        delta_out = None if out.delta is None else out.delta[0]
        return Direction(u=out.u[0], work=out.work, delta=delta_out)
    return out


def direction_moments(
    family: TaskFamily,
    w: object,
    alpha: float,
    method: str,
    rng: np.random.Generator,
    n_draws: int,
    **batches: object,
) -> Moments:
    r"""Monte Carlo mean, bias and variance of a direction at one point ``w``.

    .. math::
        \text{bias} = \overline{u} - \nabla F(w), \qquad
        \text{variance} = \frac{1}{N-1}\sum_{k=1}^N \|u_k - \overline u\|^2,

    with ``N = n_draws`` independent draws of :func:`direction` at ``w`` (vectorised, in
    chunks that bound memory) and the exact :math:`\nabla F(w)` of
    :func:`hfmaml_core.meta.family_gradient`. ``batches`` are :func:`direction`'s keyword
    arguments (``batch_tasks``, ``d_in``, ``d_o``, ``d_h``, ``delta``, ``hessian_batch``,
    ``hessian``, ``oracle``).
    """
    wa = V.array("w", w, shape=(family.dim,))
    n = V.integer("n_draws", n_draws, lo=2)
    keys = {"batch_tasks", "d_in", "d_o", "d_h", "delta", "hessian_batch", "hessian", "oracle"}
    unknown = sorted(set(batches) - keys)
    if unknown:
        raise ValueError(f"unknown keyword arguments {unknown}; allowed: {sorted(keys)}")
    args = {"d_h": UNSET, "delta": "theorem", "hessian_batch": "independent", "hessian": "matrix"}
    args.update(batches)
    for key in ("batch_tasks", "d_in", "d_o"):
        if key not in args:
            raise ValueError(f"{key} must be given (an integer >= 1 or None)")
    cfg = DirectionConfig.build(family, alpha, method, **args)  # the keys are its parameters
    V.generator(rng)
    per_run = family.n_tasks if cfg.batch_tasks is None else cfg.batch_tasks
    chunk = max(1, _CHUNK_ROWS // per_run)
    mean = np.zeros(family.dim)
    m2 = np.zeros(family.dim)  # sum of squared deviations, merged chunk by chunk (Chan et al.)
    seen = 0
    for start in range(0, n, chunk):  # chunks of draws bound memory; each chunk is vectorised
        k = min(chunk, n - start)
        U = draw_direction(family, np.broadcast_to(wa, (k, family.dim)), rng, cfg).u
        mu = U.mean(axis=0)
        diff = mu - mean
        m2 += ((U - mu) ** 2).sum(axis=0) + diff * diff * seen * k / (seen + k)
        mean += diff * k / (seen + k)
        seen += k
    var_coord = m2 / (n - 1)
    bias = mean - family_gradient(family, wa, cfg.alpha)
    return Moments(
        mean=mean,
        bias=bias,
        bias_se=np.sqrt(var_coord / n),
        variance=float(var_coord.sum()),
        n_draws=n,
    )


def hessian_term_error(
    family: TaskFamily,
    W: object,
    alpha: float,
    rng: np.random.Generator,
    *,
    batch_tasks: int | None,
    d_in: int | None,
    d_o: int | None,
    d_h: int | None,
    delta: float | str | Callable[[np.ndarray], np.ndarray] = "theorem",
) -> np.ndarray:
    r"""HF-MAML's error in each task's Hessian term, relative to :math:`\|g_i\|` (THEORY T3, H1).

    .. math::
        r_i = \frac{\alpha\,\bigl\|d_i - \tilde\nabla^2 f_i(w, D_h^i)\,g_i\bigr\|}{\|g_i\|},
        \qquad
        d_i = \frac{\tilde\nabla f_i(w+\delta_i g_i, D_h^i) - \tilde\nabla f_i(w-\delta_i g_i, D_h^i)}
                   {2\delta_i},

    with the tasks, batches, :math:`g_i` and :math:`\delta_i` drawn and computed by the same
    helpers as :func:`direction` with ``method="hfmaml"`` (so the same ``rng`` state gives the
    same draws and the same :math:`d_i`), and the exact mini-batch Hessian-vector product on
    the *same* batch :math:`D_h^i`. The default ``delta="theorem"`` is
    :math:`\delta_i = 1/(6\rho\alpha\|g_i\|)` with :math:`\rho` the *family's* constant
    (``family.rho``, THEORY A3: every task's population Hessian is :math:`\rho`-Lipschitz).
    H1 then gives T3's :math:`r_i \le \rho\alpha\delta_i\|g_i\| = 1/6` (``1/12`` with H1's sharp
    constant ``1/2``) for the population Hessian (``d_h=None``); for a mini-batch
    :math:`D_h^i` it would need the batch loss :math:`\tilde f_i(\cdot, D_h^i)` to have a
    :math:`\rho`-Lipschitz Hessian, which A3 does not give. Vectorised over the rows of
    ``W`` and the tasks of each batch.

    Parameters
    ----------
    family, W, alpha, rng, batch_tasks, d_in, d_o, d_h, delta
        As in :func:`direction` (``d_h`` required; ``None`` is the population Hessian).

    Returns
    -------
    ndarray, shape (R, B)
        :math:`r_i` for each row of ``W`` and each task drawn (``nan`` where :math:`g_i = 0`).
    """
    cfg = DirectionConfig.build(
        family, alpha, "hfmaml", batch_tasks, d_in, d_o, d_h, delta, "independent", "matrix"
    )
    Wa, _ = _as_points(family, W)
    V.generator(rng)
    R = Wa.shape[0]
    kern, Wr, _, B, idx, G = _outer(family, Wa, rng, cfg)  # the draws of direction()
    hf = engine.hf_term(kern, Wr, G, idx["d_h"], delta=cfg.delta, rho=family.rho, alpha=cfg.alpha)
    err, norms = hf.D, hf.norms
    err -= kern.hvp(Wr, G, idx["d_h"])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = cfg.alpha * np.sqrt(np.einsum("bd,bd->b", err, err)) / norms
    return np.where(norms > 0, out, np.nan).reshape(R, B)
