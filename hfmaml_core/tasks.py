r"""Finite task families with exact and mini-batch losses, gradients, Hessians and HVPs.

A *family* is a finite list of ``m`` tasks drawn with probabilities ``p`` (THEORY
"Setting": ``i ~ p``). Task ``i`` owns a finite data set of ``n`` points
:math:`\theta_{i1},\dots,\theta_{in}`, and its population loss is the uniform
average over them,

.. math:: f_i(w) = \frac1n \sum_{j=1}^n f_i(w, \theta_{ij}).

Because everything is finite, :math:`f`, :math:`\nabla F`, :math:`\sigma`,
:math:`\tilde\sigma` and :math:`\sigma_H` (THEORY A4, A5) are *computed*, not
estimated. A mini-batch :math:`D` is a draw of ``|D|`` points with replacement,
so mini-batch gradients are unbiased with variance exactly
:math:`\tilde\sigma_i^2(w)/|D|`.

Two families here, and helpers that derive the notebooks' variants from them:

* :class:`QuadraticFamily` (THEORY A2 with :math:`\rho = 0`):
  :math:`f_i(w,\theta_{ij}) = \tfrac12 s_{ij}(w-c_i)^\top A_i (w-c_i) + b_{ij}^\top (w-c_i)`
  with :math:`\frac1n\sum_j s_{ij} = 1` and :math:`\frac1n\sum_j b_{ij} = 0`, so
  :math:`f_i(w) = \tfrac12 (w-c_i)^\top A_i (w-c_i)` exactly.
* :class:`WelschRegressionFamily`, smooth and nonconvex with :math:`\rho > 0`:
  :math:`f_i(w,(x,y)) = \phi(x^\top w - y)`, :math:`\phi(r) = 1 - e^{-r^2/2}`
  (the bounded Welsch loss), with :math:`L` and :math:`\rho` in closed form;
  :func:`with_leverage` and :func:`split_family` are the high-leverage and split
  variants of notebooks 00 and 04.

A third, :class:`~hfmaml_core.formula_tasks.RidgeFamily` (smooth tasks with unbounded
gradients, constants derived by sympy), lives in :mod:`hfmaml_core.formula_tasks` because
it needs sympy; :func:`make_family` knows all three (``"quadratic"``, ``"welsch"``,
``"ridge"``), and ``tasks.RidgeFamily`` and ``tasks.make_ridge_family`` are importable from
here. The kernel protocol every family implements is :class:`~hfmaml_core.kernels.TaskFamily`.

Every kernel is vectorised over a batch of (task, point) pairs: arrays ``W`` of
shape ``(B, d)``, task indices ``tasks`` of shape ``(B,)`` and data indices
``idx`` of shape ``(B, D)`` (``None``: the whole data set, i.e. the population).
There are no Python loops over data points.
"""

from __future__ import annotations

import math

import numpy as np

from . import _validate as V
from .kernels import Task, TaskFamily

__all__ = [
    "FAMILIES",
    "WELSCH_MAX_D2",
    "WELSCH_MAX_D3",
    "QuadraticFamily",
    "Task",
    "TaskFamily",
    "WelschRegressionFamily",
    "make_family",
    "make_quadratic_family",
    "make_ridge_family",
    "make_welsch_family",
    "split_family",
    "welsch",
    "with_leverage",
]

#: :math:`\max_r |\phi''(r)|` for the Welsch loss, attained at :math:`r = 0`.
WELSCH_MAX_D2: float = 1.0
#: :math:`\max_r |\phi'''(r)| = \sqrt{6(3-\sqrt6)}\,e^{-(3-\sqrt6)/2}`, attained at
#: :math:`r^2 = 3-\sqrt6`. Derived symbolically in the smoothness notebook.
WELSCH_MAX_D3: float = math.sqrt(6.0 * (3.0 - math.sqrt(6.0))) * math.exp(
    -(3.0 - math.sqrt(6.0)) / 2.0
)

#: Entries of gathered data (rows x batch size x d) per block of a Welsch kernel: 1 MiB.
_BLOCK_ENTRIES = 1 << 17
#: Width of the pieces of the dimension in the Welsch kernels' two-column products.
_PAIR_COLUMNS = 1 << 14

# Beyond |r| = 40 every derivative of the Welsch loss is below 1e-340, i.e. 0 in
# float64; clipping there keeps r**4 and exp() far from overflow for huge inputs.
_WELSCH_CLIP = 40.0


def welsch(r: np.ndarray, order: int = 0) -> np.ndarray:
    r"""The Welsch loss :math:`\phi(r) = 1 - e^{-r^2/2}` or its derivative of ``order`` (0-3).

    .. math::
        \phi' = r e^{-r^2/2},\quad \phi'' = (1 - r^2) e^{-r^2/2},\quad
        \phi''' = (r^3 - 3r) e^{-r^2/2}.

    Stable for any finite input: the argument is clipped at :math:`|r| = 40`,
    where every value is already exact in float64 (1 for :math:`\phi`, 0 for the
    derivatives).
    """
    rc = np.clip(r, -_WELSCH_CLIP, _WELSCH_CLIP)
    if order == 0:
        return -np.expm1(-0.5 * rc * rc)
    e = np.exp(-0.5 * rc * rc)
    if order == 1:
        return rc * e
    if order == 2:
        return (1.0 - rc * rc) * e
    if order == 3:
        return rc * (rc * rc - 3.0) * e
    raise ValueError(f"order must be an integer in [0, 3]; got {order!r}")


# =============================================================================
# Quadratic tasks
# =============================================================================


class QuadraticFamily(TaskFamily):
    r"""Quadratic tasks whose data points make mini-batches noisy.

    .. math::
        f_i(w, \theta_{ij}) = \tfrac12 s_{ij} (w-c_i)^\top A_i (w-c_i) + b_{ij}^\top (w-c_i),
        \qquad f_i(w) = \tfrac12 (w-c_i)^\top A_i (w-c_i).

    The population loss uses the closed form (it is what the data average to:
    the constructor centres ``s`` at 1 and ``b`` at 0). ``L_i = ||A_i||_2``,
    ``rho_i = 0``. With ``s = 1`` the gradient noise is additive and
    :math:`\tilde\sigma_i^2 = \frac1n\sum_j\|b_{ij}\|^2` for every ``w``; with a
    spread in ``s`` the Hessian is noisy too (:math:`\sigma_H > 0`) and the gradient
    noise grows with :math:`\|A_i(w-c_i)\|`.

    Parameters
    ----------
    A : array, shape (m, d, d)
        Symmetric curvature matrices.
    c : array, shape (m, d)
        Task optima.
    s : array, shape (m, n)
        Curvature scale of each data point; re-centred to mean 1 per task.
    b : array, shape (m, n, d)
        Linear noise of each data point; re-centred to mean 0 per task.
    probs : array, shape (m,), optional
        Task probabilities (default uniform).
    """

    name = "quadratic"

    def __init__(self, A: object, c: object, s: object, b: object, probs: object = None) -> None:
        A_ = np.asarray(A)
        if A_.ndim != 3:
            raise ValueError(f"A must have shape (m, d, d); got shape {A_.shape}")
        m, d = A_.shape[0], A_.shape[1]
        A_ = V.array("A", A_, shape=(m, d, d))
        if not np.allclose(A_, np.swapaxes(A_, 1, 2), rtol=1e-12, atol=1e-12):
            raise ValueError("A must be symmetric: A[i] == A[i].T for every task i")
        c_ = V.array("c", c, shape=(m, d))
        s_ = V.array("s", s, shape=(m, None))
        n = s_.shape[1]
        b_ = V.array("b", b, shape=(m, n, d))
        super().__init__(d, m, n, probs)
        self.A = 0.5 * (A_ + np.swapaxes(A_, 1, 2))
        self.c = c_.copy()
        self.s = s_ - s_.mean(axis=1, keepdims=True) + 1.0
        self.b = b_ - b_.mean(axis=1, keepdims=True)
        self._L = np.abs(np.linalg.eigvalsh(self.A)).max(axis=1)

    @property
    def L_tasks(self) -> np.ndarray:
        return self._L

    @property
    def rho_tasks(self) -> np.ndarray:
        return np.zeros(self.n_tasks)

    def _batch_means(self, T: np.ndarray, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if idx is None:
            return np.ones(T.size), np.zeros((T.size, self.dim))
        rows = T[:, None]
        return self.s[rows, idx].mean(axis=1), self.b[rows, idx].mean(axis=1)

    def _matvec(self, T: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Rows ``A[T[b]] @ X[b]``, one matrix product per distinct task (no ``(B, d, d)`` copy)."""
        out = np.empty_like(X)
        for t in np.unique(T):  # loop over tasks, not data: memory O(B d) instead of O(B d^2)
            rows = T == t
            out[rows] = X[rows] @ self.A[t]  # A is symmetric
        return out

    def _residual(self, W: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        diff = W - self.c[T]
        return diff, self._matvec(T, diff)

    def loss_kernel(self, W, T, idx):
        s, b = self._batch_means(T, idx)
        diff, Ad = self._residual(W, T)
        return 0.5 * s * np.einsum("bd,bd->b", diff, Ad) + np.einsum("bd,bd->b", b, diff)

    def grad_kernel(self, W, T, idx):
        s, b = self._batch_means(T, idx)
        _, Ad = self._residual(W, T)
        return s[:, None] * Ad + b

    def hessian_kernel(self, W, T, idx):
        s, _ = self._batch_means(T, idx)
        return s[:, None, None] * self.A[T]

    def hvp_kernel(self, W, Vv, T, idx):
        s, _ = self._batch_means(T, idx)
        return s[:, None] * self._matvec(T, Vv)

    def central_difference_kernel(self, W, G, delta, T, idx):
        s, b = self._batch_means(T, idx)  # the data batch is read once for both points
        n = W.shape[0]
        S = delta[:, None] * G
        TT = np.concatenate([T, T])
        Ad = self._matvec(TT, np.concatenate([W + S, W - S]) - self.c[TT])
        return ((s[:, None] * Ad[:n] + b) - (s[:, None] * Ad[n:] + b)) / (2.0 * delta[:, None])

    def point_grad_kernel(self, w, t):
        Ad = self.A[t] @ (w - self.c[t])
        return self.s[t][:, None] * Ad + self.b[t]

    def point_hessian_kernel(self, w, t):
        return self.s[t][:, None, None] * self.A[t]


def make_quadratic_family(
    dim: int,
    n_tasks: int = 8,
    n_points: int = 64,
    *,
    seed: int,
    curvature: tuple[float, float] = (0.5, 2.0),
    center_spread: float = 1.0,
    grad_noise: float = 1.0,
    hess_noise: float = 0.0,
    probs: object = None,
) -> QuadraticFamily:
    r"""A random :class:`QuadraticFamily` from ``seed``.

    Each :math:`A_i = Q_i \operatorname{diag}(\lambda_i) Q_i^\top` has a random
    rotation and eigenvalues uniform in ``curvature`` (negative values allowed:
    a nonconvex quadratic); :math:`c_i \sim N(0, \text{center\_spread}^2 I/d)`;
    the noise is scaled *exactly* so that :math:`\frac1n\sum_j\|b_{ij}\|^2 =`
    ``grad_noise**2`` and the standard deviation of :math:`s_{ij}` is ``hess_noise``.
    """
    dim = V.integer("dim", dim)
    n_tasks = V.integer("n_tasks", n_tasks)
    n_points = V.integer("n_points", n_points, lo=2)
    if (
        isinstance(curvature, (str, bytes))
        or not hasattr(curvature, "__len__")
        or len(curvature) != 2
    ):
        raise ValueError(
            f"curvature must be a pair (lo, hi) of eigenvalue bounds; got {curvature!r}"
        )
    lo = V.real("curvature[0]", curvature[0])
    hi = V.real("curvature[1]", curvature[1], lo=lo)
    center_spread = V.real("center_spread", center_spread, lo=0.0)
    grad_noise = V.real("grad_noise", grad_noise, lo=0.0)
    hess_noise = V.real("hess_noise", hess_noise, lo=0.0)
    rng = np.random.default_rng(V.integer("seed", seed, lo=0))

    Q, _ = np.linalg.qr(rng.standard_normal((n_tasks, dim, dim)))
    lam = rng.uniform(lo, hi, size=(n_tasks, dim))
    A = np.einsum("mij,mj,mkj->mik", Q, lam, Q)
    c = center_spread * rng.standard_normal((n_tasks, dim)) / math.sqrt(dim)
    z = rng.standard_normal((n_tasks, n_points))
    z -= z.mean(axis=1, keepdims=True)
    z /= np.sqrt(np.mean(z * z, axis=1, keepdims=True))
    s = 1.0 + hess_noise * z
    e = rng.standard_normal((n_tasks, n_points, dim))
    e -= e.mean(axis=1, keepdims=True)
    e *= grad_noise / np.sqrt(np.mean(np.einsum("mnd,mnd->mn", e, e), axis=1))[:, None, None]
    return QuadraticFamily(A, c, s, e, probs=probs)


# =============================================================================
# Nonconvex: regression under the bounded Welsch loss
# =============================================================================


class WelschRegressionFamily(TaskFamily):
    r"""Regression tasks under the bounded, smooth, nonconvex Welsch loss.

    .. math::
        f_i(w, (x, y)) = \phi(x^\top w - y), \qquad \phi(r) = 1 - e^{-r^2/2}.

    Closed-form constants (THEORY A2, A3), with
    :math:`\Sigma_i = \frac1n\sum_j x_{ij}x_{ij}^\top` and
    :math:`M_i = \frac1n\sum_j \|x_{ij}\| x_{ij}x_{ij}^\top`:

    .. math::
        L_i = \max|\phi''|\,\|\Sigma_i\|_2 = \|\Sigma_i\|_2, \qquad
        \rho_i = \max|\phi'''|\,\|M_i\|_2 .

    *Proof sketch.* For a unit vector ``v``,
    :math:`v^\top\nabla^2 f_i(w) v = \frac1n\sum_j \phi''(r_j)(x_j^\top v)^2`, so
    :math:`|\cdot| \le \max|\phi''| \, v^\top\Sigma_i v`; and
    :math:`|\phi''(r_j(w)) - \phi''(r_j(u))| \le \max|\phi'''|\,\|x_j\|\,\|w-u\|`.

    The loss is bounded in [0, 1), so ``F`` is bounded below (THEORY A1), and the
    per-point gradients are bounded by :math:`e^{-1/2}\|x\|`, so
    :math:`\sigma` and :math:`\tilde\sigma` are finite (THEORY A4, A5).

    Parameters
    ----------
    X : array, shape (m, n, d)
        Inputs of every task.
    y : array, shape (m, n)
        Targets.
    probs : array, shape (m,), optional
        Task probabilities (default uniform).
    """

    name = "welsch"

    def __init__(self, X: object, y: object, probs: object = None) -> None:
        X_ = np.asarray(X)
        if X_.ndim != 3:
            raise ValueError(f"X must have shape (m, n, d); got shape {X_.shape}")
        m, n, d = X_.shape
        self.X = V.array("X", X_, shape=(m, n, d)).copy()
        self.y = V.array("y", y, shape=(m, n)).copy()
        super().__init__(d, m, n, probs)
        self._L, self._rho = _welsch_constants(self.X)

    @property
    def L_tasks(self) -> np.ndarray:
        return self._L

    @property
    def rho_tasks(self) -> np.ndarray:
        return self._rho

    def _data(self, T: np.ndarray, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if idx is None:
            return self.X[T], self.y[T]
        rows = T[:, None]
        return self.X[rows, idx], self.y[rows, idx]

    # The kernels are batched matrix products (BLAS) over the gathered data X, shape (B, D, d):
    # one pass for the residuals, one for the weighted sum of the rows. Rows go in blocks whose
    # gathered data fit in _BLOCK_ENTRIES, so that the second pass reads X from the cache.
    def _blocked(self, kernel, *args):
        """``kernel(*args)`` on blocks of rows; ``args`` end with ``T`` and ``idx``."""
        *rows, T, idx = args
        width = self.n_points if idx is None else idx.shape[1]
        step = max(1, _BLOCK_ENTRIES // (width * self.dim))
        n = T.shape[0]
        if step >= n:
            return kernel(*args)
        out = None
        for start in range(0, n, step):  # blocks of (task, batch) rows, not data points
            sl = slice(start, start + step)
            part = kernel(*(a[sl] for a in rows), T[sl], None if idx is None else idx[sl])
            if out is None:
                out = np.empty((n, *part.shape[1:]))
            out[sl] = part
        return out

    def _residuals(self, W, T, idx):
        X, y = self._data(T, idx)
        return X, _rows_times(X, W) - y

    def loss_kernel(self, W, T, idx):
        return self._blocked(self._losses_block, W, T, idx)

    def _losses_block(self, W, T, idx):
        _, r = self._residuals(W, T, idx)
        return welsch(r, 0).mean(axis=1)

    def grad_kernel(self, W, T, idx):
        return self._blocked(self._grads_block, W, T, idx)

    def _grads_block(self, W, T, idx):
        X, r = self._residuals(W, T, idx)
        out = _weighted_rows(welsch(r, 1), X)
        out /= r.shape[1]
        return out

    def hessian_kernel(self, W, T, idx):
        X, r = self._residuals(W, T, idx)
        scaled = X * (welsch(r, 2) / r.shape[1])[:, :, None]  # phi''(r_k) x_k / D
        return np.matmul(np.swapaxes(scaled, 1, 2), X)  # sum_k phi''(r_k) x_k x_k^T / D

    def hvp_kernel(self, W, Vv, T, idx):
        return self._blocked(self._hvps_block, W, Vv, T, idx)

    def _hvps_block(self, W, Vv, T, idx):
        # The data first: allocating the largest array before the small ones keeps the C heap
        # from fragmenting (and page-faulting) on every call.
        X, y = self._data(T, idx)
        XWV = _pairs_times(_pair(W, Vv), X)  # x_k^T w and x_k^T v in one pass
        r = XWV[:, 0] - y
        out = _weighted_rows(welsch(r, 2) * XWV[:, 1], X)
        out /= r.shape[1]
        return out

    def central_difference_kernel(self, W, G, delta, T, idx):
        return self._blocked(self._central_differences_block, W, G, delta, T, idx)

    def _central_differences_block(self, W, G, delta, T, idx):
        # Residuals at w +- delta g are r +- delta x^T g: one pass over the data (gathered
        # once) gives both; then sum_k [phi'(r_k + s_k) - phi'(r_k - s_k)] x_k / (2 delta D).
        X, y = self._data(T, idx)
        XWG = _pairs_times(_pair(W, G), X)  # x_k^T w and x_k^T g
        r = XWG[:, 0] - y
        s = delta[:, None] * XWG[:, 1]
        c = welsch(r + s, 1) - welsch(r - s, 1)
        c /= (2.0 * r.shape[1]) * delta[:, None]
        return _weighted_rows(c, X)

    def point_grad_kernel(self, w, t):
        X = self.X[t]
        return welsch(X @ w - self.y[t], 1)[:, None] * X

    def point_hessian_kernel(self, w, t):
        X = self.X[t]
        return np.einsum("k,kd,ke->kde", welsch(X @ w - self.y[t], 2), X, X)


def _rows_times(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``out[b, k] = X[b, k] . W[b]`` for ``X`` (B, D, d) and ``W`` (B, d): a batched matvec."""
    return np.matmul(X, W[:, :, None])[:, :, 0]


def _pair(A: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Rows of ``A`` and ``C`` (B, d) side by side: ``out[:, 0] = A``, ``out[:, 1] = C``."""
    out = np.empty((A.shape[0], 2, A.shape[1]))
    out[:, 0], out[:, 1] = A, C
    return out


def _pairs_times(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``out[b, j, k] = P[b, j] . X[b, k]`` for ``P`` (B, 2, d) and ``X`` (B, D, d): ``P X^T``.

    Both products in one pass over ``X``. The dimension is cut into pieces of
    ``_PAIR_COLUMNS``: for wider pieces OpenBLAS multiplies a 2-row matrix by ``X^T`` up to
    four times slower than two matrix-vector products (OpenBLAS 0.3.31, ``d >= 3 * 10^4``).
    """
    c = _PAIR_COLUMNS
    out = np.matmul(P[:, :, :c], np.swapaxes(X[:, :, :c], 1, 2))
    for start in range(c, X.shape[2], c):  # pieces of the dimension, not data points
        out += np.matmul(P[:, :, start : start + c], np.swapaxes(X[:, :, start : start + c], 1, 2))
    return out


def _weighted_rows(c: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``out[b] = sum_k c[b, k] X[b, k]`` for ``c`` (B, D) and ``X`` (B, D, d): batched ``X^T c``."""
    return np.matmul(c[:, None, :], X)[:, 0, :]


def _welsch_constants(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Closed-form :math:`L_i`, :math:`\rho_i` of :class:`WelschRegressionFamily` (THEORY A2, A3).

    .. math::
        L_i = \max|\phi''|\,\lambda_{\max}(\Sigma_i), \quad
        \rho_i = \max|\phi'''|\,\lambda_{\max}(M_i), \quad
        \Sigma_i = \tfrac1n X_i^\top X_i, \quad M_i = \tfrac1n X_i^\top N_i X_i,

    for inputs ``X`` of shape (m, n, d), with :math:`N_i = \operatorname{diag}(\|x_{ij}\|)`.
    When :math:`n < d` the :math:`n\times n` matrices :math:`\frac1n X_iX_i^\top` and
    :math:`\frac1n N_i^{1/2}X_iX_i^\top N_i^{1/2}` are used instead: they have the same
    nonzero eigenvalues (:math:`AB` and :math:`BA` do), and the cost drops from
    :math:`O(m n d^2 + m d^3)` to :math:`O(m n^2 d + m n^3)`.
    """
    n, d = X.shape[1], X.shape[2]
    norms = np.linalg.norm(X, axis=2)
    if n < d:
        gram = np.matmul(X, np.swapaxes(X, 1, 2)) / n  # (m, n, n)
        root = np.sqrt(norms)
        Sigma, M = gram, root[:, :, None] * gram * root[:, None, :]
    else:
        Sigma = np.matmul(np.swapaxes(X, 1, 2), X) / n  # (m, d, d)
        M = np.matmul(np.swapaxes(X * norms[:, :, None], 1, 2), X) / n
    L = WELSCH_MAX_D2 * np.linalg.eigvalsh(Sigma)[:, -1]
    rho = WELSCH_MAX_D3 * np.linalg.eigvalsh(M)[:, -1]
    return L, rho


def make_welsch_family(
    dim: int,
    n_tasks: int = 8,
    n_points: int = 64,
    *,
    seed: int,
    input_scale: float = 1.0,
    center_spread: float = 1.0,
    task_spread: float = 1.0,
    noise: float = 0.1,
    probs: object = None,
) -> WelschRegressionFamily:
    r"""A random :class:`WelschRegressionFamily` from ``seed``.

    Inputs :math:`x \sim N(0, \text{input\_scale}^2 I/d)` (so
    :math:`E\|x\|^2 = \text{input\_scale}^2`); task ``i`` has true weights
    :math:`w_i^* = \bar w + \text{task\_spread}\, z_i` with
    :math:`\bar w, z_i \sim N(0, I)` scaled by ``center_spread`` and
    ``task_spread``; targets :math:`y = x^\top w_i^* + \text{noise}\cdot\varepsilon`.
    """
    dim = V.integer("dim", dim)
    n_tasks = V.integer("n_tasks", n_tasks)
    n_points = V.integer("n_points", n_points)
    input_scale = V.real("input_scale", input_scale, lo=0.0, lo_open=True)
    center_spread = V.real("center_spread", center_spread, lo=0.0)
    task_spread = V.real("task_spread", task_spread, lo=0.0)
    noise = V.real("noise", noise, lo=0.0)
    rng = np.random.default_rng(V.integer("seed", seed, lo=0))

    X = input_scale * rng.standard_normal((n_tasks, n_points, dim)) / math.sqrt(dim)
    w_bar = center_spread * rng.standard_normal(dim)
    w_star = w_bar + task_spread * rng.standard_normal((n_tasks, dim))
    y = np.einsum("mnd,md->mn", X, w_star) + noise * rng.standard_normal((n_tasks, n_points))
    return WelschRegressionFamily(X, y, probs=probs)


def with_leverage(base: WelschRegressionFamily, k: float) -> WelschRegressionFamily:
    r"""``base`` with the first data point :math:`(x, y)` of every task scaled by ``k``.

    A high-leverage input (notebooks 00 and 04): the residual of that point is ``k`` times
    larger, so its gradient dominates the per-point noise :math:`\tilde\sigma^2` (THEORY A5).
    """
    if not isinstance(base, WelschRegressionFamily):
        raise ValueError(f"base must be a WelschRegressionFamily; got {type(base).__name__}")
    k = V.real("k", k)
    X, y = base.X.copy(), base.y.copy()
    X[:, 0] *= k
    y[:, 0] *= k
    return WelschRegressionFamily(X, y, probs=base.probs)


def split_family(
    n: int, k: float, shift: float, *, seed: int, scale: float = 3.0
) -> WelschRegressionFamily:
    r"""Notebook 04's split family: 1-D Welsch regression, 4 tasks of ``n`` points, noiseless.

    Inputs :math:`x \sim N(0, \text{scale}^2)` (one draw of shape (4, n, 1) from ``seed``),
    the first input of every task ``k`` times farther out; tasks 0 and 1 have true weight 0
    (zero gradient at :math:`w = 0`, no noise), tasks 2 and 3 true weight ``shift``.
    """
    n = V.integer("n", n)
    k = V.real("k", k)
    shift = V.real("shift", shift)
    scale = V.real("scale", scale, lo=0.0, lo_open=True)
    X = scale * np.random.default_rng(V.integer("seed", seed, lo=0)).standard_normal((4, n, 1))
    X[:, 0] *= k
    w_true = np.array([0.0, 0.0, shift, shift])
    return WelschRegressionFamily(X, X[..., 0] * w_true[:, None])


def make_ridge_family(dim: int, n_tasks: int = 8, *, seed: int, **kwargs: object) -> TaskFamily:
    """:func:`hfmaml_core.formula_tasks.make_ridge_family` (imports sympy on first use)."""
    from . import formula_tasks  # sympy is only needed for this family

    return formula_tasks.make_ridge_family(dim, n_tasks, seed=seed, **kwargs)


#: Factories by name, for notebook parameters such as ``family = "welsch"``.
FAMILIES = {
    "quadratic": make_quadratic_family,
    "ridge": make_ridge_family,
    "welsch": make_welsch_family,
}


def make_family(name: str, dim: int, *, seed: int, **kwargs: object) -> TaskFamily:
    """Build a family by name (``"quadratic"``, ``"welsch"`` or ``"ridge"``); ``kwargs`` go to its factory."""
    V.choice("name", name, sorted(FAMILIES))
    return FAMILIES[name](dim, seed=seed, **kwargs)


def __getattr__(name: str) -> object:
    # RidgeFamily sits with the sympy code it needs; import it (and sympy) only when asked for
    if name == "RidgeFamily":
        from . import formula_tasks

        return formula_tasks.RidgeFamily
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
