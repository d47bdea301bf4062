r"""Tests for :mod:`hfmaml_core.mlp` (the tanh network) and :mod:`hfmaml_core.sinusoid`.

The oracles here share no code with the library:

* :func:`oracle_losses` evaluates the network from the documented parameter
  layout with ``einsum`` (the library uses ``matmul`` and back-propagation), for
  many parameter vectors at once, and runs on complex arrays;
* gradients come from the **complex step**,
  :math:`\partial_j f(w) = \operatorname{Im} f(w + i h e_j)/h` with :math:`h = 10^{-30}`
  (no cancellation, exact to rounding), and from **Richardson-extrapolated central
  differences** of :func:`oracle_losses`;
* Hessian-vector products from Richardson-extrapolated central differences, in
  :math:`t`, of the complex-step gradient at :math:`w + tv` (independent of the
  library), and from the complex step of the library's gradient kernel,
  :math:`\nabla^2 f(w)v = \operatorname{Im}\nabla f(w + ihv)/h` (this uses the
  library's gradient, which the first oracles verify; it checks the R-operator
  code against the back-propagation code to rounding);
* the MAML meta-gradient from Richardson differences of the empirical meta-loss
  :math:`\frac1B\sum_i f_i^{q}(w - \alpha\nabla f_i^{s}(w))` built from the oracles.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hfmaml_core import sinusoid as S
from hfmaml_core.mlp import MLP, SINUSOID_SIZES

HYP = settings(max_examples=25, deadline=None, database=None)
H_CS = 1e-30  # complex-step size: any tiny number works, there is no subtraction


# =============================================================================
# independent oracles
# =============================================================================


def n_params_formula(sizes: tuple[int, ...]) -> int:
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def oracle_losses(
    w: np.ndarray, x: np.ndarray, y: np.ndarray, sizes: tuple[int, ...]
) -> np.ndarray:
    """MSE of the network for N parameter vectors ``w`` (N, P) on one data set ``x`` (K, n0).

    Layout (the documented one): per layer, the weight matrix (n_in, n_out) row-major,
    then the bias (n_out,). Written with einsum; complex-safe.
    """
    N = w.shape[0]
    h = np.broadcast_to(x, (N, *x.shape)).astype(w.dtype)
    pos = 0
    n_layers = len(sizes) - 1
    for l in range(n_layers):
        a, b = sizes[l], sizes[l + 1]
        Wl = w[:, pos : pos + a * b].reshape(N, a, b)
        pos += a * b
        bl = w[:, pos : pos + b]
        pos += b
        z = np.einsum("nka,nab->nkb", h, Wl) + bl[:, None, :]
        h = z if l == n_layers - 1 else np.tanh(z)
    assert pos == w.shape[1]
    r = h - y[None]
    return np.einsum("nkj,nkj->n", r, r) / x.shape[0]


def cs_gradient(w: np.ndarray, x: np.ndarray, y: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
    """Complex-step gradient of the oracle loss: all P coordinates in one batched call."""
    P = w.size
    Wc = w[None, :] + 1j * H_CS * np.eye(P)
    return oracle_losses(Wc, x, y, sizes).imag / H_CS


def richardson(fun, h: float, levels: int = 4) -> np.ndarray:
    r""":math:`\frac{d}{dt}` fun(t) at 0 by central differences at h/2^k, Richardson-extrapolated."""
    table = []
    for k in range(levels):
        hk = h / 2**k
        row = [(np.asarray(fun(hk)) - np.asarray(fun(-hk))) / (2 * hk)]
        for j in range(1, k + 1):
            row.append(row[j - 1] + (row[j - 1] - table[k - 1][j - 1]) / (4**j - 1))
        table.append(row)
    return table[-1][-1]


def random_task(rng: np.random.Generator, K: int = 10, n_in: int = 1, n_out: int = 1):
    x = rng.uniform(-5, 5, size=(K, n_in))
    y = rng.uniform(-3, 3, size=(K, n_out))
    return x, y


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


# =============================================================================
# layout and initialisation
# =============================================================================


@pytest.mark.parametrize("sizes", [SINUSOID_SIZES, (1, 1), (3, 5, 2), (2, 4, 4, 4, 3)])
def test_n_params_and_unpack_layout(sizes):
    net = MLP(sizes)
    assert net.n_params == n_params_formula(sizes)
    w = np.arange(float(net.n_params))
    layers = net.unpack(w)
    pos = 0
    for (Wl, bl), a, b in zip(layers, sizes[:-1], sizes[1:], strict=True):
        assert Wl.shape == (a, b) and bl.shape == (1, b)
        np.testing.assert_array_equal(Wl.ravel(), np.arange(pos, pos + a * b))
        np.testing.assert_array_equal(bl.ravel(), np.arange(pos + a * b, pos + a * b + b))
        pos += a * b + b
    layers[0][0][...] = -1.0  # views: writing into them writes into w
    assert np.all(w[: sizes[0] * sizes[1]] == -1.0)


def test_default_is_the_sinusoid_network():
    assert MLP().sizes == (1, 40, 40, 1) and MLP().n_params == 1761


def test_init_bounds_shape_and_reproducibility():
    net = MLP()
    w = net.init(np.random.default_rng(3))
    W = net.init(np.random.default_rng(3), 4)
    assert w.shape == (1761,) and W.shape == (4, 1761)
    np.testing.assert_array_equal(w, net.init(np.random.default_rng(3)))
    for (Wl, bl), n_in in zip(net.unpack(W), net.sizes[:-1], strict=True):
        bound = 1 / math.sqrt(n_in)
        assert np.abs(Wl).max() <= bound and np.abs(bl).max() <= bound
        assert np.abs(Wl).max() > 0.8 * bound  # really spread over the interval


# =============================================================================
# loss and gradient
# =============================================================================


def test_losses_and_predictions_match_the_oracle():
    rng = np.random.default_rng(0)
    net = MLP()
    W = net.init(rng, 3)
    X = rng.uniform(-5, 5, (3, 10, 1))
    Y = rng.uniform(-5, 5, (3, 10, 1))
    got = net.losses(W, X, Y)
    want = [oracle_losses(W[b : b + 1], X[b], Y[b], net.sizes)[0] for b in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    pred = net.predict(W, X)
    np.testing.assert_allclose(((pred - Y) ** 2).mean(axis=(1, 2)), want, rtol=1e-13)


def test_gradient_of_the_benchmark_network_equals_the_complex_step():
    """All 1761 partial derivatives, at a random and at a large-weight point, to ~1e-13."""
    rng = np.random.default_rng(1)
    net = MLP()
    x, y = random_task(rng)
    for scale in (1.0, 3.0):
        w = scale * net.init(rng)
        got = net.grads(w, x, y)
        want = cs_gradient(w, x, y, net.sizes)
        assert rel(got, want) < 1e-12


@HYP
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5).map(tuple),
    K=st.integers(1, 7),
)
def test_gradient_equals_the_complex_step_for_any_architecture(seed, sizes, K):
    rng = np.random.default_rng(seed)
    net = MLP(sizes)
    w = rng.standard_normal(net.n_params)
    x, y = random_task(rng, K, sizes[0], sizes[-1])
    got = net.grads(w, x, y)
    want = cs_gradient(w, x, y, sizes)
    assert np.linalg.norm(got - want) <= 1e-12 * (np.linalg.norm(want) + 1.0)


def test_gradient_equals_richardson_differences():
    """Every coordinate of a small network and 20 random directions of the big one."""
    rng = np.random.default_rng(2)
    for sizes, directions in (((1, 6, 5, 1), None), (SINUSOID_SIZES, 20)):
        net = MLP(sizes)
        w = net.init(rng)
        x, y = random_task(rng)
        E = (
            np.eye(net.n_params)
            if directions is None
            else rng.standard_normal((directions, net.n_params))
        )
        fd = richardson(
            lambda t, E=E, w=w, x=x, y=y, s=sizes: oracle_losses(w + t * E, x, y, s), 1e-2
        )
        got = E @ net.grads(w, x, y)
        assert rel(got, fd) < 1e-8


# =============================================================================
# Hessian-vector products
# =============================================================================


def test_hvp_equals_differences_of_the_independent_gradient():
    r"""H v against d/dt of the complex-step oracle gradient at w + t v (Richardson), both nets."""
    rng = np.random.default_rng(4)
    for sizes in ((1, 6, 5, 1), SINUSOID_SIZES):
        net = MLP(sizes)
        w = net.init(rng)
        v = rng.standard_normal(net.n_params)
        x, y = random_task(rng)
        fd = richardson(
            lambda t, w=w, v=v, x=x, y=y, s=sizes: cs_gradient(w + t * v, x, y, s), 1e-2
        )
        got = net.hvps(w, v, x, y)
        assert rel(got, fd) < 1e-7


def test_hvp_equals_differences_of_the_library_gradient():
    rng = np.random.default_rng(5)
    net = MLP()
    W = net.init(rng, 4)
    Vd = rng.standard_normal(W.shape)
    X = rng.uniform(-5, 5, (4, 10, 1))
    Y = rng.uniform(-5, 5, (4, 10, 1))
    fd = richardson(lambda t: net.grads(W + t * Vd, X, Y), 1e-2)
    got = net.hvps(W, Vd, X, Y)
    for b in range(4):
        assert rel(got[b], fd[b]) < 1e-8


@HYP
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 8), min_size=2, max_size=5).map(tuple),
    K=st.integers(1, 7),
    scale=st.floats(0.1, 3.0),
)
def test_hvp_equals_the_complex_step_of_the_gradient(seed, sizes, K, scale):
    r""":math:`\nabla^2 f(w)v = \operatorname{Im}\nabla f(w + ihv)/h` to rounding, any architecture."""
    rng = np.random.default_rng(seed)
    net = MLP(sizes)
    w = scale * rng.standard_normal(net.n_params)
    v = rng.standard_normal(net.n_params)
    x, y = random_task(rng, K, sizes[0], sizes[-1])
    cs = net._grads(w + 1j * H_CS * v, x, y).imag / H_CS
    got = net.hvps(w, v, x, y)
    assert np.linalg.norm(got - cs) <= 1e-12 * (np.linalg.norm(cs) + 1.0)


def test_hvp_of_the_benchmark_network_equals_the_complex_step_for_a_batch():
    rng = np.random.default_rng(6)
    net = MLP()
    W = net.init(rng, 25)
    Vd = rng.standard_normal(W.shape)
    X = rng.uniform(-5, 5, (25, 10, 1))
    Y = np.sin(X)
    cs = net._grads(W + 1j * H_CS * Vd, X, Y).imag / H_CS
    assert rel(net.hvps(W, Vd, X, Y), cs) < 1e-12


def test_hvp_is_symmetric_and_linear():
    rng = np.random.default_rng(7)
    net = MLP()
    w = net.init(rng)
    u, v = rng.standard_normal((2, net.n_params))
    x, y = random_task(rng)
    Hu, Hv = net.hvps(w, u, x, y), net.hvps(w, v, x, y)
    assert abs(u @ Hv - v @ Hu) <= 1e-12 * (abs(u @ Hv) + 1)
    np.testing.assert_allclose(
        net.hvps(w, 2 * u - 3 * v, x, y), 2 * Hu - 3 * Hv, rtol=1e-10, atol=1e-10
    )


def test_the_full_hessian_column_by_column_is_symmetric_on_a_small_net():
    rng = np.random.default_rng(8)
    net = MLP((1, 4, 3, 1))
    w = rng.standard_normal(net.n_params)
    x, y = random_task(rng)
    E = np.eye(net.n_params)
    H = net.hvps(np.broadcast_to(w, E.shape), E, x[None], y[None])  # row j = H e_j
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12)


# =============================================================================
# vectorisation and shapes
# =============================================================================


def test_batched_kernels_equal_a_loop_over_tasks():
    rng = np.random.default_rng(9)
    net = MLP()
    B = 6
    W = net.init(rng, B)
    Vd = rng.standard_normal(W.shape)
    X = rng.uniform(-5, 5, (B, 10, 1))
    Y = rng.uniform(-5, 5, (B, 10, 1))
    loss, grad = net.loss_grads(W, X, Y)
    hv = net.hvps(W, Vd, X, Y)
    for b in range(B):
        lb, gb = net.loss_grads(W[b], X[b], Y[b])
        np.testing.assert_allclose(loss[b], lb, rtol=1e-14)
        np.testing.assert_allclose(grad[b], gb, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(hv[b], net.hvps(W[b], Vd[b], X[b], Y[b]), rtol=1e-12, atol=1e-13)
    # a shared w equals the same w repeated per task
    Wrep = np.repeat(W[:1], B, axis=0)
    np.testing.assert_allclose(net.grads(W[0], X, Y), net.grads(Wrep, X, Y), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(
        net.hvps(W[0], Vd, X, Y), net.hvps(Wrep, Vd, X, Y), rtol=1e-13, atol=1e-14
    )


def test_leading_dimensions_broadcast():
    rng = np.random.default_rng(10)
    net = MLP()
    R, B, K = 3, 4, 10
    W = net.init(rng, R)[:, None, :]  # (R, 1, P): one parameter vector per run
    X = rng.uniform(-5, 5, (R, B, K, 1))
    Y = rng.uniform(-5, 5, (R, B, K, 1))
    assert net.losses(W, X, Y).shape == (R, B)
    assert net.grads(W, X, Y).shape == (R, B, net.n_params)
    assert net.hvps(W, np.ones(net.n_params), X, Y).shape == (R, B, net.n_params)
    assert net.predict(W, X).shape == (R, B, K, 1)
    assert net.grads(W[0, 0], X[0, 0], Y[0, 0]).shape == (net.n_params,)
    full = net.grads(np.broadcast_to(W, (R, B, net.n_params)), X, Y)
    np.testing.assert_allclose(net.grads(W, X, Y), full, rtol=1e-13, atol=1e-15)
    # many directions at one shared point on one task: the Hessian-times-matrix use
    Vs = rng.standard_normal((7, net.n_params))
    hv = net.hvps(W[0, 0], Vs, X[0, :1], Y[0, :1])
    assert hv.shape == (7, net.n_params)
    for j in range(7):
        np.testing.assert_allclose(
            hv[j], net.hvps(W[0, 0], Vs[j], X[0, 0], Y[0, 0]), rtol=1e-12, atol=1e-13
        )


# =============================================================================
# bad input
# =============================================================================


def test_step_with_a_given_batch_equals_the_step_that_draws_it():
    net = MLP()
    w0 = net.init(np.random.default_rng(5), 2)
    drawn = S.MetaLearner(net, "HF-MAML", w0, 3)
    given = S.MetaLearner(net, "HF-MAML", w0, 3)
    batch = given.next_batch()  # the batch `drawn` draws itself in its first step
    loss_a, dirs_a = drawn.step(compare=True)
    loss_b, dirs_b = given.step(compare=True, batch=batch)
    np.testing.assert_array_equal(loss_a, loss_b)
    for m in S.METHODS:
        np.testing.assert_array_equal(dirs_a[m], dirs_b[m])
    np.testing.assert_array_equal(drawn.w, given.w)
    with pytest.raises(ValueError, match="batch"):
        given.step(batch="tasks")
    with pytest.raises(ValueError, match="W must have shape"):
        given.step(batch=S.sample_tasks(np.random.default_rng(0), 25))  # no run axis


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda n, w, x, y: n.losses(w[:-1], x, y), "W"),
        (lambda n, w, x, y: n.losses(w.astype(complex), x, y), "W"),
        (lambda n, w, x, y: n.grads(np.where(np.arange(w.size) == 3, np.nan, w), x, y), "W"),
        (lambda n, w, x, y: n.grads(w, x[..., 0], y), "X"),
        (lambda n, w, x, y: n.grads(w, np.concatenate([x, x], -1), y), "X"),
        (lambda n, w, x, y: n.grads(w, x, y[:, :-1]), "Y"),
        (lambda n, w, x, y: n.grads(w, x, np.full_like(y, np.inf)), "Y"),
        (lambda n, w, x, y: n.grads(np.stack([w] * 3), x, y), "leading"),
        (lambda n, w, x, y: n.hvps(w, w[:5], x, y), "V"),
        (lambda n, w, x, y: n.hvps(w, np.stack([w] * 3), x, y), "leading"),
        (lambda n, w, x, y: n.predict(w, x[:, :0]), "X"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(call, name):
    net = MLP()
    rng = np.random.default_rng(11)
    w = net.init(rng)
    x = rng.uniform(-5, 5, (2, 10, 1))
    y = np.sin(x)
    with pytest.raises(ValueError, match=name):
        call(net, w, x, y)


@pytest.mark.parametrize("sizes", [(1,), (), (1, 0, 1), (1, 2.5, 1), "abc", (True, 2), None])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes"):
        MLP(sizes)


def test_bad_init_arguments():
    net = MLP()
    with pytest.raises(ValueError, match="rng"):
        net.init(0)
    with pytest.raises(ValueError, match="n must"):
        net.init(np.random.default_rng(0), 0)


# =============================================================================
# sinusoid tasks and the three meta-gradient estimators
# =============================================================================


def test_sinusoid_tasks_follow_the_benchmark():
    tasks = S.sample_tasks(np.random.default_rng(0), (3, 400), 10, 7)
    assert tasks.shape == (3, 400)
    assert tasks.x_support.shape == (3, 400, 10, 1) and tasks.x_query.shape == (3, 400, 7, 1)
    assert 0.1 <= tasks.amplitude.min() and tasks.amplitude.max() <= 5.0
    assert 0.0 <= tasks.phase.min() and tasks.phase.max() <= np.pi
    for x in (tasks.x_support, tasks.x_query):
        assert -5.0 <= x.min() and x.max() <= 5.0
    a, p = tasks.amplitude[..., None, None], tasks.phase[..., None, None]
    np.testing.assert_allclose(tasks.y_support, a * np.sin(tasks.x_support - p), rtol=0, atol=0)
    np.testing.assert_allclose(tasks.truth(tasks.x_query), tasks.y_query, rtol=0, atol=0)
    # uniform draws: the means are where they should be (4 standard errors)
    n = tasks.amplitude.size
    assert abs(tasks.amplitude.mean() - 2.55) < 4 * 4.9 / math.sqrt(12 * n)
    assert abs(tasks.phase.mean() - np.pi / 2) < 4 * np.pi / math.sqrt(12 * n)
    again = S.sample_tasks(np.random.default_rng(0), (3, 400), 10, 7)
    np.testing.assert_array_equal(again.x_query, tasks.x_query)
    assert tasks[1, :5].shape == (5,)


def _small_setup(seed: int = 0, B: int = 4):
    rng = np.random.default_rng(seed)
    net = MLP((1, 6, 5, 1))
    return net, net.init(rng), S.sample_tasks(rng, B, 10, 10)


def test_maml_direction_is_the_gradient_of_the_empirical_meta_loss():
    r"""u^MAML . e equals d/dt F(w + t e), F built from the oracles only (THEORY S1)."""
    net, w, tasks = _small_setup()
    alpha = 0.05  # larger than the benchmark's so that the Hessian term matters

    def F(wv: np.ndarray) -> float:
        vals = []
        for b in range(tasks.shape[0]):
            g_s = cs_gradient(wv, tasks.x_support[b], tasks.y_support[b], net.sizes)
            w_hat = (wv - alpha * g_s)[None]
            vals.append(oracle_losses(w_hat, tasks.x_query[b], tasks.y_query[b], net.sizes)[0])
        return float(np.mean(vals))

    dirs, q = S.meta_directions(net, w, tasks, alpha)
    E = np.eye(net.n_params)
    fd = np.array([richardson(lambda t, e=e: F(w + t * e), 1e-2) for e in E])
    assert rel(dirs["MAML"], fd) < 1e-7
    # FO-MAML is the mean of the outer gradients alone, and differs from MAML
    g_out = [
        cs_gradient(
            w - alpha * cs_gradient(w, tasks.x_support[b], tasks.y_support[b], net.sizes),
            tasks.x_query[b],
            tasks.y_query[b],
            net.sizes,
        )
        for b in range(tasks.shape[0])
    ]
    assert rel(dirs["FO-MAML"], np.mean(g_out, axis=0)) < 1e-12
    assert rel(dirs["FO-MAML"], dirs["MAML"]) > 1e-3
    assert q.shape == (tasks.shape[0],)


def test_hf_maml_direction_is_the_central_difference_and_converges_to_maml():
    """HF-MAML = formula of THEORY's table; its distance to MAML shrinks like delta^2."""
    net, w, tasks = _small_setup(1)
    alpha = 0.05
    delta = 1e-2
    dirs, _ = S.meta_directions(net, w, tasks, alpha, delta=delta)
    xs, ys = tasks.x_support, tasks.y_support
    want = []
    for b in range(tasks.shape[0]):
        g = net.grads(w - alpha * net.grads(w, xs[b], ys[b]), tasks.x_query[b], tasks.y_query[b])
        d_i = delta / np.linalg.norm(g)
        hess_g = (net.grads(w + d_i * g, xs[b], ys[b]) - net.grads(w - d_i * g, xs[b], ys[b])) / (
            2 * d_i
        )
        want.append(g - alpha * hess_g)
    assert rel(dirs["HF-MAML"], np.mean(want, axis=0)) < 1e-12
    errs = [
        np.linalg.norm(
            S.meta_directions(net, w, tasks, alpha, "HF-MAML", delta=d)[0]["HF-MAML"] - dirs["MAML"]
        )
        for d in (1e-1, 5e-2, 2.5e-2)
    ]
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    assert all(3.5 < r < 4.5 for r in ratios), ratios  # second order in delta


def test_forward_difference_is_written_out_and_first_order():
    """The one-sided HF-MAML variant (a control estimator): formula, and error linear in delta."""
    net, w, tasks = _small_setup(1)
    alpha, delta = 0.05, 1e-2
    dirs, _ = S.meta_directions(net, w, tasks, alpha, "HF-MAML", delta=delta, difference="forward")
    xs, ys = tasks.x_support, tasks.y_support
    want = []
    for b in range(tasks.shape[0]):
        g = net.grads(w - alpha * net.grads(w, xs[b], ys[b]), tasks.x_query[b], tasks.y_query[b])
        d_i = delta / np.linalg.norm(g)
        hess_g = (net.grads(w + d_i * g, xs[b], ys[b]) - net.grads(w, xs[b], ys[b])) / d_i
        want.append(g - alpha * hess_g)
    assert rel(dirs["HF-MAML"], np.mean(want, axis=0)) < 1e-12
    errs = [
        S.hessian_term_error(net, w, tasks, alpha, d, difference="forward")[()]
        for d in (1e-2, 5e-3, 2.5e-3)
    ]
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    assert all(1.8 < r < 2.2 for r in ratios), ratios  # first order in delta
    central = S.hessian_term_error(net, w, tasks, alpha, 1e-2)[()]
    assert central < errs[0] / 10  # the central difference is far better at the same radius


def test_hessian_term_error_is_the_fraction_of_the_hessian_term_missed():
    """r = |u_HF - u_MAML| / |u_FO - u_MAML|, written out with a loop over tasks and exact HVPs."""
    net = MLP((1, 6, 5, 1))
    rng = np.random.default_rng(6)
    W = net.init(rng, 2)
    tasks = S.sample_tasks(rng, (2, 3))
    alpha, delta = 0.05, 1e-2
    r = S.hessian_term_error(net, W, tasks, alpha, delta)
    assert r.shape == (2,)
    for run in range(2):
        xs, ys = tasks.x_support[run], tasks.y_support[run]
        hf, hess_term = [], []
        for b in range(3):
            w = W[run]
            g = net.grads(
                w - alpha * net.grads(w, xs[b], ys[b]), tasks.x_query[run, b], tasks.y_query[run, b]
            )
            d_i = delta / np.linalg.norm(g)
            fd = (net.grads(w + d_i * g, xs[b], ys[b]) - net.grads(w - d_i * g, xs[b], ys[b])) / (
                2 * d_i
            )
            hv = net.hvps(w, g, xs[b], ys[b])
            hf.append(alpha * (hv - fd))  # u_HF - u_MAML, task b
            hess_term.append(alpha * hv)  # u_FO - u_MAML, task b
        want = np.linalg.norm(np.mean(hf, axis=0)) / np.linalg.norm(np.mean(hess_term, axis=0))
        assert r[run] == pytest.approx(want, rel=1e-6)
    assert 0 < r.max() < 1e-3


def test_train_records_hf_variants_without_changing_the_run():
    net = MLP()
    w0 = net.init(np.random.default_rng(8), 2)
    plain = S.train(net, "HF-MAML", w0, 5, 3, compare_every=2)
    var = S.train(
        net,
        "HF-MAML",
        w0,
        5,
        3,
        compare_every=2,
        hf_variants=[(1e-3, "forward"), (1e-3, "central")],
    )
    np.testing.assert_array_equal(plain.w, var.w)
    np.testing.assert_array_equal(plain.meta_loss, var.meta_loss)
    np.testing.assert_array_equal(plain.hf_vs_fo, var.hf_vs_fo)
    np.testing.assert_array_equal(var.hf_vs_fo_variants[(1e-3, "central")], plain.hf_vs_fo)
    fwd = var.hf_vs_fo_variants[(1e-3, "forward")]
    assert fwd.shape == (3, 2) and np.all(fwd > 10 * plain.hf_vs_fo)
    assert plain.hf_vs_fo_variants == {}


def test_directions_are_vectorised_over_runs_and_independent_of_the_request():
    net = MLP()
    rng = np.random.default_rng(2)
    W = net.init(rng, 3)
    tasks = S.sample_tasks(rng, (3, 5))
    dirs, q = S.meta_directions(net, W, tasks, 0.01)
    assert q.shape == (3, 5)
    for r in range(3):
        single, q_r = S.meta_directions(net, W[r], tasks[r], 0.01)
        for m in S.METHODS:
            np.testing.assert_allclose(dirs[m][r], single[m], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(q[r], q_r, rtol=1e-13)
    for m in S.METHODS:  # bit-identical whatever else is requested
        alone, _ = S.meta_directions(net, W, tasks, 0.01, m)
        np.testing.assert_array_equal(alone[m], dirs[m])


def test_adaptation_errors_and_adapt_agree_with_gradient_steps():
    net = MLP()
    rng = np.random.default_rng(3)
    w = net.init(rng)
    tasks = S.sample_tasks(rng, 4, 10, 30)
    errs = S.adaptation_errors(net, w, tasks, 0.01, 2)
    assert errs.shape == (3, 4)
    np.testing.assert_allclose(errs[0], net.losses(w, tasks.x_query, tasks.y_query), rtol=1e-14)
    w1 = w - 0.01 * net.grads(w, tasks.x_support, tasks.y_support)
    np.testing.assert_allclose(errs[1], net.losses(w1, tasks.x_query, tasks.y_query), rtol=1e-13)
    path = S.adapt(net, w, tasks, 0.01, 2)
    assert path.shape == (3, 4, net.n_params)
    np.testing.assert_allclose(path[1], w1, rtol=1e-14)
    np.testing.assert_allclose(
        errs[2], net.losses(path[2], tasks.x_query, tasks.y_query), rtol=1e-13
    )


def test_learners_share_the_task_stream_and_compare_does_not_change_the_update():
    net = MLP()
    w0 = net.init(np.random.default_rng(4), 2)
    a = S.MetaLearner(net, "HF-MAML", w0, 7)
    b = S.MetaLearner(net, "MAML", w0, 7)
    np.testing.assert_array_equal(a.next_batch().x_query, b.next_batch().x_query)
    r1 = S.train(net, "HF-MAML", w0, 5, 7)
    r2 = S.train(net, "HF-MAML", w0, 5, 7, compare_every=2)
    np.testing.assert_array_equal(r1.w, r2.w)
    np.testing.assert_array_equal(r1.meta_loss, r2.meta_loss)
    assert r2.meta_loss.shape == (5, 2)
    np.testing.assert_array_equal(r2.log_iters, [0, 2, 4])
    assert r2.cosine["HF-MAML"].shape == (3, 2) and r2.hf_vs_fo.shape == (3, 2)
    assert np.all(r2.cosine["HF-MAML"] > 0.99)
    # the first Adam step moves every coordinate with a non-zero direction by ~lr
    first = S.MetaLearner(net, "FO-MAML", w0[0], 7, lr=1e-3)
    w_before = first.w.copy()
    first.step()
    moved = np.abs(first.w - w_before)
    assert np.all(moved <= 1e-3 * (1 + 1e-9)) and np.median(moved) > 0.9e-3
    assert np.all(w0 == net.init(np.random.default_rng(4), 2))  # w0 was copied, not modified


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda net, w, t: S.meta_directions(net, w, t, alpha=0.0), "alpha"),
        (lambda net, w, t: S.meta_directions(net, w, t, delta=-1.0), "delta"),
        (lambda net, w, t: S.meta_directions(net, w, t, methods="Reptile"), "method"),
        (lambda net, w, t: S.meta_directions(net, np.stack([w, w]), t), "W"),
        (lambda net, w, t: S.meta_directions("net", w, t), "net"),
        (lambda net, w, t: S.meta_directions(net, w, "tasks"), "tasks"),
        (lambda net, w, t: S.meta_directions(MLP((2, 3, 1)), np.zeros(13), t), "net"),
        (lambda net, w, t: S.adaptation_errors(net, w, t, 0.01, -1), "n_steps"),
        (lambda net, w, t: S.adaptation_errors(net, np.stack([w] * 3), t, 0.01, 1), "W"),
        (lambda net, w, t: S.sample_tasks(np.random.default_rng(0), 0), "shape"),
        (lambda net, w, t: S.sample_tasks(np.random.default_rng(0), 3, k_query=0), "k_query"),
        (lambda net, w, t: S.sample_tasks(0, 3), "rng"),
        (lambda net, w, t: S.MetaLearner(net, "MAML", w, -1), "stream_seed"),
        (lambda net, w, t: S.MetaLearner(net, "MAML", w, 0, lr=0), "lr"),
        (lambda net, w, t: S.MetaLearner(net, "SGD", w, 0), "method"),
        (lambda net, w, t: S.train(net, "MAML", w, 0, 0), "n_iter"),
        (lambda net, w, t: S.train(net, "MAML", w, 1, 0, compare_every=-1), "compare_every"),
        (lambda net, w, t: S.meta_directions(net, w, t, difference="backward"), "difference"),
        (lambda net, w, t: S.hessian_term_error(net, w, t, delta=0.0), "delta"),
        (lambda net, w, t: S.hessian_term_error(net, w, t, difference="x"), "difference"),
        (
            lambda net, w, t: S.train(net, "MAML", w, 1, 0, hf_variants=[(1e-3, "forward")]),
            "hf_variants",
        ),
        (
            lambda net, w, t: S.train(
                net, "MAML", w, 1, 0, compare_every=1, hf_variants=[(0, "central")]
            ),
            "delta",
        ),
        (
            lambda net, w, t: S.train(net, "MAML", w, 1, 0, compare_every=1, hf_variants="forward"),
            "hf_variants",
        ),
        (
            lambda net, w, t: S.train(
                net, "MAML", w, 1, 0, compare_every=1, hf_variants=[(1e-3, "fwd")]
            ),
            "difference",
        ),
    ],
)
def test_sinusoid_bad_input(call, name):
    net = MLP()
    rng = np.random.default_rng(5)
    w = net.init(rng)
    tasks = S.sample_tasks(rng, 4)
    with pytest.raises(ValueError, match=name):
        call(net, w, tasks)
