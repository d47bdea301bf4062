r"""The one implementation of the three meta-gradient directions (THEORY "Algorithms").

For a task :math:`i` with data batches :math:`D_{in}^i, D_o^i, D_h^i`,

.. math::
    \hat w_i = w - \alpha\tilde\nabla f_i(w, D_{in}^i), \qquad
    g_i = \tilde\nabla f_i(\hat w_i, D_o^i),

.. math::
    u_i^{\mathrm{MAML}} = g_i - \alpha\tilde\nabla^2 f_i(w, D_h^i)\, g_i \ (\text{T1}),\qquad
    u_i^{\mathrm{FO}} = g_i \ (\text{T2}),\qquad
    u_i^{\mathrm{HF}} = g_i - \alpha\,
        \frac{\tilde\nabla f_i(w + \delta_i g_i, D_h^i) - \tilde\nabla f_i(w - \delta_i g_i, D_h^i)}
             {2\delta_i}\ (\text{T3, H1}).

The engine computes the rows :math:`u_i`; its client averages them over the task batch
(weights :math:`1/B`, or :math:`p_i` for the population) and counts the work. Clients:
:func:`hfmaml_core.estimators.direction` (task families, batches of data-point indices,
:class:`FamilyKernels`) and :mod:`hfmaml_core.sinusoid` (the network, batches of
``(x, y)`` arrays, :class:`hfmaml_core.mlp.NetworkKernels`). The theory's choices are
parameters: the batch of the Hessian term (``batch_h`` is an independent :math:`D_h` or the
inner batch :math:`D_{in}` itself), the :math:`\delta` rule
(:func:`hfmaml_core.hvp.hf_deltas`), MAML's Hessian formed or applied as an HVP, and the
finite difference (``"central"``, the theory's, or ``"forward"``, a deliberately worse one).

**The kernel protocol** (:class:`BatchKernels`). A batch is whatever the model's kernels
understand; the engine never looks inside. Points ``W`` have shape ``(..., d)``, and every
kernel returns a *new* array of the broadcast shape ``(..., d)`` of its point and its batch
(the engine updates it in place): ``grad(W, batch)``, ``hvp(W, V, batch)``,
``central_difference(W, G, delta, batch)`` (``delta`` of shape ``G.shape[:-1]``, both
gradients on the same batch), and optionally ``hessian_times(W, G, batch)`` (MAML's
``"matrix"`` mode) and ``loss_grad(W, batch) -> (losses, grads)``. Rows may also be a structured type the kernels
understand (:class:`hfmaml_core.factored.FactoredRows`: ``*=``, ``+=``, ``-=``, ``/=``,
``row_norms()``, ``mean(axis=-2)``, ``point - rows``), which the engine handles with the same
operations (those kernels have no ``hessian_times``: MAML on them takes ``hessian="hvp"``).

Unchecked: the clients validate once, the engine runs every iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .hvp import hf_deltas

__all__ = [
    "DIFFERENCES",
    "ORACLES",
    "BatchKernels",
    "FamilyKernels",
    "HFTerm",
    "Outer",
    "hf_term",
    "outer_gradients",
    "task_directions",
]

#: Finite differences of HF-MAML's Hessian term: ``"central"`` (THEORY H1, the method's own)
#: and ``"forward"``, :math:`[\nabla f(w+\delta_i g_i) - \nabla f(w)]/\delta_i`, first order in
#: :math:`\delta` (a deliberately worse estimator, for controls).
DIFFERENCES: tuple[str, ...] = ("central", "forward")

#: How the central difference gets its two perturbed gradients: ``"fused"``, the kernel's
#: ``central_difference`` (on task families both gradients in one pass over each batch's data,
#: which reads every point once), or ``"two-calls"``, two separate ``grad`` calls at
#: :math:`w \pm \delta_i g_i`, what a black-box gradient oracle allows (every point read twice).
#: The same quotient up to rounding; ``"forward"`` always makes two ``grad`` calls.
ORACLES: tuple[str, ...] = ("fused", "two-calls")

_HESSIAN_ENTRIES = 1 << 20  # d x d entries formed at once by MAML's "matrix" mode (8 MiB)


@runtime_checkable
class BatchKernels(Protocol):
    """What the engine needs from a model: gradients, HVPs and HF-MAML's differences on a batch.

    ``W``, ``V``, ``G``: shape ``(..., d)``; results: a new array of the broadcast shape of the
    point and the batch, ``(..., d)``; ``delta``: shape ``G.shape[:-1]``. See the module
    docstring; :class:`FamilyKernels` and :class:`hfmaml_core.mlp.NetworkKernels` implement it.
    """

    def grad(self, W: np.ndarray, batch: Any) -> np.ndarray: ...

    def hvp(self, W: np.ndarray, V: np.ndarray, batch: Any) -> np.ndarray: ...

    def central_difference(
        self, W: np.ndarray, G: np.ndarray, delta: np.ndarray, batch: Any
    ) -> np.ndarray: ...


class FamilyKernels:
    """:class:`BatchKernels` of a task family on rows ``(task T[b], data batch idx[b])``.

    A batch is an index array of shape ``(n, D)`` (or ``None``: every point); ``W`` has shape
    ``(n, d)``, one row per (run, task) pair. The calls go to the family's public kernels
    (``grad_kernel``, ``hvp_kernel``, ``hessian_kernel``, ``central_difference_kernel``).
    """

    def __init__(self, family: Any, T: np.ndarray) -> None:
        self.family = family
        self.T = T

    def grad(self, W: np.ndarray, batch: np.ndarray | None) -> np.ndarray:
        return self.family.grad_kernel(W, self.T, batch)

    def loss_grad(self, W: np.ndarray, batch: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return self.family.loss_kernel(W, self.T, batch), self.family.grad_kernel(W, self.T, batch)

    def hvp(self, W: np.ndarray, V: np.ndarray, batch: np.ndarray | None) -> np.ndarray:
        return self.family.hvp_kernel(W, V, self.T, batch)

    def central_difference(
        self, W: np.ndarray, G: np.ndarray, delta: np.ndarray, batch: np.ndarray | None
    ) -> np.ndarray:
        return self.family.central_difference_kernel(W, G, delta, self.T, batch)

    def hessian_times(self, W: np.ndarray, G: np.ndarray, batch: np.ndarray | None) -> np.ndarray:
        """Rows ``H_b G[b]`` with each mini-batch Hessian formed (``O(D d^2)`` per row).

        In chunks of at most ``2**20`` matrix entries, so memory stays ``O(d^2)`` (one
        Hessian at a time once ``d^2`` exceeds the budget) instead of ``O(B d^2)``.
        """
        d = W.shape[1]
        rows = max(1, _HESSIAN_ENTRIES // (d * d))
        out = np.empty_like(G)
        for start in range(0, len(self.T), rows):  # chunks of (run, task) rows, not data
            sl = slice(start, start + rows)
            H = self.family.hessian_kernel(W[sl], self.T[sl], None if batch is None else batch[sl])
            out[sl] = np.matmul(H, G[sl, :, None])[:, :, 0]
            del H  # free it before the next chunk's Hessians are formed
        return out


@dataclass(frozen=True)
class Outer:
    """The outer gradients :math:`g_i` (shape ``(..., d)``) and, if asked, :math:`f_i(\\hat w_i, D_o^i)`."""

    G: np.ndarray
    loss: np.ndarray | None = None


@dataclass(frozen=True)
class HFTerm:
    """HF-MAML's difference quotients :math:`d_i`, the norms :math:`\\|g_i\\|` and the :math:`\\delta_i`."""

    D: np.ndarray
    norms: np.ndarray
    deltas: np.ndarray


def outer_gradients(
    kern: Any, W: np.ndarray, alpha: float, batch_in: Any, batch_o: Any, *, with_loss: bool = False
) -> Outer:
    r""":math:`g_i = \tilde\nabla f_i(w - \alpha\tilde\nabla f_i(w, D_{in}^i), D_o^i)` of every row.

    ``with_loss`` also returns the post-update losses :math:`f_i(\hat w_i, D_o^i)` (the
    kernel's ``loss_grad``).
    """
    # the kernels return new arrays: update in place (same bits as W - alpha * g_in)
    w_hat = kern.grad(W, batch_in)
    w_hat *= -alpha
    w_hat += W
    if with_loss:
        loss, G = kern.loss_grad(w_hat, batch_o)
        return Outer(G=G, loss=loss)
    return Outer(G=kern.grad(w_hat, batch_o))


def hf_term(
    kern: Any,
    W: np.ndarray,
    G: np.ndarray,
    batch_h: Any,
    *,
    delta: str | float | Callable[[np.ndarray], np.ndarray],
    rho: float,
    alpha: float,
    difference: str = "central",
    oracle: str = "fused",
) -> HFTerm:
    r"""HF-MAML's finite difference :math:`d_i \approx \tilde\nabla^2 f_i(w, D_h^i)\,g_i` of every row.

    ``"central"``: :math:`d_i = [\tilde\nabla f_i(w+\delta_i g_i) - \tilde\nabla f_i(w-\delta_i
    g_i)]/(2\delta_i)` (H1), both gradients in one kernel call (``oracle="fused"``, the
    default) or in two ``grad`` calls (``oracle="two-calls"``, a black-box gradient oracle);
    ``"forward"``: :math:`[\tilde\nabla f_i(w+\delta_i g_i) - \tilde\nabla f_i(w)]/\delta_i`
    (two ``grad`` calls whatever ``oracle``). The :math:`\delta_i` come from
    :func:`hfmaml_core.hvp.hf_deltas` (``delta``, ``rho``, ``alpha``).
    """
    row_norms = getattr(G, "row_norms", None)  # structured rows (hfmaml_core.factored)
    norms = row_norms() if row_norms is not None else np.sqrt(np.einsum("...d,...d->...", G, G))
    deltas = hf_deltas(delta, norms, rho=rho, alpha=alpha)
    if difference == "central" and oracle == "fused":
        D = kern.central_difference(W, G, deltas, batch_h)
    elif difference == "central":  # two gradient calls, as a black-box oracle makes them
        S = G * deltas[..., None]  # delta_i g_i
        P = W + S
        D = kern.grad(P, batch_h)
        if isinstance(P, np.ndarray):
            np.subtract(W, S, out=P)  # reuse the buffer (dense rows)
        else:
            P = W - S  # structured rows (hfmaml_core.factored) are never written in place
        D -= kern.grad(P, batch_h)
        D /= 2.0 * deltas[..., None]
    else:
        D = kern.grad(W + deltas[..., None] * G, batch_h)
        D -= kern.grad(W, batch_h)
        D /= deltas[..., None]
    return HFTerm(D=D, norms=norms, deltas=deltas)


def task_directions(
    kern: Any,
    W: np.ndarray,
    G: np.ndarray,
    alpha: float,
    method: str,
    batch_h: Any = None,
    *,
    hessian: str = "hvp",
    delta: str | float | Callable[[np.ndarray], np.ndarray] = "theorem",
    rho: float = 0.0,
    difference: str = "central",
    oracle: str = "fused",
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""The rows :math:`u_i` of one method from the outer gradients ``G`` (:func:`outer_gradients`).

    ``method`` is a name of :data:`hfmaml_core.methods.NAMES`; ``batch_h`` the batch of the
    Hessian term (pass the inner batch itself for the autodiff variant :math:`D_h = D_{in}`);
    ``hessian``: MAML's ``"matrix"`` (the kernel's ``hessian_times``) or ``"hvp"``;
    ``difference`` and ``oracle``: HF-MAML's (:func:`hf_term`). FO-MAML
    returns ``G`` itself (not a copy). Returns ``(U, deltas)`` with HF-MAML's :math:`\delta_i`
    (``None`` for the other methods).
    """
    if method == "fomaml":
        return G, None
    deltas = None
    if method == "maml":
        HG = kern.hessian_times(W, G, batch_h) if hessian == "matrix" else kern.hvp(W, G, batch_h)
    else:
        hf = hf_term(
            kern,
            W,
            G,
            batch_h,
            delta=delta,
            rho=rho,
            alpha=alpha,
            difference=difference,
            oracle=oracle,
        )
        HG, deltas = hf.D, hf.deltas
    HG *= -alpha
    HG += G  # U = G - alpha * HG, in place
    return HG, deltas
