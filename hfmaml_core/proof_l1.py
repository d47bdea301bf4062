r"""THEORY L1 in one dimension, by computer algebra: the exact :math:`F''`, the chain of
inequalities that bounds it, and sympy proofs of every step (notebook 01).

:func:`l1_identity_1d` gives the exact second derivative
:math:`F'' = (1 - \alpha f''(w))^2 f''(\hat w) - \alpha f'''(w) f'(\hat w)`;
:func:`l1_chain_1d` lists the inequalities that bound it by
:math:`4L + 2\rho\alpha|f'(w)|`; :func:`prove_step` proves a step symbolically (the gap
is a sum of terms that :func:`nonnegative_on_box` shows are :math:`\ge 0`) and
:func:`scan_l1_chain_1d` checks every step on a dense grid. :func:`l1_decomposition` is
the matrix identity behind the multivariate proof. :func:`l1_sharp_chain_1d` stops the
chain one step earlier, at :math:`L(1+\alpha L)^2 + \rho\alpha(1+\alpha L)|f'(w)|`.
Each derivation takes a ``mistake`` (a plausible wrong step: the claims' controls).
Everything here is importable from :mod:`hfmaml_core.symbolic` too.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp

from . import _validate as V
from .proof_s1 import maml_second_derivative
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
    zero as _zero,
)

__all__ = [
    "l1_chain_1d",
    "L1_CHAIN_MISTAKES",
    "l1_decomposition",
    "L1_DECOMPOSITION_MISTAKES",
    "l1_identity_1d",
    "L1_IDENTITY_MISTAKES",
    "l1_sharp_chain_1d",
    "l1_symbols",
    "L1Identity",
    "L1Symbols",
    "nonnegative_on_box",
    "prove_step",
    "scan_l1_chain_1d",
    "Step",
]


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
