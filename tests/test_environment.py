"""The two ways to install (pip, conda) and the two commands stay in step."""

from __future__ import annotations

import re
import sys

from hfmaml_core import paths

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
    assert ci == ["make test"]


def test_makefile_has_the_documented_targets():
    text = (paths.ROOT / "Makefile").read_text()
    for target in ("figures", "test", "verify", "lab", "clean"):
        assert re.search(rf"^{target}:", text, re.M), target
