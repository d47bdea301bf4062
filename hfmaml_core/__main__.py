"""``python -m hfmaml_core``: what this project offers, where to find it, and how to run it.

Everything printed is read from the repository (notebook titles, the THEORY
items their claims cite, the Makefile's ``help`` lines), so it never goes stale.
"""

from __future__ import annotations

import json
import re
import sys

from . import paths, pipeline
from .claims import THEORY_ITEMS

_ITEM = re.compile(r"\b(" + "|".join(THEORY_ITEMS) + r")\b")


def _title(name: str) -> str:
    cells = json.loads((paths.NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for line in src.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return name


def _items(name: str, claims: list[dict]) -> list[str]:
    """THEORY items the notebook's committed claims cite (else those its text names)."""
    cited = {c["theory"] for c in claims if c.get("notebook") == name and c.get("theory")}
    if not cited:
        text = (paths.NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8")
        cited = set(_ITEM.findall(text))
    return [i for i in THEORY_ITEMS if i in cited]


def _targets() -> list[str]:
    text = (paths.ROOT / "Makefile").read_text(encoding="utf-8")
    return re.findall(r'^\t@echo "(make .*)"$', text, re.M)


def describe() -> str:
    """The text ``python -m hfmaml_core`` prints."""
    claims_file = paths.FIGURES / "claims.json"
    claims = json.loads(claims_file.read_text())["claims"] if claims_file.exists() else []
    lines = [
        "hfmaml: notebooks and a verified library that check the convergence theory of MAML,",
        "FO-MAML and HF-MAML (Fallah, Mokhtari & Ozdaglar, AISTATS 2020).",
        "",
        f"Theory sheet (items {', '.join(THEORY_ITEMS)}): THEORY.md",
        "",
        "Notebooks (notebooks/):",
    ]
    for name in pipeline.notebook_names():
        items = ", ".join(_items(name, claims)) or "-"
        lines.append(f"  {name}.ipynb  [{items}]")
        lines.append(f"      {_title(name)}")
    n = len(claims)
    lines += [
        "",
        "Results:",
        f"  figures/VERIFICATION.md  the verification report ({n} claims)"
        if n
        else "  figures/VERIFICATION.md  the verification report (run `make figures`)",
        "  figures/claims.json      the same claims, machine readable",
        "  figures/*.pdf, *.png     every figure (committed); figures/MANIFEST.json their inputs",
        "  build/executed/          the executed notebooks, after `make figures`",
        "  build/book/index.html    the reading edition (`make book`; teachers' edition: SOLUTIONS=1)",
        "",
        "Make targets:",
    ]
    lines += [f"  {t}" for t in _targets()]
    lines += [
        "",
        "One notebook by hand: python -m hfmaml_core.pipeline run NAME [--fast] [-p name value]",
        "(writes build/stage/NAME/, never figures/). README.md has the details.",
    ]
    return "\n".join(lines)


def main() -> int:
    print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
