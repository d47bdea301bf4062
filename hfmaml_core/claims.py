"""Recording the claims a notebook verifies.

A *claim* compares a measured number with a bound or an expected value and
records whether it holds. Every claim has a *kind* (:data:`KINDS`):

``theory``
    a measurement compared with a bound, constant, rate or condition of a THEORY item;
``finding``
    a measured result THEORY does not state: a sharper constant, a contradiction,
    a counterexample, a tightness witness;
``check``
    consistency of the library or of the experimental setup (a closed form
    reproduced, a family's constants, a hypothesis verified for the runs that follow);
``performance``
    a machine measurement (times, memory, their ratios).

A ``theory`` or ``finding`` claim must carry a *control*: the same measurement,
run on a case where the statement is expected to be false (a nearby wrong
constant, a violated hypothesis, a batch below a threshold, a deliberately
wrong estimator). The control is compared with the same relation and bound
(unless it names its own) and must come out *not* holding; a control that
holds means the check cannot tell right from wrong, and ``make figures``
fails exactly as for a claim that does not hold. A claim for which no
meaningful control exists is a ``check``, not ``theory``.

Notebooks record claims with :class:`ClaimRecorder`; ``make figures`` gathers
every notebook's claims into ``figures/claims.json`` and renders
``figures/VERIFICATION.md``. Verdicts are computed here from the numbers,
never passed in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import paths
from ._io import write_text_atomic

__all__ = ["KINDS", "THEORY_ITEMS", "Claim", "ClaimRecorder", "Control", "RELATIONS"]

#: The numbered items of THEORY.md a claim may cite.
THEORY_ITEMS = (
    "S1", "S2", "A1", "A2", "A3", "A4", "A5", "H1",
    "L1", "L2", "L3", "L4", "T1", "T2", "T3", "M1", "M2", "M3", "M4",
)  # fmt: skip

#: The kinds of claim, with the sentence the report uses for each.
KINDS = {
    "theory": "a measurement compared with a bound, constant, rate or condition of a THEORY item",
    "finding": "a measured result THEORY does not state (a sharper constant, a contradiction, "
    "a counterexample, a tightness witness)",
    "check": "consistency of the library or of the experimental setup",
    "performance": "a machine measurement (times, memory, their ratios)",
}

#: Kinds that must carry a control that does not hold.
CONTROLLED_KINDS = ("theory", "finding")

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
class Control:
    """The claim's measurement on a case where its statement should be false.

    ``holds`` is computed like a claim's; a control *discriminates* when it is False.
    """

    statement: str
    measured: float | None
    relation: str
    bound: float | list[float]
    holds: bool
    tolerance: float | None = None
    uncertainty: float | None = None


@dataclass(frozen=True)
class Claim:
    """One verified (or refuted) claim; ``holds`` is computed, not given."""

    id: str
    kind: str
    theory: str | None
    notebook: str
    statement: str
    measured: float | None
    relation: str
    bound: float | list[float]
    holds: bool
    tolerance: float | None = None
    uncertainty: float | None = None
    details: dict = field(default_factory=dict)
    control: Control | None = None

    @property
    def discriminates(self) -> bool:
        """False when the claim's control holds (the check cannot tell right from wrong)."""
        return self.control is None or not self.control.holds

    @property
    def ok(self) -> bool:
        """The claim holds and its control (if any) does not."""
        return self.holds and self.discriminates

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


def _comparison(
    relation: str, bound: object, tolerance: object, where: str = ""
) -> tuple[float | list[float], float | None]:
    """Validate ``relation``, ``bound`` and ``tolerance``; return the normalised bound and tolerance."""
    if relation not in RELATIONS:
        raise ValueError(
            f"{where}relation must be one of {', '.join(map(repr, RELATIONS))}; got {relation!r}"
        )
    if relation == "in":
        try:
            lo, hi = (float(x) for x in bound)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}bound must be a pair (lo, hi) for relation 'in'; got {bound!r}"
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(
                f"{where}bound must be finite with lo <= hi for relation 'in'; got {bound!r}"
            )
        b: float | list[float] = [lo, hi]
    else:
        b = _finite(f"{where}bound", bound)
        if not math.isfinite(b):
            raise ValueError(
                f"{where}bound must be a finite number (an infinite bound cannot fail); got {b!r}"
            )
    tol: float | None = None
    if relation == "==":
        if tolerance is None or not float(tolerance) >= 0:  # type: ignore[arg-type]
            raise ValueError(
                f"{where}tolerance must be a number >= 0 for relation '=='; got {tolerance!r}"
            )
        tol = float(tolerance)  # type: ignore[arg-type]
    elif tolerance is not None:
        raise ValueError(
            f"{where}tolerance is only used with relation '=='; got relation {relation!r}"
        )
    return b, tol


def _fmt_bound(relation: str, bound: float | list[float]) -> str:
    return str(bound) if relation == "in" else format(bound, ".6g")


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
    >>> rec = ClaimRecorder("02_hessian_vector_products")
    >>> c = rec.check(
    ...     "h1-worst-ratio", "H1", "central-difference error / (rho delta |v|^2) <= 1",
    ...     kind="theory", measured=0.41, relation="<=", bound=1.0,
    ...     control={"statement": "the same with the Hessian term dropped", "measured": 7.3},
    ... )
    >>> c.holds, c.control.holds
    (True, False)
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
        theory: str | None,
        statement: str,
        *,
        kind: str,
        measured: float,
        bound: float | tuple[float, float],
        relation: str = "<=",
        tolerance: float | None = None,
        uncertainty: float | None = None,
        details: dict | None = None,
        control: Mapping | None = None,
    ) -> Claim:
        """Record that ``measured <relation> bound`` and return the claim.

        Parameters
        ----------
        id : str
            Unique within the notebook: lower-case letters, digits, ``. _ -``.
        theory : str or None
            The THEORY item, one of :data:`THEORY_ITEMS`; ``None`` is allowed
            only for ``check`` and ``performance`` claims that belong to no item.
        statement : str
            One sentence a reader can check the numbers against; a loose bound
            states its slack here.
        kind : str
            One of :data:`KINDS`.
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
            Extra JSON-serialisable numbers shown in ``claims.json`` (e.g. fitted intervals).
        control : mapping, optional; required for ``theory`` and ``finding``
            The same measurement where the statement should be false:
            ``{"statement": ..., "measured": ...}`` and optionally ``relation``,
            ``bound``, ``tolerance`` (default: the claim's) and ``uncertainty``.
            It must come out *not* holding; if it holds, the claim is recorded
            as unable to discriminate and ``make figures`` fails.
        """
        if not isinstance(id, str) or not _ID.match(id):
            raise ValueError(f"id must match {_ID.pattern}; got {id!r}")
        if any(c.id == id for c in self.claims):
            raise ValueError(f"id must be unique within the notebook; {id!r} was already recorded")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}")
        if theory is None:
            if kind in CONTROLLED_KINDS:
                raise ValueError(
                    f"theory must be one of {', '.join(THEORY_ITEMS)} for a {kind!r} claim; "
                    "only 'check' and 'performance' claims may have theory=None"
                )
        elif theory not in THEORY_ITEMS:
            raise ValueError(f"theory must be one of {', '.join(THEORY_ITEMS)}; got {theory!r}")
        if not isinstance(statement, str) or not statement.strip():
            raise ValueError("statement must be a non-empty sentence")
        m = _finite("measured", measured)
        b, tol = _comparison(relation, bound, tolerance)
        if uncertainty is not None:
            uncertainty = _finite("uncertainty", uncertainty)
        ctrl = self._control(control, relation, b, tol, kind)
        details = dict(details or {})
        json.dumps(details, allow_nan=False)  # fail now, not at save time
        claim = Claim(
            id=id,
            kind=kind,
            theory=theory,
            notebook=self.notebook,
            statement=statement.strip(),
            measured=m if math.isfinite(m) else None,
            relation=relation,
            bound=b,
            holds=_evaluate(m, relation, b, tol),
            tolerance=tol,
            uncertainty=uncertainty,
            details=details,
            control=ctrl,
        )
        self.claims.append(claim)
        mark = "holds" if claim.holds else "DOES NOT HOLD"
        line = f"[{theory or '-'} {kind}] {id}: measured {m:.6g} {relation} {_fmt_bound(relation, b)} -> {mark}"
        if ctrl is not None:
            cm = float("nan") if ctrl.measured is None else ctrl.measured
            verdict = (
                "fails, as it should" if not ctrl.holds else "HOLDS: the check cannot discriminate"
            )
            line += (
                f"; control {cm:.6g} {ctrl.relation} {_fmt_bound(ctrl.relation, ctrl.bound)}"
                f" -> {verdict}"
            )
        print(line)
        return claim

    @staticmethod
    def _control(
        control: Mapping | None,
        relation: str,
        bound: float | list[float],
        tolerance: float | None,
        kind: str,
    ) -> Control | None:
        if control is None:
            if kind in CONTROLLED_KINDS:
                raise ValueError(
                    f"control is required for a {kind!r} claim: the same measurement on a case "
                    "where the statement should be false (a claim with no meaningful control "
                    "is a 'check')"
                )
            return None
        if not isinstance(control, Mapping):
            raise ValueError(
                "control must be a mapping with 'statement' and 'measured' "
                f"(and optionally 'relation', 'bound', 'tolerance', 'uncertainty'); got {control!r}"
            )
        allowed = {"statement", "measured", "relation", "bound", "tolerance", "uncertainty"}
        unknown = set(control) - allowed
        if unknown:
            raise ValueError(
                f"control has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        st = control.get("statement")
        if not isinstance(st, str) or not st.strip():
            raise ValueError("control statement must be a non-empty sentence")
        if "measured" not in control:
            raise ValueError("control measured is required")
        cm = _finite("control measured", control["measured"])
        c_rel = control.get("relation", relation)
        c_bound, c_tol = _comparison(
            c_rel,
            control.get("bound", bound),
            control.get("tolerance", tolerance if c_rel == "==" else None),
            where="control ",
        )
        cu = control.get("uncertainty")
        return Control(
            statement=st.strip(),
            measured=cm if math.isfinite(cm) else None,
            relation=c_rel,
            bound=c_bound,
            holds=_evaluate(cm, c_rel, c_bound, c_tol),
            tolerance=c_tol,
            uncertainty=None if cu is None else _finite("control uncertainty", cu),
        )

    @property
    def failed(self) -> list[Claim]:
        """The recorded claims that do not hold, or whose control holds."""
        return [c for c in self.claims if not c.ok]

    def save(self) -> Path:
        """Write ``claims-<notebook>.json`` into the output folder (atomically) and return its path."""
        if not self.claims:
            raise ValueError(f"notebook {self.notebook!r} recorded no claims: nothing was verified")
        path = paths.output_dir() / f"claims-{self.notebook}.json"
        payload = {"notebook": self.notebook, "claims": [c.as_dict() for c in self.claims]}
        write_text_atomic(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")
        return path
