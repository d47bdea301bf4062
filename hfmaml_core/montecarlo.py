r"""Monte Carlo estimates with standard errors, and the rule that turns them into claims.

The lemmas of THEORY L2, L3 and L4 bound *expectations* over random batches. We
estimate each expectation by an average over ``N`` independent draws and attach a
standard error (s.e.); a claim about a bound then uses the **decision rule**

.. math::
    \text{an upper bound } b \text{ holds when } b - \hat\mu > k\,\mathrm{se}(\hat\mu),
    \qquad
    \text{a lower bound } b \text{ holds when } \hat\mu - b > k\,\mathrm{se}(\hat\mu),

with :math:`k` = :data:`RULE_K` = 3 by default: the bound must clear the estimate by
more than three standard errors (a Gaussian error of that size has probability
about 0.13 %). :func:`claim_kwargs` writes the rule into the arguments of
:meth:`hfmaml_core.claims.ClaimRecorder.check`, and :func:`control_kwargs` writes the
*same* rule into the claim's ``control`` (the measurement on a case where the
statement should be false), so a control fails exactly when the rule says its
estimate does not clear the bound.

Estimators (all vectorised over draws; draws are processed in chunks to bound memory):

* :func:`step_moments` -- :math:`L(w)\,E[1/\tilde L(w)]` and :math:`L(w)^2 E[1/\tilde L(w)^2]`
  (THEORY L2), from :func:`hfmaml_core.stepsize.lipschitz_estimate` and
  :func:`hfmaml_core.meta.smoothness_bound`.
* :func:`adapted_gradients`, :func:`l3_bias`, :func:`l3_second_moment` -- the adapted gradient
  :math:`\tilde\nabla f_i(w - \alpha\tilde\nabla f_i(w, D_{in}), D_o)`, its bias
  :math:`\|e_i\|` (optionally with a control variate) and its second moment (THEORY L3).
* :func:`empirical_meta_gradients`, :func:`l4_gap` -- draws of the gradient of the
  empirical objective :math:`\hat F` and :math:`\|\nabla\hat F(w) - \nabla F(w)\|` (THEORY L4).

:class:`~hfmaml_core.counterexamples.KinkFamily` (importable from here) is a task family that satisfies A2 but **violates A3** (its Hessian
jumps): run through :func:`l3_bias` at its kink it has a bias of first order in
:math:`1/\sqrt{D_{in}}`, the control case for a claim that the bias decays like
:math:`1/D_{in}` under A3.

For the norm of a vector mean :math:`\hat e` the reported s.e. is
:math:`\sqrt{\operatorname{tr}\widehat{\mathrm{Cov}}/N}`, the root-mean-square of
:math:`\|\hat e - e\|`. Since :math:`|\|\hat e\| - \|e\|| \le \|\hat e - e\|` it is a
conservative s.e. for :math:`\|\hat e\|`, valid even when :math:`e = 0`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import _validate as V
from . import meta, stepsize
from .counterexamples import KinkFamily
from .tasks import TaskFamily

__all__ = [
    "RULE_K",
    "Estimate",
    "KinkFamily",
    "adapted_gradients",
    "claim_kwargs",
    "control_kwargs",
    "empirical_meta_gradients",
    "holds",
    "l3_bias",
    "l3_second_moment",
    "l4_gap",
    "loglog_slope",
    "mean",
    "norm_of_mean",
    "step_moments",
]

#: Number of standard errors by which a bound must clear an estimate (the decision rule).
RULE_K: float = 3.0

_CHUNK_ELEMENTS = 1 << 22  # (draw, data point) pairs per vectorised call: bounds memory

_UPPER = ("<=", "<")
_LOWER = (">=", ">")


class Estimate(NamedTuple):
    """A Monte Carlo estimate ``value`` with its standard error ``se``."""

    value: float
    se: float


# ----------------------------------------------------------------- generic tools
def mean(draws: object) -> Estimate:
    r"""Sample mean of scalar draws and its standard error.

    .. math:: \hat\mu = \frac1N\sum_k x_k, \qquad
              \mathrm{se} = \sqrt{\frac{1}{N(N-1)}\sum_k (x_k - \hat\mu)^2}.

    Parameters
    ----------
    draws : array, shape (N,), N >= 2
    """
    x = V.array("draws", draws, shape=(None,))
    if x.size < 2:
        raise ValueError(f"draws must hold at least 2 values for a standard error; got {x.size}")
    return Estimate(float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size)))


def norm_of_mean(draws: object, center: object) -> Estimate:
    r"""Norm of the mean of vector draws minus ``center``, with a conservative s.e.

    .. math:: \|\hat e\| = \Bigl\|\frac1N\sum_k x_k - c\Bigr\|, \qquad
              \mathrm{se} = \sqrt{\operatorname{tr}\widehat{\mathrm{Cov}}(x)/N},

    where :math:`\mathrm{se}^2` estimates :math:`E\|\hat e - e\|^2`, :math:`e = E x - c`.

    Parameters
    ----------
    draws : array, shape (N, d), N >= 2
    center : array, shape (d,)
    """
    X = V.array("draws", draws, shape=(None, None))
    if X.shape[0] < 2:
        raise ValueError(f"draws must hold at least 2 rows for a standard error; got {X.shape[0]}")
    c = V.array("center", center, shape=(X.shape[1],))
    m = X.mean(axis=0)
    trace = float(np.sum(X.var(axis=0, ddof=1)))
    return Estimate(float(np.linalg.norm(m - c)), math.sqrt(trace / X.shape[0]))


def holds(estimate: Estimate, bound: float, relation: str, k: float = RULE_K) -> bool:
    r"""The decision rule: does ``estimate`` satisfy ``relation`` with ``bound`` by > ``k`` s.e.?

    ``"<="`` and ``"<"`` (an upper bound) hold when
    :math:`b - \hat\mu > k\,\mathrm{se}`; ``">="`` and ``">"`` (a lower bound) when
    :math:`\hat\mu - b > k\,\mathrm{se}`.
    """
    value, se, b, rel, k = _rule_args(estimate, bound, relation, k)
    return b - value > k * se if rel in _UPPER else value - b > k * se


def claim_kwargs(
    estimate: Estimate,
    bound: float,
    relation: str,
    k: float = RULE_K,
    details: dict | None = None,
) -> dict[str, object]:
    r"""Keyword arguments for ``ClaimRecorder.check`` that apply the decision rule.

    The recorded ``measured`` is the confidence limit on the side that matters,
    :math:`\hat\mu + k\,\mathrm{se}` for an upper bound and :math:`\hat\mu - k\,\mathrm{se}`
    for a lower one, compared strictly (``"<"`` / ``">"``) with ``bound``; so the
    claim holds exactly when :func:`holds` says so. ``uncertainty`` is the s.e.
    and ``details`` keep the raw estimate, the s.e. and ``k`` (plus any ``details``
    passed in).

    Examples
    --------
    >>> claim_kwargs(Estimate(0.5, 0.125), 1.0, "<=")["measured"]
    0.875
    """
    value, se, b, rel, k = _rule_args(estimate, bound, relation, k)
    if details is not None and not isinstance(details, dict):
        raise ValueError(f"details must be a dict or None; got {type(details).__name__}")
    upper = rel in _UPPER
    return {
        "measured": value + k * se if upper else value - k * se,
        "relation": "<" if upper else ">",
        "bound": b,
        "uncertainty": se,
        "details": {**(details or {}), "estimate": value, "se": se, "k": k},
    }


def control_kwargs(
    estimate: Estimate,
    statement: str,
    *,
    relation: str,
    bound: float | None = None,
    k: float = RULE_K,
) -> dict[str, object]:
    r"""The ``control`` mapping of ``ClaimRecorder.check`` under the same decision rule.

    A claim recorded with :func:`claim_kwargs` compares a confidence limit strictly
    with its bound; its control must be judged by the *same* rule. With the claim's
    ``relation`` (as passed to :func:`claim_kwargs`: ``"<="``/``"<"`` for an upper
    bound, ``">="``/``">"`` for a lower one), the control records the confidence limit
    on the same side, :math:`\hat\mu + k\,\mathrm{se}` (upper) or
    :math:`\hat\mu - k\,\mathrm{se}` (lower), with the strict relation, so
    ``control.holds`` equals ``holds(estimate, bound, relation, k)``; the control
    *fails* (discriminates) exactly when the estimate does not clear the bound by more
    than ``k`` s.e. ``bound=None`` leaves the claim's bound in force.

    Parameters
    ----------
    estimate : Estimate
        The control's estimate (the claim's measurement on the case where it should fail).
    statement : str
        What the control is, in one sentence.
    relation : str
        The claim's relation, one of ``"<=", "<", ">=", ">"``.
    bound : float, optional
        The control's bound, if different from the claim's.
    k : float
        Number of standard errors, ``>= 0`` (default :data:`RULE_K`).

    Examples
    --------
    >>> control_kwargs(Estimate(0.78, 0.001), "D below threshold", relation=">=", bound=0.8)
    ... # doctest: +NORMALIZE_WHITESPACE
    {'statement': 'D below threshold', 'measured': 0.777, 'relation': '>', 'uncertainty': 0.001,
     'bound': 0.8}
    """
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError("statement must be a non-empty sentence describing the control")
    b = 0.0 if bound is None else bound
    value, se, b, rel, k = _rule_args(estimate, b, relation, k)
    upper = rel in _UPPER
    out: dict[str, object] = {
        "statement": statement,
        "measured": value + k * se if upper else value - k * se,
        "relation": "<" if upper else ">",
        "uncertainty": se,
    }
    if bound is not None:
        out["bound"] = b
    return out


def _rule_args(
    estimate: object, bound: object, relation: object, k: object
) -> tuple[float, float, float, str, float]:
    if not isinstance(estimate, tuple) or len(estimate) != 2:
        raise ValueError(f"estimate must be an Estimate(value, se); got {estimate!r}")
    value = V.real("estimate.value", estimate[0])
    se = V.real("estimate.se", estimate[1], lo=0.0)
    b = V.real("bound", bound)
    rel = V.choice("relation", relation, _UPPER + _LOWER)
    return value, se, b, rel, V.real("k", k, lo=0.0)


def loglog_slope(x: Sequence[float], estimates: Sequence[Estimate]) -> Estimate:
    r"""Weighted least-squares slope of :math:`\log y` against :math:`\log x`, with its s.e.

    Each point has :math:`y_j` = ``estimates[j].value`` > 0 and, by the delta method,
    :math:`\mathrm{se}(\log y_j) = \mathrm{se}_j / y_j`; weights
    :math:`w_j = 1/\mathrm{se}(\log y_j)^2`. With :math:`u_j = \log x_j`,

    .. math:: \hat p = \frac{\sum_j w_j (u_j - \bar u)\log y_j}{\sum_j w_j (u_j - \bar u)^2},
              \qquad \mathrm{se}(\hat p) = \Bigl(\sum_j w_j (u_j - \bar u)^2\Bigr)^{-1/2},

    :math:`\bar u = \sum_j w_j u_j / \sum_j w_j`. Used to compare the measured rate of
    a bias with a bound's rate (e.g. :math:`-1/2` in THEORY L3).
    """
    xs = V.array("x", x, shape=(None,))
    if xs.size < 2 or np.any(xs <= 0) or np.unique(xs).size < 2:
        raise ValueError("x must hold at least 2 distinct positive values")
    if len(estimates) != xs.size:
        raise ValueError(
            f"estimates must have one Estimate per x ({xs.size}); got {len(estimates)}"
        )
    ys = np.array([V.real("estimates.value", e[0], lo=0.0, lo_open=True) for e in estimates])
    ses = np.array([V.real("estimates.se", e[1], lo=0.0, lo_open=True) for e in estimates])
    u, v, w = np.log(xs), np.log(ys), (ys / ses) ** 2
    ubar = float(w @ u / w.sum())
    sxx = float(w @ (u - ubar) ** 2)
    return Estimate(float(w @ ((u - ubar) * v) / sxx), 1.0 / math.sqrt(sxx))


# ------------------------------------------------------------------------- THEORY L2
def step_moments(
    family: TaskFamily,
    w: object,
    alpha: float,
    rng: np.random.Generator,
    batch_tasks: int,
    batch_points: int,
    n_draws: int,
) -> tuple[Estimate, Estimate]:
    r"""Scaled moments of the random step size of THEORY L2, with standard errors.

    .. math:: \Bigl(L(w)\,E\Bigl[\frac{1}{\tilde L(w)}\Bigr],\;
              L(w)^2\,E\Bigl[\frac{1}{\tilde L(w)^2}\Bigr]\Bigr),

    :math:`L(w) = 4L + 2\rho\alpha E_i\|\nabla f_i(w)\|` exact
    (:func:`~hfmaml_core.meta.smoothness_bound`) and ``n_draws`` independent draws of
    :math:`\tilde L(w)` with :math:`B'` = ``batch_tasks`` and :math:`D_\beta` =
    ``batch_points`` (:func:`~hfmaml_core.stepsize.lipschitz_estimate`). THEORY L2
    claims the first is :math:`\ge 0.8` and the second :math:`\le 3.125` above the
    batch thresholds (:func:`~hfmaml_core.stepsize.l2_thresholds`).
    """
    wa = V.array("w", w, shape=(family.dim,))
    a = V.real("alpha", alpha, lo=0.0, hi=1.0 / family.L if family.L > 0 else None)
    V.generator(rng)
    V.integer("batch_tasks", batch_tasks)
    V.integer("batch_points", batch_points)
    n = V.integer("n_draws", n_draws, lo=2)
    Lw = meta.smoothness_bound(family, wa, a)
    r = Lw / stepsize.lipschitz_estimate(family, wa, a, rng, batch_tasks, batch_points, n)
    return mean(r), mean(r * r)


# ------------------------------------------------------------------------- THEORY L3
def _check_common(
    family: TaskFamily, w: object, alpha: object, rng: object, n_draws: object
) -> tuple[np.ndarray, float, int]:
    if not isinstance(family, TaskFamily):
        raise ValueError(f"family must be a TaskFamily; got {type(family).__name__}")
    wa = V.array("w", w, shape=(family.dim,))
    a = V.real("alpha", alpha, lo=0.0, hi=1.0 / family.L if family.L > 0 else None)
    V.generator(rng)
    return wa, a, V.integer("n_draws", n_draws, lo=2)


def adapted_gradients(
    family: TaskFamily,
    w: object,
    task: int,
    alpha: float,
    rng: np.random.Generator,
    n_draws: int,
    d_in: int,
    d_out: int | None = None,
) -> np.ndarray:
    r"""Draws of the adapted gradient of THEORY L3, shape ``(n_draws, d)``.

    .. math:: g = \tilde\nabla f_i\bigl(\hat w, D_o\bigr), \qquad
              \hat w = w - \alpha\tilde\nabla f_i(w, D_{in}),

    with independent batches of ``d_in`` and ``d_out`` points drawn with replacement.
    ``d_out=None`` returns the conditional mean over :math:`D_o`,
    :math:`E[g \mid D_{in}] = \nabla f_i(\hat w)` (exact: an unbiased draw of
    :math:`E g` with less variance).

    Parameters
    ----------
    family : TaskFamily
    w : array, shape (d,)
    task : int
        Task index ``i`` in ``[0, m-1]``.
    alpha : float
        ``0 <= alpha <= 1/L`` (THEORY L3's range).
    rng : numpy.random.Generator
    n_draws : int
        ``>= 2``.
    d_in : int
        :math:`D_{in} \ge 1`.
    d_out : int or None
        :math:`D_o \ge 1`, or ``None`` for the exact outer gradient.
    """
    wa, a, n = _check_common(family, w, alpha, rng, n_draws)
    t = V.integer("task", task, lo=0, hi=family.n_tasks - 1)
    di = V.integer("d_in", d_in)
    do = None if d_out is None else V.integer("d_out", d_out)
    return _adapted(family, wa, t, a, rng, n, di, do)[1]


def _adapted(
    family: TaskFamily,
    wa: np.ndarray,
    t: int,
    a: float,
    rng: np.random.Generator,
    n: int,
    di: int,
    do: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validated core of :func:`adapted_gradients`: (inner batch gradients, adapted gradients)."""
    inner = np.empty((n, family.dim))
    out = np.empty((n, family.dim))
    width = di + (family.n_points if do is None else do)
    per = max(1, _CHUNK_ELEMENTS // (width * family.dim))
    for start in range(0, n, per):  # loop over chunks of draws; each chunk is vectorised
        k = min(per, n - start)
        T = np.full(k, t)
        G = family.grad_kernel(
            np.broadcast_to(wa, (k, family.dim)), T, family.sample_points(rng, k, di)
        )
        idx_o = None if do is None else family.sample_points(rng, k, do)
        inner[start : start + k] = G
        out[start : start + k] = family.grad_kernel(wa - a * G, T, idx_o)
    return inner, out


def l3_bias(
    family: TaskFamily,
    w: object,
    task: int,
    alpha: float,
    rng: np.random.Generator,
    n_draws: int,
    d_in: int,
    linear_control: bool = False,
) -> Estimate:
    r"""Estimate of :math:`\|e_i\|`, the bias of the adapted gradient (THEORY L3).

    .. math:: e_i = E\bigl[\tilde\nabla f_i(w - \alpha\tilde\nabla f_i(w, D_{in}), D_o)\bigr]
                    - \nabla f_i\bigl(w - \alpha\nabla f_i(w)\bigr),

    from :func:`adapted_gradients` with the exact conditional mean over :math:`D_o`
    (the bias does not depend on :math:`D_o`). The s.e. is that of
    :func:`norm_of_mean`. THEORY L3 claims :math:`\|e_i\| \le \alpha L\tilde\sigma/\sqrt{D_{in}}`.

    With ``linear_control=True`` each draw :math:`\nabla f_i(u - \alpha\varepsilon)` gets the
    control variate :math:`+\alpha\nabla^2 f_i(u)\,\varepsilon`, where
    :math:`u = w - \alpha\nabla f_i(w)` and
    :math:`\varepsilon = \tilde\nabla f_i(w, D_{in}) - \nabla f_i(w)` is the draw's batch noise.
    Since :math:`E\varepsilon = 0` exactly the estimated mean is unchanged, but the term
    linear in :math:`\varepsilon`, which carries almost all the variance and none of the
    bias, is removed: the s.e. drops from order :math:`\alpha L\tilde\sigma/\sqrt{N D_{in}}`
    to order :math:`\rho\alpha^2\tilde\sigma^2/(\sqrt N D_{in})`, which resolves the
    bias at large :math:`D_{in}`.
    """
    wa, a, n = _check_common(family, w, alpha, rng, n_draws)
    t = V.integer("task", task, lo=0, hi=family.n_tasks - 1)
    di = V.integer("d_in", d_in)
    if not isinstance(linear_control, bool):
        raise ValueError(f"linear_control must be True or False; got {linear_control!r}")
    inner, draws = _adapted(family, wa, t, a, rng, n, di, None)
    T = np.array([t])
    g = family.grad_kernel(wa[None], T, None)
    u = wa[None] - a * g
    target = family.grad_kernel(u, T, None)[0]
    if linear_control:
        eps = inner - g
        draws = draws + a * family.hvp_kernel(
            np.broadcast_to(u, eps.shape), eps, np.full(n, t), None
        )
    return norm_of_mean(draws, target)


def l3_second_moment(
    family: TaskFamily,
    w: object,
    task: int,
    alpha: float,
    rng: np.random.Generator,
    n_draws: int,
    d_in: int,
    d_out: int,
) -> Estimate:
    r"""Estimate of :math:`E\|\tilde\nabla f_i(w - \alpha\tilde\nabla f_i(w, D_{in}), D_o)\|^2`.

    THEORY L3 bounds it by
    :math:`(1 + 1/\phi)\|\nabla f_i(w - \alpha\nabla f_i(w))\|^2
    + (1 + \phi)\alpha^2L^2\tilde\sigma^2/D_{in} + \tilde\sigma^2/D_o` for every
    :math:`\phi > 0`. Both batches are sampled (``d_out`` is required).
    """
    if d_out is None:
        raise ValueError("d_out must be an integer >= 1 (the outer batch is sampled here)")
    draws = adapted_gradients(family, w, task, alpha, rng, n_draws, d_in, d_out)
    return mean(np.einsum("kd,kd->k", draws, draws))


# ------------------------------------------------------------------------- THEORY L4
def empirical_meta_gradients(
    family: TaskFamily,
    w: object,
    alpha: float,
    rng: np.random.Generator,
    n_draws: int,
    d_test: int,
    hessian: bool = True,
) -> np.ndarray:
    r"""Unbiased draws of :math:`\nabla\hat F(w)` (THEORY L4), shape ``(n_draws, d)``.

    .. math::
        \hat F(w) = E_i E_{D}\, f_i\bigl(w - \alpha\tilde\nabla f_i(w, D)\bigr),
        \qquad
        \nabla\hat F(w) = E_i E_D \bigl(I - \alpha\tilde\nabla^2 f_i(w, D)\bigr)
                          \nabla f_i\bigl(w - \alpha\tilde\nabla f_i(w, D)\bigr).

    Each draw averages over **all** tasks with their probabilities (the task
    expectation is exact) and draws one batch :math:`D` of ``d_test`` points per task;
    the mini-batch Hessian is applied as an exact Hessian-vector product on the same
    batch. Only :math:`D` is random.

    ``hessian=False`` drops the factor :math:`I - \alpha\tilde\nabla^2 f_i(w, D)` (the
    first-order, FO-MAML-style direction
    :math:`E_iE_D\nabla f_i(w - \alpha\tilde\nabla f_i(w, D))`): a deliberately wrong
    estimator of :math:`\nabla\hat F`, whose gap to :math:`\nabla F` does not vanish as
    :math:`D` grows (a control for :func:`l4_gap`).
    """
    wa, a, n = _check_common(family, w, alpha, rng, n_draws)
    D = V.integer("d_test", d_test)
    if not isinstance(hessian, bool):
        raise ValueError(f"hessian must be True or False; got {hessian!r}")
    m, d = family.n_tasks, family.dim
    out = np.empty((n, d))
    per = max(1, _CHUNK_ELEMENTS // (m * (2 * D + family.n_points) * d))
    for start in range(0, n, per):  # loop over chunks of draws; each chunk is vectorised
        k = min(per, n - start)
        T = np.tile(np.arange(m), k)
        W = np.broadcast_to(wa, (k * m, d))
        idx = family.sample_points(rng, k * m, D)
        g_out = family.grad_kernel(W - a * family.grad_kernel(W, T, idx), T, None)
        dirs = g_out - a * family.hvp_kernel(W, g_out, T, idx) if hessian else g_out
        out[start : start + k] = np.einsum("kmd,m->kd", dirs.reshape(k, m, d), family.probs)
    return out


def l4_gap(
    family: TaskFamily,
    w: object,
    alpha: float,
    rng: np.random.Generator,
    n_draws: int,
    d_test: int,
    hessian: bool = True,
) -> Estimate:
    r"""Estimate of :math:`\|\nabla\hat F(w) - \nabla F(w)\|` (THEORY L4), with s.e.

    :math:`\nabla F(w)` is exact (:func:`~hfmaml_core.meta.family_gradient`);
    :math:`\nabla\hat F(w)` is the mean of :func:`empirical_meta_gradients`. THEORY L4
    claims the gap is at most
    :math:`2\alpha L\tilde\sigma/\sqrt{D} + \alpha^2 L\sigma_H\tilde\sigma/D`.
    ``hessian=False`` measures the gap of the first-order direction instead (see
    :func:`empirical_meta_gradients`).
    """
    draws = empirical_meta_gradients(family, w, alpha, rng, n_draws, d_test, hessian)
    return norm_of_mean(draws, meta.family_gradient(family, np.asarray(w, dtype=float), alpha))
