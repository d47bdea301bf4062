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

The parts, one concern each, re-exported here: :mod:`hfmaml_core.parameters` (the
``parameters`` cell and ``-p`` checks), :mod:`hfmaml_core.report` (``VERIFICATION.md`` and
README's findings table), :mod:`hfmaml_core.nbcanon` (notebooks in canonical form).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import _io, paths
from ._io import write_text_atomic

# Re-exported (``pipeline.NAME`` as before): the parts split off by concern.
from .nbcanon import (
    KERNEL_NAME,
    KERNELSPEC,
    canonical_notebook,
    kernel_language_info,
    notebook_names,
    sha256,
    strip,
)
from .parameters import check_parameters, notebook_parameters, overridden, parse_value
from .report import (
    KIND_HEADINGS,
    README_FINDINGS,
    claim_ok,
    claim_problems,
    findings_table,
    item_anchor,
    readme_with_findings,
    render_report,
)

__all__ = [
    "DEFAULTS_STAMP",
    "KERNEL_NAME",
    "KERNELSPEC",
    "README_FINDINGS",
    "canonical_notebook",
    "check_parameters",
    "claim_problems",
    "collect",
    "ensure_kernel",
    "findings_table",
    "item_anchor",
    "kernel_language_info",
    "main",
    "non_default_runs",
    "notebook_names",
    "notebook_parameters",
    "parse_value",
    "readme_with_findings",
    "recover_figures",
    "render_report",
    "run",
    "stale_inputs",
    "strip",
    "swap_dirs",
    "verify",
]

FIGURE_SUFFIXES = (".pdf", ".png")
GENERATED = ("claims.json", "VERIFICATION.md", "MANIFEST.json")
#: Written into ``build/stage/NAME/`` by a complete run with the default parameters only.
DEFAULTS_STAMP = "defaults.stamp"
#: Library files that no notebook imports: not inputs of the figures.
NOT_FIGURE_INPUTS = ("__main__.py", "book.py")

#: Thread-count variables of the BLAS libraries numpy may use; set to 1 for the kernels.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ---------------------------------------------------------------------- hashing
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
    return sha256(json.dumps(cells, sort_keys=True).encode())


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
        p.relative_to(paths.ROOT).as_posix(): sha256(p.read_bytes())
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
    return sha256(json.dumps(parts, sort_keys=True).encode())


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
        outputs[f] = sha256(data)
        _io.write_atomic(new / f, lambda fh, data=data: fh.write(data))
    claims_text = json.dumps({"claims": claims}, indent=2, allow_nan=False) + "\n"
    report = render_report(claims, figures, parameters)
    for fname, text in (("claims.json", claims_text), ("VERIFICATION.md", report)):
        outputs[fname] = sha256(text.encode())
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
    n_ok = sum(claim_ok(c) for c in claims)
    counts = ", ".join(f"{sum(c.get('kind') == k for c in claims)} {k}" for k in KIND_HEADINGS)
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
