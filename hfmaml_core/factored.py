r"""Network kernels on *factored* parameter rows: the per-task weights never formed (issue 15).

On a batch of ``B`` tasks with ``K`` points each, a gradient of the network's loss is, layer by
layer, :math:`\partial f/\partial W_l = h_{l-1}^\top\delta_l`, an outer product of rank at most
``K``; the adapted points :math:`\hat w_i = w - \alpha\nabla f_i(w)`, the outer gradients
:math:`g_i`, the Hessian-vector products :math:`\nabla^2 f_i(w)\,g_i` and HF-MAML's differences
are all *a shared dense part plus a few per-task rank-``K`` products*. :class:`FactoredRows`
keeps a batch of such rows as ``base + sum_t s_{t,i} [A_{t,l,i}^\top C_{t,l,i}]_l`` (weights;
one *term* ``t`` per gradient or HVP that went into the row, with a per-row scale) and dense
biases, and :class:`FactoredNetworkKernels` runs forward, backward and the R-operator on them:
every product with a per-task weight matrix is a product with the shared ``base`` (one GEMM over
all ``B K`` rows of the batch) plus two thin products through the ``K x K`` factors. Work
:math:`O(BK\,n_{l-1}n_l)` per layer and no ``B x P`` array at all. The engine's arithmetic on
rows (scaling, adding) only rescales and lists terms; the mean over tasks, the one dense output,
stacks every term once and is one GEMM. Exact up to rounding: the same sums in another order
(``tests/test_factored.py`` checks it against :class:`hfmaml_core.mlp.MLP`'s dense kernels).

No array held by a row batch is ever written in place: every operation (``*=``, ``+=``, ``-=``,
``/=`` included) returns a new row object, so a row handed to the engine stays valid however the
engine updates another row built from it.
"""

from __future__ import annotations

import numpy as np

from . import _heap
from .mlp import MLP

__all__ = ["FactoredNetworkKernels", "FactoredRows"]


def _t(A: np.ndarray) -> np.ndarray:
    return np.swapaxes(A, -1, -2)


def _lead_to(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``np.broadcast_to(x, shape)``, skipped (it costs microseconds) when ``x`` has the shape."""
    return x if x.shape == shape else np.broadcast_to(x, shape)


def _times(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """The product of two per-row scales (``None`` is 1)."""
    if a is None:
        return b
    return a if b is None else a * b


class FactoredRows:
    r"""Rows :math:`w_i = \text{base} + (\,[\sum_t s_{t,i} A_{t,l,i}^\top C_{t,l,i}]_l,\ [b_{l,i}]_l\,)`
    of a network's parameter vectors, for a batch of leading shape ``lead`` (the last axis the
    tasks).

    Parameters
    ----------
    net : MLP
    terms : list of (s, A, C)
        ``s``: ``None`` or scales per row and rank (broadcasting against ``(*lead, r)``, so the
        term's layer ``l`` is :math:`A_l^\top\operatorname{diag}(s)\,C_l`); ``A``, ``C``:
        lists over layers of arrays ``(*lead, r, n_{l-1})``, ``(*lead, r, n_l)`` (leading axes may
        broadcast) or ``None``.
    bias : list of ndarray
        Per layer: shape ``(*lead, n_l)``.
    base : ndarray or None
        A dense part of shape ``(*R, 1, P)`` (shared by the tasks of a run) or ``None`` (zero).

    Supports what the engine does with rows: ``*=``/``/=`` by a scalar or an array of shape
    ``(*lead, 1)``, ``+=``/``-=`` another row batch or (``+=``) a dense shared base, the
    reflected forms, :meth:`row_norms`, :meth:`mean` over the task axis and :meth:`to_dense`.
    """

    __array_ufunc__ = None  # ndarray (op) FactoredRows defers to the reflected methods

    def __init__(self, net: MLP, terms: list, bias: list, base: np.ndarray | None = None):
        self.net, self.terms, self.bias, self.base = net, terms, bias, base

    @property
    def lead(self) -> tuple[int, ...]:
        return self.bias[0].shape[:-1]

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.lead, self.net.n_params)

    # ------------------------------------------------------------ arithmetic
    def _scaled(self, s: object) -> FactoredRows:
        sb = np.asarray(s, dtype=float)  # a scalar or shape (*lead, 1): also a (row, rank) scale
        if sb.ndim == 0:
            base = None if self.base is None else self.base * s
        elif self.base is not None:
            raise ValueError("a row batch with a dense base can only be scaled by a scalar")
        else:
            base = None
        row = sb.reshape(1) if sb.ndim == 0 else sb  # every term scale has a (row, rank) axis
        terms = [(_times(ts, row), A, C) for ts, A, C in self.terms]
        return FactoredRows(self.net, terms, [b * sb for b in self.bias], base)

    def _added(self, other: object, sign: float = 1.0) -> FactoredRows:
        if isinstance(other, FactoredRows):
            o = other if sign == 1.0 else other._scaled(sign)
            bias = [a + b for a, b in zip(self.bias, o.bias, strict=True)]
            bases = [x for x in (self.base, o.base) if x is not None]
            base = None if not bases else bases[0] if len(bases) == 1 else bases[0] + bases[1]
            return FactoredRows(self.net, self.terms + o.terms, bias, base)
        D = np.asarray(other, dtype=float)
        if D.ndim == 1:
            D = D[None, :]  # (P,) -> (1, P): shared by the tasks
        if D.ndim < 2 or D.shape[-2] != 1 or D.shape[-1] != self.net.n_params:
            raise ValueError(
                f"a dense part added to factored rows must be shared by the tasks, shape (P,) or "
                f"(..., 1, P) with P = {self.net.n_params}; got {D.shape}"
            )
        D = D if sign == 1.0 else -D
        base = D if self.base is None else self.base + D
        return FactoredRows(self.net, self.terms, self.bias, base)

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

    def __rsub__(self, other: object) -> FactoredRows:
        return self._scaled(-1.0)._added(other)

    def __array__(self, *args: object, **kwargs: object) -> np.ndarray:
        raise TypeError("FactoredRows has no implicit dense form; call .to_dense()")

    def __neg__(self) -> FactoredRows:
        return self._scaled(-1.0)

    # ------------------------------------------------------------ reductions
    def stacked(self, l: int) -> tuple[np.ndarray, np.ndarray]:
        r"""Layer ``l``'s weights as one product :math:`A^\top C`: every term's factors (scales
        folded into ``C``) stacked along the rank axis, shapes ``(*lead, r, n_{l-1})`` and
        ``(*lead, r, n_l)``."""
        lead = self.lead
        parts = [(A[l], C[l], s) for s, A, C in self.terms if A[l] is not None]
        if len(parts) == 1 and parts[0][2] is None and parts[0][0].shape[:-2] == lead:
            return parts[0][0], parts[0][1]
        As, Cs = [], []
        for a, c, s in parts:
            As.append(_lead_to(a, (*lead, *a.shape[-2:])))
            c = c if s is None else c * s[..., None]
            Cs.append(_lead_to(c, (*lead, *c.shape[-2:])))
        return np.concatenate(As, axis=-2), np.concatenate(Cs, axis=-2)

    def row_norms(self) -> np.ndarray:
        r"""Euclidean norm of every row (no base), :math:`\|A^\top C\|_F^2 = \sum (AA^\top)\odot(CC^\top)`."""
        if self.base is not None:
            raise ValueError("row_norms needs a row batch without a dense base")
        sq = sum(np.einsum("...j,...j->...", b, b) for b in self.bias)
        for l in range(len(self.bias)):
            a, c = self.stacked(l)
            sq = sq + np.einsum("...ij,...ij->...", a @ _t(a), c @ _t(c))
        return np.sqrt(sq)

    def mean(self, axis: int = -2) -> np.ndarray:
        """The mean over the task axis (``axis=-2`` of the dense ``(*lead, P)``), dense ``(*R, P)``."""
        if axis != -2:
            raise ValueError(f"axis must be -2 (the task axis); got {axis}")
        B = self.lead[-1]
        R = self.lead[:-1]
        out = np.empty((*R, self.net.n_params))
        for l, (s, m, e, n_in, n_out) in enumerate(_slices(self.net)):
            block = out[..., s:m].reshape(*R, n_in, n_out)
            first = True
            for ts, A, C in self.terms:  # one GEMM per term over all its B r rows
                if A[l] is None:
                    continue
                one = ts is not None and ts.size == 1  # a scalar: it scales the product instead
                a, c = A[l], C[l] if ts is None or one else C[l] * ts[..., None]
                a = _lead_to(a, (*self.lead, *a.shape[-2:])).reshape(*R, -1, n_in)
                c = _lead_to(c, (*self.lead, *c.shape[-2:])).reshape(*R, -1, n_out)
                if first and not one:
                    np.matmul(_t(a), c, out=block)
                elif first:
                    np.multiply(_t(a) @ c, ts, out=block)
                else:
                    prod = _t(a) @ c
                    if one:
                        prod *= ts
                    block += prod
                first = False
            if first:
                block[...] = 0.0
            out[..., s:m] /= B
            out[..., m:e] = self.bias[l].mean(axis=-2)
        if self.base is not None:
            out += self.base[..., 0, :]
        return out

    def to_dense(self) -> np.ndarray:
        """The rows as a dense array ``(*lead, P)`` (for tests and small batches)."""
        out = np.empty(self.shape)
        for l, (s, m, e, n_in, n_out) in enumerate(_slices(self.net)):
            a, c = self.stacked(l)
            out[..., s:m] = (_t(a) @ c).reshape(*self.lead, n_in * n_out)
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


def _accumulate(out: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    """``out + x``, in place when ``out`` (a temporary of the caller's) already has the shape."""
    if out is None:
        return x
    if out.shape == x.shape:
        out += x
        return out
    return out + x


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
    one HVP. HF-MAML's two perturbed gradients (:meth:`central_difference`) are one pass over a
    batch of ``2B`` rows. Its lifetime is one meta-iteration (make one per call, as
    :func:`hfmaml_core.sinusoid.meta_directions` does); arrays handed to it must not be modified
    in place while it is in use.

    Parameters
    ----------
    net : MLP
    """

    def __init__(self, net: MLP) -> None:
        if not isinstance(net, MLP):
            raise ValueError(f"net must be an hfmaml_core.mlp.MLP; got {type(net).__name__}")
        self.net = net
        self.slices = _slices(net)
        _heap.steady()  # no heap shrink and re-growth between calls (hfmaml_core._heap)
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
        if M.shape[-2] == 1:  # an outer product (the first layer forward, the last backward)
            return h * M.reshape(*M.shape[:-2], *([1] * (h.ndim - M.ndim)), 1, M.shape[-1])
        h2 = h.reshape(*lead[:-1], lead[-1] * h.shape[-2], h.shape[-1])
        return (h2 @ M).reshape(*lead, h.shape[-2], M.shape[-1])

    @staticmethod
    def _low(h, l: int, rows: FactoredRows, out, sign=None, transpose=False) -> np.ndarray:
        r"""``out + h @ M`` with :math:`M = \sum_t s_t A_t^\top C_t` of layer ``l`` (its transpose
        when ``transpose``), each point's row scaled by ``sign`` (shape ``(..., K, 1)``) when
        given; ``out`` (a temporary) may be updated in place."""
        for s, A, C in rows.terms:
            if A[l] is None:
                continue
            first, second = (C[l], A[l]) if transpose else (A[l], C[l])
            k = h @ _t(first)  # (..., K, r): thin
            if s is not None:
                k *= s[..., None, :]
            if sign is not None:
                k *= sign
            out = _accumulate(out, k @ second)
        return out

    def _apply(self, h, l: int, layers, rows, sign=None):
        """``h @ W_l`` at the point (weights only)."""
        out = None if layers is None else self._shared(h, layers[l][0][..., 0, :, :])
        return out if rows is None else self._low(h, l, rows, out, sign)

    def _apply_t(self, d, l: int, layers, rows, sign=None):
        """``d @ W_l^T`` at the point."""
        out = None if layers is None else self._shared(d, _t(layers[l][0][..., 0, :, :]))
        return out if rows is None else self._low(d, l, rows, out, sign, transpose=True)

    def _forward(self, W: object, X: np.ndarray, sign: np.ndarray | None = None):
        """Forward pass; with ``sign`` (``(..., K, 1)``), point ``k`` sees ``base + sign_k * rows``."""
        layers, rows = self._point(W)
        lead = X.shape[:-2] if rows is None else np.broadcast_shapes(rows.lead, X.shape[:-2])
        X = _lead_to(X, (*lead, *X.shape[-2:]))
        hs = [X]
        L = len(self.slices)
        for l in range(L):
            a = self._apply(hs[-1], l, layers, rows, sign)
            if layers is not None:
                a += layers[l][1]
            if rows is not None:
                b = rows.bias[l][..., None, :]
                a += b if sign is None else b * sign
            hs.append(a if l == L - 1 else np.tanh(a, out=a))
        return layers, rows, hs

    def _backward(
        self, layers, rows, hs, Y, K: int | None = None, sign=None, with_loss=True, out=None
    ):
        """Backward pass: the gradient of the mean squared error over each ``K`` points, each
        point's part weighted by ``out`` (``(..., K, 1)``) when given."""
        K = Y.shape[-2] if K is None else K
        r = hs[-1] - Y
        loss = np.einsum("...kj,...kj->...", r, r) / K if with_loss else None
        L = len(self.slices)
        A, C, bias = [None] * L, [None] * L, [None] * L
        deltas, backs = [None] * L, [None] * L
        delta = r
        delta *= 2.0 / K if out is None else (2.0 / K) * out
        for l in range(L - 1, -1, -1):
            deltas[l] = delta
            A[l], C[l], bias[l] = hs[l], delta, delta.sum(axis=-2)
            if l > 0:
                back = self._apply_t(delta, l, layers, rows, sign)
                backs[l] = back
                h = hs[l]
                delta = h * h
                np.subtract(1.0, delta, out=delta)
                delta *= back
        return loss, FactoredRows(self.net, [(None, A, C)], bias), deltas, backs

    # ------------------------------------------------------------ the protocol
    def hessian_times(self, W: object, G: object, batch: object) -> None:
        """Not provided: these kernels form no Hessian (MAML takes ``hessian="hvp"``)."""
        raise ValueError(
            "the factored kernels form no Hessian: use hessian='hvp' (the exact Hessian-vector "
            "product), or the dense hfmaml_core.mlp.NetworkKernels"
        )

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
            Ra = self._low(hs[l], l, V, None) + V.bias[l][..., None, :]
            if l > 0:
                Ra += self._apply(Rhs[l], l, layers, rows)
            if l < L - 1:
                Ra *= 1.0 - hs[l + 1] * hs[l + 1]
            Rhs.append(Ra)
        K = Y.shape[-2]
        A, C, bias = [None] * L, [None] * L, [None] * L
        A2, C2 = [None] * L, [None] * L
        Rdelta = (2.0 / K) * Rhs[L]
        for l in range(L - 1, -1, -1):
            bias[l] = Rdelta.sum(axis=-2)
            A[l], C[l] = hs[l], Rdelta
            if l == 0:
                continue
            A2[l], C2[l] = Rhs[l], deltas[l]
            h = hs[l]
            Rback = self._low(
                deltas[l], l, V, self._apply_t(Rdelta, l, layers, rows), transpose=True
            )
            Rdelta = Rback * (1.0 - h * h) - 2.0 * (h * Rhs[l]) * backs[l]
        return FactoredRows(self.net, [(None, A, C), (None, A2, C2)], bias)

    def central_difference(
        self, W: object, G: FactoredRows, delta: np.ndarray, batch: tuple[np.ndarray, np.ndarray]
    ) -> FactoredRows:
        r"""HF-MAML's :math:`[\nabla f(w+\delta_i g_i) - \nabla f(w-\delta_i g_i)]/(2\delta_i)`.

        Both perturbed gradients in one pass: each task's ``K`` points twice, the first copy
        seeing :math:`w+\delta_i g_i` and the second :math:`w-\delta_i g_i` (the sign scales the
        rows' part point by point), so every shared product is one GEMM over ``2BK`` rows and
        no factor of ``G`` is copied. The difference is one term of rank ``2K`` whose scales
        are :math:`\pm 1/(2\delta_i)`.
        """
        if not isinstance(G, FactoredRows) or G.base is not None:
            raise ValueError("G must be a FactoredRows batch without a dense base")
        X, Y = batch
        K = Y.shape[-2]
        lead = np.broadcast_shapes(G.lead, X.shape[:-2])
        sign = np.concatenate([np.ones(K), -np.ones(K)])[:, None]  # (2K, 1)
        X2 = np.concatenate([_lead_to(X, (*lead, *X.shape[-2:]))] * 2, axis=-2)
        Y2 = np.concatenate([_lead_to(Y, (*lead, *Y.shape[-2:]))] * 2, axis=-2)
        # the point w + sign_k delta_i g_i: the rows g_i, and per point the scale sign_k delta_i
        point = delta[..., None, None] * sign  # (*lead, 2K, 1)
        G1 = FactoredRows(self.net, G.terms, G.bias, np.asarray(W))
        layers, rows, hs = self._forward(G1, X2, point)
        # back-propagation is linear in the residuals: scaling point k's by +1/(2 delta_i) (the
        # first K) or -1/(2 delta_i) (the rest) makes the pass's gradient the difference quotient
        scale = (0.5 / delta)[..., None, None] * sign  # (*lead, 2K, 1)
        _, D, _, _ = self._backward(layers, rows, hs, Y2, K, point, with_loss=False, out=scale)
        return D
