"""Recording the claims a notebook verifies.

A *claim* compares a measured number with a bound or an expected value taken
from a THEORY item, and records whether it holds. Notebooks record claims with
:class:`ClaimRecorder`; ``make figures`` gathers every notebook's claims into
``figures/claims.json`` and renders ``figures/VERIFICATION.md``, and fails when
any claim does not hold. A claim is a check that can fail: its verdict is
computed here from the numbers, never passed in.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import paths
from ._io import write_text_atomic

__all__ = ["THEORY_ITEMS", "Claim", "ClaimRecorder", "RELATIONS"]

#: The numbered items of THEORY.md a claim may cite.
THEORY_ITEMS = (
    "S1", "S2", "A1", "A2", "A3", "A4", "A5", "H1",
    "L1", "L2", "L3", "L4", "T1", "T2", "T3",
)  # fmt: skip

#: Relations between ``measured`` and ``bound``.
RELATIONS = {
    "<=": "measured <= bound",
    "<": "measured < bound",
    ">=": "measured >= bound",
    ">": "measured > bound",
    "==": "|measured - bound| <= tolerance",
    "in": "bound[0] <= measured <= bound[1]",
}

_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


@dataclass(frozen=True)
class Claim:
    """One verified (or refuted) claim; ``holds`` is computed, not given."""

    id: str
    theory: str
    notebook: str
    statement: str
    measured: float | None
    relation: str
    bound: float | list[float]
    holds: bool
    tolerance: float | None = None
    uncertainty: float | None = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _finite(name: str, x: object) -> float:
    if isinstance(x, bool):
        raise ValueError(f"{name} must be a real number; got {x!r}")
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number; got {x!r}") from None
    return v


def _evaluate(measured: float, relation: str, bound: object, tolerance: float | None) -> bool:
    if not math.isfinite(measured):
        return False
    if relation == "in":
        lo, hi = bound  # type: ignore[misc]
        return lo <= measured <= hi
    b = float(bound)  # type: ignore[arg-type]
    return {
        "<=": measured <= b,
        "<": measured < b,
        ">=": measured >= b,
        ">": measured > b,
        "==": abs(measured - b) <= (tolerance or 0.0),
    }[relation]


class ClaimRecorder:
    """Collects a notebook's claims and saves them for ``make figures``.

    Examples
    --------
    >>> rec = ClaimRecorder("00_task_families")
    >>> c = rec.check("h1-worst-ratio", "H1", "central-difference error / (rho delta |v|^2)",
    ...               measured=0.41, relation="<=", bound=1.0)
    >>> c.holds
    True
    """

    def __init__(self, notebook: str) -> None:
        if not isinstance(notebook, str) or not notebook:
            raise ValueError(
                f"notebook must be the notebook's name (a non-empty string); got {notebook!r}"
            )
        self.notebook = notebook
        self.claims: list[Claim] = []

    def check(
        self,
        id: str,
        theory: str,
        statement: str,
        *,
        measured: float,
        bound: float | tuple[float, float],
        relation: str = "<=",
        tolerance: float | None = None,
        uncertainty: float | None = None,
        details: dict | None = None,
    ) -> Claim:
        """Record that ``measured <relation> bound`` and return the claim.

        Parameters
        ----------
        id : str
            Unique within the notebook: lower-case letters, digits, ``. _ -``.
        theory : str
            The THEORY item, one of :data:`THEORY_ITEMS`.
        statement : str
            One sentence a reader can check the numbers against.
        measured : float
            The measured number. A non-finite value makes the claim fail.
        bound : float or (lo, hi)
            The bound or expected value; a pair for ``relation="in"``.
        relation : str
            One of :data:`RELATIONS`.
        tolerance : float, optional
            Required (>= 0) for ``"=="``, refused otherwise.
        uncertainty : float, optional
            Standard error of ``measured`` when it is a Monte Carlo estimate (reported).
        details : dict, optional
            Extra JSON-serialisable numbers shown in the report (e.g. fitted intervals).
        """
        if not isinstance(id, str) or not _ID.match(id):
            raise ValueError(f"id must match {_ID.pattern}; got {id!r}")
        if any(c.id == id for c in self.claims):
            raise ValueError(f"id must be unique within the notebook; {id!r} was already recorded")
        if theory not in THEORY_ITEMS:
            raise ValueError(f"theory must be one of {', '.join(THEORY_ITEMS)}; got {theory!r}")
        if not isinstance(statement, str) or not statement.strip():
            raise ValueError("statement must be a non-empty sentence")
        if relation not in RELATIONS:
            raise ValueError(
                f"relation must be one of {', '.join(map(repr, RELATIONS))}; got {relation!r}"
            )
        m = _finite("measured", measured)
        if relation == "in":
            try:
                lo, hi = (float(x) for x in bound)  # type: ignore[union-attr]
            except (TypeError, ValueError):
                raise ValueError(
                    f"bound must be a pair (lo, hi) for relation 'in'; got {bound!r}"
                ) from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(
                    f"bound must be finite with lo <= hi for relation 'in'; got {bound!r}"
                )
            b: float | list[float] = [lo, hi]
        else:
            b = _finite("bound", bound)
            if not math.isfinite(b):
                raise ValueError(
                    f"bound must be a finite number (an infinite bound cannot fail); got {b!r}"
                )
        if relation == "==":
            if tolerance is None or not float(tolerance) >= 0:
                raise ValueError(
                    f"tolerance must be a number >= 0 for relation '=='; got {tolerance!r}"
                )
            tolerance = float(tolerance)
        elif tolerance is not None:
            raise ValueError(
                f"tolerance is only used with relation '=='; got relation {relation!r}"
            )
        if uncertainty is not None:
            uncertainty = _finite("uncertainty", uncertainty)
        details = dict(details or {})
        json.dumps(details, allow_nan=False)  # fail now, not at save time
        claim = Claim(
            id=id,
            theory=theory,
            notebook=self.notebook,
            statement=statement.strip(),
            measured=m if math.isfinite(m) else None,
            relation=relation,
            bound=b,
            holds=_evaluate(m, relation, b, tolerance),
            tolerance=tolerance,
            uncertainty=uncertainty,
            details=details,
        )
        self.claims.append(claim)
        mark = "holds" if claim.holds else "DOES NOT HOLD"
        print(
            f"[{theory}] {id}: measured {m:.6g} {relation} {b if relation == 'in' else format(b, '.6g')} -> {mark}"
        )
        return claim

    @property
    def failed(self) -> list[Claim]:
        """The recorded claims that do not hold."""
        return [c for c in self.claims if not c.holds]

    def save(self) -> Path:
        """Write ``claims-<notebook>.json`` into the output folder (atomically) and return its path."""
        if not self.claims:
            raise ValueError(f"notebook {self.notebook!r} recorded no claims: nothing was verified")
        path = paths.output_dir() / f"claims-{self.notebook}.json"
        payload = {"notebook": self.notebook, "claims": [c.as_dict() for c in self.claims]}
        write_text_atomic(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")
        return path
