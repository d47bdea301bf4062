"""The figure pipeline behind ``make figures``, ``make verify`` and the notebook tests.

``python -m hfmaml_core.pipeline run NAME [--fast] [-p key value ...]``
    Execute ``notebooks/NAME.ipynb`` with papermill on this Python's kernel.
    The ``-p`` values are checked against the defaults in the notebook's
    ``parameters`` cell (known name, same type, integers >= 0) before any cell
    runs. Figures and claims go to ``build/stage/NAME/`` (nothing in ``figures/``
    is touched), the executed copy to ``build/executed/NAME.ipynb``. Only a run
    with the defaults leaves the stamp ``build/stage/NAME/defaults.stamp`` that
    ``make figures`` depends on: a run with other parameters, an interrupted or a
    failed run removes it, so ``make figures`` reruns that notebook. A failing
    cell stops with exit code 1 and a message naming the notebook and the cell;
    the failed copy is kept in ``build/failed/``.
``python -m hfmaml_core.pipeline collect``
    Promote every notebook's staged figures into ``figures/``, all or nothing:
    everything is written into ``.figures.new/`` beside it, flushed to disk, and
    swapped with ``figures/`` in one step. Refuses staged runs made from other
    inputs or with other parameters than the defaults. Gathers the claims into
    ``figures/claims.json``, renders ``figures/VERIFICATION.md`` and writes
    ``figures/MANIFEST.json`` (hashes of inputs and outputs). Exits 1, naming
    them, when any claim does not hold or a control holds, after writing.
``python -m hfmaml_core.pipeline verify``
    Print the verification report; exit 1 if a claim fails, figures are stale or
    were not made with the defaults.
``python -m hfmaml_core.pipeline strip [NAME ...] [--check]``
    Remove outputs and execution counts (keeping tags) and write each notebook in
    the form JupyterLab itself saves, with the project's kernel, so it opens
    unmodified; ``--check`` only lists the notebooks that are not in that form.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import _io, paths
from ._io import write_text_atomic
from .claims import KINDS, THEORY_ITEMS

KERNEL_NAME = "hfmaml"
#: The kernelspec every committed notebook carries (what JupyterLab writes for the kernel).
KERNELSPEC = {"display_name": "Python (hfmaml)", "language": "python", "name": KERNEL_NAME}
FIGURE_SUFFIXES = (".pdf", ".png")
GENERATED = ("claims.json", "VERIFICATION.md", "MANIFEST.json")
#: Written into ``build/stage/NAME/`` by a complete run with the default parameters only.
DEFAULTS_STAMP = "defaults.stamp"
#: Library files that no notebook imports: not inputs of the figures.
NOT_FIGURE_INPUTS = ("__main__.py", "book.py")

#: Thread-count variables of the BLAS libraries numpy may use; set to 1 for the kernels.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ---------------------------------------------------------------------- hashing
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_names() -> list[str]:
    """Stems of ``notebooks/*.ipynb``, in order."""
    return sorted(p.stem for p in paths.NOTEBOOKS.glob("*.ipynb"))


def notebook_hash(path: Path) -> str:
    """Hash of what a notebook *is*: cell types, sources and tags (not outputs or metadata).

    Opening and saving a notebook in JupyterLab changes its metadata, not this hash.
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = [
        [
            c["cell_type"],
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"],
            sorted(c.get("metadata", {}).get("tags", [])),
        ]
        for c in nb["cells"]
    ]
    return _sha256(json.dumps(cells, sort_keys=True).encode())


def library_hashes() -> dict[str, str]:
    """Hashes of every file a figure depends on besides its notebook.

    The library, the committed benchmark results that notebooks plot, and
    ``pyproject.toml`` (the dependency versions).
    """
    files = (
        sorted(paths.PACKAGE.rglob("*.py"))
        + sorted(
            paths.BENCH_RESULTS.glob("*.json")
        )  # measured by `make bench`, plotted by notebooks
        + [paths.ROOT / "pyproject.toml"]
    )
    return {
        p.relative_to(paths.ROOT).as_posix(): _sha256(p.read_bytes())
        for p in files
        if "__pycache__" not in p.parts and p.name not in NOT_FIGURE_INPUTS
    }


def input_hashes() -> dict[str, str]:
    """Hashes of all inputs of ``make figures``: notebooks, library, ``pyproject.toml``."""
    out = {
        f"notebooks/{n}.ipynb": notebook_hash(paths.NOTEBOOKS / f"{n}.ipynb")
        for n in notebook_names()
    }
    out.update(library_hashes())
    return dict(sorted(out.items()))


def _notebook_inputs(name: str) -> str:
    """One hash of a notebook together with the library it imports."""
    parts = {"notebook": notebook_hash(paths.NOTEBOOKS / f"{name}.ipynb"), **library_hashes()}
    return _sha256(json.dumps(parts, sort_keys=True).encode())


# ---------------------------------------------------------------------- running
def ensure_kernel() -> Path:
    """A kernelspec named ``hfmaml`` that runs *this* Python; returns its JUPYTER_PATH entry.

    Written under ``build/jupyter`` (atomically, so parallel runs are safe), so
    papermill never picks another Python's ``python3`` kernel.
    """
    root = paths.BUILD / "jupyter"
    kdir = root / "kernels" / KERNEL_NAME
    kdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            # ipykernel 7 warns about TCP on every start; cell errors still reach papermill
            "--IPKernelApp.log_level=ERROR",
        ],
        "display_name": KERNELSPEC["display_name"],
        "language": KERNELSPEC["language"],
        "metadata": {"debugger": True},
    }
    text = json.dumps(spec, indent=1) + "\n"
    target = kdir / "kernel.json"
    if not target.exists() or target.read_text() != text:
        write_text_atomic(target, text)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    )
    return root


def parse_value(text: str) -> object:
    """Parse a ``-p`` value as papermill's CLI does: a Python literal, else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def notebook_parameters(path: Path) -> dict[str, object]:
    """The defaults of a notebook's ``parameters`` cell, read with :mod:`ast` (nothing runs).

    Raises ``ValueError`` unless the notebook has exactly one cell tagged
    ``parameters`` holding only assignments of literals to plain names.
    """
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(
            f"{path.name} must have exactly one cell tagged 'parameters'; it has {len(cells)}"
        )
    src = cells[0]["source"]
    src = "".join(src) if isinstance(src, list) else src
    out: dict[str, object] = {}
    for stmt in ast.parse(src).body:
        if not (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            raise ValueError(
                f"{path.name}: the parameters cell must hold plain assignments `name = literal` "
                f"only (line {stmt.lineno})"
            )
        try:
            out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
        except ValueError:
            raise ValueError(
                f"{path.name}: parameter {stmt.targets[0].id} must be a literal value "
                f"(line {stmt.lineno}); derived values go in the next cell"
            ) from None
    return out


def _kind_of(default: object) -> str:
    """The allowed values of a parameter, from the type of its default, in words."""
    if isinstance(default, bool):
        return "True or False"
    if isinstance(default, int):
        return "an integer >= 0"
    if isinstance(default, float):
        return "a finite number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (list, tuple)):
        inner = (
            f" of {_kind_of(default[0]).removeprefix('a ').removeprefix('an ')}s" if default else ""
        )
        return f"a list{inner}"
    return "a Python literal"


def _conforms(value: object, default: object) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if isinstance(default, float):
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple)) and (
            not default or all(_conforms(v, default[0]) for v in value)
        )
    return True


def check_parameters(name: str, parameters: dict, defaults: dict) -> dict[str, object]:
    """Parameters checked against the notebook's defaults; raises ``ValueError`` before any run.

    Every name must be one of the notebook's parameters, and every value of the
    kind of its default: ``True``/``False`` for a bool, an integer >= 0 for an
    int, a finite number for a float (an integer is converted), a string for a
    string, a list of such values for a list. The error names the notebook, the
    parameter and the allowed values.
    """
    unknown = sorted(set(parameters) - set(defaults))
    if unknown:
        raise ValueError(
            f"{name}: unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; its parameters are {', '.join(defaults)}"
        )
    out: dict[str, object] = {}
    for key, value in parameters.items():
        default = defaults[key]
        if not _conforms(value, default):
            raise ValueError(
                f"{name}: parameter {key} must be {_kind_of(default)} (its default is "
                f"{default!r}); got {value!r}"
            )
        if isinstance(default, float):
            value = float(value)
        elif isinstance(default, (list, tuple)) and default and isinstance(default[0], float):
            value = [float(v) for v in value]
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def overridden(parameters: dict, defaults: dict) -> dict[str, object]:
    """The checked parameters whose value differs from the notebook's default."""
    return {
        k: v
        for k, v in parameters.items()
        if not (type(v) is type(defaults[k]) and v == defaults[k])
        and not (isinstance(defaults[k], tuple) and list(defaults[k]) == v)
    }


def _rel(path: Path) -> str:
    path = Path(path)
    return str(path.relative_to(paths.ROOT)) if path.is_relative_to(paths.ROOT) else str(path)


def run(
    name: str,
    *,
    fast: bool = False,
    parameters: dict | None = None,
    out: Path | None = None,
    executed: Path | None = None,
) -> Path:
    """Execute one notebook; return the folder holding its figures and claims.

    The parameters are checked (:func:`check_parameters`) before anything is
    touched. The folder is emptied first, so an interrupted or failed run leaves
    no stamp behind and ``make figures`` reruns the notebook; a complete run
    with the defaults ends by writing :data:`DEFAULTS_STAMP`. Prints one line
    when the notebook starts and one when it ends (wall time, claim count).

    Raises ``SystemExit(1)`` with a message naming the notebook and the cell
    when a cell fails, and ``ValueError`` for an unknown notebook name or a
    bad parameter.
    """
    names = notebook_names()
    if name not in names:
        raise ValueError(f"name must be one of the notebooks {', '.join(names)}; got {name!r}")
    params = dict(parameters or {})
    if fast:
        params["fast"] = True
    defaults = notebook_parameters(paths.NOTEBOOKS / f"{name}.ipynb")
    params = check_parameters(name, params, defaults)
    overrides = overridden(params, defaults)
    stage = Path(out) if out is not None else paths.STAGE / name
    target = Path(executed) if executed is not None else paths.EXECUTED / f"{name}.ipynb"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    ensure_kernel()

    import papermill as pm  # imported late: `collect` and `verify` do not need it

    mode = (
        " with " + ", ".join(f"{k}={v!r}" for k, v in sorted(overrides.items()))
        if overrides
        else " with the defaults"
    )
    print(f"[{name}] started{mode}", flush=True)
    t0 = time.perf_counter()
    inputs = _notebook_inputs(name)
    tmp = target.with_name(f".running-{target.name}")
    old_out = os.environ.get(paths.OUTPUT_ENV)
    os.environ[paths.OUTPUT_ENV] = str(stage.resolve())
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # One BLAS thread per kernel: the notebooks' matrices are small, so threads only fight each
    # other (and `make -j2`'s second kernel) for the two cores; and a fixed thread count keeps
    # the floating-point summation order, hence the figure bytes, the same on every machine.
    for var in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(var, "1")
    try:
        pm.execute_notebook(
            str(paths.NOTEBOOKS / f"{name}.ipynb"),
            str(tmp),
            parameters=params,
            kernel_name=KERNEL_NAME,
            cwd=str(paths.NOTEBOOKS),
            progress_bar=False,
        )
    except pm.PapermillExecutionError as err:
        failed = paths.BUILD / "failed" / f"{name}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            os.replace(tmp, failed)
        msg = (
            f"notebook {name}.ipynb failed in cell {err.cell_index} (execution count "
            f"{err.exec_count}): {err.ename}: {err.evalue}\n"
            f"  the executed copy with the traceback is {_rel(failed)}"
        )
        print(msg, file=sys.stderr)
        raise SystemExit(1) from None
    except BaseException:  # interrupted (Ctrl-C) or papermill itself failed: leave no partial copy
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if old_out is None:
            os.environ.pop(paths.OUTPUT_ENV, None)
        else:
            os.environ[paths.OUTPUT_ENV] = old_out
    claims_file = stage / f"claims-{name}.json"
    if not claims_file.exists():
        print(
            f"notebook {name}.ipynb recorded no claims (ClaimRecorder.save() was not called)",
            file=sys.stderr,
        )
        raise SystemExit(1)
    record = {"notebook": name, "inputs": inputs, "parameters": overrides}
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    write_text_atomic(stage / "run.json", text)
    os.replace(tmp, target)
    if not overrides:
        write_text_atomic(stage / DEFAULTS_STAMP, text)
    claims = json.loads(claims_file.read_text())["claims"]
    problems = claim_problems(claims)
    figs = sum(p.suffix == ".pdf" for p in stage.iterdir())
    print(
        f"[{name}] finished in {time.perf_counter() - t0:.1f} s: {len(claims)} claims"
        + (f", {len(problems)} failing the build" if problems else ", all hold")
        + f", {figs} figure(s) in {_rel(stage)}/",
        flush=True,
    )
    return stage


# --------------------------------------------------------------------- collecting
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
_KIND_HEADINGS = {
    "finding": "Findings",
    "theory": "Theory",
    "check": "Checks",
    "performance": "Performance",
}


def _anchor(c: dict) -> str:
    return f"{c['notebook']}-{c['id']}".replace(".", "-").replace("_", "-")


def _ok(c: dict) -> bool:
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
            f"[`{c['notebook']}:{c['id']}`](#{_anchor(c)})" + ("" if _ok(c) else " **FAILS**")
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
        mark = "" if _ok(c) else " **FAILS**"
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
            f"| [`{c['notebook']}:{c['id']}`]({report}#{_anchor(c)}){mark} "
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
    kinds = list(_KIND_HEADINGS)
    n_ok = sum(_ok(c) for c in claims)
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
            f"## {_KIND_HEADINGS[k]} ({len(ck)})",
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
                f'<a id="{_anchor(c)}"></a>`{c["notebook"]}:{c["id"]}`',
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


def swap_dirs(figures_dir: Path) -> tuple[Path, Path]:
    """The folders beside ``figures/`` that ``collect`` writes into and retires into."""
    figdir = Path(figures_dir)
    return figdir.with_name(f".{figdir.name}.new"), figdir.with_name(f".{figdir.name}.old")


def recover_figures(figures_dir: Path | None = None) -> str | None:
    """Complete or undo a ``collect`` that was interrupted; return what was done, if anything.

    ``collect`` writes everything into ``.figures.new/`` and only then swaps it
    with ``figures/``, so: a ``.figures.new/`` left beside ``figures/`` is an
    unfinished staging (or, after an atomic exchange, the previous figures) and
    is removed; ``figures/`` missing with ``.figures.old/`` and a complete
    ``.figures.new/`` (the two-rename fallback stopped halfway) is rolled forward;
    a leftover ``.figures.old/`` is removed.
    """
    figdir = Path(figures_dir) if figures_dir is not None else paths.FIGURES
    new, old = swap_dirs(figdir)
    done = []
    if not figdir.exists() and old.exists():
        if new.exists():  # renamed figures/ away, not yet .figures.new/ into place
            os.replace(new, figdir)
            done.append(f"completed the swap of {new.name} into {figdir.name}/")
        else:
            os.replace(old, figdir)
            done.append(f"restored {figdir.name}/ from {old.name}")
    for leftover in (new, old):
        if leftover.exists():
            shutil.rmtree(leftover)
            done.append(f"removed {leftover.name}")
    if done:
        _io.fsync_dir(figdir.parent)
        return "recovered from an interrupted collect: " + "; ".join(done)
    return None


def _swap_in(new: Path, figdir: Path) -> None:
    """Put the complete folder ``new`` in place of ``figdir`` (atomically where the OS can)."""
    _, old = swap_dirs(figdir)
    if not figdir.exists():
        os.replace(new, figdir)
    elif _io.exchange(new, figdir):  # figdir now holds the new files, `new` the old ones
        _io.fsync_dir(figdir.parent)
        shutil.rmtree(new)
    else:
        os.replace(figdir, old)
        os.replace(new, figdir)
        _io.fsync_dir(figdir.parent)
        shutil.rmtree(old)
    _io.fsync_dir(figdir.parent)


def collect(
    stage_root: Path | None = None,
    figures_dir: Path | None = None,
    readme: Path | None = None,
) -> int:
    """Gather staged outputs into ``figures/``, all or nothing; return the number of problems.

    Refuses (``SystemExit(1)``, naming the notebook and the fix) when a notebook
    has no staged run, or its staged run was made from other inputs than the
    current ones or with parameters other than the defaults. Every output is
    written into ``.figures.new/`` and flushed; that folder then replaces
    ``figures/`` in one step (:func:`recover_figures` finishes the job if this is
    interrupted), so ``figures/`` is always entirely old or entirely new.

    ``readme`` (what ``make figures`` passes: ``README.md``) gets its findings table
    rewritten between :data:`README_FINDINGS` from the same claims; by default no
    README is touched.
    """
    stage_root = Path(stage_root) if stage_root is not None else paths.STAGE
    figdir = Path(figures_dir) if figures_dir is not None else paths.FIGURES
    note = recover_figures(figdir)
    if note:
        print(note, file=sys.stderr)
    names = notebook_names()
    if not names:
        raise SystemExit("no notebooks in notebooks/")
    claims: list[dict] = []
    figures: dict[str, list[str]] = {}
    parameters: dict[str, dict] = {}
    sources: dict[str, Path] = {}
    for name in names:
        stage = stage_root / name
        run_file = stage / "run.json"
        if not run_file.exists():
            raise SystemExit(
                f"notebook {name} has no complete staged run (never run, or its last run was "
                "interrupted or failed): `make figures` runs it"
            )
        record = json.loads(run_file.read_text())
        if record["inputs"] != _notebook_inputs(name):
            raise SystemExit(
                f"the staged run of {name} was made from other inputs than the current ones: "
                "rerun it (`make figures`)"
            )
        if record["parameters"]:
            raise SystemExit(
                f"the staged run of {name} was made with parameters other than the defaults "
                f"({json.dumps(record['parameters'], sort_keys=True, default=str)}); figures/ "
                f"holds only runs with the defaults: `make figures` reruns it (or run "
                f"`python -m hfmaml_core.pipeline run {name}`)"
            )
        parameters[name] = record["parameters"]
        claims += json.loads((stage / f"claims-{name}.json").read_text())["claims"]
        figs = sorted(p.name for p in stage.iterdir() if p.suffix in FIGURE_SUFFIXES)
        for f in figs:
            if f in sources:
                raise SystemExit(
                    f"figure {f} is written by two notebooks: {sources[f].parent.name} and {name}"
                )
            sources[f] = stage / f
        figures[name] = figs

    # `make figures` passes README.md: its findings table follows the claims (markers checked
    # before anything is written). Tests and other callers leave every README alone.
    readme_text = Path(readme).read_text(encoding="utf-8") if readme is not None else None
    readme_new = readme_with_findings(readme_text, claims) if readme_text is not None else None
    new, _ = swap_dirs(figdir)
    new.mkdir(parents=True)
    if figdir.exists():  # keep what make figures does not write (dotfiles, subfolders)
        for p in sorted(figdir.iterdir()):
            if p.name.startswith("."):
                if p.is_dir():
                    shutil.copytree(p, new / p.name)
                else:
                    shutil.copy2(p, new / p.name)
            elif p.is_dir():
                shutil.copytree(p, new / p.name)
    outputs: dict[str, str] = {}
    for f, src in sorted(sources.items()):
        data = src.read_bytes()
        outputs[f] = _sha256(data)
        _io.write_atomic(new / f, lambda fh, data=data: fh.write(data))
    claims_text = json.dumps({"claims": claims}, indent=2, allow_nan=False) + "\n"
    report = render_report(claims, figures, parameters)
    for fname, text in (("claims.json", claims_text), ("VERIFICATION.md", report)):
        outputs[fname] = _sha256(text.encode())
        _io.write_text_atomic(new / fname, text)
    manifest = {
        "about": "Written by `make figures`. tests/test_figures.py fails when an input changed "
        "since these figures were made, or a file here differs from its hash.",
        "inputs": input_hashes(),
        "parameters": parameters,
        "outputs": dict(sorted(outputs.items())),
    }
    _io.write_text_atomic(
        new / "MANIFEST.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    )
    _io.fsync_dir(new)
    _swap_in(new, figdir)
    if readme_text is not None and readme_new != readme_text:
        _io.write_text_atomic(readme, readme_new)

    problems = claim_problems(claims)
    n_ok = sum(_ok(c) for c in claims)
    counts = ", ".join(f"{sum(c.get('kind') == k for c in claims)} {k}" for k in _KIND_HEADINGS)
    print(
        f"figures/: {len(sources)} figure files from {len(names)} notebook(s); "
        f"{n_ok} of {len(claims)} claims hold ({counts})"
    )
    if problems:
        print("claims that fail the build:\n  " + "\n  ".join(problems), file=sys.stderr)
    return len(problems)


def stale_inputs(figures_dir: Path | None = None) -> list[str]:
    """Inputs whose hash differs from the one recorded in ``figures/MANIFEST.json``."""
    figdir = Path(figures_dir) if figures_dir is not None else paths.FIGURES
    recorded = json.loads((figdir / "MANIFEST.json").read_text())["inputs"]
    current = input_hashes()
    return sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))


def non_default_runs(figures_dir: Path | None = None) -> dict[str, dict]:
    """Notebooks whose figures in ``figures/`` were made with parameters other than the defaults."""
    figdir = Path(figures_dir) if figures_dir is not None else paths.FIGURES
    recorded = json.loads((figdir / "MANIFEST.json").read_text()).get("parameters", {})
    return {nb: p for nb, p in sorted(recorded.items()) if p}


def verify(figures_dir: Path | None = None) -> int:
    """Print the report; return 1 if a claim fails, figures are stale or not from the defaults."""
    figdir = Path(figures_dir) if figures_dir is not None else paths.FIGURES
    note = recover_figures(figdir)
    if note:
        print(note, file=sys.stderr)
    report = figdir / "VERIFICATION.md"
    if not report.exists():
        print(f"{_rel(report)} does not exist: run `make figures`", file=sys.stderr)
        return 1
    print(report.read_text())
    claims = json.loads((figdir / "claims.json").read_text())["claims"]
    bad = claim_problems(claims)
    stale = stale_inputs(figdir)
    overridden_runs = non_default_runs(figdir)
    if stale:
        print(
            "figures are stale; changed since they were made: " + ", ".join(stale), file=sys.stderr
        )
    if overridden_runs:
        print(
            "figures were not made with the default parameters: "
            + "; ".join(
                f"{nb} {json.dumps(p, sort_keys=True)}" for nb, p in overridden_runs.items()
            )
            + " (run `make figures`)",
            file=sys.stderr,
        )
    if bad:
        print("claims that fail the build:\n  " + "\n  ".join(bad), file=sys.stderr)
    return 1 if (bad or stale or overridden_runs) else 0


# ------------------------------------------------------------------------ strip
#: Notebook-level metadata that a run or an editor adds and a committed notebook drops.
_VOLATILE_NB_METADATA = ("papermill", "orig_nbformat", "widgets", "vscode", "interpreter")
#: Cell-level metadata of the same kind (execution timings, scroll state, trust).
_VOLATILE_CELL_METADATA = (
    "execution",
    "papermill",
    "scrolled",
    "collapsed",
    "trusted",
    "ExecuteTime",
)


def kernel_language_info(version: str | None = None) -> dict:
    """The ``language_info`` the project's kernel (ipykernel) reports in its kernel_info reply.

    JupyterLab writes this into the notebook's metadata when the kernel starts;
    a notebook that already holds exactly this value is not marked modified.
    ``version`` replaces the Python version (default: this Python's).
    """
    from ipykernel.ipkernel import IPythonKernel

    info = copy.deepcopy(IPythonKernel.language_info)
    if version is not None:
        info["version"] = version
    return info


def _cell_id(index: int, cell: dict, taken: set[str]) -> str:
    src = cell.get("source", "")
    src = "".join(src) if isinstance(src, list) else src
    digest = _sha256(f"{index}\0{cell['cell_type']}\0{src}".encode())
    for start in range(0, 56, 8):
        cid = digest[start : start + 8]
        if cid not in taken:
            return cid
    raise AssertionError("no free cell id")  # pragma: no cover


def canonical_notebook(text: str, *, language_version: str | None = None) -> str:
    """A notebook without outputs, in the exact form JupyterLab saves, on the project's kernel.

    Outputs and execution counts removed; tags and other cell metadata kept
    except run-time state (:data:`_VOLATILE_CELL_METADATA`); nbformat 4.5 with
    a cell id on every cell (existing ids kept, missing ones derived from the
    cell's position and source, so the result is deterministic); metadata
    ``kernelspec`` = :data:`KERNELSPEC` and ``language_info`` = what the kernel
    reports (:func:`kernel_language_info`), which JupyterLab would otherwise
    write on open and so mark the notebook modified; serialised by nbformat as
    jupyter-server does on save (sorted keys, one-space indent, final newline).
    """
    import nbformat

    nb = nbformat.reads(text, as_version=4)
    nb.nbformat, nb.nbformat_minor = 4, 5
    for key in _VOLATILE_NB_METADATA:
        nb.metadata.pop(key, None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = kernel_language_info(language_version)
    taken = {c["id"] for c in nb.cells if c.get("id")}
    for i, cell in enumerate(nb.cells):
        if not cell.get("id"):
            cell["id"] = _cell_id(i, cell, taken)
            taken.add(cell["id"])
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if isinstance(cell.metadata.get("jupyter"), dict):
            cell.metadata["jupyter"].pop("outputs_hidden", None)
            if not cell.metadata["jupyter"]:
                del cell.metadata["jupyter"]
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if "attachments" in cell and not cell["attachments"]:
            del cell["attachments"]
    out = nbformat.writes(nb, version=4)
    return out if out.endswith("\n") else out + "\n"


def strip(names: Sequence[str] | None = None, *, check: bool = False) -> list[str]:
    """Rewrite notebooks in canonical form (:func:`canonical_notebook`); return those changed.

    With ``check=True`` nothing is written: the notebooks that are not in
    canonical form (ignoring the Python version in ``language_info``) are returned.
    """
    all_names = notebook_names()
    names = list(names) if names else all_names
    bad = sorted(set(names) - set(all_names))
    if bad:
        raise ValueError(f"name must be one of the notebooks {', '.join(all_names)}; got {bad}")
    changed = []
    for name in names:
        path = paths.NOTEBOOKS / f"{name}.ipynb"
        text = path.read_text(encoding="utf-8")
        version = None
        if check:
            version = json.loads(text).get("metadata", {}).get("language_info", {}).get("version")
        new = canonical_notebook(text, language_version=version)
        if new != text:
            changed.append(name)
            if not check:
                write_text_atomic(path, new)
    return changed


# --------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hfmaml_core.pipeline", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute one notebook into build/")
    r.add_argument("name")
    r.add_argument(
        "--fast", action="store_true", help="the notebook's fast mode (what the tests run)"
    )
    r.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    sub.add_parser("collect", help="gather staged runs into figures/")
    sub.add_parser("verify", help="print the verification report")
    s = sub.add_parser("strip", help="remove outputs; write notebooks as JupyterLab saves them")
    s.add_argument("names", nargs="*", metavar="NAME")
    s.add_argument("--check", action="store_true", help="only list notebooks not in that form")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        params = {k: parse_value(v) for k, v in args.parameter}
        try:
            run(args.name, fast=args.fast, parameters=params)
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
        return 0
    if args.cmd == "collect":
        return 1 if collect(readme=paths.ROOT / "README.md") else 0
    if args.cmd == "strip":
        try:
            changed = strip(args.names, check=args.check)
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
        if args.check:
            if changed:
                print(
                    "not in the committed form (outputs, execution counts, kernel or format): "
                    + ", ".join(changed)
                    + "\n  fix: make strip",
                    file=sys.stderr,
                )
            return 1 if changed else 0
        print(
            f"stripped {len(changed)} notebook(s): {', '.join(changed)}"
            if changed
            else "every notebook is already in the committed form"
        )
        return 0
    return verify()


if __name__ == "__main__":
    sys.exit(main())
