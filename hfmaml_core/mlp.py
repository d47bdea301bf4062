r"""A small tanh network with exact gradients and Hessian-vector products, vectorised over tasks.

The network maps inputs :math:`x \in \mathbb R^{n_0}` through ``len(sizes) - 2``
tanh layers to a linear output :math:`\hat y \in \mathbb R^{n_L}` (default
``sizes = (1, 40, 40, 1)``, the network of the MAML sinusoid benchmark with the
ReLU replaced by tanh, so that every task loss is smooth with a Lipschitz
Hessian on bounded sets, as THEORY A2 and A3 assume):

.. math::
    h_0 = x,\qquad a_l = h_{l-1} W_l + b_l,\qquad h_l = \tanh(a_l)\ (l < L),
    \qquad \hat y = a_L .

The loss of a task on a data set of :math:`K` pairs :math:`(x_k, y_k)` is the
mean squared error, as in the benchmark,

.. math:: f(w) = \frac1K \sum_{k=1}^K \|\hat y(x_k; w) - y_k\|^2 .

**The parameter vector.** All weights and biases are one flat vector ``w`` of
length :attr:`MLP.n_params` (1761 for 1-40-40-1): for each layer in turn the
weight matrix :math:`W_l` (shape ``(n_{l-1}, n_l)``, row-major), then the bias
:math:`b_l`. :meth:`MLP.unpack` returns views into ``w``.

**Vectorisation.** Every kernel takes ``W`` of shape ``(..., P)`` and inputs
``X`` of shape ``(..., K, n_0)``, targets ``Y`` of shape ``(..., K, n_L)``; the
leading dimensions broadcast. So ``W`` of shape ``(B, P)`` with ``X`` of shape
``(B, K, 1)`` gives one loss per task, a shared ``w`` of shape ``(P,)`` gives
every task's loss at the same point, and ``(R, 1, P)`` against ``(R, B, K, 1)``
gives ``R`` runs of ``B`` tasks. There are no Python loops over tasks or data
points, only over the layers.

**Hessian-vector products** are exact and never form the Hessian: Pearlmutter's
R-operator :math:`\mathcal R_v\{\cdot\} = \frac{d}{dt}(\cdot)(w + tv)|_{t=0}`
applied to the forward and the backward pass (forward-over-reverse
differentiation, written out by hand). The cost is about twice a gradient.

The unchecked kernels (``loss_kernel``, ``grad_kernel``, ``loss_grad_kernel``, ``hvp_kernel``) use only
matrix products, ``tanh`` and arithmetic, never ``abs`` or a complex conjugate,
so they are analytic in ``w`` and run on complex arrays: the tests use that for
complex-step derivatives. The public methods validate their arguments first
and accept real input only.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from . import _heap

__all__ = ["MLP", "SINUSOID_SIZES", "NetworkKernels"]

#: Layer widths of the MAML sinusoid benchmark network.
SINUSOID_SIZES: tuple[int, ...] = (1, 40, 40, 1)


def _t(A: np.ndarray) -> np.ndarray:
    """Transpose of the last two axes (no conjugation: complex-step safe)."""
    return np.swapaxes(A, -1, -2)


class MLP:
    r"""A fully connected tanh network ``sizes[0] -> ... -> sizes[-1]`` with a linear output.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, at least two entries, each an integer >= 1. The default
        ``(1, 40, 40, 1)`` is the sinusoid benchmark's network.

    Attributes
    ----------
    sizes : tuple of int
    n_params : int
        Length ``P`` of the flat parameter vector:
        :math:`\sum_l (n_{l-1} + 1)\, n_l`.

    Examples
    --------
    >>> import numpy as np
    >>> net = MLP()
    >>> net.n_params
    1761
    >>> w = net.init(np.random.default_rng(0))
    >>> X = np.linspace(-5, 5, 30).reshape(3, 10, 1)  # 3 tasks, 10 points each
    >>> net.grads(w, X, np.sin(X)).shape
    (3, 1761)
    """

    def __init__(self, sizes: Sequence[int] = SINUSOID_SIZES) -> None:
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
            raise ValueError(
                f"sizes must be a sequence of at least two layer widths (integers >= 1); got {sizes!r}"
            )
        for n in sizes:
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
                raise ValueError(f"sizes must hold integers >= 1; got {sizes!r}")
        self.sizes: tuple[int, ...] = tuple(int(n) for n in sizes)
        self._slices: list[tuple[int, int, int, int, int]] = []  # (start, mid, end, n_in, n_out)
        start = 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            mid = start + n_in * n_out
            end = mid + n_out
            self._slices.append((start, mid, end, n_in, n_out))
            start = end
        self.n_params: int = start

    def __repr__(self) -> str:
        return f"MLP(sizes={self.sizes}, n_params={self.n_params})"

    # ------------------------------------------------------------------ layout
    def unpack(self, w: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        r"""Views ``[(W_1, b_1), ..., (W_L, b_L)]`` into ``w`` of shape ``(..., P)``.

        ``W_l`` has shape ``(..., n_{l-1}, n_l)`` and ``b_l`` shape ``(..., 1, n_l)``
        (the extra axis broadcasts over the ``K`` data points). Writing into them
        writes into ``w``. No validation: see :meth:`losses` for the checked API.
        """
        lead = w.shape[:-1]
        return [
            (w[..., s:m].reshape(*lead, n_in, n_out), w[..., m:e].reshape(*lead, 1, n_out))
            for s, m, e, n_in, n_out in self._slices
        ]

    def init(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        r"""Random parameters, PyTorch's default for linear layers.

        Every weight and bias of layer :math:`l` is drawn from
        :math:`U(-1/\sqrt{n_{l-1}},\, 1/\sqrt{n_{l-1}})`. For the 1-40-40-1
        network the first layer's tanh units then have their centres
        :math:`-b/w` spread over the input range, which a tanh network needs
        (the benchmark's ReLU initialisation with standard deviation 0.01 would
        make the tanh network almost linear at the start).

        Parameters
        ----------
        rng : numpy.random.Generator
        n : int, optional
            Number of independent parameter vectors; ``None`` returns one vector.

        Returns
        -------
        ndarray, shape (P,) or (n, P)
        """
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}"
            )
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"n must be None or an integer >= 1; got {n!r}")
        shape = (self.n_params,) if n is None else (int(n), self.n_params)
        w = np.empty(shape)
        for s, _, e, n_in, _ in self._slices:
            bound = 1.0 / np.sqrt(n_in)
            w[..., s:e] = rng.uniform(-bound, bound, size=(*shape[:-1], e - s))
        return w

    # -------------------------------------------------------------- validation
    def _check_params(self, name: str, W: object) -> np.ndarray:
        Wa = np.asarray(W)
        P = self.n_params
        if Wa.dtype.kind not in "fiu" or Wa.ndim < 1 or Wa.shape[-1] != P:
            raise ValueError(
                f"{name} must be a real array of shape (..., {P}) (one flat parameter vector "
                f"per row); got shape {Wa.shape} and dtype {Wa.dtype}"
            )
        Wa = Wa.astype(np.float64, copy=False)
        if not np.all(np.isfinite(Wa)):
            raise ValueError(f"{name} must contain only finite values (no nan or inf)")
        return Wa

    def _check_data(self, X: object, Y: object | None) -> tuple[np.ndarray, np.ndarray | None]:
        n_in, n_out = self.sizes[0], self.sizes[-1]
        Xa = np.asarray(X)
        if Xa.dtype.kind not in "fiu" or Xa.ndim < 2 or Xa.shape[-1] != n_in or Xa.shape[-2] < 1:
            raise ValueError(
                f"X must be a real array of shape (..., K, {n_in}) with K >= 1; got shape "
                f"{Xa.shape} and dtype {Xa.dtype}"
            )
        Xa = Xa.astype(np.float64, copy=False)
        if not np.all(np.isfinite(Xa)):
            raise ValueError("X must contain only finite values (no nan or inf)")
        if Y is None:
            return Xa, None
        Ya = np.asarray(Y)
        want = (*Xa.shape[:-1], n_out)
        if Ya.dtype.kind not in "fiu" or Ya.shape != want:
            raise ValueError(
                f"Y must be a real array of shape {want} (X's shape with the last axis {n_out}); "
                f"got shape {Ya.shape} and dtype {Ya.dtype}"
            )
        Ya = Ya.astype(np.float64, copy=False)
        if not np.all(np.isfinite(Ya)):
            raise ValueError("Y must contain only finite values (no nan or inf)")
        return Xa, Ya

    @staticmethod
    def _check_broadcast(**leads: tuple[int, ...]) -> tuple[int, ...]:
        try:
            return np.broadcast_shapes(*leads.values())
        except ValueError:
            desc = ", ".join(f"{k} {v}" for k, v in leads.items())
            raise ValueError(
                f"the leading (task) dimensions must broadcast against each other; got {desc}"
            ) from None

    # ---------------------------------------------------------- private kernels
    def _forward(self, W: np.ndarray, X: np.ndarray) -> tuple[list, list[np.ndarray]]:
        """Layer views and activations ``[h_0 = X, h_1, ..., h_{L-1}, yhat]``."""
        layers = self.unpack(W)
        hs = [X]
        last = len(layers) - 1
        for l, (Wl, bl) in enumerate(layers):
            a = hs[-1] @ Wl + bl
            hs.append(a if l == last else np.tanh(a))
        return layers, hs

    def _backward(
        self, layers: list, hs: list[np.ndarray], Y: np.ndarray, lead: tuple | None
    ) -> tuple:
        """Loss, gradient (``None`` when ``lead`` is None) and the back-propagated signals."""
        K = Y.shape[-2]
        r = hs[-1] - Y
        loss = np.einsum("...kj,...kj->...", r, r) / K
        out = None
        if lead is not None:
            out = np.empty((*lead, self.n_params), dtype=np.result_type(hs[-1], Y))
        deltas = [None] * len(layers)  # dL/da_l
        backs = [None] * len(layers)  # dL/dh_{l-1} = delta_l W_l^T (for l >= 1)
        delta = (2.0 / K) * r
        for l in range(len(layers) - 1, -1, -1):
            s, m, e, n_in, n_out = self._slices[l]
            deltas[l] = delta
            if out is not None:
                np.matmul(_t(hs[l]), delta, out=out[..., s:m].reshape(*lead, n_in, n_out))
                np.sum(delta, axis=-2, out=out[..., m:e])
            if l > 0:
                back = delta @ _t(layers[l][0])
                backs[l] = back
                delta = back * (1.0 - hs[l] * hs[l])
        return loss, out, deltas, backs

    def _losses(self, W: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        _, hs = self._forward(W, X)
        r = hs[-1] - Y
        return np.einsum("...kj,...kj->...", r, r) / Y.shape[-2]

    def _loss_grads(self, W: np.ndarray, X: np.ndarray, Y: np.ndarray) -> tuple:
        lead = np.broadcast_shapes(W.shape[:-1], X.shape[:-2])
        layers, hs = self._forward(W, X)
        loss, grad, _, _ = self._backward(layers, hs, Y, lead)
        return loss, grad

    def _grads(self, W: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return self._loss_grads(W, X, Y)[1]

    def _hvps(self, W: np.ndarray, Vd: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        r"""Exact :math:`\nabla^2 f(W)\,V` by the R-operator (forward-over-reverse)."""
        lead = np.broadcast_shapes(W.shape[:-1], Vd.shape[:-1], X.shape[:-2])
        layers, hs = self._forward(W, X)
        _, _, deltas, backs = self._backward(layers, hs, Y, None)
        vlayers = self.unpack(Vd)
        L = len(layers)
        # R-forward: Rh_l = R{h_l}; R{h_0} = 0 (the data do not depend on w).
        Rhs: list[np.ndarray | None] = [None]
        for l in range(L):
            Wl, _ = layers[l]
            Vl, vbl = vlayers[l]
            Ra = hs[l] @ Vl + vbl
            if l > 0:
                Ra = Ra + Rhs[l] @ Wl
            Rhs.append(Ra if l == L - 1 else (1.0 - hs[l + 1] * hs[l + 1]) * Ra)
        # R-backward: R{delta_L} = (2/K) R{yhat}; for l >= 1
        # R{delta_{l-1}} = (R{delta_l} W_l^T + delta_l V_l^T) * (1 - h^2) - 2 h R{h} * (delta_l W_l^T).
        K = Y.shape[-2]
        out = np.empty((*lead, self.n_params), dtype=np.result_type(hs[-1], Vd))
        Rdelta = (2.0 / K) * Rhs[L]
        for l in range(L - 1, -1, -1):
            s, m, e, n_in, n_out = self._slices[l]
            gW = out[..., s:m].reshape(*lead, n_in, n_out)  # a view: written in place
            np.matmul(_t(hs[l]), Rdelta, out=gW)
            if l > 0:
                gW += _t(Rhs[l]) @ deltas[l]
            np.sum(Rdelta, axis=-2, out=out[..., m:e])
            if l > 0:
                h = hs[l]
                Rback = Rdelta @ _t(layers[l][0]) + deltas[l] @ _t(vlayers[l][0])
                Rdelta = Rback * (1.0 - h * h) - 2.0 * (h * Rhs[l]) * backs[l]
        return out

    # ------------------------------------------- public unchecked kernels (for the engine)
    #: Unchecked kernels, public for clients that validate once (:mod:`hfmaml_core.sinusoid`,
    #: :class:`NetworkKernels`): ``loss_kernel(W, X, Y)``, ``grad_kernel(W, X, Y)``,
    #: ``loss_grad_kernel(W, X, Y)``, ``hvp_kernel(W, V, X, Y)``; shapes as in :meth:`losses`.
    loss_kernel = _losses
    grad_kernel = _grads
    loss_grad_kernel = _loss_grads
    hvp_kernel = _hvps

    def check_params(self, name: str, W: object) -> np.ndarray:
        """``W`` as a finite float array of shape ``(..., P)``, or ``ValueError`` naming ``name``."""
        return self._check_params(name, W)

    # -------------------------------------------------------------- public API
    def predict(self, W: object, X: object) -> np.ndarray:
        r"""Network outputs :math:`\hat y`, shape ``(*lead, K, n_L)`` with ``lead`` the broadcast
        of ``W.shape[:-1]`` and ``X.shape[:-2]``.

        Raises
        ------
        ValueError
            If ``W`` is not a finite real array of shape ``(..., P)``, ``X`` not one of
            shape ``(..., K, n_0)``, or their leading dimensions do not broadcast.
        """
        Wa = self._check_params("W", W)
        Xa, _ = self._check_data(X, None)
        self._check_broadcast(W=Wa.shape[:-1], X=Xa.shape[:-2])
        return self._forward(Wa, Xa)[1][-1]

    def losses(self, W: object, X: object, Y: object) -> np.ndarray:
        r"""Mean squared errors :math:`f(w) = \frac1K\sum_k \|\hat y(x_k; w) - y_k\|^2`, shape ``lead``.

        Parameters
        ----------
        W : array, shape (..., P)
            Parameter vectors (``(P,)`` for one shared by all tasks).
        X : array, shape (..., K, n_0)
            Inputs of each task's ``K`` data points.
        Y : array, shape (..., K, n_L)
            Targets (same leading shape and ``K`` as ``X``).

        Raises
        ------
        ValueError
            On a wrong shape or dtype, a non-finite value, or leading dimensions of
            ``W`` and ``X`` that do not broadcast. Nothing is computed then.
        """
        Wa = self._check_params("W", W)
        Xa, Ya = self._check_data(X, Y)
        self._check_broadcast(W=Wa.shape[:-1], X=Xa.shape[:-2])
        return self._losses(Wa, Xa, Ya)

    def loss_grads(self, W: object, X: object, Y: object) -> tuple[np.ndarray, np.ndarray]:
        r"""Losses (shape ``lead``) and gradients :math:`\nabla f(w)` (shape ``(*lead, P)``).

        Backpropagation, :math:`\delta_L = \tfrac2K(\hat y - y)`,
        :math:`\partial f/\partial W_l = h_{l-1}^\top\delta_l`,
        :math:`\partial f/\partial b_l = \sum_k \delta_{l,k}`,
        :math:`\delta_{l-1} = (\delta_l W_l^\top)\odot(1 - h_{l-1}^2)`.
        Arguments and errors as in :meth:`losses`.
        """
        Wa = self._check_params("W", W)
        Xa, Ya = self._check_data(X, Y)
        self._check_broadcast(W=Wa.shape[:-1], X=Xa.shape[:-2])
        return self._loss_grads(Wa, Xa, Ya)

    def grads(self, W: object, X: object, Y: object) -> np.ndarray:
        r"""Gradients :math:`\nabla f(w)`, shape ``(*lead, P)``; see :meth:`loss_grads`."""
        return self.loss_grads(W, X, Y)[1]

    def hvps(self, W: object, V: object, X: object, Y: object) -> np.ndarray:
        r"""Exact Hessian-vector products :math:`\nabla^2 f(w)\,v`, shape ``(*lead, P)``.

        No Hessian is formed. With :math:`\mathcal R\{\cdot\} = \frac{d}{dt}(\cdot)(w+tv)|_{t=0}`
        and :math:`s_l = 1 - h_l^2`:

        .. math::
            \mathcal R\{a_l\} &= \mathcal R\{h_{l-1}\}W_l + h_{l-1}V_l + v_{b_l},
            \qquad \mathcal R\{h_l\} = s_l \odot \mathcal R\{a_l\},\\
            \mathcal R\{\delta_L\} &= \tfrac2K\mathcal R\{\hat y\},\qquad
            \mathcal R\{\delta_{l-1}\} = (\mathcal R\{\delta_l\}W_l^\top + \delta_l V_l^\top)
              \odot s_{l-1} - 2\,h_{l-1}\odot\mathcal R\{h_{l-1}\}\odot(\delta_l W_l^\top),\\
            (\nabla^2 f\,v)_{W_l} &= \mathcal R\{h_{l-1}\}^\top\delta_l
              + h_{l-1}^\top\mathcal R\{\delta_l\},\qquad
            (\nabla^2 f\,v)_{b_l} = \textstyle\sum_k \mathcal R\{\delta_{l,k}\}.

        Parameters
        ----------
        W : array, shape (..., P)
            Points at which the Hessians act.
        V : array, shape (..., P)
            Directions (one per task, or shared).
        X, Y : arrays
            Data, as in :meth:`losses`.

        Raises
        ------
        ValueError
            As :meth:`losses`, and if ``V`` is not a finite real array of shape
            ``(..., P)`` whose leading dimensions broadcast with those of ``W`` and ``X``.
        """
        Wa = self._check_params("W", W)
        Va = self._check_params("V", V)
        Xa, Ya = self._check_data(X, Y)
        self._check_broadcast(W=Wa.shape[:-1], V=Va.shape[:-1], X=Xa.shape[:-2])
        return self._hvps(Wa, Va, Xa, Ya)


class NetworkKernels:
    r"""The network's kernels in the engine's protocol (:class:`hfmaml_core.engine.BatchKernels`).

    A batch is a pair ``(X, Y)`` of inputs ``(..., K, n_0)`` and targets ``(..., K, n_L)``
    (one data set per task); points ``W`` have shape ``(..., P)`` broadcasting against
    ``X.shape[:-2]``. Unchecked (the callers validate): gradients, losses and exact
    Hessian-vector products of :class:`MLP`, and HF-MAML's central differences
    :math:`[\nabla f(w + \delta_i g_i) - \nabla f(w - \delta_i g_i)]/(2\delta_i)` with both
    gradients in one call (the two points stacked on a new leading axis). No Hessian is ever
    formed (no ``hessian_times``: MAML uses the HVP).

    Parameters
    ----------
    net : MLP
    """

    def __init__(self, net: MLP) -> None:
        if not isinstance(net, MLP):
            raise ValueError(f"net must be an hfmaml_core.mlp.MLP; got {type(net).__name__}")
        self.net = net
        _heap.steady()  # no heap shrink and re-growth between calls (hfmaml_core._heap)

    def grad(self, W: np.ndarray, batch: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        r""":math:`\nabla f(w)` on the batch, shape ``(*lead, P)``."""
        return self.net.grad_kernel(W, *batch)

    def loss_grad(
        self, W: np.ndarray, batch: tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Losses (``lead``) and gradients (``(*lead, P)``) in one pass."""
        return self.net.loss_grad_kernel(W, *batch)

    def hvp(self, W: np.ndarray, V: np.ndarray, batch: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        r"""Exact :math:`\nabla^2 f(w)\,v` (R-operator), shape ``(*lead, P)``."""
        return self.net.hvp_kernel(W, V, *batch)

    def central_difference(
        self, W: np.ndarray, G: np.ndarray, delta: np.ndarray, batch: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """HF-MAML's difference quotient of every row, ``delta`` of shape ``G.shape[:-1]``."""
        W_pm = np.empty((2, *G.shape))
        np.multiply(G, delta[..., None], out=W_pm[0])
        np.negative(W_pm[0], out=W_pm[1])  # +-delta_i g_i
        W_pm += W
        pm = self.net.grad_kernel(W_pm, *batch)
        D = pm[0]
        D -= pm[1]
        D /= (2.0 * delta)[..., None]
        return D
