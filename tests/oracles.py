r"""Independent oracles for the kernel tests.

Nothing here imports :mod:`hfmaml_core`: the oracles are written from scratch so
that a bug in the library cannot be copied into the reference it is checked
against. Families are only read as *data* (their ``X``, ``y``, ``A``, ``c``,
``s``, ``b`` arrays), never asked to compute anything.

Three kinds of oracle:

* :func:`richardson_derivative`, :func:`fd_gradient`, :func:`fd_jacobian`:
  central differences refined by Richardson extrapolation (orders 2, 4, 6, 8),
  accurate to ~1e-10 relative for smooth functions of moderate curvature.
* sympy models of the two task families (:func:`welsch_sum_oracle`,
  :func:`welsch_point_oracle`, :func:`quadratic_sum_oracle`): the loss is written
  symbolically and differentiated by sympy, then lambdified.
* :func:`maml_oracle`: the MAML objective :math:`F(w) = f(w - \alpha\nabla f(w))`
  built symbolically from a task loss and differentiated by sympy, so the
  meta-gradient oracle does not use the closed form of THEORY S1.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

__all__ = [
    "QuadraticSumOracle",
    "SymbolicMAML",
    "WelschPointOracle",
    "WelschSumOracle",
    "fd_gradient",
    "fd_jacobian",
    "maml_oracle",
    "quadratic_params",
    "quadratic_sum_oracle",
    "richardson_derivative",
    "welsch_max_abs_derivative",
    "welsch_params",
    "welsch_phi",
    "welsch_point_oracle",
    "welsch_sum_oracle",
]


# =============================================================================
# Richardson-extrapolated central differences
# =============================================================================


def richardson_derivative(
    f: Callable[[np.ndarray], object],
    x: object,
    direction: object,
    h: float = 1e-2,
    levels: int = 4,
) -> np.ndarray:
    r"""Directional derivative :math:`\frac{d}{dt} f(x + t u)|_{t=0}` by Richardson extrapolation.

    ``D(h) = [f(x+hu) - f(x-hu)] / (2h)`` has an error series in even powers of
    ``h``; the Neville tableau ``R[i][k] = R[i][k-1] + (R[i][k-1] - R[i-1][k-1]) /
    (4^k - 1)`` over ``h, h/2, ..., h/2^(levels-1)`` cancels the first
    ``levels - 1`` terms, giving order ``2 * levels`` (8 for the default).

    Works for scalar or array valued ``f``.
    """
    x = np.asarray(x, dtype=float)
    u = np.asarray(direction, dtype=float)
    table: list[list[np.ndarray]] = []
    for i in range(levels):
        hi = h / 2.0**i
        fp = np.asarray(f(x + hi * u), dtype=float)
        fm = np.asarray(f(x - hi * u), dtype=float)
        row = [(fp - fm) / (2.0 * hi)]
        for k in range(1, i + 1):
            row.append(row[k - 1] + (row[k - 1] - table[i - 1][k - 1]) / (4.0**k - 1.0))
        table.append(row)
    return table[-1][-1]


def fd_gradient(
    f: Callable[[np.ndarray], float], x: object, h: float = 1e-2, levels: int = 4
) -> np.ndarray:
    """Gradient of a scalar function, one Richardson derivative per coordinate, shape (d,)."""
    x = np.asarray(x, dtype=float)
    eye = np.eye(x.size)
    return np.array([float(richardson_derivative(f, x, eye[k], h, levels)) for k in range(x.size)])


def fd_jacobian(
    F: Callable[[np.ndarray], np.ndarray], x: object, h: float = 1e-2, levels: int = 4
) -> np.ndarray:
    """Jacobian ``J[a, k] = dF_a/dx_k`` of a vector function, shape (len(F(x)), d)."""
    x = np.asarray(x, dtype=float)
    eye = np.eye(x.size)
    cols = [np.asarray(richardson_derivative(F, x, eye[k], h, levels)) for k in range(x.size)]
    return np.stack(cols, axis=-1)


# =============================================================================
# sympy helpers
# =============================================================================


def _vec_symbols(prefix: str, n: int) -> list[sp.Symbol]:
    return list(sp.symbols(f"{prefix}0:{n}", real=True))


def _mat_symbols(prefix: str, rows: int, cols: int) -> list[list[sp.Symbol]]:
    return [[sp.Symbol(f"{prefix}_{i}_{j}", real=True) for j in range(cols)] for i in range(rows)]


def _lambdify(args: Sequence[object], expr: object) -> Callable[..., object]:
    return sp.lambdify(args, expr, modules="numpy", cse=True)


def _gradient_hessian(f: sp.Expr, w: list[sp.Symbol]) -> tuple[list[sp.Expr], list[list[sp.Expr]]]:
    grad = [sp.diff(f, wk) for wk in w]
    hess = [[sp.diff(g, wl) for wl in w] for g in grad]
    return grad, hess


def welsch_phi(r: sp.Expr) -> sp.Expr:
    r"""The Welsch loss :math:`1 - e^{-r^2/2}` as a sympy expression."""
    return 1 - sp.exp(-(r**2) / 2)


def welsch_max_abs_derivative(order: int) -> sp.Expr:
    r"""Exact :math:`\max_r |\phi^{(order)}(r)|` for the Welsch loss (order 2 or 3).

    The derivative of order ``k`` is ``P_k(r) exp(-r^2/2)`` with a polynomial
    ``P_k``; it tends to 0 as ``|r| -> inf``, so its absolute maximum is attained
    at a real root of the next derivative's polynomial part. sympy solves that
    polynomial exactly and the largest absolute value at the roots is returned.
    """
    r = sp.Symbol("r", real=True)
    phi = welsch_phi(r)
    dk = sp.diff(phi, r, order)
    poly = sp.simplify(sp.diff(phi, r, order + 1) * sp.exp(r**2 / 2))
    roots = sp.solve(sp.Eq(poly, 0), r)
    assert roots, "the derivative must have critical points"
    values = [sp.Abs(sp.simplify(dk.subs(r, rt))) for rt in roots]
    return max(values, key=lambda e: float(e.evalf(30)))


# =============================================================================
# Welsch regression tasks
# =============================================================================


class WelschSumOracle:
    r"""sympy model of :math:`f(w) = \frac1n\sum_j \phi(x_j^\top w - y_j)` for fixed ``(d, n)``.

    The data enter as symbols, so one build serves every task and every mini-batch
    of ``n`` points (a batch with repeated indices is just a data set with repeated
    rows). Call with ``X`` of shape (n, d) and ``y`` of shape (n,).
    """

    def __init__(self, d: int, n: int) -> None:
        self.d, self.n = d, n
        w = _vec_symbols("w", d)
        X = _mat_symbols("x", n, d)
        y = _vec_symbols("y", n)
        v = _vec_symbols("v", d)
        r = [sum(X[j][k] * w[k] for k in range(d)) - y[j] for j in range(n)]
        f = sum(welsch_phi(rj) for rj in r) / n
        grad, hess = _gradient_hessian(f, w)
        hvp = [sum(hess[a][b] * v[b] for b in range(d)) for a in range(d)]
        xflat = [s for row in X for s in row]
        self.expr = f
        self.w_symbols, self.x_symbols, self.y_symbols = w, X, y
        self._f = _lambdify([w, xflat, y], f)
        self._g = _lambdify([w, xflat, y], grad)
        self._h = _lambdify([w, xflat, y], hess)
        self._hv = _lambdify([w, v, xflat, y], hvp)

    def _args(self, X: object, y: object) -> tuple[list[float], list[float]]:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        assert X.shape == (self.n, self.d) and y.shape == (self.n,)
        return list(X.ravel()), list(y)

    def loss(self, w: object, X: object, y: object) -> float:
        """Loss value."""
        return float(self._f(list(np.asarray(w, float)), *self._args(X, y)))

    def grad(self, w: object, X: object, y: object) -> np.ndarray:
        """Gradient, shape (d,)."""
        return np.array(self._g(list(np.asarray(w, float)), *self._args(X, y)), dtype=float)

    def hess(self, w: object, X: object, y: object) -> np.ndarray:
        """Hessian, shape (d, d)."""
        return np.array(self._h(list(np.asarray(w, float)), *self._args(X, y)), dtype=float)

    def hvp(self, w: object, v: object, X: object, y: object) -> np.ndarray:
        """Hessian-vector product built from the symbolic Hessian, shape (d,)."""
        wl, vl = list(np.asarray(w, float)), list(np.asarray(v, float))
        return np.array(self._hv(wl, vl, *self._args(X, y)), dtype=float)


@functools.cache
def welsch_sum_oracle(d: int, n: int) -> WelschSumOracle:
    """Cached :class:`WelschSumOracle` for dimension ``d`` and ``n`` data points."""
    return WelschSumOracle(d, n)


class WelschPointOracle:
    r"""sympy model of one point's loss :math:`\phi(x^\top w - y)`, vectorised over points.

    Built once per ``d``; evaluates per-point losses, gradients and Hessians for
    any number of points (arrays ``X`` (n, d), ``y`` (n,)) by numpy broadcasting.
    Population quantities are the plain mean over points. Cheap enough for
    property-based tests over many shapes.
    """

    def __init__(self, d: int) -> None:
        self.d = d
        w = _vec_symbols("w", d)
        x = _vec_symbols("x", d)
        y = sp.Symbol("y", real=True)
        f = welsch_phi(sum(x[k] * w[k] for k in range(d)) - y)
        grad, hess = _gradient_hessian(f, w)
        self._f = _lambdify([w, x, y], f)
        self._g = [_lambdify([w, x, y], g) for g in grad]
        self._h = [[_lambdify([w, x, y], h) for h in row] for row in hess]

    def _split(self, w: object, X: object, y: object) -> tuple[list, list, np.ndarray]:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        assert X.ndim == 2 and X.shape[1] == self.d and y.shape == (X.shape[0],)
        return list(np.asarray(w, float)), [X[:, k] for k in range(self.d)], y

    def point_losses(self, w: object, X: object, y: object) -> np.ndarray:
        """Per-point losses, shape (n,)."""
        wl, xl, y = self._split(w, X, y)
        return np.broadcast_to(np.asarray(self._f(wl, xl, y), dtype=float), y.shape).copy()

    def point_grads(self, w: object, X: object, y: object) -> np.ndarray:
        """Per-point gradients, shape (n, d)."""
        wl, xl, y = self._split(w, X, y)
        cols = [np.broadcast_to(np.asarray(g(wl, xl, y), dtype=float), y.shape) for g in self._g]
        return np.stack(cols, axis=1)

    def point_hessians(self, w: object, X: object, y: object) -> np.ndarray:
        """Per-point Hessians, shape (n, d, d)."""
        wl, xl, y = self._split(w, X, y)
        out = np.empty((y.size, self.d, self.d))
        for a in range(self.d):
            for b in range(self.d):
                out[:, a, b] = np.broadcast_to(np.asarray(self._h[a][b](wl, xl, y), float), y.shape)
        return out

    def loss(self, w: object, X: object, y: object) -> float:
        """Mean loss over the points."""
        return float(np.mean(self.point_losses(w, X, y)))

    def grad(self, w: object, X: object, y: object) -> np.ndarray:
        """Mean gradient over the points, shape (d,)."""
        return self.point_grads(w, X, y).mean(axis=0)

    def hess(self, w: object, X: object, y: object) -> np.ndarray:
        """Mean Hessian over the points, shape (d, d)."""
        return self.point_hessians(w, X, y).mean(axis=0)


@functools.cache
def welsch_point_oracle(d: int) -> WelschPointOracle:
    """Cached :class:`WelschPointOracle` for dimension ``d``."""
    return WelschPointOracle(d)


# =============================================================================
# Quadratic tasks
# =============================================================================


class QuadraticSumOracle:
    r"""sympy model of the quadratic task loss for fixed ``(d, n)``.

    Mini-batch loss on ``n`` points (arrays ``s`` (n,), ``b`` (n, d)):
    :math:`\frac1n\sum_j [\tfrac12 s_j (w-c)^\top A (w-c) + b_j^\top (w-c)]`;
    population loss :math:`\tfrac12 (w-c)^\top A (w-c)`. ``A`` enters as ``d*d``
    independent symbols (not assumed symmetric).
    """

    def __init__(self, d: int, n: int) -> None:
        self.d, self.n = d, n
        w = _vec_symbols("w", d)
        c = _vec_symbols("c", d)
        A = _mat_symbols("A", d, d)
        s = _vec_symbols("s", n)
        b = _mat_symbols("b", n, d)
        v = _vec_symbols("v", d)
        diff = [w[k] - c[k] for k in range(d)]
        quad = sum(diff[k] * A[k][l] * diff[l] for k in range(d) for l in range(d)) / 2
        batch = sum(s[j] * quad + sum(b[j][k] * diff[k] for k in range(d)) for j in range(n)) / n
        Aflat = [a for row in A for a in row]
        bflat = [x for row in b for x in row]
        self._pop: dict[str, Callable[..., object]] = {}
        self._bat: dict[str, Callable[..., object]] = {}
        for store, f, extra in ((self._pop, quad, []), (self._bat, batch, [s, bflat])):
            grad, hess = _gradient_hessian(f, w)
            hvp = [sum(hess[a][k] * v[k] for k in range(d)) for a in range(d)]
            args = [w, Aflat, c, *extra]
            store["loss"] = _lambdify(args, f)
            store["grad"] = _lambdify(args, grad)
            store["hess"] = _lambdify(args, hess)
            store["hvp"] = _lambdify([v, *args], hvp)

    def _call(
        self, kind: str, w: object, A: object, c: object, s: object, b: object, v: object = None
    ) -> np.ndarray:
        A = np.asarray(A, float)
        c = np.asarray(c, float)
        args: list[object] = [list(np.asarray(w, float)), list(A.ravel()), list(c)]
        store = self._pop
        if s is not None:
            s = np.asarray(s, float)
            b = np.asarray(b, float)
            assert s.shape == (self.n,) and b.shape == (self.n, self.d)
            args += [list(s), list(b.ravel())]
            store = self._bat
        if v is not None:
            args = [list(np.asarray(v, float)), *args]
        return np.array(store[kind](*args), dtype=float)

    def loss(self, w, A, c, s=None, b=None) -> float:
        """Loss: population when ``s`` and ``b`` are ``None``, else on those points."""
        return float(self._call("loss", w, A, c, s, b))

    def grad(self, w, A, c, s=None, b=None) -> np.ndarray:
        """Gradient, shape (d,)."""
        return self._call("grad", w, A, c, s, b)

    def hess(self, w, A, c, s=None, b=None) -> np.ndarray:
        """Hessian, shape (d, d)."""
        H = self._call("hess", w, A, c, s, b)
        return np.broadcast_to(H, (self.d, self.d)).copy()

    def hvp(self, w, v, A, c, s=None, b=None) -> np.ndarray:
        """Hessian-vector product from the symbolic Hessian, shape (d,)."""
        return self._call("hvp", w, A, c, s, b, v=v)


@functools.cache
def quadratic_sum_oracle(d: int, n: int) -> QuadraticSumOracle:
    """Cached :class:`QuadraticSumOracle` for dimension ``d`` and ``n`` data points."""
    return QuadraticSumOracle(d, n)


# =============================================================================
# The MAML objective, symbolically
# =============================================================================


class SymbolicMAML:
    r"""Symbolic :math:`F(w) = f(w - \alpha\nabla f(w))` and its sympy gradient.

    ``f`` is a sympy expression in ``w`` (list of symbols) and ``params`` (list of
    symbols fixed per task, e.g. the data). The inner gradient is taken by sympy,
    substituted into ``f``, and the result is differentiated again by sympy: the
    chain rule is applied by the computer algebra system, not by the closed form
    of THEORY S1, so this is an independent oracle for ``meta.gradient``.
    """

    def __init__(self, f: sp.Expr, w: list[sp.Symbol], params: list[sp.Symbol]) -> None:
        self.d = len(w)
        alpha = sp.Symbol("alpha", real=True)
        inner = [sp.diff(f, wk) for wk in w]
        adapted = {wk: wk - alpha * gk for wk, gk in zip(w, inner, strict=True)}
        F = f.subs(adapted, simultaneous=True)
        dF = [sp.diff(F, wk) for wk in w]
        args = [w, alpha, params]
        self._F = _lambdify(args, F)
        self._dF = _lambdify(args, dF)

    def objective(self, w: object, alpha: float, params: Sequence[float]) -> float:
        """``F_i(w)`` for one task with parameter values ``params``."""
        return float(self._F(list(np.asarray(w, float)), float(alpha), list(params)))

    def gradient(self, w: object, alpha: float, params: Sequence[float]) -> np.ndarray:
        """``grad F_i(w)``, shape (d,)."""
        out = self._dF(list(np.asarray(w, float)), float(alpha), list(params))
        return np.array(out, dtype=float).reshape(self.d)


@functools.cache
def maml_oracle(kind: str, d: int, n: int = 0) -> SymbolicMAML:
    """Cached symbolic MAML oracle for one task of a family.

    ``kind="welsch"``: population loss summed over ``n`` points, parameters
    ``[*X.ravel(), *y]`` (use :func:`welsch_params`). ``kind="quadratic"``:
    population loss :math:`\\tfrac12 (w-c)^\\top A (w-c)`, parameters
    ``[*A.ravel(), *c]`` (use :func:`quadratic_params`).
    """
    w = _vec_symbols("w", d)
    if kind == "welsch":
        X = _mat_symbols("x", n, d)
        y = _vec_symbols("y", n)
        f = sum(welsch_phi(sum(X[j][k] * w[k] for k in range(d)) - y[j]) for j in range(n)) / n
        params = [s for row in X for s in row] + y
    elif kind == "quadratic":
        A = _mat_symbols("A", d, d)
        c = _vec_symbols("c", d)
        f = sum((w[k] - c[k]) * A[k][l] * (w[l] - c[l]) for k in range(d) for l in range(d)) / 2
        params = [a for row in A for a in row] + c
    else:  # pragma: no cover - programming error in a test
        raise AssertionError(kind)
    return SymbolicMAML(f, w, params)


def welsch_params(X: object, y: object) -> list[float]:
    """Parameter vector of one Welsch task for :func:`maml_oracle`."""
    return [float(v) for v in np.asarray(X, float).ravel()] + [float(v) for v in np.asarray(y)]


def quadratic_params(A: object, c: object) -> list[float]:
    """Parameter vector of one quadratic task for :func:`maml_oracle`."""
    return [float(v) for v in np.asarray(A, float).ravel()] + [float(v) for v in np.asarray(c)]


# --------------------------------------------------------------------------- test ids
def regex_id(value: object) -> str | None:
    """Readable test id for an expected-message regex (``None``: pytest's default id)."""
    if callable(value):
        return getattr(value, "__name__", "call").strip("<>")
    if not isinstance(value, str) or " " not in value:
        return None
    text = re.sub(r"\\(.)", r"\1", value)
    return re.sub(r"[^A-Za-z0-9_\[\]]+", "-", text).strip("-")[:50]
