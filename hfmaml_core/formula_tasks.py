r"""Tasks given by formulas, and the exact constants sympy derives for them (THEORY A2, A3, L1).

* :func:`sup_abs` finds :math:`\sup_r |g(r)|` exactly (critical points by ``solveset``);
  :func:`welsch_constants` gives :math:`\max|\phi''|` and :math:`\max|\phi'''|` of the
  Welsch loss used by :class:`~hfmaml_core.tasks.WelschRegressionFamily`.
* :class:`SymbolicTask` (any sympy loss, usable by :mod:`hfmaml_core.meta`).
* :class:`RidgeFamily`, :math:`f_i(w) = \frac\mu2\|w - c_i\|^2 + b_i\,\psi(a_i^\top w - s_i)`,
  a task family like those of :mod:`hfmaml_core.tasks` (``tasks.make_family("ridge", ...)``
  builds one): every task is smooth with a Lipschitz Hessian (constants derived from
  :math:`\psi` by sympy), yet :math:`\|\nabla f_i\|` is unbounded, so the MAML objective
  is not globally smooth.

Everything here is importable from :mod:`hfmaml_core.symbolic` too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import sympy as sp

from . import _validate as V
from .kernels import TaskFamily
from .sympy_checks import (
    expr_arg as _expr,
)
from .sympy_checks import simplified_derivative
from .sympy_checks import (
    symbol_arg as _symbol,
)
from .sympy_checks import (
    symbols_arg as _symbols,
)

__all__ = [
    "inflection_profile",
    "make_ridge_family",
    "RidgeFamily",
    "sup_abs",
    "SupResult",
    "SymbolicTask",
    "welsch_constants",
    "welsch_profile",
    "welsch_task_expr",
]


# =============================================================================
# constants: sup |g(r)| exactly
# =============================================================================


@dataclass(frozen=True)
class SupResult:
    r""":math:`\sup_r |g(r)|` (exact) and where it is attained (``None``: only as :math:`|r| \to \infty`)."""

    value: sp.Expr
    argmax: tuple[sp.Expr, ...] | None


def sup_abs(expr: sp.Expr, r: sp.Symbol) -> SupResult:
    r""":math:`\sup_{r\in\mathbb R}|g(r)|` for a smooth ``expr`` :math:`= g(r)`, exactly.

    The supremum is attained at a critical point (:math:`g'(r) = 0`, solved by
    ``sympy.solveset``) or approached as :math:`r \to \pm\infty` (``sympy.limit``). For a
    periodic ``g`` the critical points of one period suffice.

    Raises
    ------
    ValueError
        If sympy cannot list the critical points, or ``g`` has no finite limit at
        infinity and is not periodic (the supremum may then be infinite).
    """
    return _sup_abs(_expr("expr", expr), _symbol("r", r))


@functools.lru_cache(maxsize=64)
def _sup_abs(expr: sp.Expr, r: sp.Symbol) -> SupResult:
    if not expr.has(r):
        raise ValueError(f"expr must depend on r = {r}; got the constant {expr}")
    # only trigonometric functions make a real elementary expression periodic; skipping the
    # (slow) periodicity test otherwise is safe: for a periodic expr the critical points or the
    # limits at infinity below would not be finite, which raises instead of giving a wrong value
    trig = expr.has(sp.functions.elementary.trigonometric.TrigonometricFunction)
    period = sp.periodicity(expr, r) if trig else None
    domain = sp.S.Reals if period is None else sp.Interval.Ropen(0, period)
    crit = sp.solveset(sp.diff(expr, r), r, domain)
    if not (crit.is_empty or isinstance(crit, sp.FiniteSet)):
        raise ValueError(f"expr: sympy cannot list the critical points of {expr} (got {crit})")
    points = [] if crit.is_empty else list(crit)
    cands: list[tuple[sp.Expr, sp.Expr | None]] = [
        (sp.simplify(sp.Abs(expr.subs(r, c))), c) for c in points
    ]
    if period is None:
        for end in (sp.oo, -sp.oo):
            lim = sp.limit(expr, r, end)
            if not (lim.is_real and lim.is_finite):
                raise ValueError(f"expr: {expr} has no finite limit as r -> {end}")
            cands.append((sp.Abs(lim), None))
    best = max(float(v.evalf(50)) for v, _ in cands)
    tol = 1e-40 * max(1.0, best)
    top = [(v, c) for v, c in cands if float(v.evalf(50)) >= best - tol]
    where = tuple(c for _, c in top if c is not None)
    return SupResult(sp.simplify(top[0][0]), where or None)


def inflection_profile(gradient: float = 100.0) -> sp.Lambda:
    r"""A ridge profile whose Hessian changes fastest where the gradient is large (THEORY L1).

    .. math::
        \psi(r) = G\,r + \tfrac12\bigl(r\sqrt{1+r^2} + \operatorname{asinh} r\bigr),
        \qquad \psi'(r) = G + \sqrt{1+r^2}, \quad
        \psi''(r) = \frac{r}{\sqrt{1+r^2}}, \quad \psi'''(r) = (1+r^2)^{-3/2},

    so :math:`\sup|\psi''| = \sup|\psi'''| = 1` (:math:`L = \rho = b` for a
    :class:`RidgeFamily` with :math:`\mu = 0`). At the inflection point :math:`r = 0` the
    third derivative is maximal (:math:`\psi''' = \rho`) while the gradient is
    :math:`G + 1`, and the adaptation step lands at :math:`\hat r = -\alpha b(G + 1)`, where
    :math:`\psi'' \approx -1`: the gradient grows by nearly :math:`1 + \alpha L` on the way,
    so the gradient term :math:`\rho\alpha(1+\alpha L)\|\nabla f_i\|` of the sharper L1
    constant is approached as :math:`G \to \infty` (notebook 01). Unbounded below, like
    the concave quadratic; L1 needs only A2 and A3.

    Parameters
    ----------
    gradient : float
        :math:`G \ge 0`, the gradient of :math:`\psi` at the inflection point minus 1.
    """
    G = V.real("gradient", gradient, lo=0.0)
    r = sp.Symbol("r", real=True)
    return sp.Lambda(r, sp.Float(G, 17) * r + (r * sp.sqrt(1 + r**2) + sp.asinh(r)) / 2)


def welsch_profile() -> sp.Lambda:
    r"""The Welsch loss :math:`\phi(r) = 1 - e^{-r^2/2}` as a sympy ``Lambda``."""
    r = sp.Symbol("r", real=True)
    return sp.Lambda(r, 1 - sp.exp(-(r**2) / 2))


def welsch_constants() -> dict[str, SupResult]:
    r""":math:`\max|\phi''|` and :math:`\max|\phi'''|` of the Welsch loss, derived by :func:`sup_abs`.

    These are the factors of :math:`L_i = \max|\phi''|\,\|\Sigma_i\|_2` and
    :math:`\rho_i = \max|\phi'''|\,\|M_i\|_2` of
    :class:`~hfmaml_core.tasks.WelschRegressionFamily` (THEORY A2, A3). Keys ``"d2"``
    and ``"d3"``.
    """
    phi = welsch_profile()
    r = phi.variables[0]
    return {f"d{k}": sup_abs(sp.diff(phi.expr, r, k), r) for k in (2, 3)}


def welsch_task_expr(family: TaskFamily, i: int, w: object) -> sp.Expr:
    r"""Task ``i`` of a Welsch family as a sympy expression in the symbols ``w``.

    .. math:: f_i(w) = \frac1n\sum_{j=1}^n \phi(x_{ij}^\top w - y_{ij}),
        \qquad \phi(r) = 1 - e^{-r^2/2},

    written from the family's data ``X``, ``y`` (as exact binary Floats), so sympy can
    differentiate it independently of the library's kernels.
    """
    X, y = getattr(family, "X", None), getattr(family, "y", None)
    if X is None or y is None:
        raise ValueError("family must be a WelschRegressionFamily (with data X and y)")
    i = V.integer("i", i, lo=0, hi=family.n_tasks - 1)
    ws = _symbols("w", w)
    if len(ws) != family.dim:
        raise ValueError(f"w must hold {family.dim} symbols; got {len(ws)}")
    phi = welsch_profile()
    terms = [
        phi(sum(sp.Float(x, 17) * wk for x, wk in zip(row, ws, strict=True)) - sp.Float(yj, 17))
        for row, yj in zip(X[i], y[i], strict=True)
    ]
    return sp.Add(*terms) / len(terms)


# =============================================================================
# tasks given by formulas
# =============================================================================


class SymbolicTask:
    r"""A task whose loss is a sympy formula; ``loss``, ``grad``, ``hess`` are lambdified.

    Works with :func:`hfmaml_core.meta.objective` and :func:`~hfmaml_core.meta.gradient`
    (duck typing), so any formula can be fed to the library's S1 implementation.

    Parameters
    ----------
    f : sympy.Expr
        The loss in the symbols ``w``.
    w : sequence of sympy.Symbol
        The coordinates of ``w`` (``d = len(w)``).
    """

    def __init__(self, f: sp.Expr, w: object) -> None:
        self.expr = _expr("f", f)
        self.symbols = _symbols("w", w)
        self.dim = len(self.symbols)
        extra = self.expr.free_symbols - set(self.symbols)
        if extra:
            raise ValueError(
                f"f must depend only on w; it also has symbols {sorted(map(str, extra))}"
            )
        grad = [sp.diff(self.expr, wk) for wk in self.symbols]
        hess = [[sp.diff(gk, wl) for wl in self.symbols] for gk in grad]
        self._f = sp.lambdify([self.symbols], self.expr, modules="numpy")
        self._g = sp.lambdify([self.symbols], grad, modules="numpy")
        self._h = sp.lambdify([self.symbols], hess, modules="numpy")

    def _w(self, w: object) -> list[float]:
        return list(V.array("w", w, shape=(self.dim,)))

    def loss(self, w: object) -> float:
        """:math:`f(w)`."""
        return float(self._f(self._w(w)))

    def grad(self, w: object) -> np.ndarray:
        r""":math:`\nabla f(w)`, shape (d,)."""
        return np.asarray(self._g(self._w(w)), dtype=float).reshape(self.dim)

    def hess(self, w: object) -> np.ndarray:
        r""":math:`\nabla^2 f(w)`, shape (d, d)."""
        return np.asarray(self._h(self._w(w)), dtype=float).reshape(self.dim, self.dim)


class RidgeFamily(TaskFamily):
    r"""Smooth tasks with a Lipschitz Hessian and unbounded gradients (THEORY A2, A3, L1).

    .. math::
        f_i(w) = \frac{\mu}{2}\|w - c_i\|^2 + b_i\,\psi(a_i^\top w - s_i),
        \qquad
        \nabla^2 f_i(w) = \mu I + b_i\,\psi''(a_i^\top w - s_i)\,a_i a_i^\top .

    Constants, with :math:`\sup|\psi''|` and :math:`\sup|\psi'''|` derived by
    :func:`sup_abs`:

    .. math::
        L_i = \mu + b_i \sup|\psi''|\,\|a_i\|^2, \qquad
        \rho_i = b_i \sup|\psi'''|\,\|a_i\|^3,

    because :math:`\|\nabla^2 f_i(w) - \nabla^2 f_i(u)\|_2 = b_i|\psi''(r_w) - \psi''(r_u)|
    \|a_i\|^2` and :math:`|r_w - r_u| \le \|a_i\|\,\|w - u\|`. With :math:`\mu > 0`
    the gradient grows like :math:`\mu\|w\|`, and with a periodic :math:`\psi` (the
    default :math:`\sin`) the third derivative never dies out: by THEORY L1's identity
    the curvature of the MAML objective then grows without bound.

    Each task has a single data point (``n_points = 1``): mini-batches equal the
    population, so :math:`\tilde\sigma = \sigma_H = 0`.

    Parameters
    ----------
    mu : float
        Curvature of the quadratic part, >= 0.
    c : array, shape (m, d)
        Centres.
    a : array, shape (m, d)
        Ridge directions (non-zero rows).
    s : array, shape (m,)
        Offsets.
    b : array, shape (m,)
        Amplitudes, >= 0.
    profile : sympy.Lambda, optional
        :math:`\psi`, a function of one variable with a computable
        :math:`\sup|\psi''|` and :math:`\sup|\psi'''|` (default :math:`\sin`).
    probs : array, shape (m,), optional
        Task probabilities (default uniform).
    """

    name = "ridge"

    def __init__(
        self,
        mu: float,
        c: object,
        a: object,
        s: object,
        b: object,
        profile: sp.Lambda | None = None,
        probs: object = None,
    ) -> None:
        mu = V.real("mu", mu, lo=0.0)
        c_ = np.asarray(c)
        if c_.ndim != 2:
            raise ValueError(f"c must have shape (m, d); got shape {c_.shape}")
        m, d = c_.shape
        c_ = V.array("c", c_, shape=(m, d))
        a_ = V.array("a", a, shape=(m, d))
        norms = np.linalg.norm(a_, axis=1)
        if np.any(norms == 0):
            raise ValueError("a must have non-zero rows (one ridge direction per task)")
        s_ = V.array("s", s, shape=(m,))
        b_ = V.array("b", b, shape=(m,))
        if np.any(b_ < 0):
            raise ValueError(f"b must be >= 0 entrywise; got min {b_.min()!r}")
        if profile is None:
            x = sp.Symbol("r", real=True)
            profile = sp.Lambda(x, sp.sin(x))
        if not isinstance(profile, sp.Lambda) or len(profile.variables) != 1:
            raise ValueError(
                "profile must be a sympy Lambda of one variable, e.g. Lambda(r, sin(r))"
            )
        x = profile.variables[0]
        self.profile = profile
        # factored first: sup_abs solves for the critical points, far faster on short forms
        self.sup_d2 = sup_abs(simplified_derivative(profile.expr, x, 2), x)
        self.sup_d3 = sup_abs(simplified_derivative(profile.expr, x, 3), x)
        self._psi = [
            sp.lambdify([x], sp.diff(profile.expr, x, k), modules="numpy") for k in range(3)
        ]
        super().__init__(d, m, 1, probs)
        self.mu, self.c, self.a, self.s, self.b = mu, c_.copy(), a_.copy(), s_.copy(), b_.copy()
        self._L = mu + b_ * float(self.sup_d2.value) * norms**2
        self._rho = b_ * float(self.sup_d3.value) * norms**3

    @property
    def L_tasks(self) -> np.ndarray:
        return self._L

    @property
    def rho_tasks(self) -> np.ndarray:
        return self._rho

    def task_expr(self, i: int, w: object) -> sp.Expr:
        """Task ``i``'s loss as a sympy expression in the symbols ``w`` (numbers as Floats)."""
        i = V.integer("i", i, lo=0, hi=self.n_tasks - 1)
        ws = _symbols("w", w)
        if len(ws) != self.dim:
            raise ValueError(f"w must hold {self.dim} symbols; got {len(ws)}")
        fl = [sp.Float(v, 17) for v in self.c[i]]
        quad = (
            sp.Float(self.mu, 17) / 2 * sum((wk - ck) ** 2 for wk, ck in zip(ws, fl, strict=True))
        )
        r = sum(sp.Float(ak, 17) * wk for ak, wk in zip(self.a[i], ws, strict=True))
        return quad + sp.Float(self.b[i], 17) * self.profile(r - sp.Float(self.s[i], 17))

    def _psi_k(self, k: int, r: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(self._psi[k](r), dtype=float), r.shape)

    def _r(self, W: np.ndarray, T: np.ndarray) -> np.ndarray:
        return np.einsum("bd,bd->b", W, self.a[T]) - self.s[T]

    def loss_kernel(self, W, T, idx):
        diff = W - self.c[T]
        return 0.5 * self.mu * np.einsum("bd,bd->b", diff, diff) + self.b[T] * self._psi_k(
            0, self._r(W, T)
        )

    def grad_kernel(self, W, T, idx):
        coef = self.b[T] * self._psi_k(1, self._r(W, T))
        return self.mu * (W - self.c[T]) + coef[:, None] * self.a[T]

    def hessian_kernel(self, W, T, idx):
        coef = self.b[T] * self._psi_k(2, self._r(W, T))
        A = self.a[T]
        return self.mu * np.eye(self.dim) + coef[:, None, None] * np.einsum("bd,be->bde", A, A)

    def hvp_kernel(self, W, Vv, T, idx):
        coef = self.b[T] * self._psi_k(2, self._r(W, T)) * np.einsum("bd,bd->b", self.a[T], Vv)
        return self.mu * Vv + coef[:, None] * self.a[T]

    def point_grad_kernel(self, w, t):
        return self.grad_kernel(w[None], np.array([t]), None)

    def point_hessian_kernel(self, w, t):
        return self.hessian_kernel(w[None], np.array([t]), None)


def make_ridge_family(
    dim: int,
    n_tasks: int = 8,
    *,
    seed: int,
    mu: float = 0.2,
    amplitude: float = 1.0,
    center_spread: float = 1.0,
    profile: sp.Lambda | None = None,
    probs: object = None,
) -> RidgeFamily:
    r"""A random :class:`RidgeFamily` from ``seed``.

    Unit ridge directions :math:`a_i` (uniform on the sphere), centres
    :math:`c_i \sim N(0, \text{center\_spread}^2 I/d)`, offsets :math:`s_i` uniform in
    :math:`[0, 2\pi)` and equal amplitudes :math:`b_i = \text{amplitude}`. With the
    default :math:`\psi = \sin`: :math:`L = \mu + b`, :math:`\rho = b`.
    """
    dim = V.integer("dim", dim)
    n_tasks = V.integer("n_tasks", n_tasks)
    mu = V.real("mu", mu, lo=0.0)
    amplitude = V.real("amplitude", amplitude, lo=0.0)
    center_spread = V.real("center_spread", center_spread, lo=0.0)
    rng = np.random.default_rng(V.integer("seed", seed, lo=0))
    a = rng.standard_normal((n_tasks, dim))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    c = center_spread * rng.standard_normal((n_tasks, dim)) / math.sqrt(dim)
    s = rng.uniform(0.0, 2.0 * math.pi, size=n_tasks)
    b = np.full(n_tasks, amplitude)
    return RidgeFamily(mu, c, a, s, b, profile=profile, probs=probs)
