"""The reading edition behind ``make book``: a static site built from the executed notebooks.

``python -m hfmaml_core.book [--solutions] [--executed DIR] [--out DIR]``
    Convert every executed notebook (``build/executed/NAME.ipynb``, written by
    ``make figures``) to one HTML page with nbconvert's JupyterLab template
    (``hfmaml_core/book_templates/hfmaml``), ``THEORY.md`` and
    ``figures/VERIFICATION.md`` to pages of the same look, and write an index with
    the table of contents and a gallery of ``figures/*.png``. Every claim of the
    report links to the cell of the notebook that recorded it (the cell whose
    output holds the claim's line ``[ITEM kind] id: measured ...``), and that cell
    links back to the report's row. MathJax is copied from the
    ``jupyter-server-mathjax`` package into the site, which loads nothing from the
    network: it works opened from ``file://`` and served by ``python -m http.server``.

    The students' edition (``build/book/``) drops the cells tagged ``solution``;
    ``--solutions`` builds the teachers' edition (``build/book-teachers/``) with them.
    The site is built in a temporary folder beside the target and swapped in at
    the end, so a failed build never leaves half a site.
"""

from __future__ import annotations

import argparse
import copy
import html
import os
import posixpath
import re
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from . import paths, report
from .pipeline import notebook_names

TEMPLATES: Path = Path(__file__).resolve().parent / "book_templates"
TEMPLATE_NAME = "hfmaml"
SOLUTION_TAG = "solution"
STUDENTS: Path = paths.BUILD / "book"
TEACHERS: Path = paths.BUILD / "book-teachers"
THEORY: Path = paths.ROOT / "THEORY.md"
#: Where the fast notebook tests leave their executed copies (``make test`` builds those).
TEST_EXECUTED: Path = paths.BUILD / "test" / "executed"
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
#: JupyterLab's style sheets, from nbconvert's ``lab`` template, written once to ``style.css``.
LAB_CSS = ("index.css", "theme-light.css")
EDITIONS = {
    False: "students' edition (without solutions)",
    True: "teachers' edition (with solutions)",
}

#: The line a ClaimRecorder prints for every claim (hfmaml_core/claims.py).
CLAIM_LINE = re.compile(
    r"^\[(?P<theory>\S+) (?P<kind>theory|finding|check|performance)\] "
    r"(?P<id>[a-z0-9][a-z0-9_.\-]*): measured",
    re.M,
)
_HEADING = re.compile(
    r'<h(?P<level>[12]) id="(?P<id>[^"]+)">(?P<text>.*?)<a class="anchor-link"', re.S
)
_ANY_HEADING = re.compile(
    r'(?P<open><h[1-6] id="(?P<id>[^"]+)">)(?P<text>.*?)<a class="anchor-link"', re.S
)
_TAG = re.compile(r"<[^>]+>")
_LINK = re.compile(
    r'<a\s(?P<pre>[^>]*?)href="(?P<url>[^"]*)"(?P<post>[^>]*)>(?P<inner>.*?)</a>', re.S
)
_SRC = re.compile(r'(?P<attr>\ssrc=")(?P<url>[^"]*)"')
_REPORT_CLAIM = re.compile(
    r'<a id="(?P<anchor>[^"]+)"></a>\s*<code>(?P<nb>[^<:]+):(?P<id>[^<]+)</code>'
)
_REPORT_FIGURES = re.compile(r"^- `notebooks/(?P<nb>[^`]+)\.ipynb`[^:]*: (?P<figs>.*)$", re.M)


@dataclass
class Page:
    """One page of the site: its file name, title and (for notebooks) its sections."""

    file: str
    title: str
    sections: list[tuple[str, str]] = field(default_factory=list)


def claim_anchor(notebook: str, claim_id: str) -> str:
    """The id of the anchor put on the cell that recorded ``notebook:claim_id``."""
    return "claim-" + report.claim_anchor({"notebook": notebook, "id": claim_id})


def report_anchor(notebook: str, claim_id: str) -> str:
    """The id of the claim's row in the verification report (``pipeline.render_report``)."""
    return report.claim_anchor({"notebook": notebook, "id": claim_id})


def claim_cells(nb: dict) -> dict[str, int]:
    """Claim id -> index of the first code cell whose output prints the claim's line."""
    out: dict[str, int] = {}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") != "stream":
                continue
            text = o["text"] if isinstance(o["text"], str) else "".join(o["text"])
            for m in CLAIM_LINE.finditer(text):
                out.setdefault(m["id"], i)
    return out


def run_parameters(nb: dict) -> str:
    """The parameters papermill injected into this run (``fast=True, seed=3``); ``""`` for
    a run with the notebook's defaults."""
    params = nb.get("metadata", {}).get("papermill", {}).get("parameters") or {}
    return ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))


def _title(nb: dict, default: str) -> str:
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            m = re.search(r"^#\s+(.+)$", src, re.M)
            if m:
                return m.group(1).strip()
    return default


def _markdown_notebook(text: str, name: str):
    """A one-cell notebook holding ``text``: Markdown pages go through the same exporter."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(text))
    nb.metadata["title"] = name
    return nb


def _rewrite_links(page_html: str, base: str | None, known: dict[str, str]) -> str:
    """Point links and images at the site's own pages and files.

    ``base`` is the repository folder the page's relative links were written from
    (``notebooks`` for a notebook, ``""`` for THEORY.md, ``figures`` for the report).
    A link to a repository file the site does not hold becomes plain text marked
    with its path, so that no link of the site is broken. Links marked ``data-book``
    (the navigation) and pages with ``base=None`` (the index) are the site's own.
    """
    if base is None:
        return page_html

    def target(url: str) -> str | None:
        if not url or url.startswith(("#", "data:", "mailto:")) or re.match(r"^[a-z]+:", url):
            return url
        path, _, frag = html.unescape(url).partition("#")
        repo = posixpath.normpath(posixpath.join(base, unquote(path)))
        if repo in known:
            return known[repo] + (f"#{frag}" if frag else "")
        return None

    def link(m: re.Match) -> str:
        if "data-book" in m["pre"] + m["post"]:  # the site's own navigation
            return m.group(0)
        new = target(m["url"])
        if new is None:
            path = html.unescape(m["url"]).partition("#")[0]
            repo = posixpath.normpath(posixpath.join(base, unquote(path)))
            return f'<span class="repo-file" title="in the repository: {html.escape(repo)}">{m["inner"]}</span>'
        return f'<a {m["pre"]}href="{html.escape(new, quote=True)}"{m["post"]}>{m["inner"]}</a>'

    def src(m: re.Match) -> str:
        new = target(m["url"])
        return f'{m["attr"]}{html.escape(new if new is not None else m["url"], quote=True)}"'

    return _SRC.sub(src, _LINK.sub(link, page_html))


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _github_anchors(page_html: str) -> str:
    """Give every heading its GitHub anchor too, so links written for GitHub
    (``THEORY.md#results``) land on the same heading here."""
    ids = set(re.findall(r'\sid="([^"]+)"', page_html))

    def add(m: re.Match) -> str:
        slug = github_slug(html.unescape(_TAG.sub("", m["text"])))
        if not slug or slug in ids or slug == m["id"]:
            return m.group(0)
        ids.add(slug)
        return f'{m["open"]}<a class="gh-anchor" id="{html.escape(slug)}"></a>{m["text"]}<a class="anchor-link"'

    return _ANY_HEADING.sub(add, page_html)


def _sections(page_html: str) -> tuple[str | None, list[tuple[str, str]]]:
    """The page's first ``<h1>`` (as text) and its ``<h2>`` sections as (text, id)."""
    title, sections = None, []
    for m in _HEADING.finditer(page_html):
        text = html.unescape(_TAG.sub("", m["text"])).strip()
        if m["level"] == "1" and title is None:
            title = text
        elif m["level"] == "2":  # link to the GitHub anchor: nbconvert's ids keep `$\\`, `'`
            gh = re.match(r'<a class="gh-anchor" id="([^"]+)"></a>', m["text"])
            sections.append((text, gh.group(1) if gh else m["id"]))
    return title, sections


def _figures_by_notebook(report: str) -> dict[str, str]:
    """Figure stem -> notebook, from the report's "Figures by notebook" list."""
    out = {}
    for m in _REPORT_FIGURES.finditer(report):
        for f in re.findall(r"`([^`]+)\.(?:png|pdf)`", m["figs"]):
            out[f] = m["nb"]
    return out


def _mathjax_source() -> Path:
    import jupyter_server_mathjax

    src = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    if not (src / "MathJax.js").exists():  # pragma: no cover - a broken install
        raise SystemExit(f"MathJax.js not found in {src}: reinstall jupyter-server-mathjax")
    return src


def _exporter():
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML

    class Exporter(HTMLExporter):
        """nbconvert's HTML exporter without its final BeautifulSoup pass.

        That pass only adds a placeholder ``alt`` to images and ``tabindex`` to cells, and
        re-parsing every page takes half the build; ``_accessible`` does both with two
        substitutions instead.
        """

        def from_notebook_node(self, nb, resources=None, **kw):
            lang = nb.metadata.get("language_info", {})
            lexer = lang.get("pygments_lexer", lang.get("name"))
            self.register_filter(
                "highlight_code",
                self.filters.get(
                    "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)
                ),
            )
            body, res = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            return _accessible(body), res

    exp = Exporter(
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    exp.mathjax_url = MATHJAX_URL
    return exp


def _accessible(body: str) -> str:
    """What nbconvert's HTML exporter adds for screen readers and keyboards."""
    body = re.sub(r"<img(?![^>]*\balt=)", '<img alt="figure (output of the cell above)"', body)
    return re.sub(
        r'<div class="(jp-Cell-inputWrapper|jp-OutputArea-output[^"]*)"',
        r'<div class="\1" tabindex="0"',
        body,
    )


def missing_sources(executed: Path, names: Sequence[str]) -> list[str]:
    """Notebooks in ``names`` with no executed copy in ``executed``."""
    return [n for n in names if not (executed / f"{n}.ipynb").is_file()]


def build(
    out: Path | None = None,
    *,
    solutions: bool = False,
    executed: Path | None = None,
    figures: Path | None = None,
    theory: Path | None = None,
    notebooks: Path | None = None,
    names: Sequence[str] | None = None,
    quiet: bool = False,
) -> Path:
    """Build the reading edition; return its folder.

    Parameters
    ----------
    out
        Target folder; default ``build/book`` (``build/book-teachers`` with ``solutions``).
    solutions
        Keep the cells tagged ``solution`` (teachers' edition); drop them when false.
    executed
        Folder of executed notebooks ``NAME.ipynb``; default ``build/executed``.
    figures
        Folder holding ``VERIFICATION.md`` and the figures; default ``figures/``.
    theory
        The theory sheet; default ``THEORY.md`` at the repository root.
    notebooks
        Folder of the committed notebooks (to warn about stale executed copies);
        default ``notebooks/``.
    names
        Notebooks to include, in order; default every notebook of ``notebooks/``.

    Raises
    ------
    SystemExit
        Naming every notebook without an executed copy (and the fix, ``make figures``),
        or a missing ``THEORY.md`` or report.
    """
    t0 = time.perf_counter()
    executed = Path(executed) if executed is not None else paths.EXECUTED
    figures = Path(figures) if figures is not None else paths.FIGURES
    theory = Path(theory) if theory is not None else THEORY
    notebooks = Path(notebooks) if notebooks is not None else paths.NOTEBOOKS
    names = list(names) if names is not None else notebook_names()
    out = Path(out) if out is not None else (TEACHERS if solutions else STUDENTS)
    if not names:
        raise SystemExit("make book: no notebooks to build")
    missing = missing_sources(executed, names)
    if missing:
        fix = (
            "run `make figures` first (it writes them), then `make book`"
            if executed.resolve() == paths.EXECUTED.resolve()
            else "the fast notebook tests write them (tests/test_notebooks.py, run by `make test`)"
            if executed.resolve() == TEST_EXECUTED.resolve()
            else "run those notebooks first"
        )
        raise SystemExit(
            f"make book: no executed copy in {_show(executed)} of "
            + ", ".join(f"{n}.ipynb" for n in missing)
            + f": {fix}"
        )
    if not theory.is_file():
        raise SystemExit(
            f"make book: the theory sheet {_show(theory)} does not exist; the reading "
            "edition has a page for it"
        )
    report_md = figures / "VERIFICATION.md"
    if not report_md.is_file():
        raise SystemExit(f"make book: {_show(report_md)} does not exist: run `make figures`")
    for n in names:
        src = notebooks / f"{n}.ipynb"
        if src.exists() and src.stat().st_mtime > (executed / f"{n}.ipynb").stat().st_mtime:
            print(
                f"make book: warning: {_show(executed / f'{n}.ipynb')} is older than "
                f"{_show(src)}; `make figures` brings it up to date",
                file=sys.stderr,
            )

    import nbformat

    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        shutil.copytree(_mathjax_source(), tmp / "mathjax")
        (tmp / "figures").mkdir()
        pngs = sorted(figures.glob("*.png"))
        for p in pngs + sorted(figures.glob("*.pdf")):
            shutil.copyfile(p, tmp / "figures" / p.name)

        report = report_md.read_text(encoding="utf-8")
        report_anchors = set(re.findall(r'<a id="([^"]+)"></a>', report))
        known = {"THEORY.md": "theory.html", "figures/VERIFICATION.md": "verification.html"}
        known.update({f"notebooks/{n}.ipynb": f"{n}.html" for n in names})
        known.update({f"figures/{p.name}": f"figures/{p.name}" for p in tmp.glob("figures/*")})
        edition = EDITIONS[bool(solutions)]
        exporter = _exporter()
        env = exporter.environment
        (tmp / "style.css").write_text(
            "\n".join(env.loader.get_source(env, f"static/{f}")[0] for f in LAB_CSS),
            encoding="utf-8",
        )

        def export(
            nb, title: str, file: str, base: str | None, prev=None, nxt=None, overrides=None
        ) -> str:
            resources = {
                "metadata": {"name": title},
                "book": {
                    "root": "",
                    "edition": edition,
                    "prev": prev,
                    "next": nxt,
                    "overrides": overrides,
                },
            }
            with warnings.catch_warnings():
                # nbconvert warns about alternative text of images and validation quirks
                warnings.simplefilter("ignore")
                body, _ = exporter.from_notebook_node(nb, resources=resources)
            body = _github_anchors(_rewrite_links(body, base, known))
            (tmp / file).write_text(body, encoding="utf-8")
            return body

        # notebooks
        loaded = {}
        for n in names:
            nb = nbformat.read(executed / f"{n}.ipynb", as_version=4)
            if not solutions:
                nb.cells = [
                    c for c in nb.cells if SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])
                ]
            loaded[n] = nb
        titles = {n: _title(loaded[n], n) for n in names}
        overrides = {n: run_parameters(loaded[n]) for n in names}
        overridden = {n: o for n, o in overrides.items() if o}
        if overridden:
            print(
                "make book: warning: built from runs with parameters other than the defaults "
                "(each page says so): "
                + "; ".join(f"{n} ({o})" for n, o in overridden.items())
                + " — `make figures` reruns them with the defaults",
                file=sys.stderr,
            )
        pages: list[Page] = []
        anchored: set[tuple[str, str]] = set()
        for i, n in enumerate(names):
            nb = copy.deepcopy(loaded[n])
            by_cell: dict[int, list[str]] = {}
            for cid, idx in claim_cells(nb).items():
                by_cell.setdefault(idx, []).append(cid)
                anchored.add((n, cid))
            for idx, cids in by_cell.items():
                nb.cells[idx].metadata["book"] = {
                    "anchors": [claim_anchor(n, c) for c in cids],
                    "claims": [
                        (
                            f"{n}:{c}",
                            f"verification.html#{report_anchor(n, c)}"
                            if report_anchor(n, c) in report_anchors
                            else None,
                        )
                        for c in cids
                    ],
                }
            prev = (titles[names[i - 1]], f"{names[i - 1]}.html") if i > 0 else None
            nxt = (titles[names[i + 1]], f"{names[i + 1]}.html") if i + 1 < len(names) else None
            body = export(nb, titles[n], f"{n}.html", "notebooks", prev, nxt, overrides[n])
            pages.append(Page(f"{n}.html", titles[n], _sections(body)[1]))

        # the theory sheet
        theory_text = theory.read_text(encoding="utf-8")
        theory_title = _title(_markdown_notebook(theory_text, "THEORY"), "Theory")
        body = export(
            _markdown_notebook(theory_text, theory_title),
            theory_title,
            "theory.html",
            "",  # THEORY.md sits at the repository root
        )
        theory_page = Page("theory.html", theory_title, _sections(body)[1])

        # the verification report: each claim links to the cell that recorded it
        nb_report = _markdown_notebook(report, "Verification report")
        body = export(nb_report, "Verification report", "verification.html", "figures")
        unlinked = []

        def claim_link(m: re.Match) -> str:
            nb_name, cid = m["nb"].strip(), html.unescape(m["id"]).strip()
            if nb_name not in names:
                unlinked.append(f"{nb_name}:{cid}")
                return m.group(0)
            href = f"{nb_name}.html"
            if (nb_name, cid) in anchored:
                href += f"#{claim_anchor(nb_name, cid)}"
            else:
                unlinked.append(f"{nb_name}:{cid}")
            return f'<a id="{m["anchor"]}"></a><a data-book class="claim-link" href="{href}"><code>{m["nb"]}:{m["id"]}</code></a>'

        body = _REPORT_CLAIM.sub(claim_link, body)
        (tmp / "verification.html").write_text(body, encoding="utf-8")
        if unlinked:
            print(
                f"make book: warning: {len(unlinked)} claim(s) of the report were not found in the "
                f"output of their notebook (linked to the notebook's page instead): "
                + ", ".join(unlinked[:8])
                + (" ..." if len(unlinked) > 8 else "")
                + " — the report and the executed notebooks come from different runs; "
                "`make figures` makes them agree",
                file=sys.stderr,
            )

        # the index: contents and the figure gallery
        owner = _figures_by_notebook(report)
        lines = [
            "# hfmaml — the reading edition",
            "",
            f"*{edition[0].upper() + edition[1:]}.* The notebooks of this project with their "
            "outputs, numbers and figures, as `make figures` ran them; the theory sheet they "
            "cite; and the verification report, whose every claim links to the cell of the "
            "notebook that measured it. Nothing here needs a network connection.",
            "",
            "## Contents",
            "",
            f"- [{_md(theory_page.title)}](theory.html) — the setting, assumptions and results "
            "(items S1, A1–A5, H1, L1–L4, T1–T3) the notebooks cite",
        ]
        for p in pages:
            secs = " · ".join(f"[{_md(t)}]({p.file}#{a})" for t, a in p.sections)
            stem = p.file[: -len(".html")]
            note = f" — *run with {overrides[stem]}, not the defaults*" if overrides[stem] else ""
            lines.append(f"- [{_md(p.title)}]({p.file}){note}" + (f"  \n  {secs}" if secs else ""))
        lines += [
            "- [Verification report](verification.html) — every claim, measured against its "
            "bound, each linking to the notebook cell that made it",
            "",
            f"## Figure gallery ({len(pngs)} figures)",
            "",
            '<div class="gallery">',
        ]
        for p in pngs:
            nb_name = owner.get(p.stem)
            where = (
                f' — <a href="{nb_name}.html">{html.escape(titles.get(nb_name, nb_name))}</a>'
                if nb_name in titles
                else ""
            )
            pdf = (
                f' (<a href="figures/{p.stem}.pdf">PDF</a>)'
                if (tmp / "figures" / f"{p.stem}.pdf").exists()
                else ""
            )
            lines.append(
                f'<figure><a href="figures/{p.name}"><img src="figures/{p.name}" alt="figure {p.stem}"></a>'
                f"<figcaption><code>{p.stem}</code>{pdf}{where}</figcaption></figure>"
            )
        lines += ["</div>", ""]
        export(
            _markdown_notebook("\n".join(lines), "hfmaml"),
            "hfmaml — reading edition",
            "index.html",
            None,
        )

        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not quiet:
        print(
            f"make book: {_show(out)}/index.html — {edition}: {len(pages)} notebooks, theory, "
            f"verification report, {len(pngs)} figures; {len(anchored)} claim anchors "
            f"({time.perf_counter() - t0:.1f} s)"
        )
    return out


def _md(text: str) -> str:
    """Text safe inside a Markdown link label."""
    return text.replace("[", "\\[").replace("]", "\\]")


def _show(p: Path) -> str:
    p = Path(p)
    try:
        return p.resolve().relative_to(paths.ROOT).as_posix()
    except ValueError:
        return str(p)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hfmaml_core.book", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--solutions", action="store_true", help="the teachers' edition: keep cells tagged solution"
    )
    ap.add_argument("--executed", type=Path, help="folder of executed notebooks (build/executed)")
    ap.add_argument("--out", type=Path, help="target folder (build/book or build/book-teachers)")
    args = ap.parse_args(argv)
    build(args.out, solutions=args.solutions, executed=args.executed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
