r"""Sinusoid tasks of the MAML benchmark (Finn, Abbeel & Levine 2017); see :mod:`hfmaml_core.sinusoid`.

A task is :math:`y = A\sin(x - \varphi)`, :math:`A \sim U[0.1, 5]`, :math:`\varphi \sim U[0, \pi]`,
inputs :math:`x \sim U[-5, 5]`; and the adaptation to them (:func:`adapt`, :func:`adaptation_errors`,
the meta-test error). Importable from :mod:`hfmaml_core.sinusoid` too.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import _validate as V
from .mlp import MLP

__all__ = [
    "AMPLITUDE_RANGE",
    "INPUT_RANGE",
    "PHASE_RANGE",
    "SinusoidTasks",
    "adapt",
    "adaptation_errors",
    "check_inputs",
    "sample_tasks",
]

AMPLITUDE_RANGE: tuple[float, float] = (0.1, 5.0)
PHASE_RANGE: tuple[float, float] = (0.0, math.pi)
INPUT_RANGE: tuple[float, float] = (-5.0, 5.0)


# =============================================================================
# tasks
# =============================================================================


@dataclass(frozen=True)
class SinusoidTasks:
    r"""A batch of sinusoid tasks :math:`y = A\sin(x - \varphi)` with their data.

    Attributes
    ----------
    amplitude, phase : ndarray, shape ``lead``
        :math:`A` and :math:`\varphi` of each task.
    x_support, y_support : ndarray, shape ``(*lead, K, 1)``
        Support set (inner step).
    x_query, y_query : ndarray, shape ``(*lead, K_q, 1)``
        Query set (outer gradient, or meta-test error).
    """

    amplitude: np.ndarray
    phase: np.ndarray
    x_support: np.ndarray
    y_support: np.ndarray
    x_query: np.ndarray
    y_query: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """Leading (task) shape ``lead``."""
        return self.amplitude.shape

    def truth(self, x: object) -> np.ndarray:
        r""":math:`A\sin(x - \varphi)` of every task at inputs ``x`` of shape ``(*lead, n, 1)``
        (or ``(n, 1)``, shared by all tasks)."""
        xa = np.asarray(x, dtype=float)
        return self.amplitude[..., None, None] * np.sin(xa - self.phase[..., None, None])

    def __getitem__(self, index: object) -> SinusoidTasks:
        """The tasks ``index`` selects along the leading axes (numpy indexing)."""
        amp = self.amplitude[index]  # type: ignore[index]
        if np.ndim(amp) == 0:
            raise ValueError("index must keep at least one task axis (use [i:i+1], not [i])")
        return SinusoidTasks(
            amp,
            self.phase[index],  # type: ignore[index]
            self.x_support[index],  # type: ignore[index]
            self.y_support[index],  # type: ignore[index]
            self.x_query[index],  # type: ignore[index]
            self.y_query[index],  # type: ignore[index]
        )


def _check_shape(shape: object) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or len(shape) == 0:
        raise ValueError(
            f"shape must be an integer >= 1 or a non-empty tuple of them; got {shape!r}"
        )
    return tuple(V.integer("shape", s) for s in shape)


def sample_tasks(
    rng: np.random.Generator,
    shape: int | tuple[int, ...],
    k_support: int = 10,
    k_query: int = 10,
) -> SinusoidTasks:
    r"""Draw sinusoid tasks and their data as in the MAML benchmark.

    .. math::
        A \sim U[0.1, 5],\quad \varphi \sim U[0, \pi],\quad x \sim U[-5, 5],\quad
        y = A\sin(x - \varphi).

    Draw order (for reproducibility): amplitudes, phases, support inputs, query inputs.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : int or tuple of int
        Leading shape of the batch: ``B`` tasks, or ``(R, B)`` for ``R`` runs.
    k_support, k_query : int
        Support and query points per task, each >= 1.
    """
    V.generator(rng)
    lead = _check_shape(shape)
    k_support = V.integer("k_support", k_support)
    k_query = V.integer("k_query", k_query)
    amp = rng.uniform(*AMPLITUDE_RANGE, size=lead)
    phase = rng.uniform(*PHASE_RANGE, size=lead)
    xs = rng.uniform(*INPUT_RANGE, size=(*lead, k_support, 1))
    xq = rng.uniform(*INPUT_RANGE, size=(*lead, k_query, 1))
    a, p = amp[..., None, None], phase[..., None, None]
    return SinusoidTasks(amp, phase, xs, a * np.sin(xs - p), xq, a * np.sin(xq - p))


def check_inputs(
    net: object, W: object, tasks: object, alpha: object
) -> tuple[MLP, np.ndarray, SinusoidTasks, float]:
    """Check a 1-input 1-output network, its parameters ``W``, a task batch and ``alpha > 0``."""
    if not isinstance(net, MLP):
        raise ValueError(f"net must be an hfmaml_core.mlp.MLP; got {type(net).__name__}")
    if not isinstance(tasks, SinusoidTasks):
        raise ValueError(f"tasks must be a SinusoidTasks batch; got {type(tasks).__name__}")
    if net.sizes[0] != 1 or net.sizes[-1] != 1:
        raise ValueError(f"net must map 1 input to 1 output; got sizes {net.sizes}")
    Wa = net.check_params("W", W)
    alpha = V.real("alpha", alpha, lo=0.0, lo_open=True)
    return net, Wa, tasks, alpha


# =============================================================================
# adaptation and meta-test error
# =============================================================================


def _check_adapt(
    net: object, W: object, tasks: object, alpha: object, n_steps: object
) -> tuple[MLP, np.ndarray, SinusoidTasks, float, int]:
    net, Wa, tasks, alpha = check_inputs(net, W, tasks, alpha)
    n_steps = V.integer("n_steps", n_steps, lo=0)
    try:
        np.broadcast_shapes(Wa.shape[:-1], tasks.shape)
    except ValueError:
        raise ValueError(
            f"W's leading shape {Wa.shape[:-1]} must broadcast against the tasks' {tasks.shape}"
        ) from None
    return net, Wa, tasks, alpha, n_steps


def adapt(net: MLP, W: object, tasks: SinusoidTasks, alpha: float, n_steps: int) -> np.ndarray:
    r"""Parameters after 0, 1, ..., ``n_steps`` gradient steps on each task's support set.

    .. math:: w_i^{(k+1)} = w_i^{(k)} - \alpha\nabla f_i^{s}(w_i^{(k)}),\qquad w_i^{(0)} = w.

    ``W`` has shape ``(..., P)`` broadcasting against ``tasks.shape``. Returns shape
    ``(n_steps + 1, *lead, P)``: memory grows with the steps, so use
    :func:`adaptation_errors` for many tasks.
    """
    net, Wa, tasks, alpha, n_steps = _check_adapt(net, W, tasks, alpha, n_steps)
    lead = np.broadcast_shapes(Wa.shape[:-1], tasks.shape)
    out = np.empty((n_steps + 1, *lead, net.n_params))
    out[0] = Wa
    for k in range(n_steps):
        out[k + 1] = out[k] - alpha * net.grad_kernel(out[k], tasks.x_support, tasks.y_support)
    return out


def adaptation_errors(
    net: MLP, W: object, tasks: SinusoidTasks, alpha: float, n_steps: int
) -> np.ndarray:
    r"""Query mean squared error after 0, 1, ..., ``n_steps`` adaptation steps (the meta-test error).

    .. math:: e_i^{(k)} = f_i^{q}(w_i^{(k)}),\qquad
        w_i^{(k+1)} = w_i^{(k)} - \alpha\nabla f_i^{s}(w_i^{(k)}).

    Parameters
    ----------
    net : MLP
    W : array, shape (..., P)
        Meta-learned parameters; leading shape broadcasting against ``tasks.shape``
        (e.g. ``(R, 1, P)`` for ``R`` runs against ``N`` held-out tasks).
    tasks : SinusoidTasks
        Held-out tasks (support for adapting, query for the error).
    alpha : float
        Adaptation step, > 0.
    n_steps : int
        Largest number of steps, >= 0.

    Returns
    -------
    ndarray, shape ``(n_steps + 1, *lead)``
    """
    net, Wa, tasks, alpha, n_steps = _check_adapt(net, W, tasks, alpha, n_steps)
    lead = np.broadcast_shapes(Wa.shape[:-1], tasks.shape)
    out = np.empty((n_steps + 1, *lead))
    w = Wa
    for k in range(n_steps + 1):
        out[k] = net.loss_kernel(w, tasks.x_query, tasks.y_query)
        if k < n_steps:
            w = w - alpha * net.grad_kernel(w, tasks.x_support, tasks.y_support)
    return out
