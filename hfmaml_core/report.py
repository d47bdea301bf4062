"""The verification report and README's findings table, rendered from the claim records.

:func:`render_report` writes ``figures/VERIFICATION.md``, :func:`findings_table` and
:func:`readme_with_findings` the table between README's ``findings`` markers,
:func:`claim_problems` lists what fails the build. Used by :mod:`hfmaml_core.pipeline`
(``collect``, ``verify``), which re-exports these names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .claims import KINDS, THEORY_ITEMS


def _fmt(x: object) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, list):
        return "[" + ", ".join(_fmt(v) for v in x) + "]"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


_REL = {"<=": "≤", "<": "<", ">=": "≥", ">": ">", "==": "=", "in": "∈"}

#: Report sections, in order, with their headings.
KIND_HEADINGS = {
    "finding": "Findings",
    "theory": "Theory",
    "check": "Checks",
    "performance": "Performance",
}


def claim_anchor(c: dict) -> str:
    """The HTML anchor of a claim in the report: ``notebook-id`` with ``.`` and ``_`` as ``-``."""
    return f"{c['notebook']}-{c['id']}".replace(".", "-").replace("_", "-")


def claim_ok(c: dict) -> bool:
    """A claim that holds and whose control (if any) does not."""
    ctrl = c.get("control")
    return bool(c["holds"]) and not (ctrl and ctrl["holds"])


def _comparison_text(measured, uncertainty, relation, bound, tolerance) -> str:
    m = _fmt(measured)
    if uncertainty is not None:
        m += f" ± {_fmt(uncertainty)}"
    b = _fmt(bound)
    if relation == "==":
        b += f" (± {_fmt(tolerance)})"
    return f"{m} {_REL[relation]} {b}"


def claim_problems(claims: Sequence[dict]) -> list[str]:
    """One line per claim that fails the build: it does not hold, or its control holds."""
    out = []
    for c in claims:
        where = f"{c['notebook']}:{c['id']} ({c.get('kind', '?')}, {c.get('theory') or '-'})"
        if not c["holds"]:
            out.append(f"{where}: does not hold")
        ctrl = c.get("control")
        if ctrl and ctrl["holds"]:
            out.append(
                f"{where}: its control holds, so the check cannot discriminate "
                f"({ctrl['statement']})"
            )
    return out


def item_anchor(item: str) -> str:
    """The HTML anchor of a THEORY item's section in the report, e.g. ``item-t1``."""
    return f"item-{item.lower()}"


def _by_item_section(claims: Sequence[dict]) -> list[str]:
    lines = [
        "## Claims by THEORY item",
        "",
        "Each item of [`THEORY.md`](../THEORY.md) with the claims that cite it "
        "(THEORY.md links here).",
        "",
    ]
    for item in THEORY_ITEMS:
        cited = [c for c in claims if c.get("theory") == item]
        refs = ", ".join(
            f"[`{c['notebook']}:{c['id']}`](#{claim_anchor(c)})"
            + ("" if claim_ok(c) else " **FAILS**")
            for c in cited
        )
        lines.append(
            f'- <a id="{item_anchor(item)}"></a>**{item}** '
            f"([THEORY.md](../THEORY.md#{item.lower()})): "
            + (
                f"{len(cited)} claim{'s' if len(cited) != 1 else ''}: {refs}"
                if cited
                else "no claim"
            )
        )
    return lines + [""]


#: The markers between which `make figures` writes README's findings table.
README_FINDINGS = (
    "<!-- findings:begin — written by `make figures` from figures/claims.json; do not edit -->",
    "<!-- findings:end -->",
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def findings_table(claims: Sequence[dict], *, report: str, theory: str) -> list[str]:
    """One Markdown table row per ``finding`` claim: item, what was found, numbers, control.

    ``report`` and ``theory`` are the paths (relative to where the table is shown) of
    ``figures/VERIFICATION.md`` and ``THEORY.md``; ``report=""`` links within the report.
    """
    rows = [
        "| claim | THEORY | what was found | measured | control (must fail) |",
        "|---|---|---|---|---|",
    ]
    for c in claims:
        if c.get("kind") != "finding":
            continue
        mark = "" if claim_ok(c) else " **FAILS**"
        cmp = _comparison_text(
            c["measured"], c.get("uncertainty"), c["relation"], c["bound"], c.get("tolerance")
        )
        ctrl = c.get("control") or {}
        if ctrl:
            ccmp = _comparison_text(
                ctrl["measured"],
                ctrl.get("uncertainty"),
                ctrl["relation"],
                ctrl["bound"],
                ctrl.get("tolerance"),
            )
            verdict = (
                "fails, as it should" if not ctrl["holds"] else "**holds: cannot discriminate**"
            )
            ctext = f"{ctrl['statement']}: {ccmp} — {verdict}"
        else:
            ctext = "—"
        item = c["theory"]
        rows.append(
            f"| [`{c['notebook']}:{c['id']}`]({report}#{claim_anchor(c)}){mark} "
            f"| [{item}]({theory}#{item.lower()}) | {_cell(c['statement'])} | {_cell(cmp)} "
            f"| {_cell(ctext)} |"
        )
    return rows


def readme_with_findings(text: str, claims: Sequence[dict]) -> str:
    """README's text with the findings table between :data:`README_FINDINGS` replaced."""
    begin, end = README_FINDINGS
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(
            f"README.md must hold the markers {begin!r} and {end!r} once each, in that order"
        )
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    table = findings_table(claims, report="figures/VERIFICATION.md", theory="THEORY.md")
    return head + begin + "\n" + "\n".join(table) + "\n" + end + tail


def render_report(claims: Sequence[dict], figures: dict[str, list[str]], parameters: dict) -> str:
    """The readable verification report (Markdown): counts by kind, findings, then tables by kind."""
    kinds = list(KIND_HEADINGS)
    n_ok = sum(claim_ok(c) for c in claims)
    lines = [
        "# Verification report",
        "",
        "Written by `make figures`; do not edit. Each row is a claim a notebook checked: a",
        "measured number compared with a bound or an expected value. Every claim has a kind:",
        "",
    ]
    lines += [f"- **{k}**: {KINDS[k]}." for k in kinds]
    lines += [
        "",
        "Every `theory` and `finding` claim also runs a **control**: the same measurement on a",
        "case where the statement should be false. The control must *fail*; a control that holds",
        "means the check cannot tell right from wrong, and fails `make figures` like a claim that",
        "does not hold. THEORY items are those of `THEORY.md`.",
        "",
        f"**{n_ok} of {len(claims)} claims hold** across {len(figures)} notebook(s).",
        "",
        "| kind | claims | hold | with a control | control fails, as it should |",
        "|---|---|---|---|---|",
    ]
    for k in kinds:
        ck = [c for c in claims if c.get("kind") == k]
        with_ctrl = [c for c in ck if c.get("control")]
        lines.append(
            f"| {k} | {len(ck)} | {sum(c['holds'] for c in ck)} | {len(with_ctrl)} "
            f"| {sum(not c['control']['holds'] for c in with_ctrl)} |"
        )
    lines.append("")
    problems = claim_problems(claims)
    if problems:
        lines += ["**Failing the build:**", ""] + [f"- `{p}`" for p in problems] + [""]
    findings = [c for c in claims if c.get("kind") == "finding"]
    if findings:
        lines += ["## What was found", ""]
        lines += findings_table(claims, report="", theory="../THEORY.md")
        lines.append("")
    for k in kinds:
        ck = [c for c in claims if c.get("kind") == k]
        if not ck:
            continue
        lines += [
            f"## {KIND_HEADINGS[k]} ({len(ck)})",
            "",
            "| | THEORY | claim | statement | measured | | bound or expected | control |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in ck:
            mark = "holds" if c["holds"] else "**FAILS**"
            measured = _fmt(c["measured"])
            if c.get("uncertainty") is not None:
                measured += f" ± {_fmt(c['uncertainty'])}"
            bound = _fmt(c["bound"])
            if c["relation"] == "==":
                bound += f" (± {_fmt(c['tolerance'])})"
            ctrl = c.get("control")
            if ctrl:
                verdict = (
                    "fails, as it should" if not ctrl["holds"] else "**HOLDS: cannot discriminate**"
                )
                ctext = (
                    f"{ctrl['statement']}: "
                    + _comparison_text(
                        ctrl["measured"],
                        ctrl.get("uncertainty"),
                        ctrl["relation"],
                        ctrl["bound"],
                        ctrl.get("tolerance"),
                    )
                    + f" — {verdict}"
                )
            else:
                ctext = "—"
            cells = [
                mark,
                c.get("theory") or "—",
                f'<a id="{claim_anchor(c)}"></a>`{c["notebook"]}:{c["id"]}`',
                c["statement"],
                measured,
                _REL[c["relation"]],
                bound,
                ctext,
            ]
            lines.append(
                "| "
                + " | ".join(
                    x.replace("|", "\\|") if i in (3, 7) else x for i, x in enumerate(cells)
                )
                + " |"
            )
        lines.append("")
    lines += _by_item_section(claims)
    lines += ["## Figures by notebook", ""]
    for nb, figs in figures.items():
        over = parameters.get(nb) or {}
        note = (
            f" (parameters overridden: {json.dumps(over, sort_keys=True, default=str)})"
            if over
            else ""
        )
        lines.append(
            f"- [`notebooks/{nb}.ipynb`](../notebooks/{nb}.ipynb){note}: "
            + (", ".join(f"`{f}`" for f in figs) or "no figures")
        )
    lines += [
        "",
        "Details of each claim (fitted intervals, sample sizes) are in `claims.json`.",
        "",
    ]
    return "\n".join(lines)
