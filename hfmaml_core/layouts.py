"""Which network kernels for which shape: the dense or the factored layout (issue 15).

:func:`hfmaml_core.sinusoid.meta_directions` computes the three directions through the one
engine with either :class:`hfmaml_core.mlp.NetworkKernels` (per-task rows as a ``B x P``
array) or :class:`hfmaml_core.factored.FactoredNetworkKernels` (per-task rows as the shared
``w`` plus rank-``K`` factors). This module holds the choice (:data:`KERNELS`,
:data:`FACTORED_FROM`, :func:`network_kernels`) and the memory estimate that refuses, before
any work, a call that would not fit (:func:`direction_memory`, :func:`check_memory`).
"""

from __future__ import annotations

import numpy as np

from . import _validate as V
from .factored import FactoredNetworkKernels
from .mlp import MLP, NetworkKernels
from .runner import machine_memory

__all__ = [
    "FACTORED_FROM",
    "KERNELS",
    "check_memory",
    "direction_memory",
    "layout",
    "network_kernels",
]

#: How :func:`hfmaml_core.sinusoid.meta_directions` lays out the per-task work: ``"dense"``,
#: the per-task parameter rows as a ``B x P`` array (:class:`hfmaml_core.mlp.NetworkKernels`); ``"factored"``, every
#: per-task row as the shared ``w`` plus rank-``K`` factors, no ``B x P`` array
#: (:class:`hfmaml_core.factored.FactoredNetworkKernels`); ``"auto"`` (the default), dense for
#: networks below :data:`FACTORED_FROM` parameters and factored from there. Same mathematics,
#: the sums in another order (the two agree to rounding: ``tests/test_factored.py``).
KERNELS: tuple[str, ...] = ("auto", "dense", "factored")

#: The size ``P`` from which ``kernels="auto"`` takes the factored kernels: below it the dense
#: layout's few large NumPy calls beat the factored one's many thin ones; above it the dense
#: layout's ``B x P`` temporaries (memory traffic) lose. ``benchmarks/network_scaling.py`` times
#: both layouts at every width: dense wins at its smallest (``P = 1761``), factored from the next
#: (``P = 6721``) on; any switch between the two fits those data, and this one keeps the
#: benchmark's 1-40-40-1 network (notebook 05) on the dense layout it was written with.
FACTORED_FROM: int = 5000


def direction_memory(net: MLP, lead: tuple[int, ...], k: int, kernels: str = "auto") -> int:
    r"""Bytes the directions of one call hold at once, by the sizes, in the layout ``kernels``.

    Dense: about 12 arrays of :math:`RB\times P` entries (points, gradients, HF-MAML's two
    perturbed points stacked, the rows :math:`u_i`); factored: about 40 arrays of
    :math:`RB\times 2K\times n_{\max}` activations and factors, and 8 of ``P`` (the shared
    point and the means). Float64, 8 bytes an entry; an estimate for refusing sizes up front.
    """
    if not isinstance(net, MLP):
        raise ValueError(f"net must be an hfmaml_core.mlp.MLP; got {type(net).__name__}")
    k = V.integer("k", k, lo=1)
    lead = tuple(V.integer("lead", n, lo=1) for n in lead)
    rows = int(np.prod(lead, dtype=np.int64))
    P = net.n_params
    if layout(net, kernels) == "dense":
        return 8 * 12 * rows * P
    runs = rows // lead[-1] if lead else 1
    return 8 * (40 * rows * 2 * k * max(net.sizes) + 8 * runs * P)


def layout(net: MLP, kernels: str) -> str:
    """``"dense"`` or ``"factored"``: what ``kernels`` (one of :data:`KERNELS`) means for ``net``.

    ``"auto"`` reads this module's :data:`FACTORED_FROM` at every call (so setting
    ``hfmaml_core.layouts.FACTORED_FROM`` moves the switch; ``sinusoid.FACTORED_FROM`` is a copy).
    """
    kernels = V.choice("kernels", kernels, KERNELS)
    if kernels == "auto":
        return "factored" if net.n_params >= FACTORED_FROM else "dense"
    return kernels


def check_memory(net: MLP, lead: tuple[int, ...], k: int, kernels: str) -> None:
    """Refuse, before any work, sizes whose directions would not fit in this machine."""
    total = machine_memory()
    need = direction_memory(net, lead, k, kernels)
    if total is not None and need > total:
        raise ValueError(
            f"the directions of this call would hold about {need / 2**30:.3g} GiB in the "
            f"{layout(net, kernels)} layout (net sizes {net.sizes}, {int(np.prod(lead))} task "
            f"rows of {k} points), more than this machine's {total / 2**30:.3g} GiB: lower the "
            "network's width or the number of tasks or runs"
            + ("" if layout(net, kernels) == "factored" else ", or pass kernels='factored'")
        )


def network_kernels(net: MLP, kernels: str = "auto") -> NetworkKernels | FactoredNetworkKernels:
    """The engine kernels :func:`hfmaml_core.sinusoid.meta_directions` uses for ``net`` (see :data:`KERNELS`)."""
    if not isinstance(net, MLP):
        raise ValueError(f"net must be an hfmaml_core.mlp.MLP; got {type(net).__name__}")
    return (
        FactoredNetworkKernels(net) if layout(net, kernels) == "factored" else NetworkKernels(net)
    )
