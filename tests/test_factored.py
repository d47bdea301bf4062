"""Factored network kernels (hfmaml_core.factored) against the dense MLP kernels, through the engine."""

import os
import subprocess
import sys

import numpy as np
import pytest

from hfmaml_core import engine, layouts
from hfmaml_core import sinusoid as S
from hfmaml_core.factored import FactoredNetworkKernels, FactoredRows
from hfmaml_core.hvp import radius_rule
from hfmaml_core.mlp import MLP, NetworkKernels
from hfmaml_core.runner import machine_memory


def _directions(kern, net, w, tasks, method, difference):
    sup = (tasks.x_support, tasks.y_support)
    Wt = w[..., None, :]
    o = engine.outer_gradients(kern, Wt, 0.01, sup, (tasks.x_query, tasks.y_query), with_loss=True)
    U, _ = engine.task_directions(
        kern, Wt, o.G, 0.01, method, sup, delta=radius_rule(1e-3), difference=difference
    )
    return U.mean(axis=-2), o.loss


@pytest.mark.parametrize("runs", [0, 3])
@pytest.mark.parametrize("method", ["fomaml", "maml", "hfmaml"])
@pytest.mark.parametrize("difference", ["central", "forward"])
def test_factored_agrees_with_dense(runs, method, difference):
    net = MLP((1, 12, 9, 1))
    rng = np.random.default_rng(3)
    w = net.init(rng, runs) if runs else net.init(rng)
    tasks = S.sample_tasks(rng, (runs, 5) if runs else (5,), 4, 6)
    a, la = _directions(NetworkKernels(net), net, w, tasks, method, difference)
    b, lb = _directions(FactoredNetworkKernels(net), net, w, tasks, method, difference)
    assert a.shape == b.shape == w.shape
    assert np.max(np.abs(a - b)) <= 1e-12 * np.max(np.abs(a))
    np.testing.assert_allclose(lb, la, rtol=1e-13)


def test_rows_are_not_aliased():
    """An in-place update of a row batch leaves the batch it was built from unchanged."""
    net = MLP((1, 6, 5, 1))
    rng = np.random.default_rng(0)
    w = net.init(rng)[None, :]
    tasks = S.sample_tasks(rng, (4,), 3, 3)
    kern = FactoredNetworkKernels(net)
    G = kern.grad(w, (tasks.x_support, tasks.y_support))
    before = G.to_dense().copy()
    H = G
    H *= -0.5
    H += w
    np.testing.assert_array_equal(G.to_dense(), before)
    np.testing.assert_allclose(H.to_dense(), w - 0.5 * before, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(G.row_norms(), np.linalg.norm(before, axis=-1), rtol=1e-13)
    assert isinstance(G, FactoredRows)


@pytest.mark.parametrize("runs", [0, 2])
def test_meta_directions_layouts_agree(runs):
    """The public API gives the same directions (to rounding) in both layouts, and "auto"
    picks the factored one from FACTORED_FROM parameters on."""
    net = MLP((1, 70, 70, 1))
    assert net.n_params >= S.FACTORED_FROM > MLP((1, 40, 40, 1)).n_params
    assert isinstance(S.network_kernels(net), FactoredNetworkKernels)
    assert isinstance(S.network_kernels(MLP((1, 40, 40, 1))), NetworkKernels)
    rng = np.random.default_rng(5)
    w = net.init(rng, runs) if runs else net.init(rng)
    tasks = S.sample_tasks(rng, (runs, 6) if runs else (6,), 10, 10)
    dense, qd = S.meta_directions(net, w, tasks, kernels="dense")
    fact, qf = S.meta_directions(net, w, tasks, kernels="factored")
    auto, _ = S.meta_directions(net, w, tasks)
    np.testing.assert_allclose(qf, qd, rtol=1e-13)
    for m in S.METHODS:
        scale = np.max(np.abs(dense[m]))
        assert np.max(np.abs(fact[m] - dense[m])) <= 1e-12 * scale, m
        np.testing.assert_array_equal(auto[m], fact[m])
    # HF-MAML's finite-difference error (what notebook 05 measures, ~1e-7 of the direction
    # here) is resolved alike by both layouts: they differ by < 1e-5 of it (measured 1.4e-7)
    hf = dense["HF-MAML"] - dense["MAML"]
    assert np.max(np.abs(fact["HF-MAML"] - fact["MAML"] - hf)) <= 1e-5 * np.max(np.abs(hf))


def test_kernels_is_checked():
    net = MLP((1, 5, 5, 1))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="kernels"):
        S.meta_directions(net, net.init(rng), S.sample_tasks(rng, (2,), 3, 3), kernels="sparse")


_FAULTS = """
import resource, sys, numpy as np
from hfmaml_core import sinusoid as S
from hfmaml_core.mlp import MLP
net = MLP((1, 40, 40, 1)); rng = np.random.default_rng(0)
w = net.init(rng); tasks = S.sample_tasks(rng, (25,), 10, 10)
S.meta_directions(net, w, tasks)
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    S.meta_directions(net, w, tasks)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 10)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_kernels_keep_the_heap_between_calls():
    """No page faults in steady state (hfmaml_core._heap); the control, the same calls with the
    pad the user set to 1 byte (so the library leaves it), faults about 2000 times per call."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TOP_PAD_"}
    env["OPENBLAS_NUM_THREADS"] = "1"

    def faults(extra):
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout)

    assert faults({}) <= 50  # measured 0.8 to 9 per call (all three methods)
    assert faults({"MALLOC_TOP_PAD_": "1"}) >= 500  # measured 2030


def test_sizes_beyond_the_machine_are_refused_up_front(monkeypatch):
    """A dense layout that would not fit is refused (naming the layout and the estimate) before
    any kernel runs; the factored layout of the same call fits and runs."""
    net = MLP((1, 200, 200, 1))
    rng = np.random.default_rng(0)
    w, tasks = net.init(rng), S.sample_tasks(rng, (25,), 10, 10)
    dense = S.direction_memory(net, (25,), 10, "dense")
    fact = S.direction_memory(net, (25,), 10, "factored")
    assert fact < dense / 2
    monkeypatch.setattr(layouts, "machine_memory", lambda: (dense + fact) // 2)

    def no_kernels(*a, **k):
        raise AssertionError("a kernel ran before the memory check")

    with monkeypatch.context() as m:
        m.setattr(S, "network_kernels", no_kernels)
        with pytest.raises(ValueError, match=r"GiB in the dense layout.*kernels='factored'"):
            S.meta_directions(net, w, tasks, kernels="dense")
        with pytest.raises(ValueError, match="more than this machine"):
            S.MetaLearner(MLP((1, 40, 40, 1)), "MAML", np.zeros(1761), 0, meta_batch=10**6)
    dirs, _ = S.meta_directions(net, w, tasks)  # auto = factored here: fits
    assert np.all(np.isfinite(dirs["HF-MAML"]))
    # on this machine itself: the H = 4000 network in the dense layout does not fit
    big, real = MLP((1, 4000, 4000, 1)), machine_memory()
    assert S.direction_memory(big, (25,), 10, "dense") > real
    assert S.direction_memory(big, (25,), 10, "factored") < real


def test_factored_rows_through_every_engine_path():
    """The black-box HF-MAML (two gradient calls) agrees with the fused pass; a dense part that
    is not shared by the tasks, an implicit dense view and a Hessian matrix are refused."""
    net = MLP((1, 9, 7, 1))
    rng = np.random.default_rng(2)
    w = net.init(rng, 2)
    tasks = S.sample_tasks(rng, (2, 4), 5, 6)
    kern = FactoredNetworkKernels(net)
    sup = (tasks.x_support, tasks.y_support)
    Wt = w[..., None, :]
    G = engine.outer_gradients(kern, Wt, 0.01, sup, (tasks.x_query, tasks.y_query)).G
    terms = {
        o: engine.hf_term(kern, Wt, G, sup, delta=radius_rule(1e-3), rho=0.0, alpha=0.01, oracle=o)
        for o in engine.ORACLES
    }
    a, b = (terms[o].D.to_dense() for o in engine.ORACLES)
    assert np.max(np.abs(a - b)) <= 1e-8 * np.max(np.abs(a))
    np.testing.assert_allclose((Wt - G).to_dense(), Wt - G.to_dense(), rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="shared by the tasks"):
        G + np.zeros((4, net.n_params))
    with pytest.raises(TypeError, match="to_dense"):
        np.asarray(G)
    with pytest.raises(ValueError, match="hessian='hvp'"):
        engine.task_directions(kern, Wt, G, 0.01, "maml", sup, hessian="matrix")


def test_layout_arguments_are_checked():
    net = MLP((1, 5, 5, 1))
    with pytest.raises(ValueError, match="kernels"):
        S.direction_memory(net, (25,), 10, "Dense")
    with pytest.raises(ValueError, match="k"):
        S.direction_memory(net, (25,), -5)
    with pytest.raises(ValueError, match="net must be"):
        S.network_kernels("net")
    with pytest.raises(ValueError, match="kernels"):
        S.MetaLearner(net, "MAML", np.zeros(net.n_params), 0, kernels="sparse")
    layouts_threshold = layouts.FACTORED_FROM
    try:  # the switch is read at every call
        layouts.FACTORED_FROM = 1
        assert isinstance(S.network_kernels(net), FactoredNetworkKernels)
    finally:
        layouts.FACTORED_FROM = layouts_threshold


def test_meta_learner_takes_a_layout():
    net = MLP((1, 12, 12, 1))
    w0 = net.init(np.random.default_rng(4))
    steps = {
        k: S.MetaLearner(net, "HF-MAML", w0, 7, meta_batch=5, kernels=k).step(compare=True)[1]
        for k in ("dense", "factored")
    }
    for m in S.METHODS:
        d, f = steps["dense"][m], steps["factored"][m]
        assert np.max(np.abs(f - d)) <= 1e-12 * np.max(np.abs(d))
