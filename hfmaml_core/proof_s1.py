r"""THEORY S1 by computer algebra: the MAML objective and its gradient (notebook 01).

:func:`maml_objective` builds :math:`F(w) = f(w - \alpha\nabla f(w))` from any sympy
expression ``f`` (a concrete formula, or a generic ``sympy.Function``);
:func:`maml_gradient` differentiates it by the chain rule of the computer algebra system,
:func:`s1_gradient` writes the closed form
:math:`(I - \alpha\nabla^2 f(w))\nabla f(w - \alpha\nabla f(w))`, and :func:`s1_residual` is
their difference (zero when S1 holds; :data:`S1_MISTAKES` are the controls' wrong formulas).
Everything here is importable from :mod:`hfmaml_core.symbolic` too.
"""

from __future__ import annotations

import functools

import sympy as sp

from .sympy_checks import (
    alpha_arg as _alpha,
)
from .sympy_checks import (
    expr_arg as _expr,
)
from .sympy_checks import (
    mistake_arg as _mistake,
)
from .sympy_checks import (
    symbol_arg as _symbol,
)
from .sympy_checks import (
    symbols_arg as _symbols,
)
from .sympy_checks import (
    zero as _zero,
)
from .sympy_checks import (
    zero_or_witness as _zero_or_witness,
)

__all__ = [
    "maml_gradient",
    "maml_objective",
    "maml_second_derivative",
    "s1_gradient",
    "S1_MISTAKES",
    "s1_residual",
]


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
