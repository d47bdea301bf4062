r"""The public kernel protocol: what a task family implements, and what it gets for free.

A task family is a subclass of :class:`TaskFamily` (THEORY "Setting": ``m`` tasks drawn
with probabilities ``p``, task ``i`` with ``n`` data points
:math:`\theta_{i1},\dots,\theta_{in}`, :math:`f_i(w) = \frac1n\sum_j f_i(w, \theta_{ij})`).
It implements six **kernels** and two constants; every estimator
(:mod:`hfmaml_core.estimators`), the runner, :mod:`hfmaml_core.meta`,
:mod:`hfmaml_core.hypotheses` and the benchmarks use only the *checked* public methods
built on them (``losses``, ``grads``, ``hessians``, ``hvps``, ``point_grads``,
``point_hessians``, ``task_grads``, ``mean_grad``, ``sigma_sq``, ...), or, inside the
engine after validating once, the kernels themselves.

The kernels are batched over *rows* ``b = 0..B-1``, each row a (task, data batch) pair:

============================  ======================================  ==================
kernel                        arguments                                returns
============================  ======================================  ==================
``loss_kernel``               ``W`` (B, d), ``T`` (B,), ``idx``        (B,)
``grad_kernel``               ``W``, ``T``, ``idx``                    (B, d)
``hessian_kernel``            ``W``, ``T``, ``idx``                    (B, d, d)
``hvp_kernel``                ``W``, ``V`` (B, d), ``T``, ``idx``      (B, d)
``central_difference_kernel`` ``W``, ``G`` (B, d), ``delta`` (B,),     (B, d)
                              ``T``, ``idx``                           (optional)
``point_grad_kernel``         ``w`` (d,), ``t`` (int)                  (n, d)
``point_hessian_kernel``      ``w`` (d,), ``t`` (int)                  (n, d, d)
============================  ======================================  ==================

``T`` holds task indices in ``[0, m)``; ``idx`` is ``None`` (the exact, population
quantity: the average over all ``n`` points of task ``T[b]``) or an integer array of
shape (B, D) of data indices in ``[0, n)`` (row ``b``'s mini-batch: the average over
``idx[b]``, repetitions counted). Row ``b`` of the result is the quantity of task ``T[b]``
at ``W[b]`` on that batch: ``grad_kernel`` gives :math:`\tilde\nabla f_{T_b}(W_b, D_b)`,
``hvp_kernel`` :math:`\tilde\nabla^2 f_{T_b}(W_b, D_b)\,V_b`, and so on. The point
kernels give the per-point gradients :math:`\nabla f_t(w, \theta_{tj})` and Hessians
of one task, ``j = 0..n-1`` (for :math:`\tilde\sigma^2`, :math:`\sigma_H^2`, THEORY A5).
Kernels may assume valid arguments (the checked wrappers validate), must not loop in
Python over data points, and return new arrays (callers may update them in place).
The constants are the per-task ``L_tasks`` and ``rho_tasks`` (THEORY A2, A3), shape (m,).

README's "Adding a task family" walks through a new family in a few lines;
:mod:`hfmaml_core.tasks` holds the quadratic and Welsch families and
:func:`~hfmaml_core.tasks.make_family`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from . import _validate as V

__all__ = ["Task", "TaskFamily"]


class TaskFamily(ABC):
    """A finite family of tasks with probabilities, each with a finite data set.

    Subclasses implement the unchecked vectorised kernels ``loss_kernel``, ``grad_kernel``,
    ``hessian_kernel``, ``hvp_kernel``, ``point_grad_kernel`` and ``point_hessian_kernel`` (and may override
    ``central_difference_kernel``, HF-MAML's two perturbed gradients); this class validates
    arguments and derives the exact moments of THEORY A4 and A5. The kernels return new
    arrays, which callers (the estimators) may update in place. The shapes of every kernel
    are in the docstring of :mod:`hfmaml_core.kernels` (the public kernel protocol).

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
    def loss_kernel(self, W: np.ndarray, T: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        r"""Losses :math:`\tilde f_{T_b}(W_b, D_b)`: ``W`` (B, d), ``T`` (B,), ``idx`` (B, D) or None -> (B,)."""

    @abstractmethod
    def grad_kernel(self, W: np.ndarray, T: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        r"""Gradients :math:`\tilde\nabla f_{T_b}(W_b, D_b)`, shape (B, d)."""

    @abstractmethod
    def hessian_kernel(self, W: np.ndarray, T: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        r"""Hessians :math:`\tilde\nabla^2 f_{T_b}(W_b, D_b)`, shape (B, d, d)."""

    @abstractmethod
    def hvp_kernel(
        self, W: np.ndarray, Vv: np.ndarray, T: np.ndarray, idx: np.ndarray | None
    ) -> np.ndarray:
        r"""Products :math:`\tilde\nabla^2 f_{T_b}(W_b, D_b)\,V_b` for ``Vv`` (B, d), shape (B, d)."""

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
    def point_grad_kernel(self, w: np.ndarray, t: int) -> np.ndarray:
        r"""Per-point gradients :math:`\nabla f_t(w, \theta_{tj})` of task ``t`` at ``w`` (d,), shape (n, d)."""

    @abstractmethod
    def point_hessian_kernel(self, w: np.ndarray, t: int) -> np.ndarray:
        r"""Per-point Hessians :math:`\nabla^2 f_t(w, \theta_{tj})`, shape (n, d, d)."""

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
