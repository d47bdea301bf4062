r"""Network kernels on *factored* parameter rows: the per-task weights never formed (issue 15).

On a batch of ``B`` tasks with ``K`` points each, a gradient of the network's loss is, layer by
layer, :math:`\partial f/\partial W_l = h_{l-1}^\top\delta_l`, an outer product of rank at most
``K``; the adapted points :math:`\hat w_i = w - \alpha\nabla f_i(w)`, the outer gradients
:math:`g_i`, the Hessian-vector products :math:`\nabla^2 f_i(w)\,g_i` and HF-MAML's differences
are all *a shared dense part plus per-task rank-``rK`` products*. :class:`FactoredRows` keeps a
batch of such rows as ``base + [A_{l,i}^\top C_{l,i}]_l`` (weights) and dense biases, and
:class:`FactoredNetworkKernels` runs forward, backward and the R-operator on them: every
product with a per-task weight matrix is a product with the shared ``base`` (one GEMM over all
``B K`` rows of the batch) plus two thin products through the ``K x K`` factors. Work
:math:`O(BK\,n_{l-1}n_l)` per layer and no ``B x P`` array at all (the mean over tasks, the only
dense output, is one GEMM over the stacked factors). Exact up to rounding: the same sums in
another order (``tests/test_factored.py`` checks it against :class:`hfmaml_core.mlp.MLP`'s dense
kernels to 1e-12).

The factor arrays are never written in place: every operation (``*=``, ``+=``, ``-=``, ``/=``
included) rebinds the row object's attributes to new arrays, so a row handed to the engine
stays valid however the engine updates another row built from it.
"""

from __future__ import annotations

import numpy as np

from .mlp import MLP

__all__ = ["FactoredNetworkKernels", "FactoredRows"]


def _t(A: np.ndarray) -> np.ndarray:
    return np.swapaxes(A, -1, -2)


class FactoredRows:
    r"""Rows :math:`w_i = \text{base} + (\,[A_{l,i}^\top C_{l,i}]_l,\ [b_{l,i}]_l\,)` of a network's
    parameter vectors, for a batch of leading shape ``lead`` (the last axis the tasks).

    Parameters
    ----------
    net : MLP
    A, C : list of ndarray
        Per layer ``l``: shapes ``(*lead, r_l, n_{l-1})`` and ``(*lead, r_l, n_l)``.
    bias : list of ndarray
        Per layer: shape ``(*lead, n_l)``.
    base : ndarray or None
        A dense part of shape ``(*R, 1, P)`` (shared by the tasks of a run) or ``None`` (zero).

    Supports what the engine does with rows: ``*=``/``/=`` by a scalar or an array of shape
    ``(*lead, 1)``, ``+=``/``-=`` another row batch or (``+=``) a dense shared base, the
    reflected forms, :meth:`row_norms`, :meth:`mean` over the task axis and :meth:`to_dense`.
    """

    __array_ufunc__ = None  # ndarray (op) FactoredRows defers to the reflected methods

    def __init__(self, net: MLP, A: list, C: list, bias: list, base: np.ndarray | None = None):
        self.net, self.A, self.C, self.bias, self.base = net, A, C, bias, base

    @property
    def lead(self) -> tuple[int, ...]:
        return self.bias[0].shape[:-1]

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.lead, self.net.n_params)

    # ------------------------------------------------------------ arithmetic
    def _scaled(self, s: object) -> FactoredRows:
        if np.ndim(s) == 0:
            sc = sb = s
            base = None if self.base is None else self.base * s
        else:
            if self.base is not None:
                raise ValueError("a row batch with a dense base can only be scaled by a scalar")
            s = np.asarray(s)[..., 0]  # shape (*lead, 1) -> lead
            sc, sb = s[..., None, None], s[..., None]
            base = None
        return FactoredRows(
            self.net, self.A, [c * sc for c in self.C], [b * sb for b in self.bias], base
        )

    def _added(self, other: object, sign: float = 1.0) -> FactoredRows:
        if isinstance(other, FactoredRows):
            o = other if sign == 1.0 else other._scaled(sign)
            lead = np.broadcast_shapes(self.lead, o.lead)

            def cat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
                if x.shape[:-2] != lead:
                    x = np.broadcast_to(x, (*lead, *x.shape[-2:]))
                if y.shape[:-2] != lead:
                    y = np.broadcast_to(y, (*lead, *y.shape[-2:]))
                return np.concatenate([x, y], axis=-2)

            A = [cat(a, b) for a, b in zip(self.A, o.A, strict=True)]
            C = [cat(a, b) for a, b in zip(self.C, o.C, strict=True)]
            bias = [a + b for a, b in zip(self.bias, o.bias, strict=True)]
            bases = [x for x in (self.base, o.base) if x is not None]
            base = None if not bases else bases[0] if len(bases) == 1 else bases[0] + bases[1]
            return FactoredRows(self.net, A, C, bias, base)
        if sign != 1.0:
            raise ValueError("only a FactoredRows batch can be subtracted from one")
        D = np.asarray(other, dtype=float)
        if D.ndim < 2 or D.shape[-2] != 1:
            D = D.reshape(*D.shape[:-1], 1, D.shape[-1])  # (P,) -> (1, P): shared by the tasks
        base = D if self.base is None else self.base + D
        return FactoredRows(self.net, self.A, self.C, self.bias, base)

    def __mul__(self, s: object) -> FactoredRows:
        return self._scaled(s)

    __rmul__ = __mul__
    __imul__ = __mul__

    def __truediv__(self, s: object) -> FactoredRows:
        return self._scaled(1.0 / np.asarray(s, dtype=float))

    __itruediv__ = __truediv__

    def __add__(self, other: object) -> FactoredRows:
        return self._added(other)

    __radd__ = __add__
    __iadd__ = __add__

    def __sub__(self, other: object) -> FactoredRows:
        return self._added(other, -1.0)

    __isub__ = __sub__

    def __neg__(self) -> FactoredRows:
        return self._scaled(-1.0)

    # ------------------------------------------------------------ reductions
    def row_norms(self) -> np.ndarray:
        r"""Euclidean norm of every row (no base), :math:`\|A^\top C\|_F^2 = \sum (AA^\top)\odot(CC^\top)`."""
        if self.base is not None:
            raise ValueError("row_norms needs a row batch without a dense base")
        sq = sum(np.einsum("...j,...j->...", b, b) for b in self.bias)
        for a, c in zip(self.A, self.C, strict=True):
            sq = sq + np.einsum("...ij,...ij->...", a @ _t(a), c @ _t(c))
        return np.sqrt(sq)

    def mean(self, axis: int = -2) -> np.ndarray:
        """The mean over the task axis (``axis=-2`` of the dense ``(*lead, P)``), dense ``(*R, P)``."""
        if axis != -2:
            raise ValueError(f"axis must be -2 (the task axis); got {axis}")
        B = self.lead[-1]
        out = np.empty((*self.lead[:-1], self.net.n_params))
        for l, (s, m, e, n_in, n_out) in enumerate(_slices(self.net)):
            a, c = self.A[l], self.C[l]
            a2 = a.reshape(*a.shape[:-3], -1, n_in)
            c2 = c.reshape(*c.shape[:-3], -1, n_out)
            np.matmul(_t(a2), c2, out=out[..., s:m].reshape(*self.lead[:-1], n_in, n_out))
            out[..., s:m] /= B
            out[..., m:e] = self.bias[l].mean(axis=-2)
        if self.base is not None:
            out += self.base[..., 0, :]
        return out

    def to_dense(self) -> np.ndarray:
        """The rows as a dense array ``(*lead, P)`` (for tests and small batches)."""
        out = np.empty(self.shape)
        for l, (s, m, e, n_in, n_out) in enumerate(_slices(self.net)):
            out[..., s:m] = (_t(self.A[l]) @ self.C[l]).reshape(*self.lead, n_in * n_out)
            out[..., m:e] = self.bias[l]
        if self.base is not None:
            out += self.base
        return out


def _slices(net: MLP) -> list[tuple[int, int, int, int, int]]:
    out, start = [], 0
    for n_in, n_out in zip(net.sizes[:-1], net.sizes[1:], strict=True):
        out.append((start, start + n_in * n_out, start + n_in * n_out + n_out, n_in, n_out))
        start += n_in * n_out + n_out
    return out


class FactoredNetworkKernels:
    r"""The network's kernels in the engine's protocol, on :class:`FactoredRows`.

    Points ``W`` are a dense array shared by the tasks of a run (shape ``(*R, 1, P)``) or a
    :class:`FactoredRows` batch with such a base; directions ``V`` and ``G`` are
    :class:`FactoredRows` without a base; every result is a :class:`FactoredRows` batch (the
    losses a dense array). Same mathematics as :class:`hfmaml_core.mlp.NetworkKernels`; see
    :meth:`hfmaml_core.mlp.MLP.hvps` for the R-operator.

    The object remembers the forward and backward pass at the last *dense* point and batch it
    saw (the same array objects, compared with ``is``), so MAML's HVP at :math:`w` on the
    support set reuses the pass of the inner gradient there: counted work two gradients and
    one HVP. Its lifetime is one meta-iteration (make one per call; no client uses these kernels
    yet, see issue 15); arrays handed to it must not be modified in place while it is in use.

    Parameters
    ----------
    net : MLP
    """

    def __init__(self, net: MLP) -> None:
        if not isinstance(net, MLP):
            raise ValueError(f"net must be an hfmaml_core.mlp.MLP; got {type(net).__name__}")
        self.net = net
        self.slices = _slices(net)
        self._memo: tuple | None = None  # (W, X, Y, layers, rows, hs, pass) at the last dense point

    def _pass(self, W: object, X: np.ndarray, Y: np.ndarray):
        """Forward and backward at ``W``, remembered when ``W`` is a dense array."""
        m = self._memo
        if m is not None and m[0] is W and m[1] is X and m[2] is Y:
            return m[3:]
        layers, rows, hs = self._forward(W, X)
        out = (layers, rows, hs, self._backward(layers, rows, hs, Y))
        if not isinstance(W, FactoredRows):
            self._memo = (W, X, Y, *out)
        return out

    # ------------------------------------------------------------ point algebra
    def _point(self, W: object) -> tuple[list | None, FactoredRows | None]:
        if isinstance(W, FactoredRows):
            base, rows = W.base, W
        else:
            base, rows = np.asarray(W), None
        if base is None:
            return None, rows
        if base.ndim < 2 or base.shape[-2] != 1:
            raise ValueError(
                f"the dense part of a point must be shared by the tasks, shape (..., 1, P); "
                f"got {base.shape}"
            )
        return self.net.unpack(base), rows  # W_l (*R, 1, n, m), b_l (*R, 1, 1, m)

    @staticmethod
    def _shared(h: np.ndarray, M: np.ndarray) -> np.ndarray:
        """``h @ M`` with ``h`` of shape ``(*R, B, K, n)`` and one ``M`` per run: one GEMM."""
        lead = h.shape[:-2]
        h2 = h.reshape(*lead[:-1], lead[-1] * h.shape[-2], h.shape[-1])
        return (h2 @ M).reshape(*lead, h.shape[-2], M.shape[-1])

    def _apply(self, h: np.ndarray, l: int, layers: list | None, rows: FactoredRows | None):
        """``h @ W_l`` at the point (weights only)."""
        out = None if layers is None else self._shared(h, layers[l][0][..., 0, :, :])
        if rows is not None:
            low = (h @ _t(rows.A[l])) @ rows.C[l]
            out = low if out is None else out + low
        return out

    def _apply_t(self, d: np.ndarray, l: int, layers: list | None, rows: FactoredRows | None):
        """``d @ W_l^T`` at the point."""
        out = None if layers is None else self._shared(d, _t(layers[l][0][..., 0, :, :]))
        if rows is not None:
            low = (d @ _t(rows.C[l])) @ rows.A[l]
            out = low if out is None else out + low
        return out

    def _forward(self, W: object, X: np.ndarray):
        layers, rows = self._point(W)
        lead = X.shape[:-2] if rows is None else np.broadcast_shapes(rows.lead, X.shape[:-2])
        X = np.broadcast_to(X, (*lead, *X.shape[-2:]))
        hs = [X]
        L = len(self.slices)
        for l in range(L):
            a = self._apply(hs[-1], l, layers, rows)
            if layers is not None:
                a = a + layers[l][1]
            if rows is not None:
                a = a + rows.bias[l][..., None, :]
            hs.append(a if l == L - 1 else np.tanh(a))
        return layers, rows, hs

    def _backward(self, layers, rows, hs, Y):
        K = Y.shape[-2]
        r = hs[-1] - Y
        loss = np.einsum("...kj,...kj->...", r, r) / K
        L = len(self.slices)
        A, C, bias = [None] * L, [None] * L, [None] * L
        deltas, backs = [None] * L, [None] * L
        delta = (2.0 / K) * r
        for l in range(L - 1, -1, -1):
            deltas[l] = delta
            A[l], C[l], bias[l] = hs[l], delta, delta.sum(axis=-2)
            if l > 0:
                back = self._apply_t(delta, l, layers, rows)
                backs[l] = back
                delta = back * (1.0 - hs[l] * hs[l])
        return loss, FactoredRows(self.net, A, C, bias), deltas, backs

    # ------------------------------------------------------------ the protocol
    def loss_grad(self, W: object, batch: tuple[np.ndarray, np.ndarray]):
        """Losses (``lead``) and gradients (:class:`FactoredRows`) in one pass."""
        loss, grad, _, _ = self._pass(W, *batch)[3]
        return loss, grad

    def grad(self, W: object, batch: tuple[np.ndarray, np.ndarray]) -> FactoredRows:
        r""":math:`\nabla f(w)` of every row on the batch."""
        return self.loss_grad(W, batch)[1]

    def hvp(self, W: object, V: FactoredRows, batch: tuple[np.ndarray, np.ndarray]):
        r"""Exact :math:`\nabla^2 f(w)\,v` (R-operator) with ``V`` a :class:`FactoredRows` batch."""
        if not isinstance(V, FactoredRows) or V.base is not None:
            raise ValueError("V must be a FactoredRows batch without a dense base")
        X, Y = batch
        layers, rows, hs, (_, _, deltas, backs) = self._pass(W, X, Y)
        L = len(self.slices)
        Rhs: list = [None]
        for l in range(L):
            Ra = (hs[l] @ _t(V.A[l])) @ V.C[l] + V.bias[l][..., None, :]
            if l > 0:
                Ra = Ra + self._apply(Rhs[l], l, layers, rows)
            Rhs.append(Ra if l == L - 1 else (1.0 - hs[l + 1] * hs[l + 1]) * Ra)
        K = Y.shape[-2]
        A, C, bias = [None] * L, [None] * L, [None] * L
        Rdelta = (2.0 / K) * Rhs[L]
        for l in range(L - 1, -1, -1):
            bias[l] = Rdelta.sum(axis=-2)
            if l == 0:
                A[l], C[l] = hs[0], Rdelta
                continue
            A[l] = np.concatenate([hs[l], Rhs[l]], axis=-2)
            C[l] = np.concatenate([Rdelta, deltas[l]], axis=-2)
            h = hs[l]
            Rback = self._apply_t(Rdelta, l, layers, rows) + (deltas[l] @ _t(V.C[l])) @ V.A[l]
            Rdelta = Rback * (1.0 - h * h) - 2.0 * (h * Rhs[l]) * backs[l]
        return FactoredRows(self.net, A, C, bias)

    def central_difference(
        self, W: object, G: FactoredRows, delta: np.ndarray, batch: tuple[np.ndarray, np.ndarray]
    ) -> FactoredRows:
        r"""HF-MAML's :math:`[\nabla f(w+\delta_i g_i) - \nabla f(w-\delta_i g_i)]/(2\delta_i)`."""
        step = G * delta[..., None]
        plus = self.grad(W + step, batch)
        minus = self.grad(W + (-step), batch)
        return (plus - minus) / (2.0 * delta)[..., None]
