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

Two families:

* :class:`QuadraticFamily` (THEORY A2 with :math:`\rho = 0`):
  :math:`f_i(w,\theta_{ij}) = \tfrac12 s_{ij}(w-c_i)^\top A_i (w-c_i) + b_{ij}^\top (w-c_i)`
  with :math:`\frac1n\sum_j s_{ij} = 1` and :math:`\frac1n\sum_j b_{ij} = 0`, so
  :math:`f_i(w) = \tfrac12 (w-c_i)^\top A_i (w-c_i)` exactly.
* :class:`WelschRegressionFamily`, smooth and nonconvex with :math:`\rho > 0`:
  :math:`f_i(w,(x,y)) = \phi(x^\top w - y)`, :math:`\phi(r) = 1 - e^{-r^2/2}`
  (the bounded Welsch loss), with :math:`L` and :math:`\rho` in closed form.

Every kernel is vectorised over a batch of (task, point) pairs: arrays ``W`` of
shape ``(B, d)``, task indices ``tasks`` of shape ``(B,)`` and data indices
``idx`` of shape ``(B, D)`` (``None``: the whole data set, i.e. the population).
There are no Python loops over data points.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from . import _validate as V

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
    "make_welsch_family",
    "welsch",
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


class TaskFamily(ABC):
    """A finite family of tasks with probabilities, each with a finite data set.

    Subclasses implement the unchecked vectorised kernels ``loss_kernel``, ``grad_kernel``,
    ``hessian_kernel``, ``hvp_kernel``, ``point_grad_kernel`` and ``point_hessian_kernel`` (and may override
    ``central_difference_kernel``, HF-MAML's two perturbed gradients); this class validates
    arguments and derives the exact moments of THEORY A4 and A5. The kernels return new
    arrays, which callers (the estimators) may update in place.

    Attributes
    ----------
    dim : int
        Dimension ``d`` of ``w``.
    n_tasks : int
        Number of tasks ``m``.
    n_points : int
        Data points per task ``n``.
    probs : ndarray, shape (m,)
        Task probabilities ``p``.
    L_tasks, rho_tasks : ndarray, shape (m,)
        Per-task smoothness ``L_i`` and Hessian-Lipschitz ``rho_i`` (THEORY A2, A3)
        of the population loss ``f_i``.
    """

    name: str = "family"

    def __init__(self, dim: int, n_tasks: int, n_points: int, probs: object = None) -> None:
        self.dim = V.integer("dim", dim)
        self.n_tasks = V.integer("n_tasks", n_tasks)
        self.n_points = V.integer("n_points", n_points)
        if probs is None:
            probs = np.full(self.n_tasks, 1.0 / self.n_tasks)
        self.probs = V.probabilities("probs", probs, self.n_tasks)
        self.tasks: tuple[Task, ...] = tuple(Task(self, i) for i in range(self.n_tasks))

    # ----------------------------------------------------------------- constants
    @property
    @abstractmethod
    def L_tasks(self) -> np.ndarray:
        """Per-task smoothness constants ``L_i`` (THEORY A2)."""

    @property
    @abstractmethod
    def rho_tasks(self) -> np.ndarray:
        """Per-task Hessian-Lipschitz constants ``rho_i`` (THEORY A3)."""

    @property
    def L(self) -> float:
        """``L = max_i L_i`` (THEORY A2)."""
        return float(np.max(self.L_tasks))

    @property
    def rho(self) -> float:
        """``rho = max_i rho_i`` (THEORY A3)."""
        return float(np.max(self.rho_tasks))

    # ------------------------------------------------------------ kernels (unchecked; what a family implements)
    @abstractmethod
    def loss_kernel(self, W: np.ndarray, T: np.ndarray, idx: np.ndarray | None) -> np.ndarray: ...

    @abstractmethod
    def grad_kernel(self, W: np.ndarray, T: np.ndarray, idx: np.ndarray | None) -> np.ndarray: ...

    @abstractmethod
    def hessian_kernel(
        self, W: np.ndarray, T: np.ndarray, idx: np.ndarray | None
    ) -> np.ndarray: ...

    @abstractmethod
    def hvp_kernel(
        self, W: np.ndarray, Vv: np.ndarray, T: np.ndarray, idx: np.ndarray | None
    ) -> np.ndarray: ...

    def central_difference_kernel(
        self,
        W: np.ndarray,
        G: np.ndarray,
        delta: np.ndarray,
        T: np.ndarray,
        idx: np.ndarray | None,
    ) -> np.ndarray:
        r"""HF-MAML's central differences (THEORY T3, H1), rows ``b`` of shape (B, d):

        .. math::
            \frac{\tilde\nabla f_{T_b}(W_b + \delta_b G_b, D_b)
                  - \tilde\nabla f_{T_b}(W_b - \delta_b G_b, D_b)}{2\delta_b},

        both gradients on the same data batch, ``delta`` of shape (B,). This default stacks
        the ``2B`` points into one :meth:`grad_kernel` call; families override it to read each
        batch's data once for both points.
        """
        n = W.shape[0]
        S = delta[:, None] * G
        both = self.grad_kernel(
            np.concatenate([W + S, W - S]),
            np.concatenate([T, T]),
            None if idx is None else np.concatenate([idx, idx]),
        )
        return (both[:n] - both[n:]) / (2.0 * delta[:, None])

    @abstractmethod
    def point_grad_kernel(self, w: np.ndarray, t: int) -> np.ndarray: ...

    @abstractmethod
    def point_hessian_kernel(self, w: np.ndarray, t: int) -> np.ndarray: ...

    # ---------------------------------------------------------------- validation
    def _check_batch(
        self, W: object, tasks: object, idx: object, name: str = "W"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        T = np.asarray(tasks)
        if T.ndim != 1 or T.size == 0 or T.dtype.kind not in "iu":
            raise ValueError(f"tasks must be a non-empty 1-D integer array; got shape {T.shape}")
        if T.min() < 0 or T.max() >= self.n_tasks:
            raise ValueError(
                f"tasks must hold indices in [0, {self.n_tasks - 1}]; got range "
                f"[{T.min()}, {T.max()}]"
            )
        Wa = np.asarray(W)
        if Wa.ndim == 1:
            Wa = V.array(name, Wa, shape=(self.dim,))
            Wa = np.broadcast_to(Wa, (T.size, self.dim))
        else:
            Wa = V.array(name, Wa, shape=(T.size, self.dim))
        if idx is not None:
            I = np.asarray(idx)
            if I.ndim != 2 or I.shape[0] != T.size or I.shape[1] == 0 or I.dtype.kind not in "iu":
                raise ValueError(
                    f"idx must be an integer array of shape ({T.size}, D) with D >= 1; "
                    f"got shape {I.shape} and dtype {I.dtype}"
                )
            if I.min() < 0 or I.max() >= self.n_points:
                raise ValueError(
                    f"idx must hold data indices in [0, {self.n_points - 1}]; got range "
                    f"[{I.min()}, {I.max()}]"
                )
            idx = I
        return Wa, T, idx

    def _check_point(self, w: object, task: object) -> tuple[np.ndarray, int]:
        t = V.integer("task", task, lo=0, hi=self.n_tasks - 1)
        return V.array("w", w, shape=(self.dim,)), t

    # ------------------------------------------------------------ checked wrappers
    def losses(self, W: object, tasks: object, idx: object = None) -> np.ndarray:
        """Loss of task ``tasks[b]`` at ``W[b]`` on data ``idx[b]`` (``None``: exact), shape (B,)."""
        return self.loss_kernel(*self._check_batch(W, tasks, idx))

    def grads(self, W: object, tasks: object, idx: object = None) -> np.ndarray:
        """Gradients, shape (B, d); ``idx=None`` gives the exact (population) gradient."""
        return self.grad_kernel(*self._check_batch(W, tasks, idx))

    def hessians(self, W: object, tasks: object, idx: object = None) -> np.ndarray:
        """Hessians, shape (B, d, d). Costs ``O(B D d^2)``."""
        return self.hessian_kernel(*self._check_batch(W, tasks, idx))

    def hvps(self, W: object, Vs: object, tasks: object, idx: object = None) -> np.ndarray:
        """Exact Hessian-vector products ``H_b V[b]`` without forming ``H_b``, shape (B, d)."""
        Wa, T, I = self._check_batch(W, tasks, idx)
        Va = np.asarray(Vs)
        if Va.ndim == 1:
            Va = np.broadcast_to(V.array("V", Va, shape=(self.dim,)), Wa.shape)
        else:
            Va = V.array("V", Va, shape=Wa.shape)
        return self.hvp_kernel(Wa, Va, T, I)

    # ------------------------------------------------------------------ sampling
    def sample_tasks(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` task indices i.i.d. from ``probs`` (a task batch, THEORY B_k)."""
        V.generator(rng)
        size = V.integer("size", size)
        return rng.choice(self.n_tasks, size=size, p=self.probs)

    def sample_points(
        self, rng: np.random.Generator, n_batches: int, size: int, *, replace: bool = True
    ) -> np.ndarray:
        r"""Draw ``n_batches`` independent data batches of ``size`` points (with replacement).

        Returns indices of shape ``(n_batches, size)`` to pass as ``idx``. With
        ``replace=False`` each batch holds ``size <= n`` *distinct* points (a uniformly
        random subset, one permutation per batch): the mini-batch noise is then
        :math:`\tilde\sigma_i^2(w)/D \cdot (n-D)/(n-1)`, not :math:`\tilde\sigma_i^2(w)/D`.
        """
        V.generator(rng)
        n_batches = V.integer("n_batches", n_batches)
        if not isinstance(replace, (bool, np.bool_)):
            raise ValueError(f"replace must be True or False; got {replace!r}")
        if replace:
            size = V.integer("size", size)
            return rng.integers(0, self.n_points, size=(n_batches, size))
        size = V.integer("size", size, hi=self.n_points)
        base = np.broadcast_to(np.arange(self.n_points), (n_batches, self.n_points))
        return rng.permuted(base, axis=1)[:, :size]

    # ------------------------------------------------------------ exact moments
    def task_grads(self, w: object) -> np.ndarray:
        """Exact gradients of all ``m`` tasks at ``w``, shape (m, d)."""
        wa = V.array("w", w, shape=(self.dim,))
        T = np.arange(self.n_tasks)
        return self.grad_kernel(np.broadcast_to(wa, (self.n_tasks, self.dim)), T, None)

    def mean_loss(self, w: object) -> float:
        """``f(w) = E_i f_i(w)`` (THEORY Setting)."""
        wa = V.array("w", w, shape=(self.dim,))
        T = np.arange(self.n_tasks)
        return float(
            self.probs @ self.loss_kernel(np.broadcast_to(wa, (self.n_tasks, self.dim)), T, None)
        )

    def mean_grad(self, w: object) -> np.ndarray:
        """``grad f(w) = E_i grad f_i(w)``."""
        return self.probs @ self.task_grads(w)

    def sigma_sq(self, w: object) -> float:
        r"""Task dissimilarity at ``w``: :math:`E_i\|\nabla f_i(w) - \nabla f(w)\|^2` (THEORY A4)."""
        G = self.task_grads(w)
        dev = G - self.probs @ G
        return float(self.probs @ np.einsum("md,md->m", dev, dev))

    def sigma_tilde_sq(self, w: object) -> np.ndarray:
        r"""Per-task gradient noise :math:`E_\theta\|\nabla f_i(w,\theta)-\nabla f_i(w)\|^2`, shape (m,).

        THEORY A5's :math:`\tilde\sigma^2` is the supremum of these over tasks and ``w``.
        """
        wa = V.array("w", w, shape=(self.dim,))
        G = self.task_grads(wa)
        out = np.empty(self.n_tasks)
        for t in range(self.n_tasks):  # loop over tasks; each term is vectorised over data
            dev = self.point_grad_kernel(wa, t) - G[t]
            out[t] = np.einsum("nd,nd->", dev, dev) / self.n_points
        return out

    def sigma_h_sq(self, w: object, norm: str = "operator") -> np.ndarray:
        r"""Per-task Hessian noise :math:`E_\theta\|\nabla^2 f_i(w,\theta)-\nabla^2 f_i(w)\|^2`, shape (m,).

        ``norm="operator"`` (default): the operator (spectral) norm :math:`\|\cdot\|_2`, as
        THEORY A5 is written. ``norm="frobenius"``: :math:`\|\cdot\|_F`, the norm for which
        a mini-batch of ``D`` points drawn with replacement has Hessian noise exactly
        :math:`\sigma_{H,i}^2(w)/D` (THEORY's open point on the norm of :math:`\sigma_H`);
        :math:`\|\cdot\|_2 \le \|\cdot\|_F`, so the Frobenius value bounds the operator one.
        Costs ``O(m n d^3)`` (operator) or ``O(m n d^2)`` (Frobenius): for small ``d``.
        """
        V.choice("norm", norm, ["frobenius", "operator"])
        wa = V.array("w", w, shape=(self.dim,))
        T = np.arange(self.n_tasks)
        H = self.hessian_kernel(np.broadcast_to(wa, (self.n_tasks, self.dim)), T, None)
        out = np.empty(self.n_tasks)
        order = 2 if norm == "operator" else "fro"
        for t in range(self.n_tasks):
            dev = self.point_hessian_kernel(wa, t) - H[t]
            out[t] = np.mean(np.linalg.norm(dev, ord=order, axis=(1, 2)) ** 2)
        return out

    def point_grads(self, w: object, task: object) -> np.ndarray:
        """Per-data-point gradients of one task, shape (n, d)."""
        return self.point_grad_kernel(*self._check_point(w, task))

    def point_hessians(self, w: object, task: object) -> np.ndarray:
        """Per-data-point Hessians of one task, shape (n, d, d)."""
        return self.point_hessian_kernel(*self._check_point(w, task))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.dim}, n_tasks={self.n_tasks}, "
            f"n_points={self.n_points}, L={self.L:.4g}, rho={self.rho:.4g})"
        )


class Task:
    """One task of a family: the duck-typed object :mod:`hfmaml_core.meta` expects.

    ``loss``, ``grad``, ``hess`` and ``hvp`` take an optional ``idx`` (1-D data
    indices, e.g. from :meth:`sample`); without it they are exact.
    """

    def __init__(self, family: TaskFamily, index: int) -> None:
        self.family = family
        self.index = index
        self._T = np.array([index])

    def _idx(self, idx: object) -> np.ndarray | None:
        if idx is None:
            return None
        I = np.asarray(idx)
        if I.ndim != 1:
            raise ValueError(
                f"idx must be a 1-D integer array of data indices; got shape {I.shape}"
            )
        return I[None, :]

    def _w(self, w: object, name: str = "w") -> np.ndarray:
        return V.array(name, w, shape=(self.family.dim,))[None]

    def loss(self, w: object, idx: object = None) -> float:
        """``f_i(w)`` (exact) or the mini-batch loss on ``idx``."""
        return float(self.family.losses(self._w(w), self._T, self._idx(idx))[0])

    def grad(self, w: object, idx: object = None) -> np.ndarray:
        """``grad f_i(w)`` (exact) or the mini-batch gradient on ``idx``."""
        return self.family.grads(self._w(w), self._T, self._idx(idx))[0]

    def hess(self, w: object, idx: object = None) -> np.ndarray:
        """``hess f_i(w)`` (exact) or the mini-batch Hessian on ``idx``."""
        return self.family.hessians(self._w(w), self._T, self._idx(idx))[0]

    def hvp(self, w: object, v: object, idx: object = None) -> np.ndarray:
        """``hess f_i(w) v`` without forming the Hessian."""
        return self.family.hvps(self._w(w), self._w(v, "v"), self._T, self._idx(idx))[0]

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A data batch of ``size`` indices drawn uniformly with replacement, shape (size,)."""
        return self.family.sample_points(rng, 1, size)[0]

    @property
    def L(self) -> float:
        """Smoothness constant ``L_i`` of this task (THEORY A2)."""
        return float(self.family.L_tasks[self.index])

    @property
    def rho(self) -> float:
        """Hessian-Lipschitz constant ``rho_i`` of this task (THEORY A3)."""
        return float(self.family.rho_tasks[self.index])

    def __repr__(self) -> str:
        return f"Task({type(self.family).__name__}, index={self.index})"


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


#: Factories by name, for notebook parameters such as ``family = "welsch"``.
FAMILIES = {"quadratic": make_quadratic_family, "welsch": make_welsch_family}


def make_family(name: str, dim: int, *, seed: int, **kwargs: object) -> TaskFamily:
    """Build a family by name (``"quadratic"`` or ``"welsch"``); ``kwargs`` go to its factory."""
    V.choice("name", name, sorted(FAMILIES))
    return FAMILIES[name](dim, seed=seed, **kwargs)
