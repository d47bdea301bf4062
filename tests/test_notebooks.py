"""Every notebook runs in its fast mode, on the same code path as `make figures`.

A fast run writes its figures and claims into a temporary folder, never into figures/ or
build/stage/, and its executed copy to build/test/executed/: `make test` builds the reading
edition from those and checks it in a browser (tests/test_book.py).
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest

from hfmaml_core import paths, pipeline

NAMES = pipeline.notebook_names()
TEST_EXECUTED = paths.BUILD / "test" / "executed"  # read by `make test`'s book step (book.py)


def _cells(name: str) -> list[dict]:
    return json.loads((paths.NOTEBOOKS / f"{name}.ipynb").read_text())["cells"]


def _tree_hash(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob("*"))
        if p.is_file()
    }


def test_there_are_notebooks():
    assert NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_clean_with_a_parameters_cell(name):
    """Outputs stripped; one `parameters` cell holding plain values, among them `fast` and `seed`."""
    cells = _cells(name)
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        f"{name}: commit notebooks without outputs"
    )
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{name}: exactly one cell must be tagged 'parameters'"
    src = "".join(tagged[0]["source"])
    for var in ("fast = False", "seed = "):
        assert var in src, f"{name}: the parameters cell must define {var.split()[0]}"
    for stmt in ast.parse(src).body:  # plain values only: derived ones go in the next cell
        assert isinstance(stmt, ast.Assign), (
            f"{name}: the parameters cell must hold assignments only"
        )
        ast.literal_eval(stmt.value)
    assert cells[0]["cell_type"] == "markdown" and cells[-1]["cell_type"] == "markdown"
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert (
        "## Conclusion" in text
        and "## Exercises" in text
        and "Hint" in text.replace("hint", "Hint")
    )


@pytest.mark.notebook
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_fast_mode_and_its_claims_hold(name, tmp_path):
    before = _tree_hash(paths.FIGURES)
    out = tmp_path / "out"
    pipeline.run(name, fast=True, out=out, executed=TEST_EXECUTED / f"{name}.ipynb")
    assert _tree_hash(paths.FIGURES) == before, "a fast run must not touch figures/"
    claims = json.loads((out / f"claims-{name}.json").read_text())["claims"]
    assert claims
    failed = pipeline.claim_problems(claims)
    assert not failed, f"{name} (fast mode): claims that fail the build: {failed}"
    pdfs = sorted(p.stem for p in out.glob("*.pdf"))
    assert pdfs and pdfs == sorted(p.stem for p in out.glob("*.png"))
    committed = {p.stem for p in paths.FIGURES.glob("*.pdf")}
    assert set(pdfs) <= committed, (
        f"{name} makes figures that figures/ lacks: {set(pdfs) - committed}"
    )
