r"""Hessian-vector products by central differences of gradients (THEORY H1).

.. math::
    \widehat{\nabla^2\varphi(w)v}
      = \frac{\nabla\varphi(w+\delta v) - \nabla\varphi(w-\delta v)}{2\delta},
    \qquad
    \Bigl\|\widehat{\nabla^2\varphi(w)v} - \nabla^2\varphi(w)v\Bigr\| \le \rho\,\delta\,\|v\|^2

when :math:`\nabla^2\varphi` is :math:`\rho`-Lipschitz (THEORY H1; the
finite-difference notebook establishes the sharp constant). This is the
Hessian-free part of HF-MAML (THEORY T3): two gradient calls, no Hessian.

Also here, for the study of the choice of :math:`\delta`
(``notebooks/02_hessian_vector_products``): a float32 path of
:func:`central_difference`, the complex-step product :func:`complex_step`
(no subtractive cancellation), the truncation + rounding error model
:func:`error_model` with its minimiser :func:`optimal_delta`, and the rules
for :math:`\delta` used in practice, :func:`delta_rule`; and the hypothesis T3's
proof really uses, a Hessian-Lipschitz constant of the *mini-batch* loss, in closed
form for Welsch tasks (:func:`welsch_batch_rho`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _validate as V
from .tasks import WELSCH_MAX_D3

__all__ = [
    "DELTA_RULES",
    "central_difference",
    "complex_step",
    "delta_rule",
    "error_model",
    "hf_deltas",
    "optimal_delta",
    "radius_rule",
    "theorem_delta",
    "welsch_batch_rho",
]

#: Names accepted by :func:`delta_rule`.
DELTA_RULES = ("fixed", "per-tensor", "theorem")

_REAL_DTYPES = {"float64": np.float64, "float32": np.float32}
_COMPLEX_DTYPES = {"complex128": np.complex128, "complex64": np.complex64}


def _dtype(name: str, value: object, table: dict[str, type]) -> type:
    """Map a dtype-like ``value`` to one of ``table``'s numpy types, or raise ValueError."""
    allowed = ", ".join(table)
    if value is None or isinstance(value, bool):
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
    try:
        key = np.dtype(value).name  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}") from None
    if key not in table:
        raise ValueError(f"{name} must be one of {allowed}; got {key}")
    return table[key]


def _step(name: str, value: object, dt: type) -> float:
    """A step ``> 0`` that stays a normal, non-zero number in the working precision ``dt``."""
    x = V.real(name, value, lo=0.0, lo_open=True)
    info = np.finfo(dt)
    if not float(info.tiny) <= x <= float(info.max):
        raise ValueError(
            f"{name} must be a finite number in [{float(info.tiny):.3g}, {float(info.max):.3g}] "
            f"(normal numbers of {np.dtype(dt).name}); got {x!r}"
        )
    return x


def _in_precision(name: str, x: np.ndarray, dt: type) -> np.ndarray:
    """``x`` rounded to the real type ``dt``, refusing values that overflow there."""
    top = float(np.finfo(dt).max)
    if not np.all(np.abs(x) <= top):  # checked before the cast, which would overflow to inf
        raise ValueError(
            f"{name} must be representable in {np.dtype(dt).name} (|entries| <= {top:.3g})"
        )
    return x.astype(dt)


def _grad_output(name: str, value: object, d: int, dt: type) -> np.ndarray:
    """Check that a gradient call returned a finite array of shape (d,) and dtype ``dt``."""
    arr = np.asarray(value)
    want = np.dtype(dt).name
    if arr.shape != (d,):
        raise ValueError(f"{name} must have shape ({d},); got shape {arr.shape}")
    if arr.dtype != dt:
        raise ValueError(
            f"{name} must be an array of dtype {want} (compute the gradient in the working "
            f"precision: casting another dtype would hide or fake its rounding); got {arr.dtype}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values (no nan or inf)")
    return arr


def central_difference(
    grad: Callable[[np.ndarray], np.ndarray],
    w: object,
    v: object,
    delta: float,
    *,
    dtype: object = np.float64,
    check_resolution: bool = True,
) -> np.ndarray:
    r"""Central-difference approximation of :math:`\nabla^2\varphi(w)\,v` (THEORY H1).

    Parameters
    ----------
    grad : callable
        ``grad(w) -> ndarray of shape (d,)``, the gradient of :math:`\varphi`.
    w : array, shape (d,)
        Point at which the Hessian acts.
    v : array, shape (d,)
        Direction.
    delta : float
        Perturbation size, ``delta > 0``.
    dtype : {float64, float32}, optional
        Working precision. ``float64`` (default): inputs and gradients are
        converted to float64. ``float32``: ``w``, ``v`` and ``delta`` are rounded
        to float32, ``w +- delta*v`` and the quotient are computed in float32, and
        ``grad`` must *return* float32 (it is refused otherwise, so that the
        rounding of the result really is float32 rounding).
    check_resolution : bool, optional
        ``True`` (default): refuse a ``delta`` that resolves nothing (see Raises).
        ``False``: compute it anyway, for studies of rounding (notebook 02's sweep).

    Returns
    -------
    ndarray, shape (d,), of the working precision
        :math:`[\nabla\varphi(w+\delta v) - \nabla\varphi(w-\delta v)] / (2\delta)`.

    Raises
    ------
    ValueError
        If ``grad`` is not callable, ``dtype`` is not float64 or float32, ``w`` or
        ``v`` is not a finite 1-D array of matching length (representable in the
        working precision), ``delta`` is not a finite number > 0 (a normal float32
        number for float32), ``grad`` returns something other than a finite
        array of shape (d,) (of dtype float32 for float32), or ``delta`` cannot
        resolve anything in the working precision: :math:`w\pm\delta v` both round
        to ``w`` (``delta`` too small), or to :math:`\pm\delta v` (``w`` is lost:
        ``delta`` too large) -- unless ``check_resolution`` is False -- or
        :math:`\delta v` or the quotient overflows (always). The points are checked
        before ``grad`` is called.
    """
    if not callable(grad):
        raise ValueError(
            f"grad must be callable as grad(w) -> array of shape (d,); got {type(grad).__name__}"
        )
    dt = _dtype("dtype", dtype, _REAL_DTYPES)
    wa = V.array("w", w, shape=(None,))
    va = V.array("v", v, shape=wa.shape)
    delta = V.real("delta", delta, lo=0.0, lo_open=True)
    if not isinstance(check_resolution, (bool, np.bool_)):
        raise ValueError(f"check_resolution must be True or False; got {check_resolution!r}")
    if dt is np.float64:
        w_plus, w_minus = _perturbed_points(wa, va, delta, dt, check_resolution)
        g_plus = V.array("grad(w + delta*v)", grad(w_plus), shape=wa.shape)
        g_minus = V.array("grad(w - delta*v)", grad(w_minus), shape=wa.shape)
    else:  # float32: every operation below, and inside grad, rounds to float32
        delta = dt(_step("delta", delta, dt))
        wa, va = _in_precision("w", wa, dt), _in_precision("v", va, dt)
        w_plus, w_minus = _perturbed_points(wa, va, delta, dt, check_resolution)
        g_plus = _grad_output("grad(w + delta*v)", grad(w_plus), wa.size, dt)
        g_minus = _grad_output("grad(w - delta*v)", grad(w_minus), wa.size, dt)
    with np.errstate(over="ignore", invalid="ignore"):
        out = (g_plus - g_minus) / (2.0 * delta)
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"delta = {float(delta):.3g} is too small for this gradient: the difference quotient "
            f"[grad(w + delta*v) - grad(w - delta*v)] / (2 delta) overflows {np.dtype(dt).name} "
            "(the gradient changes by a finite amount over a step that is almost zero); use a "
            "larger delta"
        )
    return out


def _perturbed_points(
    w: np.ndarray, v: np.ndarray, delta: float, dt: type, check_resolution: bool
) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`w \pm \delta v` in the working precision ``dt``, or ``ValueError`` if they cannot resolve anything.

    Refused, naming ``delta`` and the range that would work: (a) :math:`\delta v` or
    :math:`2\delta` overflows; (b) ``v != 0`` but both points round to ``w`` in every
    component (``delta`` below the spacing of ``w``: the quotient would be exactly zero,
    whatever the Hessian); (c) ``w != 0`` but both points round to :math:`\pm\delta v` in
    every component where ``w`` is not zero (``delta`` so large that ``w`` is lost: the quotient
    no longer depends on ``w``). ``v = 0`` is allowed: the product is exactly zero.
    (b) and (c) only if ``check_resolution``.
    """
    name = np.dtype(dt).name
    with np.errstate(over="ignore", invalid="ignore"):
        step, two = delta * v, 2.0 * dt(delta)
        w_plus, w_minus = w + step, w - step
    if not (np.all(np.isfinite(w_plus)) and np.all(np.isfinite(w_minus)) and np.isfinite(two)):
        top = float(np.finfo(dt).max) / max(float(np.max(np.abs(v))), 1.0) / 2.0
        raise ValueError(
            f"delta = {float(delta):.3g} overflows {name}: w +- delta*v (or 2 delta) is not "
            f"finite; delta must be well below {top:.3g} for this v"
        )
    if not check_resolution:
        return w_plus, w_minus
    moved = v != 0
    if np.any(moved) and np.array_equal(w_plus, w) and np.array_equal(w_minus, w):
        j = np.flatnonzero(moved)
        spacing = np.spacing(np.abs(w[j]).astype(dt)) / np.abs(v[j])
        raise ValueError(
            f"delta = {float(delta):.3g} cannot resolve anything in {name}: w + delta*v and "
            f"w - delta*v both round to w in every component, so the quotient would be exactly "
            f"zero whatever the Hessian; delta must exceed about {float(np.min(spacing)) / 2:.3g} "
            "for this w and v (and, for accuracy, be far larger: see error_model)"
        )
    j = np.flatnonzero(w != 0)
    if j.size and np.array_equal(w_plus[j], step[j]) and np.array_equal(w_minus[j], -step[j]):
        with np.errstate(divide="ignore"):
            lost = np.abs(w[j]) / np.spacing(np.abs(step[j]).astype(dt)) * delta
        raise ValueError(
            f"delta = {float(delta):.3g} is so large that w is lost in {name}: w +- delta*v "
            f"round to +-delta*v in every component where w is not zero, so the quotient no "
            f"longer depends on w; delta must be below about {float(np.max(lost)):.3g} for this "
            "w and v (and, for accuracy, far smaller: see error_model)"
        )
    return w_plus, w_minus


def theorem_delta(rho: float | np.ndarray, alpha: float, g_norm: object) -> np.ndarray | float:
    r"""The perturbation of the HF-MAML theorem (THEORY T3): :math:`\delta_i = 1/(6\rho\alpha\|g_i\|)`.

    With this :math:`\delta_i`, H1 bounds the error of
    :math:`\alpha d_i` against :math:`\alpha\nabla^2 f_i(w) g_i` by
    :math:`\alpha\rho\delta_i\|g_i\|^2 = \|g_i\|/6`, provided :math:`\rho` is a
    Hessian-Lipschitz constant of the loss whose gradients form :math:`d_i`: with a
    mini-batch :math:`D_h`, of the mini-batch loss (see :func:`welsch_batch_rho`).

    Parameters
    ----------
    rho : float or array
        Hessian-Lipschitz constant(s), each ``> 0``; an array (e.g. one constant per
        mini-batch) must broadcast against ``g_norm``.
    alpha : float
        Inner step size, ``alpha > 0``.
    g_norm : float or array
        Norms :math:`\|g_i\|` of the outer gradients, each ``> 0``.

    Returns
    -------
    float or ndarray
        :math:`\delta_i`, with the broadcast shape of ``rho`` and ``g_norm``
        (a float when both are scalars).
    """
    if np.ndim(rho) == 0:
        r: float | np.ndarray = V.real("rho", rho, lo=0.0, lo_open=True)
    else:
        r = _positive("rho", rho)
    alpha = V.real("alpha", alpha, lo=0.0, lo_open=True)
    g = np.asarray(g_norm, dtype=float)
    if g.size == 0 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(
            "g_norm must hold finite numbers > 0 (the theorem's delta is 1/(6 rho alpha |g|))"
        )
    try:
        shape = np.broadcast_shapes(np.shape(r), g.shape)
    except ValueError:
        raise ValueError(
            f"rho and g_norm must broadcast together; got shapes {np.shape(r)} and {g.shape}"
        ) from None
    out = np.broadcast_to(1.0 / (6.0 * np.asarray(r) * alpha * g), shape)
    return float(out) if out.ndim == 0 else np.array(out)


def hf_deltas(rule: object, norms: np.ndarray, *, rho: float, alpha: float) -> np.ndarray:
    r"""HF-MAML's perturbation :math:`\delta_i` of every row under a rule: the one home of the rule.

    .. math::
        \text{"theorem": } \delta_i = \frac{1}{6\rho\alpha\|g_i\|}\ \text{(THEORY T3)},\qquad
        \text{a float } \delta_0: \delta_i = \delta_0,\qquad
        \text{a callable } r: \delta_i = r(\|g_i\|)

    (:func:`radius_rule` makes the callable :math:`\delta_i = r/\|g_i\|` of the sinusoid
    benchmark, whose perturbed points lie at distance :math:`r` from :math:`w`). Rows with
    :math:`g_i = 0` get :math:`\delta_i = 1` under ``"theorem"`` (their difference is 0 for
    any :math:`\delta`). Unchecked except for the callable's output: the engine
    (:mod:`hfmaml_core.engine`) calls it every iteration with a rule checked once.

    Parameters
    ----------
    rule : "theorem", float or callable
    norms : ndarray
        :math:`\|g_i\|`, any shape.
    rho, alpha : float
        Used by ``"theorem"`` only.

    Returns
    -------
    ndarray
        :math:`\delta_i`, the shape of ``norms``.
    """
    if isinstance(rule, str):  # "theorem": 1 / (6 rho alpha |g_i|), THEORY T3
        safe = np.where(norms > 0, norms, 1.0)
        return np.where(norms > 0, 1.0 / (6.0 * rho * alpha * safe), 1.0)
    if callable(rule):
        out = np.broadcast_to(np.asarray(rule(norms.copy()), dtype=float), norms.shape)
        if not np.all(np.isfinite(out)) or np.any(out <= 0):
            raise ValueError(
                "delta(g_norms) must return finite numbers > 0, broadcastable to g_norms' shape"
            )
        return np.array(out)
    return np.full(norms.shape, float(rule))  # type: ignore[arg-type]


def radius_rule(radius: float) -> Callable[[np.ndarray], np.ndarray]:
    r"""The rule :math:`\delta_i = r/\|g_i\|`: both perturbed points at distance :math:`r` from :math:`w`.

    T3's choice is :math:`r = 1/(6\rho\alpha)`; when :math:`\rho` is unknown (a network) the
    radius is given directly. Rows with :math:`g_i = 0` get :math:`r` divided by the smallest
    normal float (finite; their difference is 0). For :func:`hf_deltas` and
    :func:`hfmaml_core.estimators.direction`'s ``delta``.

    Parameters
    ----------
    radius : float
        :math:`r > 0`.
    """
    r = V.real("radius", radius, lo=0.0, lo_open=True)
    tiny = np.finfo(float).tiny

    def rule(norms: np.ndarray) -> np.ndarray:
        return r / np.maximum(norms, tiny)

    rule.radius = r  # type: ignore[attr-defined]
    return rule


def welsch_batch_rho(X: object) -> np.ndarray:
    r"""Hessian-Lipschitz constant of a Welsch mini-batch loss: the hypothesis behind T3's :math:`\|g_i\|/6`.

    For a batch :math:`D` of inputs :math:`x_j` (the targets do not matter), the mini-batch loss
    :math:`\tilde f(w, D) = \frac1{|D|}\sum_j \phi(x_j^\top w - y_j)`, :math:`\phi(r) = 1 - e^{-r^2/2}`,
    has Hessian :math:`\frac1{|D|}\sum_j \phi''(r_j)\, x_jx_j^\top`, which is :math:`\rho_D`-Lipschitz with

    .. math::
        \rho_D = \max|\phi'''|\;\lambda_{\max}\Bigl(\frac1{|D|}\sum_{j\in D}\|x_j\|\,x_jx_j^\top\Bigr),
        \qquad \rho_{\{\theta\}} = \max|\phi'''|\,\|x_\theta\|^3 .

    *Proof.* For unit :math:`z`, :math:`|z^\top[\nabla^2\tilde f(u) - \nabla^2\tilde f(w)]z| \le
    \frac1{|D|}\sum_j |\phi''(r_j(u)) - \phi''(r_j(w))|\,(x_j^\top z)^2` and
    :math:`|\phi''(r_j(u)) - \phi''(r_j(w))| \le \max|\phi'''|\,\|x_j\|\,\|u - w\|`. For one point the
    constant is attained (:math:`u - w \parallel x_\theta` where :math:`|\phi'''|` is largest). With the
    whole task as the batch it is the task constant :math:`\rho_i` of
    :class:`~hfmaml_core.tasks.WelschRegressionFamily` (THEORY A3); one point's
    :math:`\rho_\theta` can be many times larger. T3 applies H1 to the mini-batch loss on
    :math:`D_h`, so its bound :math:`\|g_i\|/6` needs :math:`\delta_i = 1/(6\rho_{D_h}\alpha\|g_i\|)`
    (:func:`theorem_delta` with ``rho=welsch_batch_rho(...)``), not the task's :math:`\rho`.

    Parameters
    ----------
    X : array, shape (B, D, d)
        The inputs of ``B`` mini-batches of ``D >= 1`` points in dimension ``d >= 1``, finite.

    Returns
    -------
    ndarray, shape (B,)
        :math:`\rho_D` of every batch. Costs :math:`O(B D d^2 + B d^3)`.

    Raises
    ------
    ValueError
        If ``X`` is not a finite real array of shape (B, D, d) with B, D, d >= 1.
    """
    try:
        Xa = np.asarray(X)
    except ValueError:
        raise ValueError("X must be a real array of shape (B, D, d)") from None
    if Xa.ndim != 3 or 0 in Xa.shape:
        raise ValueError(f"X must have shape (B, D, d) with B, D, d >= 1; got shape {Xa.shape}")
    Xa = V.array("X", Xa, shape=(None, None, None))
    norms = np.linalg.norm(Xa, axis=2)  # (B, D)
    M = np.einsum("bj,bjd,bje->bde", norms, Xa, Xa) / Xa.shape[1]
    return WELSCH_MAX_D3 * np.linalg.eigvalsh(M)[:, -1]


def complex_step(
    grad: Callable[[np.ndarray], np.ndarray],
    w: object,
    v: object,
    h: float,
    *,
    dtype: object = np.complex128,
) -> np.ndarray:
    r"""Complex-step approximation of :math:`\nabla^2\varphi(w)\,v`: no subtractive cancellation.

    For a real-analytic :math:`\varphi` whose gradient extends to complex
    arguments (real on real ones), Taylor's theorem in the imaginary direction gives

    .. math::
        \nabla\varphi(w + ihv) = \nabla\varphi(w) + ih\,\nabla^2\varphi(w)v
          - \tfrac{h^2}{2}\nabla^3\varphi(w)[v,v] - \tfrac{ih^3}{6}\nabla^4\varphi(w)[v,v,v]
          + O(h^4),

    so

    .. math::
        \frac{\operatorname{Im}\nabla\varphi(w + ihv)}{h}
          = \nabla^2\varphi(w)v - \tfrac{h^2}{6}\nabla^4\varphi(w)[v,v,v] + O(h^4).

    The truncation error has the size of the central difference's (THEORY H1),
    but no two nearby numbers are subtracted, so ``h`` can be taken tiny and the
    result is accurate to working precision.

    Parameters
    ----------
    grad : callable
        ``grad(z) -> complex ndarray of shape (d,)`` for complex ``z`` of shape
        (d,), of the same complex dtype as ``z``. It must use complex-analytic
        operations only (no ``abs``, comparisons or clipping of ``z``).
    w : array, shape (d,)
        Real point at which the Hessian acts.
    v : array, shape (d,)
        Real direction.
    h : float
        Imaginary step, ``h > 0`` and a normal number of the working precision
        (``1e-100`` is fine in complex128).
    dtype : {complex128, complex64}, optional
        Working precision of the complex arithmetic.

    Returns
    -------
    ndarray, shape (d,)
        :math:`\operatorname{Im}\nabla\varphi(w+ihv)/h`, float64 (float32 for complex64).

    Raises
    ------
    ValueError
        If ``grad`` is not callable, ``dtype`` is not complex128 or complex64,
        ``w`` or ``v`` is not a finite real 1-D array of matching length
        (representable in the working precision), ``h`` is out of range, or
        ``grad`` returns something other than a finite array of shape (d,) of
        the working dtype.
    """
    if not callable(grad):
        raise ValueError(
            f"grad must be callable as grad(z) -> complex array of shape (d,); got {type(grad).__name__}"
        )
    ct = _dtype("dtype", dtype, _COMPLEX_DTYPES)
    rt = np.float64 if ct is np.complex128 else np.float32
    wa = V.array("w", w, shape=(None,))
    va = V.array("v", v, shape=wa.shape)
    hr = rt(_step("h", h, rt))
    z = np.empty(wa.size, dtype=ct)
    z.real = _in_precision("w", wa, rt)
    hv = _in_precision("h*v", va * float(hr), rt)
    if np.any((va != 0) & (np.abs(hv) < np.finfo(rt).tiny)):
        raise ValueError(
            f"h*v must stay a normal {np.dtype(rt).name} number where v != 0 (an underflowing "
            f"imaginary part loses digits); got h={float(hr)!r}, min |v| = {np.abs(va[va != 0]).min()!r}"
        )
    z.imag = hv
    g = _grad_output("grad(w + i*h*v)", grad(z), wa.size, ct)
    return g.imag / hr


def error_model(delta: object, trunc: float, scale: float, eps: float) -> np.ndarray | float:
    r"""Truncation + rounding model of the central-difference error (THEORY H1).

    .. math:: E(\delta) = a\,\delta^2 + \frac{\varepsilon\,s}{\delta}.

    *Truncation*: for a smooth :math:`\varphi` the central difference is
    :math:`\nabla^2\varphi(w)v + \tfrac{\delta^2}{6}\nabla^4\varphi(w)[v,v,v] + O(\delta^4)`,
    so :math:`a = \|\nabla^4\varphi(w)[v,v,v]\|/6`. *Rounding*: each computed
    gradient is off by about :math:`\varepsilon s` (machine epsilon times the
    gradient's size :math:`s`); the two errors do not cancel, and dividing their
    difference (at most :math:`2\varepsilon s`) by :math:`2\delta` gives
    :math:`\varepsilon s/\delta`.

    Parameters
    ----------
    delta : float or array
        Perturbation sizes, each ``> 0``.
    trunc : float
        Truncation coefficient :math:`a > 0`.
    scale : float
        Rounding scale :math:`s > 0` (e.g. :math:`\|\nabla\varphi(w)\|`).
    eps : float
        Machine epsilon of the working precision, in ``(0, 1)``.

    Returns
    -------
    float or ndarray
        :math:`E(\delta)`, with the shape of ``delta``.
    """
    a, s, e = _model_constants(trunc, scale, eps)
    d = _positive("delta", delta)
    out = a * d * d + e * s / d
    return float(out) if out.ndim == 0 else out


def optimal_delta(trunc: float, scale: float, eps: float) -> tuple[float, float]:
    r"""Minimiser and minimum of :func:`error_model`: the predicted best :math:`\delta` and error floor.

    Setting :math:`E'(\delta) = 2a\delta - \varepsilon s/\delta^2 = 0`:

    .. math::
        \delta^\star = \Bigl(\frac{\varepsilon s}{2a}\Bigr)^{1/3}, \qquad
        E(\delta^\star) = 3a\,(\delta^\star)^2 = \tfrac32\,\frac{\varepsilon s}{\delta^\star}.

    So :math:`\delta^\star \propto \varepsilon^{1/3}` and the floor
    :math:`\propto \varepsilon^{2/3}`: about 1e-5 and 1e-10 in float64,
    5e-3 and 1e-4 in float32, for :math:`a, s` of order 1.

    Parameters
    ----------
    trunc, scale, eps : float
        As in :func:`error_model`.

    Returns
    -------
    (float, float)
        :math:`\delta^\star` and :math:`E(\delta^\star)`.
    """
    a, s, e = _model_constants(trunc, scale, eps)
    d = (e * s / (2.0 * a)) ** (1.0 / 3.0)
    return d, 3.0 * a * d * d


def _positive(name: str, value: object) -> np.ndarray:
    """``value`` as a float array (any shape, non-empty) of finite numbers > 0."""
    try:
        arr = np.asarray(value)
    except Exception:  # pragma: no cover - exotic objects
        arr = np.asarray([np.nan])
    if arr.dtype.kind not in "fiu" or arr.size == 0:
        raise ValueError(f"{name} must hold finite real numbers > 0; got {value!r}")
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must hold finite real numbers > 0; got {value!r}")
    return arr


def _model_constants(trunc: object, scale: object, eps: object) -> tuple[float, float, float]:
    a = V.real("trunc", trunc, lo=0.0, lo_open=True)
    s = V.real("scale", scale, lo=0.0, lo_open=True)
    e = V.real("eps", eps, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    return a, s, e


def delta_rule(
    rule: str,
    g_norm: object,
    *,
    rho: float | None = None,
    alpha: float | None = None,
    fixed: float = 1e-3,
) -> np.ndarray | float:
    r"""The perturbation :math:`\delta` of HF-MAML's :math:`d_i` under a named rule (THEORY T3).

    .. math::
        \text{fixed: } \delta = \delta_0, \qquad
        \text{per-tensor: } \delta = \frac{1}{6\|g\|}, \qquad
        \text{theorem: } \delta_i = \frac{1}{6\rho\alpha\|g_i\|}.

    ``"per-tensor"`` is the rule of some public HF-MAML implementations, which
    compute it from the norm of each parameter tensor's gradient; for a model
    whose parameters form one vector it is the theorem's rule with
    :math:`\rho\alpha` replaced by 1. ``"theorem"`` is :func:`theorem_delta`.

    Parameters
    ----------
    rule : {"fixed", "per-tensor", "theorem"}
    g_norm : float or array
        :math:`\|g_i\|`, each a finite number > 0.
    rho, alpha : float, optional
        Required (each > 0) for ``"theorem"`` only.
    fixed : float
        :math:`\delta_0 > 0` for ``"fixed"``.

    Returns
    -------
    float or ndarray
        :math:`\delta`, with the shape of ``g_norm``.
    """
    V.choice("rule", rule, DELTA_RULES)
    g = _positive("g_norm", g_norm)
    if rule == "theorem":
        if rho is None or alpha is None:
            raise ValueError("rule 'theorem' needs rho > 0 and alpha > 0; got rho or alpha None")
        return theorem_delta(rho, alpha, g)
    if rule == "fixed":
        d0 = V.real("fixed", fixed, lo=0.0, lo_open=True)
        out = np.full(g.shape, d0)
    else:
        out = 1.0 / (6.0 * g)
    return float(out) if out.ndim == 0 else out
