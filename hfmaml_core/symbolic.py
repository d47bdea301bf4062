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

The modules behind it, one concern each: :mod:`hfmaml_core.proof_s1` (S1),
:mod:`hfmaml_core.proof_l1` (L1), :mod:`hfmaml_core.formula_tasks` (tasks from formulas
and exact constants), :mod:`hfmaml_core.sympy_checks` (argument checks); every name
above is importable from here as before.
"""

from __future__ import annotations

from .formula_tasks import (
    RidgeFamily,
    SupResult,
    SymbolicTask,
    inflection_profile,
    make_ridge_family,
    sup_abs,
    welsch_constants,
    welsch_profile,
    welsch_task_expr,
)
from .proof_l1 import (
    L1_CHAIN_MISTAKES,
    L1_DECOMPOSITION_MISTAKES,
    L1_IDENTITY_MISTAKES,
    L1Identity,
    L1Symbols,
    Step,
    l1_chain_1d,
    l1_decomposition,
    l1_identity_1d,
    l1_sharp_chain_1d,
    l1_symbols,
    nonnegative_on_box,
    prove_step,
    scan_l1_chain_1d,
)
from .proof_s1 import (
    S1_MISTAKES,
    maml_gradient,
    maml_objective,
    maml_second_derivative,
    s1_gradient,
    s1_residual,
)

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
