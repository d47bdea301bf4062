r"""Quadratic forms and their exact maxima over balls (THEORY A4, A5 for quadratic tasks).

For quadratic tasks every gradient is affine in ``w``, so each moment of A4 and A5 is a
quadratic form :math:`q(w) = w^\top M w + 2b^\top w + c` (:func:`variance_form`,
:func:`quadratic_forms`), and its maximum over a ball :math:`\|w-w_0\|\le R` is a
trust-region problem solved exactly by :func:`max_on_ball` (an eigen-decomposition and a
secular equation). Everything here is importable from :mod:`hfmaml_core.hypotheses` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validate as V
from .tasks import QuadraticFamily

__all__ = ["QuadraticForm", "max_on_ball", "quadratic_forms", "variance_form"]

#: Bisection steps of the secular equation in :func:`max_on_ball` (float64 resolution).
_BISECTIONS = 80


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
