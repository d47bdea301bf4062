"""The two ways to install (pip, conda) and the two commands stay in step."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from hfmaml_core import paths, pipeline
from hfmaml_core.claims import THEORY_ITEMS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _normalise(req: str) -> tuple[str, str]:
    req = req.split(";")[0].split("#")[0].strip()
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    meta = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + list(meta["optional-dependencies"]["test"])
    return dict(_normalise(r) for r in reqs)


def conda_requirements() -> dict[str, str]:
    lines = (paths.ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("dependencies:")
    out = {}
    for line in lines[start + 1 :]:
        if not line.startswith("  - "):
            if line.strip() and not line.lstrip().startswith("#"):
                break
            continue
        name, spec = _normalise(line[4:])
        if name not in {"python", "pip"}:
            out[name] = spec
    return out


def test_pyproject_and_environment_yml_list_the_same_dependencies():
    """environment.yml (conda-forge) and pyproject.toml must not drift apart."""
    pip_reqs, conda_reqs = pyproject_requirements(), conda_requirements()
    assert pip_reqs == conda_reqs, (
        f"only in pyproject.toml: {sorted(set(pip_reqs) - set(conda_reqs))}; "
        f"only in environment.yml: {sorted(set(conda_reqs) - set(pip_reqs))}; "
        f"different versions: {sorted(k for k in pip_reqs.keys() & conda_reqs.keys() if pip_reqs[k] != conda_reqs[k])}"
    )


def test_runtime_dependencies_are_the_promised_set():
    meta = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    names = {_normalise(r)[0] for r in meta["dependencies"]}
    assert {"numpy", "sympy", "matplotlib", "papermill", "ipykernel", "jupyterlab"} <= names


def test_ci_runs_exactly_the_readme_test_command():
    readme = (paths.ROOT / "README.md").read_text()
    assert "make test" in readme
    ci = [
        ln.strip()
        for ln in (paths.ROOT / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.startswith("#") and not ln.startswith(("set ", "cd "))
    ]
    # the README's command, after installing Chromium for the browser test (tests/test_book.py)
    assert ci[-1] == "make test" and "make test" not in ci[:-1]
    installs = [ln for ln in ci[:-1] if "apt-get" in ln]
    assert any("install" in ln and "chromium chromium-driver" in ln for ln in installs)
    assert all(ln.startswith(("if ", "fi", "DEBIAN_FRONTEND=")) for ln in ci[:-1]), ci


def test_makefile_has_the_documented_targets():
    text = (paths.ROOT / "Makefile").read_text()
    for target in ("figures", "test", "verify", "lab", "clean", "strip", "runs", "distclean"):
        assert re.search(rf"^{target}:", text, re.M), target
    readme = (paths.ROOT / "README.md").read_text()
    for target in ("strip", "runs", "distclean", "verify", "lab"):
        assert f"make {target}" in readme, target


def test_the_conda_route_is_one_recipe_in_readme_and_environment_yml():
    readme = (paths.ROOT / "README.md").read_text()
    env = (paths.ROOT / "environment.yml").read_text()
    for text in (readme, env):
        assert "conda env create -f environment.yml" in text
        assert "make figures VENV=$CONDA_PREFIX" in text
        assert "PYTHON=python" not in text and "--no-deps" not in text
        assert "conda env remove -n hfmaml" in text  # distclean leaves the environment
    assert re.search(r"^name: hfmaml$", env, re.M)


# ---------------------------------------------------- the repository is self-contained
def _theory_sections() -> dict[str, str]:
    """THEORY.md's text from each item's anchor to the next anchor."""
    text = (paths.ROOT / "THEORY.md").read_text()
    parts = re.split(r'<a id="([a-z0-9-]+)"></a>', text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_theory_md_states_every_item_and_links_its_notebooks_and_claims():
    sections = _theory_sections()
    names = set(pipeline.notebook_names())
    for item in THEORY_ITEMS:
        body = sections.get(item.lower())
        assert body, f"THEORY.md has no section for {item}"
        assert f"**{item} " in body, f"THEORY.md: the section of {item} does not state it"
        assert f"(figures/VERIFICATION.md#{pipeline.item_anchor(item)})" in body, item
        for nb in re.findall(r"\(notebooks/([^)]+)\.ipynb\)", body):
            assert nb in names, f"THEORY.md, {item}: no notebook notebooks/{nb}.ipynb"
    text = (paths.ROOT / "THEORY.md").read_text()
    for nb in re.findall(r"\(notebooks/([^)]+)\.ipynb\)", text):
        assert nb in names, f"THEORY.md links a missing notebook {nb}"
    # the corrected constants
    for const in (
        "14",
        "B \\ge 20",
        "6\\sqrt{(1 + \\rho\\alpha\\sigma/L)\\, V}",
        "36\\,\\frac{\\rho\\alpha}{L}\\, V",
        "36\\,(\\alpha\\sigma_H)^2",
    ):
        assert const in text, const


def test_the_report_has_an_anchor_for_every_theory_item():
    claim = {"id": "x", "notebook": "nb", "theory": "T1", "kind": "check", "statement": "s",
             "measured": 1.0, "relation": "<=", "bound": 2.0, "holds": True}  # fmt: skip
    report = pipeline.render_report([claim], {"nb": []}, {"nb": {}})
    section = report.split("## Claims by THEORY item")[1].split("\n## ")[0]
    for item in THEORY_ITEMS:
        assert f'<a id="{pipeline.item_anchor(item)}"></a>' in section, item
    assert "[`nb:x`](#nb-x)" in section and '<a id="nb-x"></a>' in report


def test_nothing_points_outside_the_repository():
    outside = "../" + "shared"  # spelled in two pieces so this file does not match itself
    skip = {".git", ".venv", "build", "__pycache__", ".pytest_cache", ".ruff_cache",
            ".hypothesis", "hfmaml.egg-info"}  # fmt: skip
    hits = []
    for p in paths.ROOT.rglob("*"):
        rel = p.relative_to(paths.ROOT)
        if (
            p.is_file()
            and not (set(rel.parts) & skip)
            and p.suffix in {".md", ".py", ".toml", ".yml", ".cff", ".txt", ".ipynb", ""}
        ):
            if outside in p.read_text(errors="replace"):
                hits.append(str(rel))
    assert not hits, f"files pointing to {outside}: {hits}"
    readme = (paths.ROOT / "README.md").read_text()
    assert "(THEORY.md)" in readme


def test_licence_and_citation():
    licence = (paths.ROOT / "LICENSE").read_text()
    meta = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    assert licence.startswith("MIT License") and meta["license"] == {"text": "MIT"}
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((paths.ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert cff["version"] == meta["version"] and cff["title"] and cff["authors"]
    paper = cff["references"][0]
    assert [a["family-names"] for a in paper["authors"]] == ["Fallah", "Mokhtari", "Ozdaglar"]
    assert paper["year"] == 2020 and "1908.10400" in json.dumps(paper)


def test_python_m_hfmaml_core_says_what_the_project_offers():
    res = subprocess.run([sys.executable, "-m", "hfmaml_core"], capture_output=True, text=True,
                         cwd=paths.ROOT, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    for name in pipeline.notebook_names():
        assert f"{name}.ipynb" in res.stdout
    for word in ("THEORY.md", "figures/VERIFICATION.md", "make figures", "make test"):
        assert word in res.stdout, word
