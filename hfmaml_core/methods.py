r"""The one table of the three methods: name, label, colour, theorem, step constant, :math:`\alpha` range.

=========  =========  ======  =======  ==========================  ==========================
name       label      colour  theorem  step constant :math:`c`     :math:`\alpha` range
=========  =========  ======  =======  ==========================  ==========================
maml       MAML       blue    T1       :math:`1/12`                :math:`0 < \alpha \le 1/L`
fomaml     FO-MAML    orange  T2       :math:`1/18`                :math:`0 < \alpha \le 1/(10L)`
hfmaml     HF-MAML    green   T3       :math:`1/25`                :math:`0 < \alpha \le 1/(6L)`
=========  =========  ======  =======  ==========================  ==========================

The step of the theorems is :math:`\beta_k = c/\tilde L(w_k)` (THEORY "Step size"); the
:math:`\alpha` range is the theorem's hypothesis, in units of :math:`1/L`. Every other table of
the library is a view of this one: :data:`hfmaml_core.stepsize.STEP_CONSTANTS`,
:data:`hfmaml_core.runner.ALPHA_MAX`, :data:`hfmaml_core.estimators.METHODS` (the names),
:data:`hfmaml_core.sinusoid.METHODS` (the labels) and :data:`hfmaml_core.plotting.METHOD_COLORS`
(colour by label). Notebooks and benchmarks take labels and colours from here
(:func:`label`, :func:`color`), by either the name or the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from . import _validate as V

__all__ = [
    "BY_LABEL",
    "LABELS",
    "METHODS",
    "NAMES",
    "TABLE",
    "Method",
    "color",
    "get",
    "label",
]

#: Okabe & Ito (2008) blue, vermillion, bluish green (``plotting.PALETTE[0:3]``).
_COLOURS = ("#0072B2", "#D55E00", "#009E73")


@dataclass(frozen=True)
class Method:
    """One method of the table.

    Attributes
    ----------
    name : str
        The library's name (``"maml"``, ``"fomaml"``, ``"hfmaml"``).
    label : str
        The name in figures and prose (``"MAML"``, ``"FO-MAML"``, ``"HF-MAML"``).
    color : str
        Its colour in every figure.
    theorem : str
        Its THEORY item (``"T1"``, ``"T2"``, ``"T3"``).
    step_constant : float
        :math:`c` of the theorem's step :math:`\\beta_k = c/\\tilde L(w_k)`.
    alpha_max : float
        The theorem's largest inner step in units of :math:`1/L`.
    alpha_text : str
        That bound as a formula (``"1/L"``, ``"1/(10L)"``, ``"1/(6L)"``).
    """

    name: str
    label: str
    color: str
    theorem: str
    step_constant: float
    alpha_max: float
    alpha_text: str


#: The table, in the order of the theory (T1, T2, T3).
TABLE: tuple[Method, ...] = (
    Method("maml", "MAML", _COLOURS[0], "T1", 1.0 / 12.0, 1.0, "1/L"),
    Method("fomaml", "FO-MAML", _COLOURS[1], "T2", 1.0 / 18.0, 0.1, "1/(10L)"),
    Method("hfmaml", "HF-MAML", _COLOURS[2], "T3", 1.0 / 25.0, 1.0 / 6.0, "1/(6L)"),
)
#: Method by name (read-only).
METHODS = MappingProxyType({m.name: m for m in TABLE})
#: Method by label (read-only).
BY_LABEL = MappingProxyType({m.label: m for m in TABLE})
#: The names and the labels, in table order.
NAMES: tuple[str, ...] = tuple(m.name for m in TABLE)
LABELS: tuple[str, ...] = tuple(m.label for m in TABLE)


def get(method: str) -> Method:
    """The table's row for a method given by name (``"maml"``) or label (``"MAML"``)."""
    if isinstance(method, str) and method in BY_LABEL:
        return BY_LABEL[method]
    return METHODS[V.choice("method", method, NAMES + LABELS)]


def label(method: str) -> str:
    """The label of a method given by name or label (``label("hfmaml") == "HF-MAML"``)."""
    return get(method).label


def color(method: str) -> str:
    """The colour of a method given by name or label."""
    return get(method).color
