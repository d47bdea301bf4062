r"""Closed-form expectations of the directions on quadratic tasks (THEORY T2; the "inner" bias).

:func:`quadratic_expected_direction` and :func:`quadratic_fixed_point` (FO-MAML's fixed point
and its floor :math:`\|\nabla F(w_{FO})\|`); importable from :mod:`hfmaml_core.estimators` too.
"""

from __future__ import annotations

import numpy as np

from . import _validate as V
from .methods import NAMES as METHODS
from .tasks import QuadraticFamily

__all__ = ["quadratic_expected_direction", "quadratic_fixed_point"]

HESSIAN_BATCHES = ("independent", "inner")


def _as_points(family: QuadraticFamily, W: object) -> tuple[np.ndarray, bool]:
    Wa = np.asarray(W)
    single = Wa.ndim == 1
    Wa = V.array("W", Wa[None] if single else Wa, shape=(None, family.dim))
    return Wa, single


def _batch(name: str, value: object) -> int | None:
    return None if value is None else V.integer(name, value)


# --------------------------------------------------------------------------- closed forms
def _quadratic(family: object) -> QuadraticFamily:
    if not isinstance(family, QuadraticFamily):
        raise ValueError(
            f"family must be a QuadraticFamily (closed forms need quadratic tasks); got "
            f"{type(family).__name__}"
        )
    return family


def quadratic_expected_direction(
    family: QuadraticFamily,
    W: object,
    alpha: float,
    method: str,
    *,
    d_in: int | None = None,
    hessian_batch: str = "independent",
) -> np.ndarray:
    r"""Closed-form expectation of a direction on quadratic tasks, :math:`E[u \mid w]`.

    With :math:`e_i = w - c_i`, the expectation over tasks and every data batch is

    .. math::
        E u^{\mathrm{FO}} &= \sum_i p_i A_i (I - \alpha A_i) e_i, \\
        E u^{\mathrm{MAML}} = E u^{\mathrm{HF}} &= \nabla F(w)
            = \sum_i p_i (I - \alpha A_i) A_i (I - \alpha A_i) e_i
            \quad (\text{independent } D_h), \\
        E u^{\mathrm{inner}} &= \nabla F(w) + \frac{\alpha^2}{D_{in}} \sum_i p_i
            \bigl(v_i A_i^3 e_i + A_i^2 \kappa_i\bigr),

    where :math:`v_i = \frac1n\sum_j (s_{ij}-1)^2` and
    :math:`\kappa_i = \frac1n\sum_j (s_{ij}-1) b_{ij}` (points drawn with replacement). The
    batch sizes other than :math:`D_{in}` do not enter: every estimate is affine in each
    independent batch. HF-MAML's central difference is exact on quadratics, for any
    :math:`\delta`. ``d_in=None`` (the whole data set) makes the "inner" bias vanish.

    Parameters
    ----------
    family : QuadraticFamily
    W : array, shape (d,) or (S, d)
    alpha : float
    method : {"maml", "fomaml", "hfmaml"}
    d_in : int or None
        Used only with ``hessian_batch="inner"``.
    hessian_batch : {"independent", "inner"}
    """
    fam = _quadratic(family)
    Wa, single = _as_points(fam, W)
    a = V.real("alpha", alpha, lo=0.0)
    method = V.choice("method", method, METHODS)
    hb = V.choice("hessian_batch", hessian_batch, HESSIAN_BATCHES)
    D = _batch("d_in", d_in)
    A, I = fam.A, np.eye(fam.dim)
    E_ = Wa[:, None, :] - fam.c[None]  # (S, m, d)
    AE = np.einsum("mij,smj->smi", A - a * np.einsum("mij,mjk->mik", A, A), E_)  # A(I - aA) e
    if method == "fomaml":
        per_task = AE
    else:
        per_task = np.einsum("mij,smj->smi", I - a * A, AE)
        if hb == "inner" and D is not None:
            s_dev = fam.s - 1.0
            v = np.mean(s_dev * s_dev, axis=1)
            kappa = np.einsum("mn,mnd->md", s_dev, fam.b) / fam.n_points
            A2 = np.einsum("mij,mjk->mik", A, A)
            A3e = np.einsum("mij,smj->smi", np.einsum("mij,mjk->mik", A2, A), E_)
            per_task = per_task + a * a / D * (
                v[None, :, None] * A3e + np.einsum("mij,mj->mi", A2, kappa)[None]
            )
    out = np.einsum("smd,m->sd", per_task, fam.probs)
    return out[0] if single else out


def quadratic_fixed_point(family: QuadraticFamily, alpha: float, method: str) -> np.ndarray:
    r"""The point where a method's expected direction vanishes, on quadratic tasks.

    .. math::
        \sum_i p_i M_i (w - c_i) = 0, \qquad
        M_i = \begin{cases} A_i(I-\alpha A_i) & \text{FO-MAML} \\
              (I-\alpha A_i)A_i(I-\alpha A_i) & \text{MAML, HF-MAML (the minimiser of } F) \end{cases}

    (independent Hessian batches). At FO-MAML's fixed point :math:`w_{FO}`,
    :math:`\nabla F(w_{FO}) = -\alpha\sum_i p_i A_i^2(I-\alpha A_i)(w_{FO}-c_i)`: the floor of
    THEORY T2, which no batch size removes.

    Raises
    ------
    ValueError
        If :math:`\sum_i p_i M_i` is singular (no unique fixed point).
    """
    fam = _quadratic(family)
    a = V.real("alpha", alpha, lo=0.0)
    method = V.choice("method", method, METHODS)
    I = np.eye(fam.dim)
    M = np.einsum("mij,mjk->mik", fam.A, I - a * fam.A)
    if method != "fomaml":
        M = np.einsum("mij,mjk->mik", I - a * fam.A, M)
    Mbar = np.einsum("m,mij->ij", fam.probs, M)
    rhs = np.einsum("m,mij,mj->i", fam.probs, M, fam.c)
    if np.linalg.cond(Mbar) > 1e12:
        raise ValueError(
            "the expected direction has no unique zero: sum_i p_i M_i is singular for this alpha"
        )
    return np.linalg.solve(Mbar, rhs)
