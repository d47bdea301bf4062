r"""Multi-step MAML: N inner steps, the exact meta-gradient by HVPs, FO-MAML and HF-MAML (THEORY M1-M4).

With the inner step :math:`\alpha` and :math:`N` inner steps, task :math:`i` adapts

.. math:: w_0 = w, \qquad w_{j+1} = w_j - \alpha\nabla f_i(w_j) \quad (j = 0, \dots, N-1),

and the N-step objective is :math:`F_N(w) = E_i f_i(w_N)`. Its meta-gradient (THEORY M1) is

.. math::
    \nabla F_{N,i}(w) = \prod_{j=N-1}^{0}\bigl(I - \alpha\nabla^2 f_i(w_j)\bigr)\,\nabla f_i(w_N)
    = (I - \alpha H_0)(I - \alpha H_1)\cdots(I - \alpha H_{N-1})\,\nabla f_i(w_N),

computed by reverse accumulation along the stored path, with Hessian-vector products only:
:math:`v \leftarrow \nabla f_i(w_N)`; for :math:`j = N-1, \dots, 0`:
:math:`v \leftarrow v - \alpha\nabla^2 f_i(w_j)v`. FO-MAML keeps :math:`\nabla f_i(w_N)`;
HF-MAML replaces each HVP by one central difference of two gradients (THEORY H1, T3).

Functions for a :class:`~hfmaml_core.tasks.TaskFamily` use its checked public methods
(``grads``, ``hvps``, ``losses``); the ``net_*`` functions do the same for the tanh network
of :mod:`hfmaml_core.mlp` on sinusoid tasks. Everything is vectorised over tasks (and
points); the only Python loops run over the N inner steps.
"""

from __future__ import annotations

import numpy as np

from . import _validate as V
from . import meta
from .mlp import MLP

__all__ = [
    "METHODS",
    "adapt",
    "curvature_along",
    "gradient",
    "meta_gradients",
    "net_adapt",
    "net_meta_gradients",
    "net_objective",
    "objective",
    "one_step_bound",
    "run",
    "smoothness_bound",
    "stationary_point",
]

#: Meta-gradient estimators of :func:`meta_gradients` and :func:`net_meta_gradients`.
METHODS: tuple[str, ...] = ("maml", "fomaml", "hfmaml")


# ----------------------------------------------------------------------------- validation
def _family_batch(family: object, W: object, tasks: object) -> tuple[np.ndarray, np.ndarray]:
    d = family.dim  # type: ignore[attr-defined]
    T = np.asarray(tasks)
    if T.ndim != 1 or T.size == 0 or T.dtype.kind not in "iu":
        raise ValueError(f"tasks must be a non-empty 1-D integer array; got shape {T.shape}")
    Wa = np.asarray(W)
    if Wa.ndim == 1:
        Wa = np.broadcast_to(V.array("W", Wa, shape=(d,)), (T.size, d)).copy()
    else:
        Wa = V.array("W", Wa, shape=(T.size, d)).copy()
    return Wa, T


def _steps_alpha(n_steps: object, alpha: object) -> tuple[int, float]:
    return V.integer("n_steps", n_steps, lo=0), V.real("alpha", alpha, lo=0.0)


def _step_batches(idx: object, n_steps: int, n_rows: int, name: str) -> list:
    """``idx`` is ``None`` (full batches) or integer indices of shape (n_steps, B, D)."""
    if idx is None:
        return [None] * n_steps
    I = np.asarray(idx)
    if I.ndim != 3 or I.shape[:2] != (n_steps, n_rows) or I.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be None or an integer array of shape ({n_steps}, {n_rows}, D), one "
            f"independent data batch per inner step; got shape {I.shape}"
        )
    return list(I)


# ----------------------------------------------------------------------------- task families
def adapt(
    family: object,
    W: object,
    tasks: object,
    alpha: float,
    n_steps: int,
    idx: object = None,
) -> np.ndarray:
    r"""The N-step adaptation path :math:`w_0 = w,\ w_{j+1} = w_j - \alpha\tilde\nabla f_i(w_j, D_j)` (M1).

    Parameters
    ----------
    family : TaskFamily
    W : array, shape (d,) or (B, d)
        Starting points (one shared, or one per task).
    tasks : int array, shape (B,)
        Task of each row.
    alpha : float
        Inner step, >= 0.
    n_steps : int
        Number of inner steps N >= 0.
    idx : int array, shape (N, B, D), optional
        An independent data batch per inner step and task (``None``: exact gradients).

    Returns
    -------
    ndarray, shape (N + 1, B, d)
        The path ``w_0, ..., w_N`` of every task.
    """
    Wa, T = _family_batch(family, W, tasks)
    N, a = _steps_alpha(n_steps, alpha)
    batches = _step_batches(idx, N, T.size, "idx")
    path = np.empty((N + 1, *Wa.shape))
    path[0] = Wa
    for j in range(N):  # loop over inner steps only
        path[j + 1] = path[j] - a * family.grads(path[j], T, batches[j])  # type: ignore[attr-defined]
    return path


def _delta_for(rule: object, v: np.ndarray, rho: float, a: float) -> np.ndarray:
    """Per-row half-width: T3's ``1/(6 rho alpha |v|)`` (``"theorem"``) or a fixed number."""
    if isinstance(rule, str):
        norms = np.linalg.norm(v, axis=1)
        with np.errstate(divide="ignore"):
            out = 1.0 / (6.0 * rho * a * norms)
        return np.where(np.isfinite(out) & (out > 0), out, 1.0)
    return np.full(v.shape[0], float(rule))


def _check_delta(delta: object) -> object:
    if isinstance(delta, str):
        return V.choice("delta", delta, ["theorem"])
    return V.real("delta", delta, lo=0.0, lo_open=True)


def meta_gradients(
    family: object,
    W: object,
    tasks: object,
    alpha: float,
    n_steps: int,
    *,
    method: str = "maml",
    idx: object = None,
    idx_out: object = None,
    idx_h: object = None,
    delta: float | str = "theorem",
) -> np.ndarray:
    r"""Per-task N-step meta-gradient directions (THEORY M1; HF-MAML: M4).

    .. math::
        u_i = \prod_{j=N-1}^{0}\bigl(I - \alpha\tilde\nabla^2 f_i(w_j, D^h_j)\bigr)\,
              \tilde\nabla f_i(w_N, D_o)

    by reverse accumulation, :math:`v \leftarrow v - \alpha\,\tilde\nabla^2 f_i(w_j, D^h_j)v`
    for :math:`j = N-1, \dots, 0` (exact HVPs, ``"maml"``); ``"fomaml"`` returns
    :math:`\tilde\nabla f_i(w_N, D_o)`; ``"hfmaml"`` replaces each HVP by
    :math:`(\tilde\nabla f_i(w_j + \delta_j v) - \tilde\nabla f_i(w_j - \delta_j v))/(2\delta_j)` on
    the same batch, with :math:`\delta_j = 1/(6\rho\alpha\|v\|)` (``delta="theorem"``, T3's
    one-step rule applied to the current vector) or a fixed ``delta > 0``.

    Parameters
    ----------
    family, W, tasks, alpha, n_steps, idx
        As in :func:`adapt` (``idx``: the inner batches).
    method : {"maml", "fomaml", "hfmaml"}
    idx_out : int array, shape (B, D_o), optional
        Outer batch (``None``: exact).
    idx_h : int array, shape (N, B, D_h), optional
        Hessian batches, one per inner step (``None``: exact).
    delta : float > 0 or "theorem"

    Returns
    -------
    ndarray, shape (B, d)
    """
    V.choice("method", method, list(METHODS))
    dl = _check_delta(delta)
    path = adapt(family, W, tasks, alpha, n_steps, idx)
    N, a = _steps_alpha(n_steps, alpha)
    T = np.asarray(tasks)
    hb = _step_batches(idx_h, N, T.size, "idx_h")
    v = family.grads(path[N], T, idx_out)  # type: ignore[attr-defined]
    if method == "fomaml":
        return v
    rho = float(family.rho)  # type: ignore[attr-defined]
    for j in range(N - 1, -1, -1):  # reverse accumulation along the stored path
        if method == "maml":
            hv = family.hvps(path[j], v, T, hb[j])  # type: ignore[attr-defined]
        else:
            dj = _delta_for(dl, v, rho, a)[:, None]
            plus = family.grads(path[j] + dj * v, T, hb[j])  # type: ignore[attr-defined]
            minus = family.grads(path[j] - dj * v, T, hb[j])  # type: ignore[attr-defined]
            hv = (plus - minus) / (2.0 * dj)
        v = v - a * hv
    return v


def _points(family: object, W: object) -> tuple[np.ndarray, bool]:
    Wa = np.asarray(W)
    single = Wa.ndim == 1
    return V.array("W", Wa[None] if single else Wa, shape=(None, family.dim)), single  # type: ignore[attr-defined]


def _pairs(family: object, Wa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = family.n_tasks  # type: ignore[attr-defined]
    return np.repeat(Wa, m, axis=0), np.tile(np.arange(m), Wa.shape[0])


def objective(family: object, W: object, alpha: float, n_steps: int) -> np.ndarray | float:
    r"""Exact :math:`F_N(w) = E_i f_i(w_N)` at one point (d,) or many (S, d) (THEORY M1)."""
    Wa, single = _points(family, W)
    Wr, T = _pairs(family, Wa)
    path = adapt(family, Wr, T, alpha, n_steps)
    vals = family.losses(path[-1], T).reshape(len(Wa), -1) @ family.probs  # type: ignore[attr-defined]
    return float(vals[0]) if single else vals


def gradient(family: object, W: object, alpha: float, n_steps: int) -> np.ndarray:
    r"""Exact :math:`\nabla F_N(w) = E_i \nabla F_{N,i}(w)` by :func:`meta_gradients` (THEORY M1).

    ``W`` has shape (d,) or (S, d); the result has the same shape.
    """
    Wa, single = _points(family, W)
    Wr, T = _pairs(family, Wa)
    G = meta_gradients(family, Wr, T, alpha, n_steps, method="maml")
    S, d = Wa.shape
    out = np.einsum("smd,m->sd", G.reshape(S, -1, d), family.probs)  # type: ignore[attr-defined]
    return out[0] if single else out


def smoothness_bound(
    family: object, W: object, alpha: float, n_steps: int, *, at: str = "start"
) -> np.ndarray | float:
    r"""THEORY M2's local smoothness bound of :math:`F_N`, for every :math:`\alpha \ge 0`.

    With :math:`u = 1 + \alpha L` and :math:`S_N = \sum_{j=0}^{N-1} u^{N-1+j}`,

    .. math::
        \|\nabla^2 F_N(w)\| \le L u^{2N} + \rho\alpha S_N\,E_i\|\nabla f_i(w_N)\|
        \le L u^{2N} + \rho\alpha S_N u^N\,E_i\|\nabla f_i(w)\| .

    ``at="start"`` returns the right-hand form (L1's form: the gradient at ``w``),
    ``at="adapted"`` the middle one. At N = 1 the right-hand form is notebook 01's sharper
    L1 constant :math:`L(1+\alpha L)^2 + \rho\alpha(1+\alpha L)E_i\|\nabla f_i(w)\|`.
    ``W`` has shape (d,) (returns a float) or (S, d) (returns shape (S,)).
    """
    V.choice("at", at, ["adapted", "start"])
    N, a = _steps_alpha(n_steps, alpha)
    Wa, single = _points(family, W)
    L, rho = float(family.L), float(family.rho)  # type: ignore[attr-defined]
    u = 1.0 + a * L
    S_N = float(sum(u ** (N - 1 + j) for j in range(N)))
    Wr, T = _pairs(family, Wa)
    if at == "start":
        G, factor = family.grads(Wr, T), u**N  # type: ignore[attr-defined]
    else:
        G, factor = family.grads(adapt(family, Wr, T, a, N)[-1], T), 1.0  # type: ignore[attr-defined]
    mean_norm = np.linalg.norm(G, axis=1).reshape(len(Wa), -1) @ family.probs  # type: ignore[attr-defined]
    out = L * u ** (2 * N) + rho * a * S_N * factor * mean_norm
    return float(out[0]) if single else out


def one_step_bound(family: object, W: object, alpha: float) -> np.ndarray | float:
    r"""The N-independent bound :math:`L(1+\alpha L)^2 + \rho\alpha(1+\alpha L)E_i\|\nabla f_i(w)\|`.

    :func:`smoothness_bound` at N = 1: what one would use if N inner steps did not compound.
    """
    return smoothness_bound(family, W, alpha, 1)


def curvature_along(
    family: object,
    W: object,
    directions: object,
    alpha: float,
    n_steps: int,
    delta: float = 1e-5,
) -> np.ndarray | float:
    r"""Curvature of :math:`F_N` along directions by a central difference of :func:`gradient`.

    .. math::
        \kappa_N(w, v) = \frac{\|\nabla F_N(w + \delta v) - \nabla F_N(w - \delta v)\|}{2\delta\|v\|}
        \approx \|\nabla^2 F_N(w)v\|/\|v\| \le \|\nabla^2 F_N(w)\| ,

    exact for quadratic tasks. ``W`` and ``directions`` have shape (d,) or (S, d).
    """
    Wa, single = _points(family, W)
    out = meta.difference_curvature(
        lambda X: gradient(family, X, alpha, n_steps), Wa, directions, delta
    )
    return float(out[0]) if single else out


def run(
    family: object,
    w0: object,
    alpha: float,
    n_steps: int,
    n_iter: int,
    *,
    step: str | float = "bound",
    tol: float = 0.0,
    values: bool = False,
) -> dict[str, np.ndarray]:
    r"""Deterministic N-step MAML: :math:`w_{k+1} = w_k - \beta_k\nabla F_N(w_k)` (THEORY M3).

    ``step="bound"``: :math:`\beta_k = 1/L_N(w_k)` with :func:`smoothness_bound` (M2);
    ``step="one-step"``: :math:`\beta_k = 1/L_1(w_k)` (:func:`one_step_bound`, which ignores
    the compounding of N steps); a number: a constant step. Stops early once
    :math:`\|\nabla F_N(w_k)\| \le` ``tol`` or the iterate is no longer finite.

    Returns
    -------
    dict
        ``"w"`` (last iterate), ``"grad_norm"`` (:math:`\|\nabla F_N(w_k)\|` per iterate, shape
        (K,)), ``"value"`` (:math:`F_N(w_k)`), ``"step"`` (:math:`\beta_k`).
    """
    N, a = _steps_alpha(n_steps, alpha)
    K = V.integer("n_iter", n_iter)
    tol = V.real("tol", tol, lo=0.0)
    if not isinstance(step, str):
        step = V.real("step", step, lo=0.0, lo_open=True)
    else:
        V.choice("step", step, ["bound", "one-step"])
    w = V.array("w0", w0, shape=(family.dim,)).copy()  # type: ignore[attr-defined]
    norms, vals, steps = [], [], []
    for _ in range(K):  # loop over meta-iterations
        g = gradient(family, w, a, N)
        norms.append(float(np.linalg.norm(g)))
        if values:
            vals.append(objective(family, w, a, N))
        if norms[-1] <= tol:
            break
        if step == "bound":
            b = 1.0 / smoothness_bound(family, w, a, N)
        elif step == "one-step":
            b = 1.0 / one_step_bound(family, w, a)
        else:
            b = float(step)
        steps.append(b)
        w_new = w - b * g
        if not np.all(np.isfinite(w_new)) or np.abs(w_new).max() > 1e150:
            break
        w = w_new
    return {"w": w, "grad_norm": np.array(norms), "value": np.array(vals), "step": np.array(steps)}


def stationary_point(
    family: object,
    w0: object,
    alpha: float,
    n_steps: int,
    *,
    n_iter: int = 200,
    tol: float = 1e-12,
    max_step: float = 0.5,
    delta: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    r"""A local minimiser :math:`w^*` of :math:`F_N` by saddle-free Newton, and :math:`\nabla^2 F_N(w^*)` (M3).

    .. math:: w \leftarrow w - \min\Bigl(1, \frac{s}{\|p\|}\Bigr)p, \qquad
        p = |H(w)|^{-1}\nabla F_N(w), \qquad
        H(w)_{:,k} = \frac{\nabla F_N(w + \delta e_k) - \nabla F_N(w - \delta e_k)}{2\delta}

    (symmetrised; :math:`|H|` has the absolute eigenvalues of :math:`H`, floored at
    :math:`10^{-8}\max|\lambda|`, so :math:`-p` descends; :math:`s` = ``max_step``; the step
    is halved until Armijo's condition on :math:`F_N` holds), from ``w0``
    until :math:`\|\nabla F_N(w)\| \le` ``tol``; near a minimiser it is Newton's method. It is
    blind to the step size of gradient descent, so the curvature returned at :math:`w^*` says
    which constant steps :math:`\beta` can converge there (:math:`\beta\lambda_{\max} < 2`) and
    how fast (local linear rate :math:`\beta\lambda_{\min}` per iteration).

    Returns
    -------
    (w, H) : ndarray (d,), ndarray (d, d)

    Raises
    ------
    ValueError
        On bad input, or if the iteration does not reach ``tol`` within ``n_iter`` at a point
        where ``H`` is positive definite.
    """
    N, a = _steps_alpha(n_steps, alpha)
    K = V.integer("n_iter", n_iter, lo=1)
    tol = V.real("tol", tol, lo=0.0, lo_open=True)
    s_max = V.real("max_step", max_step, lo=0.0, lo_open=True)
    h = V.real("delta", delta, lo=0.0, lo_open=True)
    d = family.dim  # type: ignore[attr-defined]
    w = V.array("w0", w0, shape=(d,)).copy()
    E = h * np.eye(d)
    for _ in range(K):  # Newton iterations
        G = gradient(family, np.concatenate([w[None], w + E, w - E]), a, N)
        g, H = G[0], (G[1 : d + 1] - G[d + 1 :]).T / (2.0 * h)
        H = 0.5 * (H + H.T)
        lam, Q = np.linalg.eigh(H)
        if np.linalg.norm(g) <= tol:
            if lam.min() > 0:
                return w, H
            break
        lam_abs = np.maximum(np.abs(lam), 1e-8 * max(np.abs(lam).max(), 1e-300))
        p = Q @ ((Q.T @ g) / lam_abs)
        t, f0 = min(1.0, s_max / np.linalg.norm(p)), objective(family, w, a, N)
        while t > 1e-12 and objective(family, w - t * p, a, N) > f0 - 1e-4 * t * (g @ p):
            t *= 0.5  # backtracking (Armijo) on F_N: every step descends
        w = w - t * p
    raise ValueError(
        f"no local minimiser of F_N (|grad F_N| <= {tol:g}, positive-definite Hessian) reached "
        f"from w0 in n_iter = {K} iterations"
    )


# ----------------------------------------------------------------------------- the network
def _net_check(net: object, W: object, X: object, Y: object) -> tuple[MLP, np.ndarray]:
    if not isinstance(net, MLP):
        raise ValueError(f"net must be an hfmaml_core.mlp.MLP; got {type(net).__name__}")
    Xa = np.asarray(X)
    Wa = np.asarray(W, dtype=float)
    if Xa.ndim < 3:
        raise ValueError(f"X must have shape (B, K, n_0), one data set per task; got {Xa.shape}")
    lead = Xa.shape[:-2]
    if Wa.ndim == 1:
        Wa = np.broadcast_to(Wa, (*lead, Wa.shape[-1]))
    net.losses(Wa, X, Y)  # validates shapes, dtypes and finiteness before any work
    return net, np.array(Wa)


def net_adapt(net: MLP, W: object, X: object, Y: object, alpha: float, n_steps: int) -> np.ndarray:
    r"""N inner steps of the network on each task's data (THEORY M1), path of shape (N + 1, B, P).

    ``W`` of shape (P,) or (B, P); ``X``, ``Y`` of shape (B, K, n_0), (B, K, n_L) (the same
    support set at every step: the full-batch inner loop of the sinusoid benchmark).
    """
    net, Wa = _net_check(net, W, X, Y)
    N, a = _steps_alpha(n_steps, alpha)
    path = np.empty((N + 1, *Wa.shape))
    path[0] = Wa
    for j in range(N):  # loop over inner steps only
        path[j + 1] = path[j] - a * net.grads(path[j], X, Y)
    return path


def net_objective(
    net: MLP,
    W: object,
    X: object,
    Y: object,
    alpha: float,
    n_steps: int,
    Xq: object = None,
    Yq: object = None,
) -> np.ndarray:
    r"""Per-task :math:`f_i(w_N)` on the query set (``Xq``, ``Yq``; default: the support set), shape (B,)."""
    path = net_adapt(net, W, X, Y, alpha, n_steps)
    Xq, Yq = (X, Y) if Xq is None else (Xq, Yq)
    return net.losses(path[-1], Xq, Yq)


def net_meta_gradients(
    net: MLP,
    W: object,
    X: object,
    Y: object,
    alpha: float,
    n_steps: int,
    *,
    Xq: object = None,
    Yq: object = None,
    method: str = "maml",
    delta: float | str = "theorem",
    rho: float = 1.0,
) -> np.ndarray:
    r"""Per-task N-step meta-gradients of the network, shape (B, P) (THEORY M1, M4).

    The gradient of :func:`net_objective`: reverse accumulation with the network's exact
    HVPs (``"maml"``), :math:`\nabla f_i(w_N)` on the query set (``"fomaml"``), or one
    central difference per step (``"hfmaml"``; ``delta="theorem"`` is
    :math:`1/(6\rho\alpha\|v\|)` with the given ``rho``, since the network has no
    closed-form Hessian-Lipschitz constant).
    """
    V.choice("method", method, list(METHODS))
    dl = _check_delta(delta)
    rho = V.real("rho", rho, lo=0.0, lo_open=True)
    path = net_adapt(net, W, X, Y, alpha, n_steps)
    N, a = _steps_alpha(n_steps, alpha)
    Xq, Yq = (X, Y) if Xq is None else (Xq, Yq)
    v = net.grads(path[N], Xq, Yq)
    if method == "fomaml":
        return v
    flat = v.shape[:-1]
    for j in range(N - 1, -1, -1):  # reverse accumulation along the stored path
        if method == "maml":
            hv = net.hvps(path[j], v, X, Y)
        else:
            dj = _delta_for(dl, v.reshape(-1, v.shape[-1]), rho, a).reshape(*flat, 1)
            hv = (net.grads(path[j] + dj * v, X, Y) - net.grads(path[j] - dj * v, X, Y)) / (
                2.0 * dj
            )
        v = v - a * hv
    return v
