"""The committed figures/ are what `make figures` makes from the committed inputs.

These tests fail when a notebook or a library file changed since the figures
were made (run `make figures` and commit figures/), when a file in figures/ was
edited by hand, or when a committed claim does not hold.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from hfmaml_core import paths, pipeline
from hfmaml_core.claims import KINDS

FIG = paths.FIGURES
REQUIRED_FIELDS = {
    "id",
    "theory",
    "notebook",
    "statement",
    "measured",
    "bound",
    "relation",
    "holds",
    "kind",
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((FIG / "MANIFEST.json").read_text())


def test_figures_are_not_stale(manifest):
    stale = pipeline.stale_inputs()
    assert not stale, (
        f"changed since figures/ was made (run `make figures`, commit figures/): {stale}"
    )


def test_figures_were_made_with_default_parameters(manifest):
    overridden = {nb: p for nb, p in manifest["parameters"].items() if p}
    assert not overridden, f"figures/ was made with overridden parameters: {overridden}"


def test_every_file_in_figures_matches_the_manifest(manifest):
    files = {p.name for p in FIG.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert files == set(manifest["outputs"]) | {"MANIFEST.json"}
    for name, digest in manifest["outputs"].items():
        assert hashlib.sha256((FIG / name).read_bytes()).hexdigest() == digest, name


def test_every_notebook_has_figures_and_claims(manifest):
    claims = json.loads((FIG / "claims.json").read_text())["claims"]
    for name in pipeline.notebook_names():
        assert any(c["notebook"] == name for c in claims), f"{name} recorded no claims"
    figs = [n for n in manifest["outputs"] if n.endswith(".pdf")]
    assert figs, "no figures"
    for pdf in figs:
        assert pdf[:-4] + ".png" in manifest["outputs"], f"{pdf} has no PNG twin"


def test_committed_claims_hold_and_are_well_formed():
    claims = json.loads((FIG / "claims.json").read_text())["claims"]
    assert claims
    for c in claims:
        assert REQUIRED_FIELDS <= set(c), c
    ids = [(c["notebook"], c["id"]) for c in claims]
    assert len(ids) == len(set(ids))
    failed = [f"{c['notebook']}:{c['id']}" for c in claims if not c["holds"]]
    assert not failed, f"claims that do not hold: {failed}"
    assert {c["kind"] for c in claims} <= set(KINDS)


def test_every_theory_and_finding_claim_has_a_control_that_fails():
    claims = json.loads((FIG / "claims.json").read_text())["claims"]
    controlled = [c for c in claims if c["kind"] in ("theory", "finding")]
    assert controlled, "no theory or finding claims"
    weak = [
        f"{c['notebook']}:{c['id']}"
        for c in controlled
        if not (isinstance(c.get("control"), dict) and c["control"]["holds"] is False)
    ]
    assert not weak, f"theory/finding claims without a control that fails: {weak}"


def test_readme_maps_every_notebook_and_figure():
    """README's table notebook -> THEORY items -> figures covers everything in figures/."""
    readme = (paths.ROOT / "README.md").read_text()
    claims = json.loads((FIG / "claims.json").read_text())["claims"]
    for name in pipeline.notebook_names():
        assert f"{name}.ipynb" in readme, f"README does not list notebooks/{name}.ipynb"
        for item in sorted({c["theory"] for c in claims if c["notebook"] == name} - {None}):
            row = next(
                ln for ln in readme.splitlines() if f"{name}.ipynb" in ln and ln.startswith("|")
            )
            assert re.search(rf"\b{item}\b", row), f"README row of {name} does not cite {item}"
    for pdf in (p for p in FIG.glob("*.pdf")):
        assert pdf.stem in readme, f"README does not mention figure {pdf.stem}"


def test_readme_findings_table_is_the_one_the_committed_claims_give():
    """README's findings table is written by `make figures`; it never lags the claims."""
    readme = (paths.ROOT / "README.md").read_text()
    claims = json.loads((FIG / "claims.json").read_text())["claims"]
    assert pipeline.readme_with_findings(readme, claims) == readme, (
        "README's findings table differs from figures/claims.json: run `make figures`"
    )
    findings = [c for c in claims if c["kind"] == "finding"]
    assert findings, "no findings"
    for c in findings:
        assert f"`{c['notebook']}:{c['id']}`" in readme
