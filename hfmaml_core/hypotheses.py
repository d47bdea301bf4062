r"""Hypotheses A2-A5 as suprema over a region, or in closed form (THEORY A2, A3, A4, A5).

THEORY's A4 and A5 are *global*: :math:`E_i\|\nabla f_i(w)-\nabla f(w)\|^2 \le \sigma^2`,
:math:`E_\theta\|\nabla f_i(w,\theta)-\nabla f_i(w)\|^2 \le \tilde\sigma^2` and
:math:`E_\theta\|\nabla^2 f_i(w,\theta)-\nabla^2 f_i(w)\|^2 \le \sigma_H^2` for **every**
``w``. A finite family gives these moments exactly *at* a point
(:meth:`~hfmaml_core.tasks.TaskFamily.sigma_sq`, ``sigma_tilde_sq``, ``sigma_h_sq``); this
module gives their suprema:

* **Quadratic tasks** (:class:`~hfmaml_core.tasks.QuadraticFamily`). Every gradient is affine
  in ``w``, so each moment is a quadratic form :math:`q(w) = w^\top M w + 2b^\top w + c`
  (:func:`variance_form`, :func:`quadratic_forms`, in :mod:`hfmaml_core.quadforms`) and its maximum over a ball
  :math:`\|w-w_0\|\le R` is a trust-region problem solved exactly by
  :func:`max_on_ball` (an eigen-decomposition and a secular equation). When
  :math:`M \ne 0` the supremum grows like :math:`\lambda_{\max}(M) R^2`: A4 fails globally
  as soon as two tasks have different Hessians, and A5's gradient half fails globally as
  soon as the curvature of the data points is noisy (``hess_noise > 0``). A5's Hessian
  half is constant in ``w`` (:math:`\sigma_{H,i}^2 = v_i\|A_i\|^2`), so it holds globally.
* **Welsch regression** (:class:`~hfmaml_core.tasks.WelschRegressionFamily`): every moment
  is bounded for all ``w`` in closed form (:func:`welsch_global_bounds`), because
  :math:`|\phi'| \le e^{-1/2}` and :math:`|\phi''| \le 1`.
* **Ridge tasks** (:class:`~hfmaml_core.formula_tasks.RidgeFamily`): one data point per task, so
  :math:`\tilde\sigma = \sigma_H = 0`, and :math:`\sigma^2` is bounded in closed form
  (:func:`ridge_global_bounds`).

:func:`moments` evaluates all the moments at many points at once (vectorised over points,
tasks and data), for sampled suprema over a stated region and for checking the closed forms.

Norm of :math:`\sigma_H` (THEORY's open point): both are computed. With the Frobenius norm
the noise of a mini-batch of ``D`` points drawn with replacement is exactly
:math:`\sigma_H^2/D`; the operator norm is what A5 writes, and
:math:`\|\cdot\|_2 \le \|\cdot\|_F`, so a Frobenius bound is also an operator bound.
In the operator norm :math:`\sigma_{H,\mathrm{op}}^2/D` can overstate the mini-batch noise
(Welsch tasks) or *understate* it: :func:`~hfmaml_core.counterexamples.sign_noise_family` (importable from here; per-point Hessians
:math:`\operatorname{diag}(1 + \epsilon_j)` with random signs) is the counterexample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _validate as V
from .counterexamples import DiagonalCurvatureFamily, sign_noise_family
from .quadforms import QuadraticForm, max_on_ball, quadratic_forms, variance_form
from .tasks import WELSCH_MAX_D2, QuadraticFamily, TaskFamily, WelschRegressionFamily

__all__ = [
    "DiagonalCurvatureFamily",
    "QuadraticForm",
    "Suprema",
    "batch_noise",
    "centres",
    "max_on_ball",
    "moments",
    "points_in_ball",
    "quadratic_forms",
    "ridge_global_bounds",
    "sign_noise_family",
    "suprema",
    "variance_form",
    "welsch_global_bounds",
]

#: Entries of per-point Hessians held at once by :func:`moments` (4 MiB: blocks that stay in
#: cache are faster than larger ones; the block is divided by ``m n d^2`` points).
_HESS_BLOCK = 1 << 19


# =============================================================================
# closed-form global bounds
# =============================================================================


def welsch_global_bounds(family: WelschRegressionFamily) -> dict:
    r"""Bounds on A4 and A5 that hold for **every** ``w`` (Welsch regression, THEORY A4, A5).

    With :math:`\max|\phi'| = e^{-1/2}` (at :math:`r = \pm1`), :math:`\max|\phi''| = 1`,
    :math:`\Sigma_i = \frac1n X_i^\top X_i`:

    .. math::
        \sigma^2(w) \le E_i\|\nabla f_i(w)\|^2 \le e^{-1} E_i \lambda_{\max}(\Sigma_i),
        \qquad
        \tilde\sigma_i^2(w) \le E_j\|\nabla f_i(w,\theta_j)\|^2 \le e^{-1}\tfrac1n\textstyle\sum_j\|x_{ij}\|^2,

    .. math::
        \sigma_{H,i}^2(w) \le E_j\|\phi''(r_j)x_jx_j^\top\|_F^2 \le \tfrac1n\textstyle\sum_j\|x_{ij}\|^4
        \quad\text{(Frobenius, hence also operator norm)},

    because a variance is at most the second moment,
    :math:`\|\frac1n X_i^\top u\| \le \|X_i\|_2\|u\|/n` with :math:`\|u\| \le \sqrt n e^{-1/2}`,
    and :math:`\|xx^\top\|_F = \|x\|^2`. Returns a dict with ``"sigma_sq"`` (float),
    ``"sigma_tilde_sq"`` and ``"sigma_h_sq"`` (arrays (m,), per task).
    """
    if not isinstance(family, WelschRegressionFamily):
        raise ValueError(f"family must be a WelschRegressionFamily; got {type(family).__name__}")
    sq = np.einsum("mnd,mnd->mn", family.X, family.X)
    e1 = math.exp(-1.0)
    return {
        "sigma_sq": float(e1 * family.probs @ (family.L_tasks / WELSCH_MAX_D2)),
        "sigma_tilde_sq": e1 * sq.mean(axis=1),
        "sigma_h_sq": (sq**2).mean(axis=1),
    }


def ridge_global_bounds(family: TaskFamily) -> dict:
    r"""Bounds on A4 and A5 for every ``w`` (ridge tasks of :mod:`hfmaml_core.symbolic`).

    :math:`\nabla f_i(w) = \mu(w - c_i) + b_i\psi'(a_i^\top w - s_i)a_i`; the :math:`\mu w`
    parts cancel in :math:`\nabla f_i - \nabla f`, so with :math:`\bar c = E_i c_i`

    .. math::
        \sigma^2(w) \le E_i\|\nabla f_i(w) - \mu(w - \bar c)\|^2 \le
        E_i\bigl(\mu\|c_i - \bar c\| + |b_i|\sup|\psi'|\,\|a_i\|\bigr)^2

    (a variance is at most the mean square about any fixed vector, here :math:`\mu(w-\bar c)`).
    One data point per task: :math:`\tilde\sigma = \sigma_H = 0` exactly. ``sup|psi'|`` comes
    from :func:`hfmaml_core.symbolic.sup_abs`.
    """
    from . import symbolic  # sympy is only needed here

    if not isinstance(family, symbolic.RidgeFamily):
        raise ValueError(f"family must be a RidgeFamily; got {type(family).__name__}")
    import sympy as sp

    x = family.profile.variables[0]
    sup_d1 = float(symbolic.sup_abs(sp.diff(family.profile.expr, x, 1), x).value)
    cbar = family.probs @ family.c
    term = family.mu * np.linalg.norm(family.c - cbar, axis=1) + np.abs(
        family.b
    ) * sup_d1 * np.linalg.norm(family.a, axis=1)
    return {
        "sigma_sq": float(family.probs @ term**2),
        "sigma_tilde_sq": np.zeros(family.n_tasks),
        "sigma_h_sq": np.zeros(family.n_tasks),
        "sup_d1": sup_d1,
    }


# =============================================================================
# the moments at many points
# =============================================================================


def moments(family: TaskFamily, W: object, *, operator: bool = True) -> dict:
    r"""A2, A4 and A5 quantities at the rows of ``W`` (shape (K, d)), exactly.

    From the population gradients and Hessians of every task and the per-point ones
    (``idx`` = single data points), all through the family's vectorised kernels:

    * ``"sigma_sq"`` (K,): :math:`\sigma^2(w) = E_i\|\nabla f_i(w) - \nabla f(w)\|^2` (A4);
    * ``"sigma_tilde_sq"`` (K, m):
      :math:`\tilde\sigma_i^2(w) = \frac1n\sum_j\|\nabla f_i(w,\theta_{ij}) - \nabla f_i(w)\|^2`
      (A5, gradient half);
    * ``"sigma_h_sq_frobenius"``, ``"sigma_h_sq_operator"`` (K, m):
      :math:`\sigma_{H,i}^2(w) = \frac1n\sum_j\|\nabla^2 f_i(w,\theta_{ij}) - \nabla^2 f_i(w)\|^2`
      in either norm (A5, Hessian half; the operator one only when ``operator``);
    * ``"hess_ratio"`` (K, m): :math:`\|\nabla^2 f_i(w)\|_2 / L_i` (A2).

    The same numbers as the family's one-point methods
    (:meth:`~hfmaml_core.tasks.TaskFamily.sigma_sq`, ``sigma_tilde_sq``, ``sigma_h_sq``), for
    many points at once. Points go in blocks of at most ``_HESS_BLOCK`` per-point Hessian
    entries (``K m n d^2`` in all), so memory stays bounded for any ``K`` and ``d``. Costs
    ``O(K m n d^2)`` (plus ``d^3`` per point Hessian for the operator norm).

    Parameters
    ----------
    family : TaskFamily
    W : array, shape (K, d)
        Finite points.
    operator : bool
        Also compute the operator norm of the Hessian noise (``d^3`` per data point).
    """
    if not isinstance(family, TaskFamily):
        raise ValueError(f"family must be a TaskFamily; got {type(family).__name__}")
    if not isinstance(operator, (bool, np.bool_)):
        raise ValueError(f"operator must be True or False; got {operator!r}")
    operator = bool(operator)
    Wa = np.asarray(W)
    if Wa.ndim != 2:
        raise ValueError(f"W must have shape (K, {family.dim}); got shape {Wa.shape}")
    Wa = V.array("W", Wa, shape=(Wa.shape[0], family.dim))
    K, m, n, d = Wa.shape[0], family.n_tasks, family.n_points, family.dim
    rows_per_w = m * n
    sig = np.empty(K)
    st = np.empty((K, m))
    fro = np.empty((K, m))
    op = np.empty((K, m)) if operator else None
    ratio = np.empty((K, m))
    step = max(1, _HESS_BLOCK // (rows_per_w * d * d))  # points per block
    tasks_ = np.arange(m)
    for start in range(0, K, step):  # blocks of evaluation points (memory), not data points
        sl = slice(start, min(K, start + step))
        k = sl.stop - sl.start
        Wt = np.repeat(Wa[sl], m, axis=0)  # (k m, d): every task at every point
        Tt = np.tile(tasks_, k)
        Wp = np.repeat(Wt, n, axis=0)  # (k m n, d): every data point of every task
        Tp = np.repeat(Tt, n)
        idx = np.tile(np.arange(n), k * m)[:, None]
        G = family.grad_kernel(Wt, Tt, None).reshape(k, m, d)  # population gradients
        task_dev = G - np.einsum("m,kmd->kd", family.probs, G)[:, None, :]
        sig[sl] = np.einsum("m,kmd,kmd->k", family.probs, task_dev, task_dev)
        dev = family.grad_kernel(Wp, Tp, idx).reshape(k, m, n, d) - G[:, :, None, :]
        st[sl] = np.einsum("kmnd,kmnd->km", dev, dev) / n
        Hbar = family.hessian_kernel(Wt, Tt, None).reshape(k, m, d, d)  # population Hessians
        Hd = family.hessian_kernel(Wp, Tp, idx).reshape(k, m, n, d, d) - Hbar[:, :, None]
        fro[sl] = np.einsum("kmnij,kmnij->km", Hd, Hd) / n
        if operator:  # symmetric: the operator norm is the largest |eigenvalue|
            op[sl] = (np.abs(np.linalg.eigvalsh(Hd)).max(axis=-1) ** 2).mean(axis=2)
        ratio[sl] = np.abs(np.linalg.eigvalsh(Hbar)).max(axis=-1) / family.L_tasks
    out = {
        "sigma_sq": sig,
        "sigma_tilde_sq": st,
        "sigma_h_sq_frobenius": fro,
        "hess_ratio": ratio,
    }
    if operator:
        out["sigma_h_sq_operator"] = op
    return out


# =============================================================================
# where to look, the sampled and exact suprema, and the mini-batch laws
# =============================================================================


def centres(family: TaskFamily) -> np.ndarray:
    r"""The origin and one natural centre per task, shape (m + 1, d).

    Quadratic and ridge tasks: their centres :math:`c_i`; Welsch tasks: the least-squares
    fit :math:`(X_i^\top X_i)^{+} X_i^\top y_i` of each task, where every residual is small and
    :math:`\phi'' \approx 1` (so :math:`\|\nabla^2 f_i\|` comes close to :math:`L_i`).
    Sampling around these, as well as around 0, finds the large values of A2-A5.
    """
    if isinstance(family, WelschRegressionFamily):
        X, y = family.X, family.y
        gram = np.matmul(np.swapaxes(X, 1, 2), X)
        rhs = np.einsum("mnd,mn->md", X, y)
        c = np.einsum("mij,mj->mi", np.linalg.pinv(gram, hermitian=True), rhs)
    elif hasattr(family, "c"):
        c = np.asarray(family.c, dtype=float)
    else:
        raise ValueError(
            f"family must be a QuadraticFamily, WelschRegressionFamily or RidgeFamily; "
            f"got {type(family).__name__}"
        )
    return np.vstack([np.zeros((1, family.dim)), c])


def points_in_ball(rng: np.random.Generator, n: int, center: object, radius: float) -> np.ndarray:
    r"""``n`` points uniform in the ball :math:`\|w - w_0\| \le R`, half of them on its sphere.

    The maximum of a convex quadratic lies on the sphere, so half the points are put there.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    n = V.integer("n", n)
    w0 = np.asarray(center, dtype=float)
    if w0.ndim != 1:
        raise ValueError(f"center must be a 1-D array; got shape {w0.shape}")
    w0 = V.array("center", w0, shape=(w0.size,))
    radius = V.real("radius", radius, lo=0.0)
    Z = rng.standard_normal((n, w0.size))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    u = rng.uniform(size=n) ** (1.0 / w0.size)
    u[: n // 2] = 1.0
    return w0 + radius * u[:, None] * Z


@dataclass(frozen=True)
class Suprema:
    r"""A2-A5 of one family over a region (THEORY A2, A3, A4, A5).

    ``sup_*`` is the supremum used for the hypothesis: exact over the ball for quadratic
    tasks (:func:`max_on_ball`, ``global_*`` False when it grows without bound), a
    closed-form bound valid for every ``w`` otherwise (``global_*`` True). ``sampled_*`` is
    the largest value at the sampled points (never above ``sup_*``). ``growth_*`` is the
    coefficient :math:`\lambda_{\max}(M)` of :math:`R^2` in the quadratic case (0: bounded).
    The Hessian half is reported in both norms; ``sup_sigma_h_sq`` (Frobenius) bounds both.
    """

    L: float
    rho: float
    hess_ratio: float
    sup_sigma_sq: float
    sampled_sigma_sq: float
    global_sigma_sq: bool
    growth_sigma_sq: float
    sup_sigma_tilde_sq: float
    sampled_sigma_tilde_sq: float
    global_sigma_tilde_sq: bool
    growth_sigma_tilde_sq: float
    sup_sigma_h_sq: float
    sampled_sigma_h_sq_frobenius: float
    sampled_sigma_h_sq_operator: float
    global_sigma_h_sq: bool


def suprema(
    family: TaskFamily,
    points: object,
    *,
    center: object = None,
    radius: float | None = None,
    operator: bool = True,
) -> Suprema:
    r"""A2-A5 suprema of ``family``: exact over a ball (quadratic tasks) or in closed form.

    Parameters
    ----------
    family : QuadraticFamily, WelschRegressionFamily or RidgeFamily
    points : array, shape (K, d)
        Points where the moments are evaluated exactly (:func:`moments`); for quadratic
        tasks they must lie in the ball.
    center, radius : array (d,), float
        The ball :math:`\|w - w_0\| \le R` (required for quadratic tasks, ignored otherwise).
    operator : bool
        Also evaluate the operator norm of the Hessian noise at the points.
    """
    from . import symbolic

    if not isinstance(family, (QuadraticFamily, WelschRegressionFamily, symbolic.RidgeFamily)):
        raise ValueError(
            f"family must be a QuadraticFamily, WelschRegressionFamily or RidgeFamily; "
            f"got {type(family).__name__}"
        )
    P = np.asarray(points)
    if P.ndim != 2:
        raise ValueError(f"points must have shape (K, {family.dim}); got shape {P.shape}")
    P = V.array("points", P, shape=(P.shape[0], family.dim))
    if isinstance(family, QuadraticFamily):  # the ball first, before any work
        if center is None or radius is None:
            raise ValueError("center and radius are required for a QuadraticFamily (a ball)")
        radius = V.real("radius", radius, lo=0.0)
        w0 = V.array("center", center, shape=(family.dim,))
        if np.any(np.linalg.norm(P - w0, axis=1) > radius * (1 + 1e-12)):
            raise ValueError("points must lie in the ball |w - center| <= radius")
    m = moments(family, P, operator=operator)
    sampled_op = float(m["sigma_h_sq_operator"].max()) if operator else float("nan")
    common = dict(
        L=family.L,
        rho=family.rho,
        hess_ratio=float(m["hess_ratio"].max()),
        sampled_sigma_sq=float(m["sigma_sq"].max()),
        sampled_sigma_tilde_sq=float(m["sigma_tilde_sq"].max()),
        sampled_sigma_h_sq_frobenius=float(m["sigma_h_sq_frobenius"].max()),
        sampled_sigma_h_sq_operator=sampled_op,
    )
    if isinstance(family, QuadraticFamily):
        f = quadratic_forms(family)
        tilde = [form.sup_on_ball(w0, radius)[0] for form in f["sigma_tilde_sq"]]
        top = lambda form: float(max(np.linalg.eigvalsh(form.M)[-1], 0.0))  # noqa: E731
        g_sig = top(f["sigma_sq"])
        g_tilde = max(top(form) for form in f["sigma_tilde_sq"])
        scale = max(np.abs(family.A).max(), 1.0) ** 2
        return Suprema(
            **common,
            sup_sigma_sq=float(f["sigma_sq"].sup_on_ball(w0, radius)[0]),
            global_sigma_sq=bool(g_sig <= 1e-12 * scale),
            growth_sigma_sq=g_sig,
            sup_sigma_tilde_sq=float(max(tilde)),
            global_sigma_tilde_sq=bool(g_tilde <= 1e-12 * scale),
            growth_sigma_tilde_sq=g_tilde,
            sup_sigma_h_sq=float(f["sigma_h_sq_frobenius"].max()),
            global_sigma_h_sq=True,
        )
    if isinstance(family, WelschRegressionFamily):
        b = welsch_global_bounds(family)
    else:
        b = ridge_global_bounds(family)
    return Suprema(
        **common,
        sup_sigma_sq=b["sigma_sq"],
        global_sigma_sq=True,
        growth_sigma_sq=0.0,
        sup_sigma_tilde_sq=float(np.max(b["sigma_tilde_sq"])),
        global_sigma_tilde_sq=True,
        growth_sigma_tilde_sq=0.0,
        sup_sigma_h_sq=float(np.max(b["sigma_h_sq"])),
        global_sigma_h_sq=True,
    )


def batch_noise(
    family: TaskFamily,
    w: object,
    task: int,
    sizes: object,
    n_draws: int,
    rng: np.random.Generator,
    *,
    quantity: str = "grad",
    norm: str = "frobenius",
    replace: bool = True,
) -> np.ndarray:
    r"""The mini-batch law of A5, measured: :math:`D\,E\|\tilde X(w, D) - X(w)\|^2/\sigma^2`.

    ``quantity="grad"``: :math:`X = \nabla f_i`, :math:`\sigma^2 = \tilde\sigma_i^2(w)`;
    ``"hess"``: :math:`X = \nabla^2 f_i` in ``norm`` (``"frobenius"`` or ``"operator"``),
    :math:`\sigma^2 = \sigma_{H,i}^2(w)` in the same norm. For batches drawn with
    replacement the ratio is exactly 1 for the gradient and the Frobenius norm (a sum of
    independent, centred terms); without replacement it is :math:`(n-D)/(n-1)`; for the
    operator norm it is not 1 in general (THEORY's open point on the norm of
    :math:`\sigma_H`). Returns rows ``(D, mean ratio, standard error)``, shape (len(sizes), 3).
    """
    V.choice("quantity", quantity, ["grad", "hess"])
    V.choice("norm", norm, ["frobenius", "operator"])
    t = V.integer("task", task, lo=0, hi=family.n_tasks - 1)
    wa = V.array("w", w, shape=(family.dim,))
    if not isinstance(replace, (bool, np.bool_)):
        raise ValueError(f"replace must be True or False; got {replace!r}")
    hi = None if replace else family.n_points  # without replacement a batch has D <= n points
    Ds = [V.integer("sizes[]", D, hi=hi) for D in np.atleast_1d(sizes).tolist()]
    n_draws = V.integer("n_draws", n_draws, lo=2)
    V.generator(rng)
    T = np.full(n_draws, t)
    if quantity == "grad":
        exact = family.grads(wa, T[:1])[0]
        scale = family.sigma_tilde_sq(wa)[t]
    else:
        exact = family.hessians(wa, T[:1])[0]
        scale = family.sigma_h_sq(wa, norm)[t]
    if not scale > 0:
        raise ValueError(f"the noise of task {task} at w is 0: the ratio is undefined")
    rows = []
    for D in Ds:  # loop over batch sizes; each is vectorised over draws, in blocks for memory
        idx = family.sample_points(rng, n_draws, D, replace=replace)
        sq = np.empty(n_draws)
        step = max(1, (1 << 20) // (D * family.dim))
        for s in range(0, n_draws, step):
            sl = slice(s, s + step)
            if quantity == "grad":
                err = family.grads(wa, T[sl], idx[sl]) - exact
                sq[sl] = np.einsum("kd,kd->k", err, err)
            else:
                err = family.hessians(wa, T[sl], idx[sl]) - exact
                if norm == "frobenius":
                    sq[sl] = np.einsum("kij,kij->k", err, err)
                else:
                    sq[sl] = np.abs(np.linalg.eigvalsh(err)).max(axis=-1) ** 2
        r = sq * D / scale
        rows.append((D, r.mean(), r.std(ddof=1) / math.sqrt(n_draws)))
    return np.array(rows)
