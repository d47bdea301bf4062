"""hfmaml_core: verified numeric kernels for checking the convergence theory of MAML,
first-order MAML and Hessian-free MAML (see THEORY.md for the numbered items).

Modules
-------
tasks     finite task families: exact and mini-batch losses, gradients, Hessians, HVPs
hvp       central-difference Hessian-vector products (THEORY H1)
meta      exact MAML objective and meta-gradient (THEORY S1, L1)
stepsize  the theorems' random step size and the thresholds of THEORY L2
symbolic  sympy helpers for the derivations (THEORY S1, L1, A2, A3)
montecarlo Monte Carlo estimates with standard errors (THEORY L2, L3, L4)
estimators one iteration of MAML, FO-MAML, HF-MAML with the theory's batches (T1-T3)
runner    many seeds at once, the theorems' step sizes and conditions (T1-T3)
mlp       a tanh network with exact gradients and Hessian-vector products
sinusoid  the sinusoid regression benchmark and meta-training on it
plotting  figure style and the atomic, deterministic ``savefig``
claims    recording verified claims for the verification report
paths     every path, resolved from the repository root
pipeline  ``make figures``: execute notebooks, gather claims, write the report
"""

__version__ = "0.1.0"
