"""Argument validation of :mod:`hfmaml_core.tasks` (factories, constructors, kernels, sampling).

The library's contract (``hfmaml_core/_validate.py``): every public function
checks its arguments *before doing any work* and raises ``ValueError`` whose
message names the parameter and the allowed range. Each case below asserts the
parameter name and the range text with ``pytest.raises(..., match=...)``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from oracles import regex_id

from hfmaml_core import tasks as T

NAN, INF = float("nan"), float("inf")


# =============================================================================
# factories
# =============================================================================


def _case_id(bad: dict) -> str:
    return ",".join(f"{k}={v!r}" for k, v in bad.items())


FACTORIES = {
    "welsch": T.make_welsch_family,
    "quadratic": T.make_quadratic_family,
    "make_family-welsch": lambda *a, **k: T.make_family("welsch", *a, **k),
    "make_family-quadratic": lambda *a, **k: T.make_family("quadratic", *a, **k),
}

SIZE_CASES = [
    ({"dim": 0}, r"dim must be an integer >= 1; got 0"),
    ({"dim": -3}, r"dim must be an integer >= 1; got -3"),
    ({"dim": 2.5}, r"dim must be an integer >= 1; got 2\.5"),
    ({"dim": True}, r"dim must be an integer >= 1; got True"),
    ({"dim": "2"}, r"dim must be an integer >= 1; got '2'"),
    ({"dim": np.float64(2.0)}, r"dim must be an integer >= 1"),
    ({"n_tasks": -1}, r"n_tasks must be an integer >= 1; got -1"),
    ({"n_tasks": 0}, r"n_tasks must be an integer >= 1; got 0"),
    ({"n_tasks": 2.5}, r"n_tasks must be an integer >= 1; got 2\.5"),
    ({"n_tasks": True}, r"n_tasks must be an integer >= 1; got True"),
    ({"n_points": 0}, r"n_points must be an integer >= [12]; got 0"),
    ({"n_points": 2.5}, r"n_points must be an integer >= [12]; got 2\.5"),
    ({"n_points": True}, r"n_points must be an integer >= [12]; got True"),
    ({"seed": -1}, r"seed must be an integer >= 0; got -1"),
    ({"seed": 1.5}, r"seed must be an integer >= 0; got 1\.5"),
    ({"seed": True}, r"seed must be an integer >= 0; got True"),
    ({"seed": None}, r"seed must be an integer >= 0; got None"),
    ({"probs": [0.5, 0.6]}, r"probs must sum to 1 \(within 1e-9\); got sum 1\.1"),
    ({"probs": [1.5, -0.5]}, r"probs must be >= 0 entrywise"),
    ({"probs": [1.0]}, r"probs must have shape \(2,\)"),
    ({"probs": [NAN, 1.0]}, r"probs must contain only finite values"),
]


@pytest.mark.parametrize("factory", sorted(FACTORIES))
@pytest.mark.parametrize(("bad", "match"), SIZE_CASES, ids=[_case_id(b) for b, _ in SIZE_CASES])
def test_factory_rejects_bad_sizes_seed_probs(factory: str, bad: dict, match: str) -> None:
    """Sizes must be integers >= 1 (not bool, not float), the seed >= 0, probs a distribution."""
    args = {"dim": 2, "n_tasks": 2, "n_points": 4, "seed": 0, **bad}
    dim = args.pop("dim")
    with pytest.raises(ValueError, match=match):
        FACTORIES[factory](dim, **args)


def test_quadratic_needs_two_points() -> None:
    """``make_quadratic_family`` needs ``n_points >= 2`` (its noise is re-centred per task)."""
    with pytest.raises(ValueError, match=r"n_points must be an integer >= 2; got 1"):
        T.make_quadratic_family(2, 2, 1, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise": -0.1}, r"noise must be a finite number >= 0; got -0\.1"),
        ({"noise": NAN}, r"noise must be a finite number >= 0"),
        ({"task_spread": -1.0}, r"task_spread must be a finite number >= 0"),
        ({"center_spread": INF}, r"center_spread must be a finite number >= 0"),
        ({"input_scale": 0.0}, r"input_scale must be a finite number > 0; got 0\.0"),
        ({"input_scale": -2.0}, r"input_scale must be a finite number > 0"),
        ({"input_scale": "1"}, r"input_scale must be a finite number > 0"),
    ],
    ids=regex_id,
)
def test_welsch_factory_rejects_bad_reals(kwargs: dict, match: str) -> None:
    """Noise and spreads must be finite and >= 0; the input scale > 0."""
    with pytest.raises(ValueError, match=match):
        T.make_welsch_family(2, 2, 4, seed=0, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grad_noise": -1.0}, r"grad_noise must be a finite number >= 0; got -1\.0"),
        ({"hess_noise": -0.5}, r"hess_noise must be a finite number >= 0"),
        ({"hess_noise": NAN}, r"hess_noise must be a finite number >= 0"),
        ({"center_spread": -1.0}, r"center_spread must be a finite number >= 0"),
        ({"curvature": (2.0, 1.0)}, r"curvature\[1\] must be a finite number >= 2; got 1\.0"),
        ({"curvature": (NAN, 1.0)}, r"curvature\[0\] must be a finite number"),
        ({"curvature": (0.0, INF)}, r"curvature\[1\] must be a finite number >= 0"),
    ],
    ids=regex_id,
)
def test_quadratic_factory_rejects_bad_reals(kwargs: dict, match: str) -> None:
    """Noise levels must be finite and >= 0; the curvature interval ordered and finite."""
    with pytest.raises(ValueError, match=match):
        T.make_quadratic_family(2, 2, 4, seed=0, **kwargs)


@pytest.mark.parametrize("curvature", [(1.0,), 5.0], ids=["1-tuple", "scalar"])
def test_quadratic_factory_rejects_malformed_curvature(curvature: object) -> None:
    """A curvature that is not a pair should raise ``ValueError`` naming ``curvature``."""
    with pytest.raises(ValueError, match=r"curvature"):
        T.make_quadratic_family(2, 2, 4, seed=0, curvature=curvature)


@pytest.mark.parametrize("name", ["nope", "Welsch", "", None, 3])
def test_make_family_rejects_unknown_name(name: object) -> None:
    """``make_family`` lists the valid names in its error."""
    with pytest.raises(
        ValueError, match=r"name must be one of 'quadratic', ('ridge', )?'welsch'; got"
    ):
        T.make_family(name, 2, seed=0)


def test_numpy_integers_are_accepted() -> None:
    """numpy integer scalars are valid sizes and seeds (the check is on Integral, not int)."""
    fam = T.make_welsch_family(np.int64(2), np.int32(3), np.uint8(4), seed=np.int64(5))
    assert (fam.dim, fam.n_tasks, fam.n_points) == (2, 3, 4)
    assert isinstance(fam.dim, int)


# =============================================================================
# class constructors
# =============================================================================


def _quad_args(m: int = 2, d: int = 2, n: int = 3) -> dict:
    return {
        "A": np.tile(np.eye(d), (m, 1, 1)),
        "c": np.zeros((m, d)),
        "s": np.ones((m, n)),
        "b": np.zeros((m, n, d)),
    }


_ASYM = np.tile(np.array([[1.0, 0.5], [0.0, 1.0]]), (2, 1, 1))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"A": np.eye(2)}, r"A must have shape \(m, d, d\); got shape \(2, 2\)"),
        ({"A": np.zeros((2, 2, 3))}, r"A must have shape \(2, 2, 2\); got shape \(2, 2, 3\)"),
        ({"A": _ASYM}, r"A must be symmetric"),
        ({"A": np.full((2, 2, 2), NAN)}, r"A must contain only finite values"),
        ({"A": np.zeros((2, 2, 2), complex)}, r"A must be a real array"),
        ({"c": np.zeros((2, 3))}, r"c must have shape \(2, 2\); got shape \(2, 3\)"),
        ({"c": np.zeros(2)}, r"c must have shape \(2, 2\)"),
        ({"c": np.array([[0.0, INF], [0.0, 0.0]])}, r"c must contain only finite values"),
        ({"s": np.ones(3)}, r"s must have shape \(2, n\)"),
        ({"s": np.ones((3, 3))}, r"s must have shape \(2, n\)"),
        ({"b": np.zeros((2, 4, 2))}, r"b must have shape \(2, 3, 2\); got shape \(2, 4, 2\)"),
        ({"b": np.zeros((2, 3))}, r"b must have shape \(2, 3, 2\)"),
        ({"probs": [0.2, 0.2]}, r"probs must sum to 1"),
        ({"probs": [0.5, 0.25, 0.25]}, r"probs must have shape \(2,\)"),
    ],
    ids=regex_id,
)
def test_quadratic_constructor_rejects_bad_arrays(bad: dict, match: str) -> None:
    """``QuadraticFamily`` checks the shapes of A, c, s, b against each other, symmetry,
    finiteness and probs."""
    args = {**_quad_args(), **bad}
    with pytest.raises(ValueError, match=match):
        T.QuadraticFamily(**args)


def test_quadratic_constructor_accepts_rounding_asymmetry() -> None:
    """An A symmetric up to 1e-15 is accepted and symmetrised exactly."""
    A = np.tile(np.array([[1.0, 0.5], [0.5 + 1e-15, 2.0]]), (2, 1, 1))
    fam = T.QuadraticFamily(**{**_quad_args(), "A": A})
    np.testing.assert_array_equal(fam.A, np.swapaxes(fam.A, 1, 2))


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.zeros((3, 2)), np.zeros((3,)), r"X must have shape \(m, n, d\); got shape \(3, 2\)"),
        (np.zeros((2, 4, 3)), np.zeros((2, 3)), r"y must have shape \(2, 4\); got shape \(2, 3\)"),
        (np.zeros((2, 4, 3)), np.zeros(4), r"y must have shape \(2, 4\)"),
        (np.full((2, 4, 3), NAN), np.zeros((2, 4)), r"X must contain only finite values"),
        (np.zeros((2, 4, 3)), np.full((2, 4), INF), r"y must contain only finite values"),
        (np.zeros((2, 0, 3)), np.zeros((2, 0)), r"X must be non-empty"),
        (np.zeros((2, 4, 3), complex), np.zeros((2, 4)), r"X must be a real array"),
    ],
    ids=regex_id,
)
def test_welsch_constructor_rejects_bad_arrays(X, y, match: str) -> None:
    """``WelschRegressionFamily`` checks X is (m, n, d), y is (m, n), both finite and real."""
    with pytest.raises(ValueError, match=match):
        T.WelschRegressionFamily(X, y)


def test_welsch_constructor_rejects_bad_probs() -> None:
    """probs must be a distribution over the m tasks."""
    with pytest.raises(ValueError, match=r"probs must be >= 0 entrywise"):
        T.WelschRegressionFamily(np.ones((2, 3, 1)), np.zeros((2, 3)), probs=[1.2, -0.2])


def test_constructors_copy_their_inputs() -> None:
    """Mutating the caller's arrays afterwards does not change the family."""
    X, y = np.ones((2, 3, 2)), np.zeros((2, 3))
    fam = T.WelschRegressionFamily(X, y)
    X[:] = 5.0
    y[:] = 7.0
    assert np.all(fam.X == 1.0) and np.all(fam.y == 0.0)
    args = _quad_args()
    q = T.QuadraticFamily(**args)
    args["c"][:] = 3.0
    args["A"][:] = 0.0
    assert np.all(q.c == 0.0) and np.all(q.L_tasks == 1.0)


# =============================================================================
# kernel arguments
# =============================================================================

FAM = T.make_welsch_family(2, 3, 5, seed=0)
QFAM = T.make_quadratic_family(2, 3, 5, seed=0)
W0 = np.zeros(2)


@pytest.mark.parametrize("fam", [FAM, QFAM], ids=["welsch", "quadratic"])
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f: f.grads(W0, np.array([0, 3])), r"tasks must hold indices in \[0, 2\]"),
        (lambda f: f.grads(W0, np.array([-1])), r"tasks must hold indices in \[0, 2\]"),
        (lambda f: f.grads(W0, [0.0]), r"tasks must be a non-empty 1-D integer array"),
        (lambda f: f.grads(W0, []), r"tasks must be a non-empty 1-D integer array"),
        (lambda f: f.grads(W0, [[0]]), r"tasks must be a non-empty 1-D integer array"),
        (lambda f: f.grads(W0, 0), r"tasks must be a non-empty 1-D integer array"),
        (lambda f: f.grads(W0, [True]), r"tasks must be a non-empty 1-D integer array"),
        (lambda f: f.losses(W0, [0], idx=[[5]]), r"idx must hold data indices in \[0, 4\]"),
        (lambda f: f.grads(W0, [0], idx=[[-1, 0]]), r"idx must hold data indices in \[0, 4\]"),
        (lambda f: f.grads(W0, [0], idx=[0]), r"idx must be an integer array of shape \(1, D\)"),
        (lambda f: f.grads(W0, [0, 1], idx=[[0]]), r"idx must be an integer array of shape \(2,"),
        (lambda f: f.grads(W0, [0], idx=np.zeros((1, 0), int)), r"idx must be .* D >= 1"),
        (lambda f: f.hessians(W0, [0], idx=[[0.0]]), r"idx must be an integer array"),
        (lambda f: f.grads(np.zeros(3), [0]), r"W must have shape \(2,\)"),
        (lambda f: f.grads(np.zeros((2, 2)), [0]), r"W must have shape \(1, 2\)"),
        (lambda f: f.grads(np.array([NAN, 0.0]), [0]), r"W must contain only finite values"),
        (lambda f: f.hvps(W0, np.zeros(3), [0]), r"V must have shape \(2,\)"),
        (lambda f: f.hvps(W0, np.zeros((2, 2)), [0]), r"V must have shape \(1, 2\)"),
        (lambda f: f.hvps(W0, np.array([INF, 0.0]), [0]), r"V must contain only finite"),
        (lambda f: f.tasks[0].grad(W0, idx=[[0]]), r"idx must be a 1-D integer array"),
        (lambda f: f.tasks[0].hess(W0, idx=[9]), r"idx must hold data indices in \[0, 4\]"),
        (lambda f: f.tasks[0].hvp(W0, W0, idx=[0.5]), r"idx must be an integer array"),
        (lambda f: f.point_grads(W0, 3), r"task must be an integer in \[0, 2\]; got 3"),
        (lambda f: f.point_hessians(W0, -1), r"task must be an integer in \[0, 2\]; got -1"),
        (lambda f: f.point_grads(W0, 1.0), r"task must be an integer in \[0, 2\]"),
        (lambda f: f.point_grads(np.zeros(3), 0), r"\bw must have shape \(2,\)"),
        (lambda f: f.sigma_sq(np.array([NAN, 0.0])), r"\bw must contain only finite"),
        (lambda f: f.sigma_tilde_sq(np.zeros(1)), r"\bw must have shape \(2,\)"),
        (lambda f: f.sigma_h_sq("w"), r"\bw must be a real array"),
        (lambda f: f.mean_loss(np.zeros(4)), r"\bw must have shape \(2,\)"),
        (lambda f: f.task_grads(np.array([0.0, INF])), r"\bw must contain only finite"),
    ],
    ids=regex_id,
)
def test_kernel_arguments_rejected(fam: T.TaskFamily, call, match: str) -> None:
    """Task indices, data indices, points and directions are validated with named errors."""
    with pytest.raises(ValueError, match=match):
        call(fam)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda t: t.grad(np.zeros(3)), r"\bw must"),
        (lambda t: t.loss(np.array([NAN, 0.0])), r"\bw must"),
        (lambda t: t.hvp(W0, np.zeros(3)), r"\bv must"),
    ],
    ids=["grad-shape", "loss-nan", "hvp-v"],
)
def test_task_methods_name_their_own_parameters(call, match: str) -> None:
    """``Task`` methods should name ``w``/``v`` (their own parameters) in errors."""
    with pytest.raises(ValueError, match=match):
        call(FAM.tasks[0])


@pytest.mark.parametrize("order", [4, -1, 1.5, "1"])
def test_welsch_rejects_bad_order(order: object) -> None:
    """``welsch(r, order)`` supports orders 0..3 only."""
    with pytest.raises(ValueError, match=r"order must be an integer in \[0, 3\]"):
        T.welsch(np.zeros(2), order)


# =============================================================================
# sampling arguments, and errors raised before any random draw
# =============================================================================

BAD_RNGS = [np.random.RandomState(0), 0, None, np.random.default_rng(0).bit_generator]


@pytest.mark.parametrize("rng", BAD_RNGS, ids=["RandomState", "int", "None", "BitGenerator"])
def test_sampling_requires_a_generator(rng: object) -> None:
    """Only ``numpy.random.Generator`` is accepted (reproducible, seeded streams)."""
    msg = r"rng must be a numpy\.random\.Generator"
    with pytest.raises(ValueError, match=msg):
        FAM.sample_tasks(rng, 3)
    with pytest.raises(ValueError, match=msg):
        FAM.sample_points(rng, 2, 3)
    with pytest.raises(ValueError, match=msg):
        FAM.tasks[0].sample(rng, 3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f, r: f.sample_tasks(r, 0), r"size must be an integer >= 1; got 0"),
        (lambda f, r: f.sample_tasks(r, -2), r"size must be an integer >= 1; got -2"),
        (lambda f, r: f.sample_tasks(r, 2.5), r"size must be an integer >= 1; got 2\.5"),
        (lambda f, r: f.sample_tasks(r, True), r"size must be an integer >= 1; got True"),
        (lambda f, r: f.sample_points(r, 0, 3), r"n_batches must be an integer >= 1; got 0"),
        (lambda f, r: f.sample_points(r, 2.0, 3), r"n_batches must be an integer >= 1"),
        (lambda f, r: f.sample_points(r, 2, 0), r"size must be an integer >= 1; got 0"),
        (lambda f, r: f.sample_points(r, 2, None), r"size must be an integer >= 1; got None"),
        (lambda f, r: f.tasks[1].sample(r, 0), r"size must be an integer >= 1; got 0"),
        (lambda f, r: f.tasks[1].sample(r, 1.5), r"size must be an integer >= 1"),
    ],
    ids=regex_id,
)
def test_bad_sample_size_raises_before_drawing(call, match: str) -> None:
    """A bad size raises ``ValueError`` and leaves the generator's state untouched.

    If the error came after a draw, a caller catching it would silently continue
    with a shifted random stream; comparing ``bit_generator.state`` proves it did not.
    """
    rng = np.random.default_rng(123)
    rng.standard_normal(3)  # not at the initial state
    before = copy.deepcopy(rng.bit_generator.state)
    with pytest.raises(ValueError, match=match):
        call(FAM, rng)
    assert rng.bit_generator.state == before
    reference = np.random.default_rng(123)
    reference.standard_normal(3)
    assert rng.integers(0, 2**62) == reference.integers(0, 2**62)
