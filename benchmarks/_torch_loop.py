r"""The PyTorch yardstick of ``network_scaling.py``: the three directions the way learn2learn-style code runs.

A Python loop over the tasks of the batch; per task, PyTorch autograd on the same 1-H-H-1
tanh network (:class:`hfmaml_core.mlp.MLP`'s parameter layout: per layer the weight matrix
``(n_in, n_out)`` row-major, then the bias; :math:`a_l = h_{l-1} W_l + b_l`), float64:

* MAML: the inner gradient with ``create_graph=True``, the adapted parameters
  :math:`\hat w_i = w - \alpha\nabla f_i^{s}(w)`, the query loss at them and its gradient
  with respect to :math:`w`, back through the inner step;
* FO-MAML: the same with the inner gradient detached: :math:`g_i = \nabla f_i^{q}(\hat w_i)`;
* HF-MAML: :math:`g_i` as for FO-MAML and two more autograd gradients of the support loss at
  :math:`w \pm \delta_i g_i`, :math:`\delta_i = \delta/\|g_i\|` (the rule of
  :func:`hfmaml_core.hvp.radius_rule`): :math:`g_i - \alpha\,[\nabla f_i^{s}(w+\delta_i g_i)
  - \nabla f_i^{s}(w-\delta_i g_i)]/(2\delta_i)`.

Each direction is the mean over the tasks, returned as one flat float64 tensor. PyTorch is not
a dependency of the project: ``network_scaling.py`` imports this module only when ``torch``
can be imported (``make bench-torch`` builds a venv with it). Not a benchmark itself
(``make bench`` skips files whose name starts with ``_``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

#: The methods, by the labels of :data:`hfmaml_core.methods.LABELS`.
METHODS = ("MAML", "FO-MAML", "HF-MAML")


def setup(threads: int = 1) -> dict:
    """One intra-op thread (as numpy's BLAS in the benchmark), float64; what torch runs with."""
    torch.set_num_threads(threads)
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "parallel_info": torch.__config__.parallel_info().splitlines()[:4],
    }


class TorchLoop:
    """The three directions of one network and one batch of tasks, one task at a time.

    Parameters
    ----------
    sizes : tuple of int
        Layer widths of the network (``MLP.sizes``).
    w : ndarray, shape (P,)
        Parameters in :class:`~hfmaml_core.mlp.MLP`'s layout (copied).
    tasks : SinusoidTasks
        The batch, leading shape ``(B,)``.
    alpha, delta : float
        Inner step and HF-MAML's radius.
    """

    def __init__(self, sizes, w: np.ndarray, tasks, alpha: float, delta: float) -> None:
        self.alpha, self.delta = float(alpha), float(delta)
        self.shapes: list[tuple[int, ...]] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            self.shapes += [(n_in, n_out), (n_out,)]
        flat = torch.tensor(np.asarray(w, dtype=np.float64))
        sizes_flat = [int(np.prod(s)) for s in self.shapes]
        self.params = [
            p.reshape(s).clone().requires_grad_(True)
            for p, s in zip(torch.split(flat, sizes_flat), self.shapes, strict=True)
        ]

        def as_tensors(x, y):
            return [
                (torch.tensor(x[b], dtype=torch.float64), torch.tensor(y[b], dtype=torch.float64))
                for b in range(x.shape[0])
            ]

        self.support = as_tensors(tasks.x_support, tasks.y_support)
        self.query = as_tensors(tasks.x_query, tasks.y_query)

    # ------------------------------------------------------------------ the network
    @staticmethod
    def loss(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean over the K points of the squared error of the tanh network."""
        h = x
        last = len(params) // 2 - 1
        for l in range(last + 1):
            a = h @ params[2 * l] + params[2 * l + 1]
            h = a if l == last else torch.tanh(a)
        r = h - y
        return (r * r).sum() / y.shape[0]

    # ------------------------------------------------------------------ the directions
    def maml(self) -> torch.Tensor:
        total = [torch.zeros_like(p) for p in self.params]
        for (xs, ys), (xq, yq) in zip(self.support, self.query, strict=True):
            inner = torch.autograd.grad(
                self.loss(self.params, xs, ys), self.params, create_graph=True
            )
            adapted = [p - self.alpha * g for p, g in zip(self.params, inner, strict=True)]
            outer = torch.autograd.grad(self.loss(adapted, xq, yq), self.params)
            for t, g in zip(total, outer, strict=True):
                t += g
        return self._mean(total)

    def _query_gradient(self, xs, ys, xq, yq) -> list[torch.Tensor]:
        """:math:`g_i = \\nabla f_i^{q}(\\hat w_i)` with the inner gradient detached."""
        inner = torch.autograd.grad(self.loss(self.params, xs, ys), self.params)
        adapted = [
            (p.detach() - self.alpha * g).requires_grad_(True)
            for p, g in zip(self.params, inner, strict=True)
        ]
        return list(torch.autograd.grad(self.loss(adapted, xq, yq), adapted))

    def fomaml(self) -> torch.Tensor:
        total = [torch.zeros_like(p) for p in self.params]
        for (xs, ys), (xq, yq) in zip(self.support, self.query, strict=True):
            for t, g in zip(total, self._query_gradient(xs, ys, xq, yq), strict=True):
                t += g
        return self._mean(total)

    def hfmaml(self) -> torch.Tensor:
        total = [torch.zeros_like(p) for p in self.params]
        for (xs, ys), (xq, yq) in zip(self.support, self.query, strict=True):
            g = self._query_gradient(xs, ys, xq, yq)
            norm = torch.sqrt(sum((gj * gj).sum() for gj in g))
            step = self.delta / torch.clamp(norm, min=torch.finfo(torch.float64).tiny)
            grads = []
            for sign in (1.0, -1.0):
                moved = [
                    (p.detach() + sign * step * gj).requires_grad_(True)
                    for p, gj in zip(self.params, g, strict=True)
                ]
                grads.append(torch.autograd.grad(self.loss(moved, xs, ys), moved))
            for t, gj, gp, gm in zip(total, g, *grads, strict=True):
                t += gj - self.alpha * (gp - gm) / (2.0 * step)
        return self._mean(total)

    def _mean(self, total: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in total]) / len(self.support)

    def calls(self) -> dict[str, Callable[[], torch.Tensor]]:
        """``method label -> call`` computing that direction."""
        return dict(zip(METHODS, (self.maml, self.fomaml, self.hfmaml), strict=True))
