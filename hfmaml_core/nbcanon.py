"""Notebook files in canonical form: what ``make strip`` writes and ``make test`` checks.

:func:`canonical_notebook` removes outputs, execution counts and volatile metadata (keeping
tags and cell ids) and writes a notebook exactly as JupyterLab saves it, with the
project's kernel (:data:`KERNELSPEC`); :func:`strip` applies it to ``notebooks/``.
Re-exported by :mod:`hfmaml_core.pipeline`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence

from . import paths
from ._io import write_text_atomic

KERNEL_NAME = "hfmaml"
#: The kernelspec every committed notebook carries (what JupyterLab writes for the kernel).
KERNELSPEC = {"display_name": "Python (hfmaml)", "language": "python", "name": KERNEL_NAME}


def sha256(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def notebook_names() -> list[str]:
    """Stems of ``notebooks/*.ipynb``, in order."""
    return sorted(p.stem for p in paths.NOTEBOOKS.glob("*.ipynb"))


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
    digest = sha256(f"{index}\0{cell['cell_type']}\0{src}".encode())
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
