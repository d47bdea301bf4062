r"""Task families built to violate a hypothesis: the cases the controls run on.

* :class:`KinkFamily` satisfies A2 but **violates A3** (its Hessian jumps at a kink):
  notebook 04's control for L3's bias rate (:func:`hfmaml_core.montecarlo.l3_bias`).
* :class:`DiagonalCurvatureFamily` and :func:`sign_noise_family`: per-point Hessians
  :math:`\operatorname{diag}(1 + \epsilon_j)` with random signs, for which
  :math:`\sigma_{H,\mathrm{op}}^2/D` *understates* the mini-batch Hessian noise (THEORY A5's
  norm; notebook 00).

Both implement the kernel protocol of :class:`~hfmaml_core.kernels.TaskFamily`;
:mod:`hfmaml_core.montecarlo` and :mod:`hfmaml_core.hypotheses` re-export them.
"""

from __future__ import annotations

import numpy as np

from . import _validate as V
from .kernels import TaskFamily

__all__ = ["DiagonalCurvatureFamily", "KinkFamily", "sign_noise_family"]


class KinkFamily(TaskFamily):
    r"""Piecewise-quadratic tasks: smooth gradient (A2), Hessian with a jump (A3 fails).

    .. math::
        f_i(w, \theta_{ij}) = \sum_{k=1}^d \psi_\kappa(w_k - c_{ik}) + b_{ij}^\top (w - c_i),
        \qquad \psi_\kappa(r) = \tfrac12 r^2 \ (r \ge 0), \quad \tfrac12\kappa r^2 \ (r < 0),

    with ``b`` re-centred to mean 0 per task, so :math:`f_i(w) = \sum_k\psi_\kappa(w_k - c_{ik})`.
    Every per-point gradient :math:`\psi_\kappa'(w - c_i) + b_{ij}` is Lipschitz with
    :math:`L_i = \max(1, \kappa)` (THEORY A2) but has a kink at :math:`w = c_i`: the Hessian
    jumps from :math:`\kappa I` to :math:`I` there, so no finite :math:`\rho` exists (A3 fails;
    ``rho_tasks`` is ``inf``, or 0 when :math:`\kappa = 1`). At the kink (convention: the
    Hessian is :math:`I` at :math:`r = 0`) the gradient is 0, the adapted point is
    :math:`u = c_i` again, and the bias of THEORY L3 is of **first order**:

    .. math:: e_i = E\,\psi_\kappa'(-\alpha\varepsilon) = \frac{\alpha(1-\kappa)}{2}\,E|\varepsilon|
              \quad\text{(coordinate-wise)}, \qquad \varepsilon = \tilde b_{D_{in}},

    of order :math:`\alpha|1-\kappa|\tilde\sigma_i/\sqrt{D_{in}}`: L3's rate, which A3 improves to
    :math:`1/D_{in}` for smooth families.

    Parameters
    ----------
    c : array, shape (m, d)
        The kinks (and minimisers) of the tasks.
    b : array, shape (m, n, d)
        Linear noise of each data point; re-centred to mean 0 per task.
    kappa : float
        Curvature on the negative side, ``> 0``.
    probs : array, shape (m,), optional
        Task probabilities (default uniform).
    """

    name = "kink"

    def __init__(self, c: object, b: object, kappa: float, probs: object = None) -> None:
        c_ = np.asarray(c)
        if c_.ndim != 2:
            raise ValueError(f"c must have shape (m, d); got shape {c_.shape}")
        m, d = c_.shape
        c_ = V.array("c", c_, shape=(m, d))
        b_ = V.array("b", b, shape=(m, None, d))
        self.kappa = V.real("kappa", kappa, lo=0.0, lo_open=True)
        super().__init__(d, m, b_.shape[1], probs)
        self.c = c_.copy()
        self.b = b_ - b_.mean(axis=1, keepdims=True)

    @property
    def L_tasks(self) -> np.ndarray:
        return np.full(self.n_tasks, max(1.0, self.kappa))

    @property
    def rho_tasks(self) -> np.ndarray:
        return np.full(self.n_tasks, 0.0 if self.kappa == 1.0 else np.inf)

    def _curv(self, diff: np.ndarray) -> np.ndarray:
        return np.where(diff >= 0.0, 1.0, self.kappa)

    def _noise(self, T: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        if idx is None:
            return np.zeros((T.size, self.dim))
        return self.b[T[:, None], idx].mean(axis=1)

    def loss_kernel(self, W, T, idx):
        diff = W - self.c[T]
        quad = 0.5 * np.einsum("bd,bd->b", self._curv(diff) * diff, diff)
        return quad + np.einsum("bd,bd->b", self._noise(T, idx), diff)

    def grad_kernel(self, W, T, idx):
        diff = W - self.c[T]
        return self._curv(diff) * diff + self._noise(T, idx)

    def hessian_kernel(self, W, T, idx):
        curv = self._curv(W - self.c[T])
        return curv[:, :, None] * np.eye(self.dim)

    def hvp_kernel(self, W, Vv, T, idx):
        return self._curv(W - self.c[T]) * Vv

    def point_grad_kernel(self, w, t):
        diff = w - self.c[t]
        return self._curv(diff) * diff + self.b[t]

    def point_hessian_kernel(self, w, t):
        H = self._curv(w - self.c[t])[:, None] * np.eye(self.dim)
        return np.broadcast_to(H, (self.n_points, self.dim, self.dim)).copy()


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
