"""Argument checks and zero tests shared by the sympy modules (:mod:`hfmaml_core.symbolic`,
:mod:`hfmaml_core.proof_l1`, :mod:`hfmaml_core.formula_tasks`).

Each check returns its argument (converted) or raises ``ValueError`` naming the parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import sympy as sp

__all__ = [
    "alpha_arg",
    "expr_arg",
    "mistake_arg",
    "simplified_derivative",
    "symbol_arg",
    "symbols_arg",
    "zero",
    "zero_or_witness",
]


def symbols_arg(name: str, w: object) -> list[sp.Symbol]:
    """``w`` as a list of distinct sympy Symbols (one Symbol or a sequence); ``name`` names it in errors."""
    ws = [w] if isinstance(w, sp.Symbol) else list(w) if isinstance(w, Sequence) else None
    if not ws or not all(isinstance(s, sp.Symbol) for s in ws) or len(set(ws)) != len(ws):
        raise ValueError(
            f"{name} must be a sympy Symbol or a non-empty sequence of distinct Symbols; got {w!r}"
        )
    return ws


def symbol_arg(name: str, x: object) -> sp.Symbol:
    """``x`` if it is one sympy Symbol, else ``ValueError`` naming ``name``."""
    if not isinstance(x, sp.Symbol):
        raise ValueError(f"{name} must be a single sympy Symbol (one variable); got {x!r}")
    return x


def expr_arg(name: str, f: object) -> sp.Expr:
    """``f`` if it is a sympy expression, else ``ValueError`` naming ``name``."""
    if not isinstance(f, sp.Expr):
        raise ValueError(f"{name} must be a sympy expression; got {type(f).__name__}")
    return f


def alpha_arg(alpha: object) -> sp.Expr:
    """The step size ``alpha`` as a sympy expression: a Symbol or a real number >= 0."""
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (sp.Expr, int, float)):
        raise ValueError(f"alpha must be a sympy Symbol or a real number; got {alpha!r}")
    a = sp.sympify(alpha)
    if a.is_number and not (a.is_real and a.is_nonnegative):
        raise ValueError(f"alpha must be a real number >= 0 (or a Symbol); got {alpha!r}")
    return a


def zero(e: sp.Expr) -> sp.Expr:
    """``e`` reduced to 0 when sympy can: ``expand`` (fast) first, ``simplify`` only if needed."""
    z = sp.expand(e)
    return z if z == 0 else sp.simplify(e.doit())


def zero_or_witness(e: sp.Expr) -> sp.Expr:
    """Like :func:`zero`, but a residual that is visibly non-zero at a point is returned as is.

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
    return zero(e)


def mistake_arg(name: str, mistake: object, allowed: tuple[str, ...]) -> str | None:
    """``mistake`` if it is ``None`` or one of ``allowed`` (a control's wrong formula)."""
    if mistake is not None and mistake not in allowed:
        raise ValueError(
            f"{name} must be None or one of {', '.join(map(repr, allowed))}; got {mistake!r}"
        )
    return mistake  # type: ignore[return-value]


@functools.lru_cache(maxsize=64)
def simplified_derivative(expr: sp.Expr, x: sp.Symbol, k: int) -> sp.Expr:
    """The ``k``-th derivative of ``expr`` in ``x``, factored (cached)."""
    # factor (fast) rather than simplify: r*(3 - r**2/(r**2+1) - ...)/(2*sqrt(r**2+1)) -> r/sqrt(r**2+1)
    return sp.factor(sp.diff(expr, x, k))
