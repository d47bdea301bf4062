"""The figure pipeline behind ``make figures``, ``make verify`` and the notebook tests.

``python -m hfmaml_core.pipeline run NAME [--fast] [-p key value ...]``
    Execute ``notebooks/NAME.ipynb`` with papermill on this Python's kernel.
    Figures and claims go to ``build/stage/NAME/`` (nothing in ``figures/`` is
    touched), the executed copy to ``build/executed/NAME.ipynb``. A failing cell
    stops with exit code 1 and a message naming the notebook and the cell; the
    failed copy is kept in ``build/failed/``.
``python -m hfmaml_core.pipeline collect``
    Promote every notebook's staged figures into ``figures/`` (each file replaced
    atomically, so an interrupted run never leaves half a file), gather the
    claims into ``figures/claims.json``, render ``figures/VERIFICATION.md`` and
    write ``figures/MANIFEST.json`` (hashes of inputs and outputs). Exits 1,
    naming them, when any claim does not hold, after writing the report.
``python -m hfmaml_core.pipeline verify``
    Print the verification report; exit 1 if a claim fails or figures are stale.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from . import paths
from ._io import write_atomic, write_text_atomic
from .claims import KINDS

KERNEL_NAME = "hfmaml"
FIGURE_SUFFIXES = (".pdf", ".png")
GENERATED = ("claims.json", "VERIFICATION.md", "MANIFEST.json")


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
        if "__pycache__" not in p.parts
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
        "display_name": "Python (hfmaml)",
        "language": "python",
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


def run(
    name: str,
    *,
    fast: bool = False,
    parameters: dict | None = None,
    out: Path | None = None,
    executed: Path | None = None,
) -> Path:
    """Execute one notebook; return the folder holding its figures and claims.

    Raises ``SystemExit(1)`` with a message naming the notebook and the cell
    when a cell fails, and ``ValueError`` for an unknown notebook name.
    """
    names = notebook_names()
    if name not in names:
        raise ValueError(f"name must be one of the notebooks {', '.join(names)}; got {name!r}")
    params = dict(parameters or {})
    if fast:
        params["fast"] = True
    stage = Path(out) if out is not None else paths.STAGE / name
    target = Path(executed) if executed is not None else paths.EXECUTED / f"{name}.ipynb"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    ensure_kernel()

    import papermill as pm  # imported late: `collect` and `verify` do not need it

    inputs = _notebook_inputs(name)
    tmp = target.with_name(f".running-{target.name}")
    old_out = os.environ.get(paths.OUTPUT_ENV)
    os.environ[paths.OUTPUT_ENV] = str(stage.resolve())
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
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
            f"  the executed copy with the traceback is {failed.relative_to(paths.ROOT) if failed.is_relative_to(paths.ROOT) else failed}"
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
    if not (stage / f"claims-{name}.json").exists():
        print(
            f"notebook {name}.ipynb recorded no claims (ClaimRecorder.save() was not called)",
            file=sys.stderr,
        )
        raise SystemExit(1)
    overrides = {k: v for k, v in params.items()}
    record = {"notebook": name, "inputs": inputs, "parameters": overrides}
    write_text_atomic(
        stage / "run.json", json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    )
    os.replace(tmp, target)
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
        for c in findings:
            mark = "" if _ok(c) else " **FAILS**"
            cmp = _comparison_text(
                c["measured"], c.get("uncertainty"), c["relation"], c["bound"], c.get("tolerance")
            )
            lines.append(
                f"- [`{c['notebook']}:{c['id']}`](#{_anchor(c)}) ({c['theory']}){mark}: "
                f"{c['statement']} — measured {cmp}."
            )
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
    lines += ["## Figures by notebook", ""]
    for nb, figs in figures.items():
        over = parameters.get(nb) or {}
        note = (
            f" (parameters overridden: {json.dumps(over, sort_keys=True, default=str)})"
            if over
            else ""
        )
        lines.append(
            f"- `notebooks/{nb}.ipynb`{note}: "
            + (", ".join(f"`{f}`" for f in figs) or "no figures")
        )
    lines += [
        "",
        "Details of each claim (fitted intervals, sample sizes) are in `claims.json`.",
        "",
    ]
    return "\n".join(lines)


def collect(stage_root: Path | None = None, figures_dir: Path | None = None) -> int:
    """Gather staged outputs into ``figures/``; return the number of failed claims.

    Refuses (``SystemExit(1)``) when a notebook has no staged run or its staged
    run was made from other inputs than the current ones.
    """
    stage_root = Path(stage_root) if stage_root is not None else paths.STAGE
    figdir = Path(figures_dir) if figures_dir is not None else paths.FIGURES
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
            raise SystemExit(f"notebook {name} has not been run: `make figures` runs it")
        record = json.loads(run_file.read_text())
        if record["inputs"] != _notebook_inputs(name):
            raise SystemExit(
                f"the staged run of {name} was made from other inputs than the current ones: "
                "rerun it (`make figures`)"
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

    figdir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, str] = {}
    for f, src in sorted(sources.items()):
        data = src.read_bytes()
        outputs[f] = _sha256(data)
        if not (figdir / f).exists() or (figdir / f).read_bytes() != data:
            write_atomic(figdir / f, lambda fh, data=data: fh.write(data))
    claims_text = json.dumps({"claims": claims}, indent=2, allow_nan=False) + "\n"
    report = render_report(claims, figures, parameters)
    for fname, text in (("claims.json", claims_text), ("VERIFICATION.md", report)):
        outputs[fname] = _sha256(text.encode())
        write_text_atomic(figdir / fname, text)
    manifest = {
        "about": "Written by `make figures`. tests/test_figures.py fails when an input changed "
        "since these figures were made, or a file here differs from its hash.",
        "inputs": input_hashes(),
        "parameters": parameters,
        "outputs": dict(sorted(outputs.items())),
    }
    write_text_atomic(
        figdir / "MANIFEST.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    )
    keep = set(outputs) | {"MANIFEST.json"}
    for p in figdir.iterdir():
        if p.is_file() and not p.name.startswith(".") and p.name not in keep:
            p.unlink()

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


def verify() -> int:
    """Print the report; return 1 if a claim fails or the figures are stale."""
    report = paths.FIGURES / "VERIFICATION.md"
    if not report.exists():
        print("figures/VERIFICATION.md does not exist: run `make figures`", file=sys.stderr)
        return 1
    print(report.read_text())
    claims = json.loads((paths.FIGURES / "claims.json").read_text())["claims"]
    bad = claim_problems(claims)
    stale = stale_inputs()
    if stale:
        print(
            "figures are stale; changed since they were made: " + ", ".join(stale), file=sys.stderr
        )
    if bad:
        print("claims that fail the build:\n  " + "\n  ".join(bad), file=sys.stderr)
    return 1 if (bad or stale) else 0


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
        return 1 if collect() else 0
    return verify()


if __name__ == "__main__":
    sys.exit(main())
