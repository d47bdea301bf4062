"""The one engine, the one method table, the delta rules, the step-size draws and RunConfig (issue 14).

Oracles that share no code with what they test: closed forms of the table (THEORY's
constants typed here), a complex-step derivative of the network's gradient for its central
difference, the closed-form quadratic Hessian for the engine's differences, and the keyword
call of the runner against its config call.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hfmaml_core import (
    engine,
    estimators,
    hvp,
    methods,
    plotting,
    runner,
    sinusoid,
    stepsize,
    tasks,
)
from hfmaml_core.mlp import MLP, NetworkKernels


# --------------------------------------------------------------------------- the table
def test_method_table_holds_the_theorems_constants():
    """THEORY T1-T3: c = 1/12, 1/18, 1/25; alpha <= 1/L, 1/(10L), 1/(6L)."""
    assert methods.NAMES == ("maml", "fomaml", "hfmaml")
    assert methods.LABELS == ("MAML", "FO-MAML", "HF-MAML")
    assert [m.theorem for m in methods.TABLE] == ["T1", "T2", "T3"]
    assert [1 / m.step_constant for m in methods.TABLE] == pytest.approx([12, 18, 25], abs=1e-12)
    assert [m.alpha_max for m in methods.TABLE] == pytest.approx([1, 0.1, 1 / 6], abs=1e-15)


def test_every_other_table_is_a_view_of_the_method_table():
    assert stepsize.STEP_CONSTANTS == {m.name: m.step_constant for m in methods.TABLE}
    assert runner.ALPHA_MAX == {m.name: m.alpha_max for m in methods.TABLE}
    assert estimators.METHODS == methods.NAMES
    assert sinusoid.METHODS == methods.LABELS
    assert plotting.METHOD_COLORS == {
        "MAML": plotting.PALETTE[0],
        "FO-MAML": plotting.PALETTE[1],
        "HF-MAML": plotting.PALETTE[2],
    }
    for m in methods.TABLE:
        assert methods.get(m.name) is methods.get(m.label) is m
        assert methods.label(m.name) == m.label and methods.color(m.label) == m.color


@pytest.mark.parametrize("bad", ["sgd", "Maml", "", None, 3])
def test_method_lookup_names_the_allowed_values(bad):
    with pytest.raises(ValueError, match="method must be one of 'maml'"):
        methods.get(bad)


# --------------------------------------------------------------------------- delta rules
def test_hf_deltas_rules_against_closed_forms():
    norms = np.array([2.0, 0.5, 0.0])
    got = hvp.hf_deltas("theorem", norms, rho=3.0, alpha=0.1)
    np.testing.assert_array_equal(got[:2], [1 / (6 * 3.0 * 0.1 * 2.0), 1 / (6 * 3.0 * 0.1 * 0.5)])
    assert got[2] == 1.0  # g_i = 0: any delta; the rule says 1
    np.testing.assert_array_equal(hvp.hf_deltas(0.25, norms, rho=0.0, alpha=0.1), [0.25] * 3)
    r = hvp.radius_rule(1e-3)
    got = hvp.hf_deltas(r, norms, rho=0.0, alpha=0.1)
    np.testing.assert_allclose(got[:2] * norms[:2], 1e-3, rtol=1e-15)  # distance delta_i |g_i| = r
    assert np.isfinite(got[2]) and got[2] > 0
    with pytest.raises(ValueError, match="delta"):
        hvp.hf_deltas(lambda n: -n, norms, rho=0.0, alpha=0.1)
    with pytest.raises(ValueError, match="radius must be a finite number > 0"):
        hvp.radius_rule(0.0)


# --------------------------------------------------------------------------- the engine
def _quadratic():
    fam = tasks.make_quadratic_family(4, n_tasks=3, n_points=5, seed=3)
    T = np.array([0, 1, 2, 1])
    W = np.random.default_rng(0).standard_normal((4, 4))
    G = np.random.default_rng(1).standard_normal((4, 4))
    return fam, T, W, G


@pytest.mark.parametrize("difference", engine.DIFFERENCES)
def test_engine_differences_are_exact_on_quadratics(difference):
    """Closed form: the batch Hessian of a quadratic task is s_bar A_i, for any delta."""
    fam, T, W, G = _quadratic()
    idx = np.random.default_rng(2).integers(0, fam.n_points, size=(4, 3))
    kern = engine.FamilyKernels(fam, T)
    hf = engine.hf_term(kern, W, G, idx, delta=0.3, rho=0.0, alpha=0.1, difference=difference)
    exact = np.einsum("b,bij,bj->bi", fam.s[T[:, None], idx].mean(axis=1), fam.A[T], G)
    np.testing.assert_allclose(hf.D, exact, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hf.norms, np.linalg.norm(G, axis=1), rtol=1e-15)


def test_engine_rows_are_the_theorys_formulas_on_quadratics():
    """u_i = (I - alpha H_i) g_i (MAML, HF-MAML), g_i (FO-MAML), with g_i in closed form."""
    fam, T, W, _ = _quadratic()
    a = 0.05
    kern = engine.FamilyKernels(fam, T)
    G = engine.outer_gradients(kern, W, a, None, None).G
    A, c = fam.A[T], fam.c[T]
    s, b = fam.s[T].mean(axis=1), fam.b[T].mean(axis=1)
    grad = lambda X: s[:, None] * np.einsum("bij,bj->bi", A, X - c) + b  # noqa: E731
    g = grad(W - a * grad(W))
    np.testing.assert_allclose(G, g, rtol=1e-12)
    maml = g - a * s[:, None] * np.einsum("bij,bj->bi", A, g)
    for method, want in (("fomaml", g), ("maml", maml), ("hfmaml", maml)):
        for mode in ("matrix", "hvp"):
            U, deltas = engine.task_directions(
                kern, W, G, a, method, None, hessian=mode, delta=0.1, rho=0.0
            )
            np.testing.assert_allclose(U, want, rtol=1e-11, atol=1e-13)
            assert (deltas is None) == (method != "hfmaml")


def test_network_central_difference_against_a_complex_step_derivative():
    """Oracle: Im grad(w + i h v) / h, h = 1e-30 (no subtraction), on a small network."""
    net = MLP((1, 3, 1))
    rng = np.random.default_rng(4)
    W = net.init(rng, 2)
    V = rng.standard_normal((2, net.n_params))
    X = rng.uniform(-2, 2, size=(2, 5, 1))
    Y = np.sin(X)
    h = 1e-30
    oracle = net.grad_kernel(W + 1j * h * V, X, Y).imag / h
    delta = np.full(2, 1e-4)
    got = NetworkKernels(net).central_difference(W, V, delta, (X, Y))
    np.testing.assert_allclose(got, oracle, rtol=1e-6, atol=1e-8)
    # H1: the error is second order in delta (halving delta quarters it)
    e1 = np.abs(NetworkKernels(net).central_difference(W, V, np.full(2, 1e-2), (X, Y)) - oracle)
    e2 = np.abs(NetworkKernels(net).central_difference(W, V, np.full(2, 5e-3), (X, Y)) - oracle)
    assert 3.5 < e1.max() / e2.max() < 4.5


def test_network_kernels_satisfy_the_protocol_and_refuse_other_models():
    assert isinstance(NetworkKernels(MLP((1, 2, 1))), engine.BatchKernels)
    assert isinstance(engine.FamilyKernels(_quadratic()[0], np.array([0])), engine.BatchKernels)
    with pytest.raises(ValueError, match="net must be an hfmaml_core.mlp.MLP"):
        NetworkKernels("net")


# --------------------------------------------------------------------------- step size
def test_lipschitz_draws_exact_population_value():
    """Every task and point: L~ = 4L + 2 rho alpha sum_i p_i |grad f_i(w)| (no draw made)."""
    fam = tasks.make_welsch_family(3, 4, 6, seed=0)
    W = np.random.default_rng(1).standard_normal((2, 3))
    rng = np.random.default_rng(2)
    state = rng.bit_generator.state
    got = stepsize.lipschitz_draws(fam, W, 0.1, rng, None, None)
    assert rng.bit_generator.state == state
    norms = np.array([[np.linalg.norm(fam.tasks[i].grad(w)) for i in range(4)] for w in W])
    np.testing.assert_allclose(got, 4 * fam.L + 2 * fam.rho * 0.1 * norms @ fam.probs, rtol=1e-13)


# --------------------------------------------------------------------------- RunConfig
def _family():
    return tasks.make_welsch_family(3, 6, 10, seed=5)


def test_run_keyword_call_is_the_config_call():
    fam = _family()
    opts = dict(n_iter=5, batch_tasks=3, d_in=4, d_o=4, d_h=4, setting="free", record_every=2)
    a = runner.run(fam, "hfmaml", np.zeros(3), 0.05, np.random.default_rng(0), n_runs=2, **opts)
    cfg = runner.RunConfig.build(fam, "hfmaml", 0.05, **opts)
    b = runner.run_with(fam, cfg, np.zeros(3), np.random.default_rng(0), n_runs=2)
    np.testing.assert_array_equal(a.iterates, b.iterates)
    np.testing.assert_array_equal(a.steps, b.steps)
    assert cfg.alpha == 0.05 == cfg.direction.alpha and cfg.step_constant == 1 / 25
    assert cfg.step_batch_tasks == 3 and cfg.step_batch_points == 4  # defaults resolved
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.alpha = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"n_iter": 0}, "n_iter"),
        ({"record_every": 0}, "record_every"),
        ({"setting": "loose"}, "setting"),
        ({"step": -1.0}, "step"),
        ({"step_batch_tasks": 0}, "step_batch_tasks"),
        ({"d_h": 0}, "d_h"),
    ],
)
def test_run_config_names_the_bad_option(kwargs, word):
    opts = dict(n_iter=3, batch_tasks=2, d_in=2, d_o=2, d_h=2)
    opts.update(kwargs)
    with pytest.raises(ValueError, match=word):
        runner.RunConfig.build(_family(), "maml", 0.05, **opts)


def test_run_with_refuses_a_config_of_another_type():
    with pytest.raises(ValueError, match="config must be a RunConfig"):
        runner.run_with(_family(), {"alpha": 0.1}, np.zeros(3), np.random.default_rng(0))


def test_run_refuses_a_run_larger_than_the_machine_before_any_work():
    """Issue 15: 10^6 runs x 10^6 recorded iterates cannot fit; the error names the knob and the size."""
    fam = _family()
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    with pytest.raises(ValueError, match=r"would hold about .* GiB \(iterates: .*record_every"):
        runner.run(
            fam, "fomaml", np.zeros(3), 0.05, rng, n_runs=10**6, n_iter=10**6,
            batch_tasks=2, d_in=2, d_o=2, setting="free",
        )  # fmt: skip
    assert rng.bit_generator.state == state  # nothing drawn
    cfg = runner.RunConfig.build(fam, "fomaml", 0.05, n_iter=10, batch_tasks=2, d_in=2, d_o=3)
    mem = runner.run_memory(fam, cfg, 4)
    assert mem == {
        "iterates": 8 * (11 * 4 * 3 + 10 * 4),
        "rows": 64 * 4 * 2 * 3,
        "batches": 8 * 8 * 5,
    }
    assert runner.machine_memory() > 2**20
