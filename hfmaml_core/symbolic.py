r"""Computer algebra for the MAML objective and its smoothness (THEORY S1, L1, A2, A3).

sympy does the calculus so that a reader can check every step:

* **S1.** :func:`maml_objective` builds :math:`F(w) = f(w - \alpha\nabla f(w))` from any
  sympy expression ``f`` (a concrete formula, or a generic ``sympy.Function``);
  :func:`maml_gradient` differentiates it by the chain rule of the computer algebra
  system, :func:`s1_gradient` writes the closed form
  :math:`(I - \alpha\nabla^2 f(w))\nabla f(w - \alpha\nabla f(w))`, and
  :func:`s1_residual` is their difference (zero when S1 holds).
* **L1 in one dimension.** :func:`l1_identity_1d` gives the exact second derivative
  :math:`F'' = (1 - \alpha f''(w))^2 f''(\hat w) - \alpha f'''(w) f'(\hat w)`;
  :func:`l1_chain_1d` lists the inequalities that bound it by
  :math:`4L + 2\rho\alpha|f'(w)|`; :func:`prove_step` proves a step symbolically
  (the gap is a sum of terms that :func:`nonnegative_on_box` shows are
  :math:`\ge 0`) and :func:`scan_l1_chain_1d` checks every step on a dense grid.
  :func:`l1_decomposition` is the matrix identity behind the multivariate proof.
  :func:`l1_sharp_chain_1d` stops the chain one step earlier, at the sharper
  :math:`L(1+\alpha L)^2 + \rho\alpha(1+\alpha L)|f'(w)|`, valid for every :math:`\alpha \ge 0`.
* **Controls.** Each derivation takes a ``mistake`` (:data:`S1_MISTAKES`,
  :data:`L1_IDENTITY_MISTAKES`, :data:`L1_CHAIN_MISTAKES`,
  :data:`L1_DECOMPOSITION_MISTAKES`): a plausible wrong formula or step, on which the
  same check must fail (the claims' controls).
* **Constants.** :func:`sup_abs` finds :math:`\sup_r |g(r)|` exactly (critical points
  by ``solveset``); :func:`welsch_constants` gives :math:`\max|\phi''|` and
  :math:`\max|\phi'''|` of the Welsch loss used by
  :class:`~hfmaml_core.tasks.WelschRegressionFamily`.
* **Tasks from formulas.** :class:`SymbolicTask` (any sympy loss, usable by
  :mod:`hfmaml_core.meta`) and :class:`RidgeFamily`,
  :math:`f_i(w) = \frac\mu2\|w - c_i\|^2 + b_i\,\psi(a_i^\top w - s_i)`: every task is
  smooth with a Lipschitz Hessian (constants derived from :math:`\psi` by sympy), yet
  :math:`\|\nabla f_i\|` is unbounded, so the MAML objective is not globally smooth.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from . import _validate as V
from .tasks import TaskFamily

__all__ = [
    "L1_CHAIN_MISTAKES",
    "L1_DECOMPOSITION_MISTAKES",
    "L1_IDENTITY_MISTAKES",
    "L1Identity",
    "L1Symbols",
    "RidgeFamily",
    "Step",
    "SupResult",
    "SymbolicTask",
    "l1_chain_1d",
    "l1_decomposition",
    "inflection_profile",
    "l1_identity_1d",
    "l1_sharp_chain_1d",
    "l1_symbols",
    "make_ridge_family",
    "maml_gradient",
    "maml_objective",
    "maml_second_derivative",
    "nonnegative_on_box",
    "prove_step",
    "S1_MISTAKES",
    "s1_gradient",
    "s1_residual",
    "scan_l1_chain_1d",
    "sup_abs",
    "welsch_constants",
    "welsch_profile",
    "welsch_task_expr",
]


# =============================================================================
# argument checks
# =============================================================================


def _symbols(name: str, w: object) -> list[sp.Symbol]:
    ws = [w] if isinstance(w, sp.Symbol) else list(w) if isinstance(w, Sequence) else None
    if not ws or not all(isinstance(s, sp.Symbol) for s in ws) or len(set(ws)) != len(ws):
        raise ValueError(
            f"{name} must be a sympy Symbol or a non-empty sequence of distinct Symbols; got {w!r}"
        )
    return ws


def _symbol(name: str, x: object) -> sp.Symbol:
    if not isinstance(x, sp.Symbol):
        raise ValueError(f"{name} must be a single sympy Symbol (one variable); got {x!r}")
    return x


def _expr(name: str, f: object) -> sp.Expr:
    if not isinstance(f, sp.Expr):
        raise ValueError(f"{name} must be a sympy expression; got {type(f).__name__}")
    return f


def _alpha(alpha: object) -> sp.Expr:
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (sp.Expr, int, float)):
        raise ValueError(f"alpha must be a sympy Symbol or a real number; got {alpha!r}")
    a = sp.sympify(alpha)
    if a.is_number and not (a.is_real and a.is_nonnegative):
        raise ValueError(f"alpha must be a real number >= 0 (or a Symbol); got {alpha!r}")
    return a


def _zero(e: sp.Expr) -> sp.Expr:
    """``e`` reduced to 0 when sympy can: ``expand`` (fast) first, ``simplify`` only if needed."""
    z = sp.expand(e)
    return z if z == 0 else sp.simplify(e.doit())


def _zero_or_witness(e: sp.Expr) -> sp.Expr:
    """Like :func:`_zero`, but a residual that is visibly non-zero at a point is returned as is.

    For the wrong formulas of the controls: ``expand`` and ``simplify`` of a large
    non-zero expression are slow, and a non-zero value at one point (evaluated with 30
    digits) already proves that it is not identically 0. A residual in a generic
    function ``f`` is first made concrete with ``f(x) = x**3/3 + exp(x/2)``: if it is
    non-zero for that ``f``, it is not zero for every ``f``.
    """
    concrete = e
    undef = e.atoms(sp.core.function.AppliedUndef)
    if undef and all(len(u.args) == 1 for u in undef):
        x = sp.Dummy("x")
        concrete = e.replace(
            lambda n: isinstance(n, sp.core.function.AppliedUndef),
            lambda n: sp.Lambda(x, x**3 / 3 + sp.exp(x / 2))(n.args[0]),
        ).doit()
    if not concrete.atoms(sp.core.function.AppliedUndef, sp.Derivative, sp.Subs):
        free = sorted(concrete.free_symbols, key=str)
        point = {v: sp.Rational(3 + 2 * k, 11) for k, v in enumerate(free)}
        if abs(complex(concrete.xreplace(point).evalf(30))) > 1e-12:
            return e
    return _zero(e)


# =============================================================================
# S1: the MAML objective and its gradient
# =============================================================================


def _adapted(f: sp.Expr, ws: list[sp.Symbol], a: sp.Expr) -> dict:
    return {wk: wk - a * sp.diff(f, wk) for wk in ws}


def maml_objective(f: sp.Expr, w: object, alpha: object) -> sp.Expr:
    r"""The one-task MAML objective as a sympy expression (THEORY Setting).

    .. math:: F(w) = f\bigl(w - \alpha\nabla f(w)\bigr)

    Parameters
    ----------
    f : sympy.Expr
        The task loss in the symbols ``w`` (a formula, or a generic ``sympy.Function``).
    w : sympy.Symbol or sequence of Symbols
        The coordinates of ``w``.
    alpha : sympy.Symbol or float
        The inner step size (a number must be >= 0).
    """
    f, ws, a = _expr("f", f), _symbols("w", w), _alpha(alpha)
    return f.subs(_adapted(f, ws, a), simultaneous=True)


def maml_gradient(f: sp.Expr, w: object, alpha: object) -> sp.Matrix:
    r""":math:`\nabla F(w)` by sympy's chain rule applied to :func:`maml_objective` (column)."""
    f, ws, a = _expr("f", f), _symbols("w", w), _alpha(alpha)
    return sp.Matrix(_maml_gradient(f, tuple(ws), a))  # a mutable copy of the cached result


@functools.lru_cache(maxsize=64)
def _maml_gradient(f: sp.Expr, ws: tuple[sp.Symbol, ...], a: sp.Expr) -> sp.ImmutableMatrix:
    # cached: s1_residual (once per mistake) and the notebooks' lambdify ask for the same F
    F = maml_objective(f, list(ws), a)
    return sp.ImmutableMatrix([sp.diff(F, wk) for wk in ws])


#: Plausible wrong versions of S1, for controls: ``"first-order"`` drops the Hessian
#: term (FO-MAML's direction :math:`\nabla f(\hat w)`), ``"plus-sign"`` writes
#: :math:`(I + \alpha\nabla^2 f(w))`, ``"hessian-at-adapted"`` evaluates the Hessian at
#: :math:`\hat w` instead of :math:`w`.
S1_MISTAKES = ("first-order", "plus-sign", "hessian-at-adapted")


def _mistake(name: str, mistake: object, allowed: tuple[str, ...]) -> str | None:
    if mistake is not None and mistake not in allowed:
        raise ValueError(
            f"{name} must be None or one of {', '.join(map(repr, allowed))}; got {mistake!r}"
        )
    return mistake  # type: ignore[return-value]


def s1_gradient(f: sp.Expr, w: object, alpha: object, *, mistake: str | None = None) -> sp.Matrix:
    r"""The closed form of THEORY S1 (column).

    .. math:: \nabla F(w) = (I - \alpha\nabla^2 f(w))\,\nabla f\bigl(w - \alpha\nabla f(w)\bigr)

    ``mistake`` (one of :data:`S1_MISTAKES`) returns a plausible *wrong* formula
    instead, for a control that the comparison with sympy's chain rule must catch.
    """
    f, ws, a = _expr("f", f), _symbols("w", w), _alpha(alpha)
    mistake = _mistake("mistake", mistake, S1_MISTAKES)
    grad = sp.Matrix([sp.diff(f, wk) for wk in ws])
    hess = sp.Matrix(len(ws), len(ws), lambda i, j: sp.diff(f, ws[i], ws[j]))
    adapted = _adapted(f, ws, a)
    outer = grad.subs(adapted, simultaneous=True)
    if mistake == "first-order":
        return outer
    if mistake == "plus-sign":
        return (sp.eye(len(ws)) + a * hess) * outer
    if mistake == "hessian-at-adapted":
        return (sp.eye(len(ws)) - a * hess.subs(adapted, simultaneous=True)) * outer
    return (sp.eye(len(ws)) - a * hess) * outer


def s1_residual(f: sp.Expr, w: object, alpha: object, *, mistake: str | None = None) -> sp.Matrix:
    r""":func:`maml_gradient` minus :func:`s1_gradient`, reduced: the zero vector iff S1 holds.

    With ``mistake`` (see :data:`S1_MISTAKES`) the wrong formula is compared instead:
    a non-zero residual shows that the comparison catches that mistake.
    """
    diff = maml_gradient(f, w, alpha) - s1_gradient(f, w, alpha, mistake=mistake)
    return diff.applyfunc(_zero if mistake is None else _zero_or_witness)


def maml_second_derivative(f: sp.Expr, w: sp.Symbol, alpha: object) -> sp.Expr:
    r""":math:`F''(w)` of the one-dimensional MAML objective, by sympy."""
    wk = _symbol("w", w)
    return sp.diff(maml_objective(f, wk, alpha), wk, 2)


# =============================================================================
# L1 in one dimension: the exact F'' and the chain of inequalities
# =============================================================================


@dataclass(frozen=True)
class L1Symbols:
    r"""Names for the quantities of the one-dimensional L1 argument.

    ``alpha, L, rho`` are the step and the constants of A2/A3; ``h = f''(w)``,
    ``h_hat = f''(w_hat)``, ``t = f'''(w)``, ``g = f'(w)``, ``g_hat = f'(w_hat)`` with
    :math:`\hat w = w - \alpha f'(w)`. The magnitudes ``eta = |h_hat|``, ``tau = |t|``,
    ``gamma = |g|`` and the fraction ``s`` with :math:`|\hat g| = s(1+\alpha L)|g|`
    are the variables of the proofs; ``sigma`` is the signed version of ``s`` used
    by the numeric scan (:math:`\hat g = \sigma(1+\alpha L) g`).
    """

    alpha: sp.Symbol
    L: sp.Symbol
    rho: sp.Symbol
    h: sp.Symbol
    h_hat: sp.Symbol
    t: sp.Symbol
    g: sp.Symbol
    g_hat: sp.Symbol
    eta: sp.Symbol
    tau: sp.Symbol
    gamma: sp.Symbol
    s: sp.Symbol
    sigma: sp.Symbol


def l1_symbols() -> L1Symbols:
    """The symbols of :class:`L1Symbols`, with their sign assumptions."""
    nonneg = {"nonnegative": True}
    return L1Symbols(
        alpha=sp.Symbol("alpha", **nonneg),
        L=sp.Symbol("L", positive=True),
        rho=sp.Symbol("rho", positive=True),
        h=sp.Symbol("h", real=True),
        h_hat=sp.Symbol(r"\hat{h}", real=True),
        t=sp.Symbol("t", real=True),
        g=sp.Symbol("g", real=True),
        g_hat=sp.Symbol(r"\hat{g}", real=True),
        eta=sp.Symbol("eta", **nonneg),
        tau=sp.Symbol("tau", **nonneg),
        gamma=sp.Symbol("gamma", **nonneg),
        s=sp.Symbol("s", **nonneg),
        sigma=sp.Symbol("sigma", real=True),
    )


@dataclass(frozen=True)
class L1Identity:
    """The exact :math:`F''` (sympy), its structured form, and their reduced difference."""

    second_derivative: sp.Expr
    structured: sp.Expr
    values: dict
    residual: sp.Expr


#: Plausible wrong versions of the 1-D identity for :math:`F''`: ``"constant-hessian"``
#: drops :math:`-\alpha f^{(3)}(w) f'(\hat w)` (the formula for quadratic tasks),
#: ``"unsquared"`` writes :math:`(1 - \alpha f''(w))` instead of its square.
L1_IDENTITY_MISTAKES = ("constant-hessian", "unsquared")


def l1_identity_1d(
    f: sp.Expr | None = None, w: sp.Symbol | None = None, *, mistake: str | None = None
) -> L1Identity:
    r"""The exact second derivative of the one-dimensional MAML objective (THEORY L1).

    .. math::
        F''(w) = \bigl(1 - \alpha f''(w)\bigr)^2 f''(\hat w) - \alpha f'''(w)\,f'(\hat w),
        \qquad \hat w = w - \alpha f'(w).

    Parameters
    ----------
    f, w : sympy.Expr and sympy.Symbol, optional
        The loss and its variable; default a generic function ``f(w)``, which makes the
        identity hold for every three times differentiable ``f``.
    mistake : str, optional
        One of :data:`L1_IDENTITY_MISTAKES`: compare sympy's :math:`F''` with that wrong
        right side instead (a control; its residual must be non-zero).

    Returns
    -------
    L1Identity
        ``second_derivative`` (sympy's :math:`F''`), ``structured`` (the right side in
        the symbols of :func:`l1_symbols`), ``values`` (what each symbol stands for) and
        ``residual`` (their difference, reduced; 0 when the identity holds).
    """
    mistake = _mistake("mistake", mistake, L1_IDENTITY_MISTAKES)
    S = l1_symbols()
    if w is None:
        w = sp.Symbol("w", real=True)
    wk = _symbol("w", w)
    if f is None:
        f = sp.Function("f")(wk)
    f = _expr("f", f)
    a = S.alpha
    w_hat = wk - a * sp.diff(f, wk)
    values = {
        S.h: sp.diff(f, wk, 2),
        S.h_hat: sp.diff(f, wk, 2).subs(wk, w_hat),
        S.t: sp.diff(f, wk, 3),
        S.g_hat: sp.diff(f, wk).subs(wk, w_hat),
    }
    structured = (1 - a * S.h) ** 2 * S.h_hat - a * S.t * S.g_hat
    if mistake == "constant-hessian":
        structured = (1 - a * S.h) ** 2 * S.h_hat
    elif mistake == "unsquared":
        structured = (1 - a * S.h) * S.h_hat - a * S.t * S.g_hat
    second = maml_second_derivative(f, wk, a)
    residual = _zero(second - structured.subs(values, simultaneous=True))
    return L1Identity(second, structured, values, residual)


@dataclass(frozen=True)
class Step:
    r"""One inequality ``lhs <= rhs`` of a chain, with the reason and (optionally) a proof.

    ``gap_terms`` are expressions whose sum is ``rhs - lhs`` and each of which is
    :math:`\ge 0` on ``box`` (a dict ``symbol -> (lo, hi)``) given the sign
    assumptions of the symbols; ``None`` when sympy cannot decide the step (it is then
    checked by :func:`scan_l1_chain_1d`).
    """

    label: str
    reason: str
    lhs: sp.Expr
    rhs: sp.Expr
    gap_terms: tuple[sp.Expr, ...] | None
    box: dict


#: Plausible wrong steps of the L1 chain: ``"adapted-gradient"`` bounds the gradient at
#: the adapted point by :math:`|f'(\hat w)| \le |f'(w)|` (forgetting that it can grow
#: by :math:`1+\alpha L`), which ends at :math:`4L + \rho\alpha|g|`; ``"constant-3L"``
#: ends at :math:`3L + 2\rho\alpha|g|`.
L1_CHAIN_MISTAKES = ("adapted-gradient", "constant-3L")


def l1_chain_1d(*, mistake: str | None = None) -> list[Step]:
    r"""The chain of THEORY L1 in one dimension, for :math:`\alpha \in [0, 1/L]`.

    With :math:`|f''| \le L` (A2), :math:`|f'''| \le \rho` (A3) and
    :math:`|f'(\hat w)| \le (1+\alpha L)|f'(w)|` (mean value theorem, since
    :math:`|\hat w - w| = \alpha|f'(w)|`):

    .. math::
        |F''| = |(1-\alpha h)^2\hat h - \alpha t\hat g|
        \le (1-\alpha h)^2|\hat h| + \alpha|t||\hat g|
        \le L(1+\alpha L)^2 + \alpha\rho|\hat g|
        \le L(1+\alpha L)^2 + \alpha\rho(1+\alpha L)|g|
        \le 4L + 2\rho\alpha|g| .

    Returns the four steps; ``lhs`` of the first is :math:`|F''|` written with
    :math:`\hat g = \sigma(1+\alpha L)g` (:math:`|\sigma| \le 1`), the others use the
    magnitudes of :class:`L1Symbols`. ``mistake`` (one of :data:`L1_CHAIN_MISTAKES`)
    replaces one step by a plausible wrong one, for a control: :func:`prove_step` must
    not prove it and :func:`scan_l1_chain_1d` must find a ratio above 1.
    """
    mistake = _mistake("mistake", mistake, L1_CHAIN_MISTAKES)
    return _l1_chain(mistake, alpha_max=None)


def l1_sharp_chain_1d(*, mistake: str | None = None) -> list[Step]:
    r"""The sharper local smoothness of THEORY L1's proof, for every :math:`\alpha \ge 0`.

    The first three steps of :func:`l1_chain_1d`, which never use :math:`\alpha \le 1/L`:

    .. math::
        |F''(w)| \le L(1+\alpha L)^2 + \rho\alpha(1+\alpha L)\,|f'(w)| ,

    with the boxes of the proofs set to :math:`\alpha \in [0, A]` for a positive symbol
    ``A`` (so :func:`prove_step` proves steps 2 and 3 for every :math:`\alpha \ge 0`).
    For :math:`\alpha \le 1/L` the right side is at most :math:`4L + 2\rho\alpha|f'(w)|`
    (step 4 of :func:`l1_chain_1d`); at :math:`\alpha = 1/(10L)` and :math:`f'(w) = 0` it
    is :math:`4/1.21 \approx 3.3` times smaller. The concave quadratic
    :math:`-\tfrac L2 w^2` attains :math:`L(1+\alpha L)^2` for every :math:`\alpha`.
    ``mistake="adapted-gradient"`` replaces step 3 by the wrong one of
    :data:`L1_CHAIN_MISTAKES` (a control); the other mistakes concern step 4 only.
    """
    mistake = _mistake("mistake", mistake, ("adapted-gradient",))
    return _l1_chain(mistake, alpha_max=sp.Symbol("A", positive=True))[:3]


def _l1_chain(mistake: str | None, alpha_max: sp.Expr | None) -> list[Step]:
    S = l1_symbols()
    a, L, rho = S.alpha, S.L, S.rho
    k = 1 + a * L
    g_hat_abs = S.s * k * S.gamma  # |g_hat| = s (1 + alpha L) |g|, s in [0, 1]
    B0 = sp.Abs((1 - a * S.h) ** 2 * S.h_hat - a * S.t * S.sigma * k * S.g)
    B1 = (1 - a * S.h) ** 2 * S.eta + a * S.tau * g_hat_abs
    B2 = L * k**2 + a * rho * g_hat_abs
    B3 = L * k**2 + a * rho * k * S.gamma
    B4 = 4 * L + 2 * rho * a * S.gamma
    box_a = {a: (0, 1 / L if alpha_max is None else alpha_max)}
    step3_terms: tuple[sp.Expr, ...] = (a * rho * k * S.gamma * (1 - S.s),)
    step4_terms: tuple[sp.Expr, ...] = (L * (4 - k**2), a * rho * S.gamma * (2 - k))
    step3_label, step3_reason = (
        "gradient at the adapted point",
        r"$|f'(\hat w)| \le |f'(w)| + L|\hat w - w| = (1+\alpha L)|f'(w)|$, i.e. $s \le 1$",
    )
    if mistake == "adapted-gradient":
        B3 = L * k**2 + a * rho * S.gamma
        B4 = 4 * L + rho * a * S.gamma
        step3_terms = (a * rho * S.gamma * (1 - S.s * k),)
        step4_terms = (L * (4 - k**2),)
        step3_label, step3_reason = (
            "gradient at the adapted point (WRONG)",
            r"$|f'(\hat w)| \le |f'(w)|$: forgets that the gradient can grow by $1+\alpha L$",
        )
    elif mistake == "constant-3L":
        B4 = 3 * L + 2 * rho * a * S.gamma
        step4_terms = (L * (3 - k**2), a * rho * S.gamma * (2 - k))
    return [
        Step(
            "triangle inequality",
            r"$|x - y| \le |x| + |y|$ with $\eta = |\hat h|$, $\tau = |t|$, "
            r"$|\hat g| = s(1+\alpha L)|g|$",
            B0,
            B1,
            None,
            {},
        ),
        Step(
            "A2 and A3",
            r"$|1 - \alpha h| \le 1 + \alpha L$ and $\eta \le L$ (A2: $|f''| \le L$), "
            r"$\tau \le \rho$ (A3)",
            B1,
            B2,
            (
                ((k**2 - (1 - a * S.h) ** 2) * S.eta),
                k**2 * (L - S.eta),
                a * S.s * k * S.gamma * (rho - S.tau),
            ),
            {**box_a, S.h: (-L, L), S.eta: (0, L), S.tau: (0, rho), S.s: (0, 1)},
        ),
        Step(
            step3_label,
            step3_reason,
            B2,
            B3,
            step3_terms,
            {**box_a, S.s: (0, 1)},
        ),
        Step(
            r"$\alpha \le 1/L$" + (" (WRONG constant 3L)" if mistake == "constant-3L" else ""),
            r"$(1 + \alpha L)^2 \le 4$ and $1 + \alpha L \le 2$ when $\alpha L \le 1$",
            B3,
            B4,
            step4_terms,
            box_a,
        ),
    ]


def _sign_on_box(e: sp.Expr, box: dict) -> int | None:
    """+1 if ``e >= 0`` on the box, -1 if ``e <= 0``, ``None`` if undecided.

    Decides constants (by their assumptions) and expressions that are affine in each
    box variable separately (their extremes over a box are at its vertices).
    """
    vars_ = [v for v in box if e.has(v)]
    if not vars_:
        if e.is_nonnegative:
            return 1
        if e.is_nonpositive:
            return -1
        return None
    try:
        poly = sp.Poly(e, *vars_)
    except sp.PolynomialError:
        return None
    if any(poly.degree(v) > 1 for v in vars_):
        return None
    values = [
        sp.simplify(e.subs(dict(zip(vars_, corner, strict=True)), simultaneous=True))
        for corner in itertools.product(*(box[v] for v in vars_))
    ]
    if all(v.is_nonnegative for v in values):
        return 1
    if all(v.is_nonpositive for v in values):
        return -1
    return None


def nonnegative_on_box(expr: sp.Expr, box: dict) -> bool:
    r"""Prove ``expr >= 0`` for every point of ``box`` (a dict ``symbol -> (lo, hi)``).

    ``expr`` is factored; a factor raised to an even power is :math:`\ge 0`, and any
    other factor must have a known sign: either from the sign assumptions of its
    symbols, or because it is affine in each box variable separately, so that its
    minimum and maximum over the box are attained at the box's vertices, where sympy
    evaluates it exactly. The product is :math:`\ge 0` when the number of
    :math:`\le 0` factors is even.

    Returns
    -------
    bool
        ``True`` if proved; ``False`` if this method cannot decide (which does not
        mean the inequality is false).
    """
    expr = _expr("expr", sp.sympify(expr))
    if not isinstance(box, dict) or not all(
        isinstance(k, sp.Symbol) and isinstance(v, tuple) and len(v) == 2 for k, v in box.items()
    ):
        raise ValueError("box must be a dict mapping sympy Symbols to (lo, hi) pairs")
    negatives = 0
    for factor in sp.Mul.make_args(sp.factor(expr)):
        base, exp = factor.as_base_exp()
        if exp.is_integer and exp.is_even:
            continue
        if not (exp.is_integer and exp.is_positive):
            sign = _sign_on_box(factor, box)
        else:
            sign = _sign_on_box(base, box)
        if sign is None:
            return False
        negatives += sign < 0
    return negatives % 2 == 0


def prove_step(step: Step) -> bool:
    """``True`` if ``step.rhs - step.lhs`` equals the sum of ``step.gap_terms`` and each is >= 0."""
    if step.gap_terms is None:
        return False
    if sp.expand(step.rhs - step.lhs - sum(step.gap_terms)) != 0:
        return False
    return all(nonnegative_on_box(term, step.box) for term in step.gap_terms)


def scan_l1_chain_1d(
    n_grid: int = 9, g_max: float = 1e3, *, mistake: str | None = None
) -> dict[str, float]:
    r"""Check every step of :func:`l1_chain_1d` on a grid, including those sympy cannot decide.

    All quantities are scanned over their allowed ranges: :math:`L = 1`,
    :math:`\rho \in \{0.25, 1, 4\}`, :math:`\alpha L, s \in [0, 1]`,
    :math:`h, \hat h \in [-L, L]`, :math:`t \in [-\rho, \rho]`, :math:`\sigma \in [-1, 1]`
    (``n_grid`` points each, endpoints included), and :math:`g` in
    :math:`\{0\} \cup \pm[10^{-3}, g_{\max}]` on a log grid. ``mistake`` scans the chain
    of ``l1_chain_1d(mistake=...)`` instead (a control: some ratio must exceed 1). (The chain is invariant
    under :math:`f \to cf`, :math:`w \to w/c'`, so :math:`L = 1` loses nothing.)

    Returns
    -------
    dict
        ``"step k"`` -> worst ratio lhs/rhs of step ``k`` (1-based), ``"overall"`` ->
        worst :math:`|F''| / (4L + 2\rho\alpha|g|)`, ``"points"`` -> grid size. Every
        ratio must be <= 1.
    """
    n_grid = V.integer("n_grid", n_grid, lo=2)
    g_max = V.real("g_max", g_max, lo=1e-3, lo_open=True)
    steps = l1_chain_1d(mistake=mistake)
    S = l1_symbols()
    u = np.linspace(0.0, 1.0, n_grid)
    sym = np.linspace(-1.0, 1.0, n_grid)
    gpos = np.geomspace(1e-3, g_max, n_grid)
    grids = np.meshgrid(
        u, sym, sym, sym, sym, np.concatenate([-gpos[::-1], [0.0], gpos]), indexing="ij"
    )
    a, h, h_hat, t_unit, sigma, g = (x.ravel() for x in grids)
    out: dict[str, float] = {}
    worst = [0.0] * len(steps)
    overall = 0.0
    for rho in (0.25, 1.0, 4.0):
        vals = {
            S.alpha: a,
            S.L: 1.0,
            S.rho: rho,
            S.h: h,
            S.h_hat: h_hat,
            S.t: rho * t_unit,
            S.g: g,
            S.sigma: sigma,
            S.eta: np.abs(h_hat),
            S.tau: rho * np.abs(t_unit),
            S.gamma: np.abs(g),
            S.s: np.abs(sigma),
        }
        keys = list(vals)

        def ev(e: sp.Expr, keys: list = keys, vals: dict = vals) -> np.ndarray:
            fn = sp.lambdify(keys, e, modules="numpy")
            return np.broadcast_to(np.asarray(fn(*vals.values()), dtype=float), a.shape)

        sides = [ev(steps[0].lhs)] + [ev(st.rhs) for st in steps]
        for k in range(len(steps)):
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.where(sides[k + 1] > 0, sides[k] / sides[k + 1], 0.0)
            worst[k] = max(worst[k], float(r.max()))
        overall = max(overall, float((sides[0] / sides[-1]).max()))
    for k, w in enumerate(worst):
        out[f"step {k + 1}"] = w
    out["overall"] = overall
    out["points"] = float(3 * a.size)
    return out


#: Plausible wrong versions of the decomposition: ``"mixed-roles"`` pairs
#: :math:`(I - \alpha H_u)` with :math:`(H_u - H_w)\,g_{\hat u}` (the roles of
#: :math:`w` and :math:`u` exchanged in one term only).
L1_DECOMPOSITION_MISTAKES = ("mixed-roles",)


def l1_decomposition(
    d: int | None = 3, *, mistake: str | None = None
) -> tuple[sp.Expr, sp.Expr, sp.Matrix | tuple[sp.Expr, ...]]:
    r"""The identity behind the multivariate proof of THEORY L1.

    .. math::
        \nabla F_i(w) - \nabla F_i(u) =
        (I - \alpha H_w)(g_{\hat w} - g_{\hat u}) + \alpha (H_u - H_w)\, g_{\hat u},

    with :math:`H_w = \nabla^2 f_i(w)`, :math:`g_{\hat w} = \nabla f_i(\hat w)` and S1's
    :math:`\nabla F_i(w) = (I - \alpha H_w) g_{\hat w}`. Returns ``(lhs, rhs, residual)``.

    With an integer ``d`` the symbols are ``d x d`` matrices and ``residual`` is the
    explicit, entrywise expanded difference (the ``d x 1`` zero matrix). With
    ``d=None`` they are ``n x n`` for a symbolic size ``n``, and ``residual`` is the tuple
    of terms left after expanding ``lhs - rhs`` in the (non-commutative) algebra of
    matrix expressions: empty when the identity holds for every size at once (the
    cheaper and stronger proof). ``mistake`` (one of :data:`L1_DECOMPOSITION_MISTAKES`)
    uses a wrong right side instead, whose residual is not zero (a control).
    """
    d = sp.Symbol("n", integer=True, positive=True) if d is None else V.integer("d", d)
    mistake = _mistake("mistake", mistake, L1_DECOMPOSITION_MISTAKES)
    a = sp.Symbol("alpha", nonnegative=True)
    I = sp.Identity(d)
    Hw, Hu = sp.MatrixSymbol("H_w", d, d), sp.MatrixSymbol("H_u", d, d)
    gw, gu = sp.MatrixSymbol(r"g_{\hat w}", d, 1), sp.MatrixSymbol(r"g_{\hat u}", d, 1)
    lhs = (I - a * Hw) * gw - (I - a * Hu) * gu
    rhs = (I - a * Hw) * (gw - gu) + a * (Hu - Hw) * gu
    if mistake == "mixed-roles":
        rhs = (I - a * Hu) * (gw - gu) + a * (Hu - Hw) * gu
    if isinstance(d, sp.Symbol):
        expanded = (lhs - rhs).expand().doit()
        zero = expanded == 0 or getattr(expanded, "is_ZeroMatrix", False)
        terms = expanded.args if isinstance(expanded, sp.MatAdd) else (expanded,)
        return lhs, rhs, () if zero else terms
    residual = (lhs - rhs).as_explicit().applyfunc(sp.expand)
    return lhs, rhs, residual


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


@functools.lru_cache(maxsize=64)
def _simplified_derivative(expr: sp.Expr, x: sp.Symbol, k: int) -> sp.Expr:
    # factor (fast) rather than simplify: r*(3 - r**2/(r**2+1) - ...)/(2*sqrt(r**2+1)) -> r/sqrt(r**2+1)
    return sp.factor(sp.diff(expr, x, k))


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
        self.sup_d2 = sup_abs(_simplified_derivative(profile.expr, x, 2), x)
        self.sup_d3 = sup_abs(_simplified_derivative(profile.expr, x, 3), x)
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
