"""Argument checks shared by the public API.

Every public function checks its arguments *before* doing any work and raises
``ValueError`` with a message that names the parameter and the allowed range,
for example ``"delta must be a finite number > 0; got -1.0"``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np


def _fmt(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def real(
    name: str,
    value: object,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Return ``value`` as a float after checking it is a finite real in the range.

    ``lo``/``hi`` are bounds (``None``: unbounded); ``lo_open``/``hi_open`` make
    them strict.
    """
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    lo_txt = "-inf" if lo is None else f"{lo:g}"
    hi_txt = "inf" if hi is None else f"{hi:g}"
    if lo is not None and hi is None:
        allowed = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    elif hi is not None and lo is None:
        allowed = f"a finite number {'<' if hi_open else '<='} {hi:g}"
    elif lo is None and hi is None:
        allowed = "a finite number"
    else:
        allowed = f"a finite number in {left}{lo_txt}, {hi_txt}{right}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "fiu":
            value = value.item()
        else:
            raise ValueError(f"{name} must be {allowed}; got {_fmt(value)}")
    x = float(value)
    bad = not math.isfinite(x)
    if lo is not None:
        bad = bad or (x <= lo if lo_open else x < lo)
    if hi is not None:
        bad = bad or (x >= hi if hi_open else x > hi)
    if bad:
        raise ValueError(f"{name} must be {allowed}; got {_fmt(value)}")
    return x


def integer(name: str, value: object, *, lo: int = 1, hi: int | None = None) -> int:
    """Return ``value`` as an int after checking ``lo <= value (<= hi)``."""
    allowed = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {allowed}; got {_fmt(value)}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name} must be {allowed}; got {v}")
    return v


def array(
    name: str,
    value: object,
    *,
    shape: Sequence[int | None],
    dtype: type = np.float64,
) -> np.ndarray:
    """Return ``value`` as a finite float array of the given shape.

    ``None`` in ``shape`` matches any length. Complex input is refused (the
    kernels are real); lists are accepted.
    """
    dims = ", ".join("n" if s is None else str(s) for s in shape)
    want = f"({dims},)" if len(shape) == 1 else f"({dims})"
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise ValueError(f"{name} must be a real array of shape {want}; got {_fmt(value)}") from exc
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real array of shape {want}; got dtype {arr.dtype}")
    if arr.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, arr.shape, strict=True)
    ):
        raise ValueError(f"{name} must have shape {want}; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty with shape {want}; got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values (no nan or inf)")
    return arr


def choice(name: str, value: object, allowed: Sequence[str]) -> str:
    """Check that ``value`` is one of the ``allowed`` strings."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, allowed))}; got {_fmt(value)}"
        )
    return value


def probabilities(name: str, value: object, n: int) -> np.ndarray:
    """Check a probability vector of length ``n``: finite, >= 0, summing to 1 (to 1e-9)."""
    p = array(name, value, shape=(n,))
    if np.any(p < 0):
        raise ValueError(f"{name} must be >= 0 entrywise; got min {p.min()!r}")
    total = float(p.sum())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"{name} must sum to 1 (within 1e-9); got sum {total!r}")
    return p


def generator(rng: object, name: str = "rng") -> np.random.Generator:
    """Return ``rng`` if it is a seeded ``numpy.random.Generator``; otherwise raise.

    Every random draw of the library comes from a generator the caller made with
    ``np.random.default_rng(seed)``; the legacy global state is refused.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)); "
            f"got {type(rng).__name__}"
        )
    return rng
