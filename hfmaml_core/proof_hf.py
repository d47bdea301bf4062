r"""The sympy derivations behind notebook 02 (THEORY H1, T3): H1's sharp constant and the smooth rate.

Notebook 02 checks the central-difference Hessian-vector product

.. math:: d = \frac{\nabla\varphi(w+\delta v) - \nabla\varphi(w-\delta v)}{2\delta} \approx \nabla^2\varphi(w)\,v .

This module holds its proofs, the way :mod:`hfmaml_core.symbolic` holds notebook 01's: functions
that return the steps and identities, each with a ``mistake=`` variant that plants a plausible
error, so a test (and the notebook's control) can show the derivation detects it.

* :func:`h1_sharp_constant`: the error is the average of Hessian changes,
  :math:`e = \frac1{2\delta}\int_{-\delta}^{\delta}[\nabla^2\varphi(w+tv) - \nabla^2\varphi(w)]v\,dt`, hence
  :math:`\|e\| \le \frac12\rho\delta\|v\|^2` (the upper bound); :math:`\varphi = \frac\rho6|t|^3` at its kink
  attains it, so H1's constant 1 can be halved and no further.
* :func:`h1_smooth_constant`: with a :math:`K`-Lipschitz third derivative the odd Taylor term cancels,
  :math:`\|e\| \le \frac K6\delta^2\|v\|^3` (attained by :math:`Kt^4/24`), and for the Welsch loss
  :math:`\max|\phi''''| = 3`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = [
    "SHARP_MISTAKES",
    "SharpConstantProof",
    "SmoothConstantProof",
    "h1_sharp_constant",
    "h1_smooth_constant",
]

#: Planted mistakes of :func:`h1_sharp_constant`: ``"smooth-attainer"`` takes :math:`\varphi = \rho t^3/6`
#: (no kink; its Hessian :math:`\rho t` is still :math:`\rho`-Lipschitz) as the attaining function, and
#: ``"delta-not-2delta"`` divides the integral of the Hessian change by :math:`\delta` instead of
#: :math:`2\delta` (upper bound 1, H1's constant, which the attaining function does not reach).
SHARP_MISTAKES = ("smooth-attainer", "delta-not-2delta")


@dataclass(frozen=True)
class SharpConstantProof:
    """The steps of :func:`h1_sharp_constant`.

    Attributes
    ----------
    identity_residual : sympy.Expr
        ``(g(delta) - g(-delta))/(2 delta) - g'(0) - (1/(2 delta)) int (g'(t) - g'(0)) dt``, simplified: 0.
    c_upper : sympy.Expr
        The constant of the upper bound, ``int rho|t| dt / (2 delta) / (rho delta)``: 1/2.
    profile : sympy.Expr
        error / (rho delta) on the attaining function at offset ``sigma * delta`` from the kink, ``0 <= sigma <= 1``.
    far : sympy.Expr
        The same for ``sigma >= 1`` (all three points on one side): 0.
    c_attained : sympy.Expr
        ``max`` of ``profile`` over ``sigma`` in [0, 1].
    sigma : sympy.Symbol
        The offset variable of ``profile``.
    """

    identity_residual: sp.Expr
    c_upper: sp.Expr
    profile: sp.Expr
    far: sp.Expr
    c_attained: sp.Expr
    sigma: sp.Symbol

    @property
    def sharp(self) -> bool:
        """The bound is attained: ``c_upper == c_attained`` and the identity holds."""
        return bool(
            self.identity_residual == 0 and sp.simplify(self.c_upper - self.c_attained) == 0
        )


def h1_sharp_constant(mistake: str | None = None) -> SharpConstantProof:
    r"""Derive H1's sharp constant :math:`c = 1/2` with sympy (THEORY H1).

    With :math:`g(t) = \nabla\varphi(w + tv)`: the identity
    :math:`\frac{g(\delta) - g(-\delta)}{2\delta} - g'(0) = \frac1{2\delta}\int_{-\delta}^{\delta}(g'(t) - g'(0))\,dt`,
    the bound :math:`\|g'(t) - g'(0)\| \le \rho|t|\|v\|^2` giving
    :math:`c_{upper} = \frac{1}{2\delta}\int_{-\delta}^{\delta}\rho|t|\,dt / (\rho\delta) = \frac12`, and the
    attaining function :math:`\varphi(t) = \rho|t|^3/6` (gradient :math:`\pm\rho t^2/2`, Hessian
    :math:`\rho|t|`) at offset :math:`\sigma\delta` from its kink: error :math:`/(\rho\delta) = \frac12(1-\sigma)^2`,
    maximal (1/2) at :math:`\sigma = 0`.

    Parameters
    ----------
    mistake : {None, "smooth-attainer", "delta-not-2delta"}
        A planted error (:data:`SHARP_MISTAKES`); then ``SharpConstantProof.sharp`` is False.

    Raises
    ------
    ValueError
        ``mistake`` is not None or one of :data:`SHARP_MISTAKES`.
    """
    if mistake is not None and mistake not in SHARP_MISTAKES:
        raise ValueError(f"mistake must be None or one of {SHARP_MISTAKES}; got {mistake!r}")
    t = sp.Symbol("t", real=True)
    delta, rho = sp.symbols("delta rho", positive=True)
    sigma = sp.Symbol("sigma", nonnegative=True)
    g = sp.Function("g")  # g(t) = grad phi(w + t v), so g'(t) = hess phi(w + t v) v
    gp = sp.diff(g(t), t)
    identity = (
        (g(delta) - g(-delta)) / (2 * delta)
        - gp.subs(t, 0)
        - sp.integrate(gp - gp.subs(t, 0), (t, -delta, delta)) / (2 * delta)
    )
    width = delta if mistake == "delta-not-2delta" else 2 * delta
    c_upper = sp.integrate(rho * sp.Abs(t), (t, -delta, delta)) / width / (rho * delta)
    # phi = rho |t|^3 / 6: gradient rho t^2/2 for t >= 0 and -rho t^2/2 for t <= 0, Hessian rho |t|.
    g_pos, hess_pos = rho * t**2 / 2, rho * t
    g_neg = g_pos if mistake == "smooth-attainer" else -rho * t**2 / 2
    # w at offset sigma*delta from the kink, 0 <= sigma <= 1: the three points straddle 0.
    near = (g_pos.subs(t, sigma * delta + delta) - g_neg.subs(t, sigma * delta - delta)) / (
        2 * delta
    ) - hess_pos.subs(t, sigma * delta)
    # sigma >= 1: all three points on one side, where the gradient is a quadratic polynomial.
    far = (g_pos.subs(t, sigma * delta + delta) - g_pos.subs(t, sigma * delta - delta)) / (
        2 * delta
    ) - hess_pos.subs(t, sigma * delta)
    profile = sp.factor(near / (rho * delta))
    c_attained = sp.maximum(profile, sigma, sp.Interval(0, 1))
    return SharpConstantProof(
        identity_residual=sp.simplify(identity),
        c_upper=c_upper,
        profile=profile,
        far=sp.simplify(far),
        c_attained=c_attained,
        sigma=sigma,
    )


@dataclass(frozen=True)
class SmoothConstantProof:
    """The steps of :func:`h1_smooth_constant`.

    Attributes
    ----------
    c_smooth : sympy.Expr
        ``int K t^2/2 dt / (2 delta) / (K delta^2)`` over [-delta, delta]: 1/6.
    quartic_residual : sympy.Expr
        Central difference of the gradient ``K t^3/6`` of ``K t^4/24`` at 0, over ``K delta^2``, minus ``c_smooth``: 0.
    phi4 : sympy.Expr
        The fourth derivative of the Welsch loss ``1 - exp(-r^2/2)``.
    critical_points : list
        Solutions of ``phi5 = 0``.
    max_phi4 : sympy.Expr
        ``max |phi''''|`` over them: 3.
    r : sympy.Symbol
        The residual variable of ``phi4``.
    """

    c_smooth: sp.Expr
    quartic_residual: sp.Expr
    phi4: sp.Expr
    critical_points: list
    max_phi4: sp.Expr
    r: sp.Symbol


def h1_smooth_constant() -> SmoothConstantProof:
    r"""The :math:`\delta^2` constant of the central difference and the Welsch loss's :math:`\max|\phi''''|`.

    If the third derivative is :math:`K`-Lipschitz the term :math:`\int t\,\nabla^3\varphi(w)[v,v]\,dt`
    vanishes and :math:`\|e\| \le \frac1{2\delta}\int_{-\delta}^{\delta}\frac{Kt^2}2\|v\|^3dt = \frac K6\delta^2\|v\|^3`,
    attained by :math:`Kt^4/24` in one dimension. For :math:`\phi(r) = 1 - e^{-r^2/2}`,
    :math:`\phi'''' = -(r^4 - 6r^2 + 3)e^{-r^2/2}`, with :math:`\max|\phi''''| = 3` at :math:`r = 0`.
    """
    t = sp.Symbol("t", real=True)
    delta, K = sp.symbols("delta K", positive=True)
    c_smooth = sp.integrate(K * t**2 / 2, (t, -delta, delta)) / (2 * delta) / (K * delta**2)
    quartic_grad = K * t**3 / 6  # gradient of K t^4 / 24, whose Hessian K t^2 / 2 vanishes at 0
    quartic_residual = sp.simplify(
        (quartic_grad.subs(t, delta) - quartic_grad.subs(t, -delta)) / (2 * delta) / (K * delta**2)
        - c_smooth
    )
    r = sp.Symbol("r", real=True)
    phi4 = sp.diff(1 - sp.exp(-(r**2) / 2), r, 4)
    crit = sp.solve(sp.diff(phi4, r), r)
    max_phi4 = max(sp.Abs(phi4.subs(r, c0)) for c0 in crit)
    return SmoothConstantProof(
        c_smooth=c_smooth,
        quartic_residual=quartic_residual,
        phi4=phi4,
        critical_points=crit,
        max_phi4=max_phi4,
        r=r,
    )
