r"""Hypotheses A2-A5 as suprema over a region, or in closed form (THEORY A2, A3, A4, A5).

THEORY's A4 and A5 are *global*: :math:`E_i\|\nabla f_i(w)-\nabla f(w)\|^2 \le \sigma^2`,
:math:`E_\theta\|\nabla f_i(w,\theta)-\nabla f_i(w)\|^2 \le \tilde\sigma^2` and
:math:`E_\theta\|\nabla^2 f_i(w,\theta)-\nabla^2 f_i(w)\|^2 \le \sigma_H^2` for **every**
``w``. A finite family gives these moments exactly *at* a point
(:meth:`~hfmaml_core.tasks.TaskFamily.sigma_sq`, ``sigma_tilde_sq``, ``sigma_h_sq``); this
module gives their suprema:

* **Quadratic tasks** (:class:`~hfmaml_core.tasks.QuadraticFamily`). Every gradient is affine
  in ``w``, so each moment is a quadratic form :math:`q(w) = w^\top M w + 2b^\top w + c`
  (:func:`variance_form`, :func:`quadratic_forms`) and its maximum over a ball
  :math:`\|w-w_0\|\le R` is a trust-region problem solved exactly by
  :func:`max_on_ball` (an eigen-decomposition and a secular equation). When
  :math:`M \ne 0` the supremum grows like :math:`\lambda_{\max}(M) R^2`: A4 fails globally
  as soon as two tasks have different Hessians, and A5's gradient half fails globally as
  soon as the curvature of the data points is noisy (``hess_noise > 0``). A5's Hessian
  half is constant in ``w`` (:math:`\sigma_{H,i}^2 = v_i\|A_i\|^2`), so it holds globally.
* **Welsch regression** (:class:`~hfmaml_core.tasks.WelschRegressionFamily`): every moment
  is bounded for all ``w`` in closed form (:func:`welsch_global_bounds`), because
  :math:`|\phi'| \le e^{-1/2}` and :math:`|\phi''| \le 1`.
* **Ridge tasks** (:class:`~hfmaml_core.symbolic.RidgeFamily`): one data point per task, so
  :math:`\tilde\sigma = \sigma_H = 0`, and :math:`\sigma^2` is bounded in closed form
  (:func:`ridge_global_bounds`).

:func:`moments` evaluates all the moments at many points at once (vectorised over points,
tasks and data), for sampled suprema over a stated region and for checking the closed forms.

Norm of :math:`\sigma_H` (THEORY's open point): both are computed. With the Frobenius norm
the noise of a mini-batch of ``D`` points drawn with replacement is exactly
:math:`\sigma_H^2/D`; the operator norm is what A5 writes, and
:math:`\|\cdot\|_2 \le \|\cdot\|_F`, so a Frobenius bound is also an operator bound.
In the operator norm :math:`\sigma_{H,\mathrm{op}}^2/D` can overstate the mini-batch noise
(Welsch tasks) or *understate* it: :func:`sign_noise_family` (per-point Hessians
:math:`\operatorname{diag}(1 + \epsilon_j)` with random signs) is the counterexample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _validate as V
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

#: Bisection steps of the secular equation in :func:`max_on_ball` (float64 resolution).
_BISECTIONS = 80
#: Entries of per-point Hessians held at once by :func:`moments` (4 MiB: blocks that stay in
#: cache are faster than larger ones; the block is divided by ``m n d^2`` points).
_HESS_BLOCK = 1 << 19


@dataclass(frozen=True)
class QuadraticForm:
    r"""The quadratic :math:`q(w) = w^\top M w + 2 b^\top w + c` (``M`` symmetric).

    Attributes
    ----------
    M : ndarray, shape (d, d)
    b : ndarray, shape (d,)
    c : float
    """

    M: np.ndarray
    b: np.ndarray
    c: float

    def __call__(self, W: object) -> np.ndarray:
        """:math:`q` at the rows of ``W`` (shape (K, d) or (d,)), shape (K,) or ()."""
        Wa = np.asarray(W, dtype=float)
        d = self.b.shape[0]
        if Wa.shape[-1:] != (d,) or Wa.ndim > 2:
            raise ValueError(f"W must have shape (K, {d}) or ({d},); got shape {Wa.shape}")
        return np.einsum("...i,ij,...j->...", Wa, self.M, Wa) + 2.0 * Wa @ self.b + self.c

    def sup_on_ball(self, center: object, radius: object) -> np.ndarray:
        """:func:`max_on_ball` of this form: the exact maximum over each ball, shape (K,)."""
        return max_on_ball(self, center, radius)[0]


def variance_form(G: object, h: object, weights: object = None) -> QuadraticForm:
    r"""The variance of an affine random vector, as a quadratic form in ``w``.

    For vectors :math:`v_j(w) = G_j w + h_j` drawn with probabilities :math:`p_j`,

    .. math::
        E_j\|v_j(w) - E v(w)\|^2 = w^\top M w + 2 b^\top w + c, \quad
        M = E_j \bar G_j^\top \bar G_j,\ b = E_j \bar G_j^\top \bar h_j,\ c = E_j\|\bar h_j\|^2,

    with :math:`\bar G_j = G_j - E G`, :math:`\bar h_j = h_j - E h`. It gives
    :math:`\sigma^2(w)` (THEORY A4, ``v_j`` the task gradients) and
    :math:`\tilde\sigma_i^2(w)` (A5, ``v_j`` the per-point gradients) of quadratic tasks.

    Parameters
    ----------
    G : array, shape (n, d, d)
    h : array, shape (n, d)
    weights : array, shape (n,), optional
        Probabilities (default uniform).
    """
    G_ = np.asarray(G)
    if G_.ndim != 3 or G_.shape[1] != G_.shape[2] or G_.shape[0] == 0:
        raise ValueError(f"G must have shape (n, d, d) with n >= 1; got shape {G_.shape}")
    n, d = G_.shape[0], G_.shape[1]
    G_ = V.array("G", G_, shape=(n, d, d))
    h_ = V.array("h", h, shape=(n, d))
    p = np.full(n, 1.0 / n) if weights is None else V.probabilities("weights", weights, n)
    Gc = G_ - np.einsum("j,jkl->kl", p, G_)
    hc = h_ - p @ h_
    M = np.einsum("j,jki,jkl->il", p, Gc, Gc)
    return QuadraticForm(
        M=0.5 * (M + M.T),
        b=np.einsum("j,jki,jk->i", p, Gc, hc),
        c=float(p @ np.einsum("jk,jk->j", hc, hc)),
    )


def max_on_ball(
    form: QuadraticForm, center: object, radius: object
) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact maximum of a quadratic form over balls :math:`\|w - w_0\| \le R` (trust region).

    With :math:`x = w - w_0`, :math:`q(w) = x^\top M x + 2\beta^\top x + q(w_0)`,
    :math:`\beta = M w_0 + b`. Writing :math:`M = Q\Lambda Q^\top`, the maximiser is
    :math:`x = (\mu I - M)^{-1}\beta` with the smallest
    :math:`\mu \ge \max(\lambda_{\max}, 0)` for which :math:`\|x\| \le R` (the secular
    equation :math:`\sum_k \hat\beta_k^2/(\mu-\lambda_k)^2 = R^2`, solved by bisection);
    in the "hard case" (:math:`\hat\beta` orthogonal to the top eigenvector) ``x`` is
    completed to the sphere along that eigenvector. The value is
    :math:`\min_\mu \mu R^2 + \hat\beta^\top(\mu - \Lambda)^{-1}\hat\beta + q(w_0)` by
    duality, which the returned point attains. Vectorised over radii.

    Parameters
    ----------
    form : QuadraticForm
    center : array, shape (d,)
        :math:`w_0`.
    radius : float or array, shape (K,)
        Radii :math:`R \ge 0`.

    Returns
    -------
    values : ndarray, shape (K,)
        :math:`\max_{\|w-w_0\|\le R} q(w)`.
    points : ndarray, shape (K, d)
        A maximiser for each radius.
    """
    if not isinstance(form, QuadraticForm):
        raise ValueError(f"form must be a QuadraticForm; got {type(form).__name__}")
    d = form.b.shape[0]
    w0 = V.array("center", center, shape=(d,))
    R = np.atleast_1d(np.asarray(radius, dtype=float))
    if R.ndim != 1 or not np.all(np.isfinite(R)) or np.any(R < 0):
        raise ValueError(
            f"radius must be finite numbers >= 0 (a scalar or 1-D array); got {radius!r}"
        )
    lam, Q = np.linalg.eigh(form.M)
    beta = Q.T @ (form.M @ w0 + form.b)
    top = lam[-1]
    lo0 = max(top, 0.0)
    scale = max(float(np.abs(lam).max()), 1.0)
    nb = float(np.linalg.norm(beta))
    # phi(mu) = sum beta_k^2/(mu - lambda_k)^2 <= nb^2/(mu - top)^2 <= R^2 at mu = lo0 + nb/R.
    safe_R = np.where(R > 0, R, 1.0)
    lo = np.full(R.shape, lo0)
    hi = lo0 + nb / safe_R + 1e-300
    for _ in range(_BISECTIONS):  # bisection steps, vectorised over all radii
        mid = 0.5 * (lo + hi)
        gap = mid[:, None] - lam[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = np.sum(np.where(beta == 0.0, 0.0, beta**2 / gap**2), axis=1)
        inside = phi <= R**2
        hi = np.where(inside, mid, hi)
        lo = np.where(inside, lo, mid)
    gap = hi[:, None] - lam[None, :]
    tiny = 1e-14 * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        xh = np.where(gap > tiny, beta / np.where(gap > tiny, gap, 1.0), 0.0)
    if top >= 0:
        # Complete to the sphere along the top eigenvector (the hard case; elsewhere |x| = R
        # already and this changes nothing): moving x_top away from 0 in the direction of
        # beta_top raises q, since d/dx_top = 2 (lambda_top x_top + beta_top).
        rest = np.einsum("kd,kd->k", xh[:, :-1], xh[:, :-1])
        sign = 1.0 if beta[-1] >= 0 else -1.0
        xh[:, -1] = sign * np.maximum(np.sqrt(np.maximum(R**2 - rest, 0.0)), np.abs(xh[:, -1]))
    X = xh @ Q.T
    X[R == 0] = 0.0
    W = w0 + X
    return form(W), W


# =============================================================================
# quadratic tasks: the moments are quadratic forms
# =============================================================================


def quadratic_forms(family: QuadraticFamily) -> dict:
    r"""The moments of THEORY A4 and A5 of quadratic tasks, in closed form.

    With :math:`\nabla f_i(w) = A_i(w - c_i)` and
    :math:`\nabla f_i(w,\theta_{ij}) = s_{ij}A_i(w-c_i) + b_{ij}`:

    * ``"sigma_sq"``: :math:`\sigma^2(w)` as a :class:`QuadraticForm` (:func:`variance_form`
      of the task gradients, :math:`G_i = A_i`, :math:`h_i = -A_ic_i`, weights ``p``);
      :math:`M = E_i(A_i - \bar A)^2`, zero iff all :math:`A_i` are equal;
    * ``"sigma_tilde_sq"``: a list of ``m`` forms :math:`\tilde\sigma_i^2(w)`
      (:math:`G_{ij} = s_{ij}A_i`, :math:`h_{ij} = b_{ij} - s_{ij}A_ic_i`);
      :math:`M_i = v_i A_i^2` with :math:`v_i = \frac1n\sum_j(s_{ij}-1)^2`;
    * ``"sigma_h_sq_operator"``, ``"sigma_h_sq_frobenius"``: arrays (m,),
      :math:`\sigma_{H,i}^2 = v_i\|A_i\|_2^2` and :math:`v_i\|A_i\|_F^2`, the same at every
      ``w`` (the per-point Hessian deviation is :math:`(s_{ij}-1)A_i`).
    """
    if not isinstance(family, QuadraticFamily):
        raise ValueError(f"family must be a QuadraticFamily; got {type(family).__name__}")
    A, c, s, b = family.A, family.c, family.s, family.b
    Ac = np.einsum("mij,mj->mi", A, c)
    sig = variance_form(A, -Ac, family.probs)
    tilde = [
        variance_form(s[i][:, None, None] * A[i], b[i] - s[i][:, None] * Ac[i])
        for i in range(family.n_tasks)  # loop over tasks; each form is vectorised over data
    ]
    v = np.mean((s - 1.0) ** 2, axis=1)
    return {
        "sigma_sq": sig,
        "sigma_tilde_sq": tilde,
        "sigma_h_sq_operator": v * np.linalg.norm(A, 2, axis=(1, 2)) ** 2,
        "sigma_h_sq_frobenius": v * np.linalg.norm(A, "fro", axis=(1, 2)) ** 2,
    }


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
# a counterexample for the operator norm of sigma_H
# =============================================================================


class DiagonalCurvatureFamily(TaskFamily):
    r"""Quadratic tasks whose data points scale each coordinate's curvature separately.

    .. math::
        f_i(w, \theta_{ij}) = \tfrac12 \textstyle\sum_k S_{ijk}(w_k - c_{ik})^2,
        \qquad \nabla^2 f_i(w, \theta_{ij}) = \operatorname{diag}(S_{ij}),

    with :math:`\frac1n\sum_j S_{ijk} = 1` (the constructor re-centres ``S``), so
    :math:`f_i(w) = \frac12\|w - c_i\|^2`, :math:`L_i = 1`, :math:`\rho_i = 0`. The
    per-point Hessian deviations :math:`\operatorname{diag}(S_{ij} - 1)` are diagonal but not
    multiples of one matrix (unlike :class:`~hfmaml_core.tasks.QuadraticFamily`), which is what
    makes the operator-norm :math:`\sigma_H` of THEORY A5 understate the mini-batch noise.

    Parameters
    ----------
    S : array, shape (m, n, d)
        Per-point curvatures; re-centred to mean 1 over the points of each task.
    c : array, shape (m, d)
        Task optima.
    probs : array, shape (m,), optional
    """

    name = "diagonal-curvature"

    def __init__(self, S: object, c: object, probs: object = None) -> None:
        S_ = np.asarray(S)
        if S_.ndim != 3:
            raise ValueError(f"S must have shape (m, n, d); got shape {S_.shape}")
        m, n, d = S_.shape
        S_ = V.array("S", S_, shape=(m, n, d))
        self.c = V.array("c", c, shape=(m, d)).copy()
        super().__init__(d, m, n, probs)
        self.S = S_ - S_.mean(axis=1, keepdims=True) + 1.0

    @property
    def L_tasks(self) -> np.ndarray:
        return np.ones(self.n_tasks)

    @property
    def rho_tasks(self) -> np.ndarray:
        return np.zeros(self.n_tasks)

    def _curv(self, T: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        if idx is None:  # the population: the points' curvatures average to 1
            return np.ones((T.size, self.dim))
        return self.S[T[:, None], idx].mean(axis=1)

    def loss_kernel(self, W, T, idx):
        return 0.5 * np.einsum("bd,bd->b", self._curv(T, idx), (W - self.c[T]) ** 2)

    def grad_kernel(self, W, T, idx):
        return self._curv(T, idx) * (W - self.c[T])

    def hessian_kernel(self, W, T, idx):
        s = self._curv(T, idx)
        out = np.zeros((T.size, self.dim, self.dim))
        out[:, np.arange(self.dim), np.arange(self.dim)] = s
        return out

    def hvp_kernel(self, W, Vv, T, idx):
        return self._curv(T, idx) * Vv

    def point_grad_kernel(self, w, t):
        return self.S[t] * (w - self.c[t])

    def point_hessian_kernel(self, w, t):
        out = np.zeros((self.n_points, self.dim, self.dim))
        out[:, np.arange(self.dim), np.arange(self.dim)] = self.S[t]
        return out


def sign_noise_family(
    dim: int, n_points: int = 64, *, seed: int, noise: float = 0.5, n_tasks: int = 1
) -> DiagonalCurvatureFamily:
    r"""Per-point Hessians :math:`\operatorname{diag}(1 + \text{noise}\,\epsilon_j)`, random signs.

    :math:`\epsilon_{jk} = \pm1` independent (then re-centred over the points), optima 0. One
    point's deviation has operator norm about ``noise``; the mean of ``D`` of them is
    diagonal with entries of variance about :math:`\text{noise}^2/D`, and its squared operator
    norm is the largest of ``dim`` of them: :math:`D\,E\|\cdot\|_2^2/\sigma_{H,\mathrm{op}}^2
    \to E\max_k Z_k^2 > 1` for ``dim >= 2`` (:math:`Z_k` standard normal), while the Frobenius
    ratio is exactly 1 (THEORY A5, the norm of :math:`\sigma_H`).
    """
    dim = V.integer("dim", dim)
    n_points = V.integer("n_points", n_points, lo=2)
    noise = V.real("noise", noise, lo=0.0)
    n_tasks = V.integer("n_tasks", n_tasks)
    rng = np.random.default_rng(V.integer("seed", seed, lo=0))
    eps = rng.choice([-1.0, 1.0], size=(n_tasks, n_points, dim))
    return DiagonalCurvatureFamily(1.0 + noise * eps, np.zeros((n_tasks, dim)))


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
    wa, t = family._check_point(w, task)
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
