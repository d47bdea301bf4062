"""hfmaml_core: verified numeric kernels for checking the convergence theory of MAML,
first-order MAML and Hessian-free MAML (see THEORY.md for the numbered items).

Modules
-------
kernels        the kernel protocol a task family implements (TaskFamily, shapes documented)
tasks          the finite task families: quadratic, Welsch, ridge; make_family
counterexamples families that violate a hypothesis on purpose (kink, random-sign noise)
worstcase      the flat-tailed task on which the O(1/eps^2) rate is attained (T1-T3)
hvp            central-difference Hessian-vector products and the delta rules (H1, T3)
meta           exact MAML objective and meta-gradient (S1, L1)
stepsize       the theorems' random step size and the thresholds of L2
methods        the one table of MAML, FO-MAML, HF-MAML (label, colour, theorem, step)
engine         the three meta-gradient directions with the theory's batches, written once
estimators     one iteration's direction on a task family, moments, closed forms (T1-T3)
runner         many seeds at once, RunConfig, the theorems' step sizes (T1-T3)
conditions     the theorems' conditions, the descent bound, visited constants
hypotheses     A2-A5 checked at many points, over balls and globally
montecarlo     Monte Carlo estimates with standard errors (L2, L3, L4)
multistep      N-step MAML: adaptation, exact and Hessian-free meta-gradients (M1-M4)
sharpstep      full-batch MAML with L1's or the sharper step (notebook 01)
symbolic       sympy helpers (re-exports proof_s1, proof_l1, formula_tasks, sympy_checks)
proof_hf       sympy derivations of H1's constants (notebook 02); hvp_study its numerics
mlp            a tanh network with exact gradients and Hessian-vector products
sinusoid       the sinusoid regression benchmark and meta-training (sinusoid_tasks: tasks)
fits           log-log slope fits
plotting       figure style and the atomic, deterministic savefig
claims         recording verified claims (kinds, controls) for the report
paths          every path, resolved from the repository root
pipeline       make figures: execute notebooks, gather claims (report, parameters, nbcanon)
book           make book: the reading edition
"""

__version__ = "0.1.0"
