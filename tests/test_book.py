"""The reading edition (``make book``): built from executed notebooks, checked in a browser.

The build tests use small fixture notebooks made here (a real ``ClaimRecorder`` prints their
claim lines, the real ``render_report`` writes their report). The browser test drives
headless Chromium (Debian's ``chromium`` and ``chromium-driver``) over a site: the one named
by ``HFMAML_BOOK`` (``make test`` builds ``build/test/book`` from the executed notebooks of
the fast notebook tests and points it there), else a fixture site. It is skipped, with the
reason, when Chromium is not installed.
"""

from __future__ import annotations

import base64
import contextlib
import html.parser
import io
import json
import os
import re
import shutil
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from hfmaml_core import book, paths, pipeline
from hfmaml_core.claims import THEORY_ITEMS, ClaimRecorder

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)
NAMES = ["00_demo", "01_other"]


# ------------------------------------------------------------------------ fixtures
def _png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2), dpi=60)
    ax.plot([0, 1, 2], [0, 1, 4])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _claim(rec: ClaimRecorder, *args, **kw) -> str:
    """Record a claim and return the line the recorder prints (what an executed cell shows)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rec.check(*args, **kw)
    return out.getvalue()


def make_sources(root: Path) -> dict:
    """Two executed notebooks, THEORY.md, a report and a figure under ``root``; build() kwargs."""
    # imported here: nbformat takes about a second to import (jsonschema's format checkers),
    # which the browser test, on `make test`'s longest chain, does not need
    import nbformat

    nbv4 = nbformat.v4
    png = _png()
    rec = ClaimRecorder("00_demo")
    line1 = _claim(
        rec,
        "ratio.worst_case",
        "H1",
        "the worst ratio is at most one",
        kind="theory",
        measured=0.5,
        bound=1.0,
        control={"statement": "the same with the term dropped", "measured": 3.0},
    )
    line2 = _claim(
        rec, "setup-ok", None, "the family is the one described", kind="check", measured=1.0,
        bound=1.0, relation="==", tolerance=0.0,
    )  # fmt: skip
    demo = nbv4.new_notebook()
    demo.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    demo.cells = [
        nbv4.new_markdown_cell(
            "# 00 · A demo of $\\nabla F$\n\nThe meta-gradient (S1 of [THEORY](../THEORY.md)):\n"
            "$$\\nabla F(w) = \\frac{1}{2} \\nabla f(w)$$\n\nSee also [the other notebook]"
            "(01_other.ipynb), [the report](../figures/VERIFICATION.md), the figure "
            "[demo-figure](../figures/demo-figure.png) and the code [tasks.py](../hfmaml_core/tasks.py)."
        ),
        nbv4.new_code_cell(
            "fast = False\nseed = 0", metadata={"tags": ["parameters"]}, execution_count=1
        ),
        nbv4.new_markdown_cell(
            "## Measuring the ratio\n\nWe compare $\\|x\\|$ with $\\rho \\delta^2$."
        ),
        nbv4.new_code_cell(
            "print('fitting')\nrec.check('ratio.worst_case', ...)",
            execution_count=2,
            outputs=[
                nbv4.new_output("stream", name="stdout", text="fitting\n" + line1),
                nbv4.new_output(
                    "display_data",
                    data={"image/png": base64.b64encode(png).decode(), "text/plain": "<Figure>"},
                ),
            ],
        ),
        nbv4.new_code_cell(
            "rec.check('setup-ok', ...)\nMarkdown(f'measured ${x}$')",
            execution_count=3,
            outputs=[
                nbv4.new_output("stream", name="stdout", text=line2),
                nbv4.new_output(
                    "display_data",
                    data={
                        "text/markdown": "The ratio is $\\frac{1}{2} \\le 1$.",
                        "text/plain": "md",
                    },
                ),
            ],
        ),
        nbv4.new_markdown_cell(
            "## Conclusion\n\nThe ratio holds.\n\n## Exercises\n\n1. Why? *Hint*: look."
        ),
        nbv4.new_markdown_cell(
            "### Solutions\n\n1. Because $\\frac{a}{b} \\le 1$. SOLUTION-TEXT-MARKER",
            metadata={"tags": ["solution"]},
        ),
        nbv4.new_markdown_cell("That is all."),
    ]
    other = nbv4.new_notebook()
    other.metadata["papermill"] = {"parameters": {"fast": True}}  # as a fast run records it
    other.cells = [
        nbv4.new_markdown_cell("# 01 · Another notebook\n\n## Only section\n\n$a^2 + b^2$"),
        nbv4.new_code_cell("x = 1", execution_count=1),
        nbv4.new_markdown_cell("Back to [the demo](00_demo.ipynb#Measuring-the-ratio)."),
    ]
    executed, notebooks, figures = root / "executed", root / "notebooks", root / "figures"
    for d in (executed, notebooks, figures):
        d.mkdir(parents=True)
    for name, nb in (("00_demo", demo), ("01_other", other)):
        nbformat.write(nb, executed / f"{name}.ipynb")
    (figures / "demo-figure.png").write_bytes(png)
    (figures / "demo-figure.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    claims = [c.as_dict() for c in rec.claims]
    report = pipeline.render_report(claims, {"00_demo": ["demo-figure.pdf", "demo-figure.png"]}, {})
    (figures / "VERIFICATION.md").write_text(report)
    theory = root / "THEORY.md"
    theory.write_text(
        "# THEORY — the theory sheet\n\n## S1 · The meta-gradient\n\n"
        "$$\\nabla F(w) = \\mathbb{E}\\left[(I - \\alpha \\nabla^2 f_i(w)) \\nabla f_i(w - "
        "\\alpha \\nabla f_i(w))\\right]$$\n\nTested in [00_demo](notebooks/00_demo.ipynb); "
        "see [the results](#results-and-open-points).\n\n## Results and open points\n\n"
        + "".join(f'- <a id="{i.lower()}"></a>**{i}** item {i}.\n' for i in THEORY_ITEMS)
    )
    return {
        "executed": executed,
        "figures": figures,
        "theory": theory,
        "notebooks": notebooks,
        "names": NAMES,
        "quiet": True,
    }


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict:
    return make_sources(tmp_path_factory.mktemp("book-sources"))


@pytest.fixture(scope="module")
def students(sources, tmp_path_factory) -> Path:
    return book.build(tmp_path_factory.mktemp("students") / "book", **sources)


@pytest.fixture(scope="module")
def teachers(sources, tmp_path_factory) -> Path:
    return book.build(tmp_path_factory.mktemp("teachers") / "book", solutions=True, **sources)


class _Refs(html.parser.HTMLParser):
    """Every id, link, and loaded resource of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.loads: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.loads.append(a["src"])
        if tag == "link" and a.get("href"):
            self.loads.append(a["href"])


def _refs(page: Path) -> _Refs:
    p = _Refs()
    p.feed(page.read_text(encoding="utf-8"))
    return p


# ------------------------------------------------------------------- build tests
def test_the_site_has_an_index_one_page_per_notebook_theory_and_the_report(students):
    pages = {p.name for p in students.glob("*.html")}
    assert pages == {
        "index.html",
        "theory.html",
        "verification.html",
        "00_demo.html",
        "01_other.html",
    }
    assert (students / "mathjax" / "MathJax.js").is_file()
    assert (students / "figures" / "demo-figure.png").is_file()
    index = (students / "index.html").read_text()
    for href in ("theory.html", "verification.html", "00_demo.html", "01_other.html"):
        assert f'href="{href}"' in index, href
    assert 'href="00_demo.html#measuring-the-ratio"' in index  # sections in the contents
    assert '<img src="figures/demo-figure.png"' in index  # the gallery
    assert "edition (without solutions)" in index


def test_students_edition_drops_solutions_and_teachers_edition_keeps_them(students, teachers):
    assert "SOLUTION-TEXT-MARKER" not in (students / "00_demo.html").read_text()
    page = (teachers / "00_demo.html").read_text()
    assert "SOLUTION-TEXT-MARKER" in page and "celltag_solution" in page
    assert "edition (with solutions)" in (teachers / "index.html").read_text()


def test_every_claim_of_the_report_links_to_the_cell_that_recorded_it(students):
    report = _refs(students / "verification.html")
    targets = [h for h in report.links if h.startswith("00_demo.html#")]
    expected = {book.claim_anchor("00_demo", c) for c in ("ratio.worst_case", "setup-ok")}
    assert {h.split("#")[1] for h in targets} == expected
    page = (students / "00_demo.html").read_text()
    for anchor in expected:  # the anchor sits just before the cell whose output prints the line
        cell = page.split(f'id="{anchor}"', 1)[1].split('<div class="claims-here"', 1)[0]
        claim_id = "ratio.worst_case" if "worst" in anchor else "setup-ok"
        assert f"] {claim_id}: measured" in cell
    # and each cell links back to its row of the report
    for c in ("ratio.worst_case", "setup-ok"):
        assert f'href="verification.html#{book.report_anchor("00_demo", c)}"' in page
        assert (
            f'id="{book.report_anchor("00_demo", c)}"'
            in (students / "verification.html").read_text()
        )


def test_every_link_and_image_resolves_and_nothing_loads_from_the_network(students, teachers):
    for site in (students, teachers):
        refs = {p.name: _refs(p) for p in site.glob("*.html")}
        for name, r in refs.items():
            for src in r.loads:
                assert not re.match(r"^(https?:)?//", src), f"{name} loads {src} from the network"
                if not src.startswith("data:"):
                    assert (site / unquote(src.split("?")[0])).is_file(), f"{name}: {src}"
            for href in r.links:
                if re.match(r"^[a-z]+:", href):
                    continue
                path, _, frag = href.partition("#")
                target = path or name
                assert (site / unquote(target)).is_file(), f"{name}: broken link {href}"
                if frag:
                    ids = refs[target].ids
                    assert frag in ids or unquote(frag) in ids, f"{name}: no anchor for {href}"
    demo = (students / "00_demo.html").read_text()
    assert 'class="repo-file" title="in the repository: hfmaml_core/tasks.py"' in demo
    assert 'href="theory.html"' in demo and 'href="01_other.html"' in demo
    assert "$$\\nabla F(w) = \\frac{1}{2}" in demo  # left for MathJax, in the page's text


def test_a_page_from_a_run_with_other_parameters_says_so(students):
    assert (
        "run with the parameters <code>fast=True</code>" in (students / "01_other.html").read_text()
    )
    assert 'class="book-overrides"' not in (students / "00_demo.html").read_text()
    assert "run with fast=True, not the defaults" in (students / "index.html").read_text()


def test_a_missing_executed_copy_fails_naming_the_notebook_and_the_fix(
    sources, tmp_path, monkeypatch
):
    executed = tmp_path / "executed"
    shutil.copytree(sources["executed"], executed)
    (executed / "01_other.ipynb").unlink()
    monkeypatch.setattr(paths, "EXECUTED", executed)  # as if it were build/executed/
    with pytest.raises(SystemExit, match=r"01_other\.ipynb.*make figures"):
        book.build(tmp_path / "book", **{**sources, "executed": executed})
    assert not (tmp_path / "book").exists()


def test_a_missing_theory_sheet_fails_clearly(sources, tmp_path):
    with pytest.raises(SystemExit, match=r"theory sheet .*THEORY\.md does not exist"):
        book.build(tmp_path / "book", **{**sources, "theory": tmp_path / "THEORY.md"})


def test_a_rebuild_replaces_the_site_whole(sources, students):
    (students / "stale.html").write_text("old")
    book.build(students, **sources)
    assert not (students / "stale.html").exists()
    assert not list(students.parent.glob(".book.tmp"))


def test_the_makefile_and_ci_build_and_check_the_book():
    make = (paths.ROOT / "Makefile").read_text()
    assert re.search(r"^book:", make, re.M) and "SOLUTIONS" in make
    assert "HFMAML_BOOK=" in make  # make test runs the browser test on a built site
    ci = (paths.ROOT / ".ci" / "run").read_text()
    assert "apt-get install" in ci and "chromium-driver" in ci


# ------------------------------------------------------------------ browser test
def _no_browser() -> str | None:
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.access(exe, os.X_OK):
            return (
                f"headless Chromium is not installed ({exe} missing): "
                "apt-get install chromium chromium-driver (.ci/run does)"
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return None


#: Headless Chromiums the browser test loads the pages with, side by side: typesetting a page
#: keeps one core busy, so two halve the test's wall time on two cores.
N_BROWSERS = 2


@pytest.fixture(scope="module")
def browsers(tmp_path_factory):
    reason = _no_browser()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never download

    # made here, not in the threads: tmp_path_factory is not thread-safe
    profiles = [tmp_path_factory.mktemp(f"chromium-profile-{k}") for k in range(N_BROWSERS)]

    def start(k: int):
        opts = Options()
        opts.binary_location = str(CHROMIUM)
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={profiles[k]}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
        driver.set_page_load_timeout(60)
        return driver

    with ThreadPoolExecutor(N_BROWSERS) as pool:
        futures = [pool.submit(start, k) for k in range(N_BROWSERS)]
    drivers = [f.result() for f in futures if f.exception() is None]
    try:
        for f in futures:  # a failed start fails the test once every started one is quit
            f.result()
        yield drivers
    finally:
        for driver in drivers:
            driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    env = os.environ.get("HFMAML_BOOK")
    if env:
        s = Path(env).resolve()
        assert (s / "index.html").is_file(), f"HFMAML_BOOK={env}: no index.html (run make book)"
        return s
    return book.build(
        tmp_path_factory.mktemp("site") / "book", **make_sources(tmp_path_factory.mktemp("src"))
    )


#: What a page shows once MathJax is done: images, links, ids, the text outside code.
_PAGE_JS = """
const clone = document.body.cloneNode(true);
clone.querySelectorAll('pre, code, script, style, .MathJax_Preview, .MJX_Assistive_MathML, math')
  .forEach(e => e.remove());
return {
  images: Array.from(document.images).map(i => [i.currentSrc || i.src, i.complete && i.naturalWidth > 0]),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
  text: clone.textContent,
  math: document.querySelectorAll('.MathJax, .MathJax_Display').length,
  errors: document.querySelectorAll('.MathJax_Error, .merror').length
          + (document.body.textContent.includes('Math Processing Error') ? 1 : 0),
  resources: performance.getEntriesByType('resource').map(r => r.name),
  title: document.title,
};
"""


#: Resolves once the page has loaded and MathJax is done: it waits in the page, so the test
#: neither polls the browser from outside (each poll a round trip through chromedriver) nor
#: lags behind it. An error in the page, or no end of typesetting within the script
#: timeout, fails the load.
_WAIT_TYPESET_JS = """
const done = arguments[arguments.length - 1];
const ready = () => document.readyState === 'complete' && document.body
  && document.body.getAttribute('data-math') === 'typeset';
if (ready()) { done(true); } else {
  const t = setInterval(() => { if (ready()) { clearInterval(t); done(true); } }, 20);
}
"""


def _load(driver, url: str) -> dict:
    driver.get(url)
    driver.set_script_timeout(60)
    assert driver.execute_async_script(_WAIT_TYPESET_JS) is True, f"{url}: not typeset"
    return driver.execute_script(_PAGE_JS)


def _check_page(name: str, info: dict, local: tuple[str, ...]) -> None:
    bad = [src for src, ok in info["images"] if not ok]
    assert not bad, f"{name}: images that do not load: {bad[:5]}"
    for raw in ("$", "\\frac", "\\nabla"):
        i = info["text"].find(raw)
        assert i < 0, (
            f"{name}: raw {raw!r} left in the text: …{info['text'][max(0, i - 80) : i + 80]}…"
        )
    assert not info["errors"], f"{name}: {info['errors']} MathJax error(s)"
    remote = [r for r in info["resources"] if not r.startswith(local + ("data:",))]
    assert not remote, f"{name}: loaded from outside the site: {remote[:5]}"


@contextlib.contextmanager
def _http_server(root: Path):
    """What `python -m http.server -d ROOT` serves, on a free loopback port."""

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_the_site_in_headless_chromium(browsers, site):
    """Every page from file:// and over HTTP: loads, images and links resolve, math typeset."""
    t0 = time.perf_counter()
    pages = sorted(p.name for p in site.glob("*.html"))
    special = ("index.html", "theory.html", "verification.html")
    assert set(special) <= set(pages)
    root_uri = site.as_uri() + "/"
    shots = site.with_name(site.name + "-screenshots")
    shots.mkdir(exist_ok=True)
    # the smallest notebook page with a figure gets a screenshot and a claim link followed
    nb = min(
        (n for n in pages if n not in special and "data:image/png" in (site / n).read_text()),
        key=lambda n: (site / n).stat().st_size,
    )
    claims = [h for h in _refs(site / "verification.html").links if h.startswith(f"{nb}#claim-")]

    def visit(browser, names: list[str]) -> dict[str, dict]:
        seen: dict[str, dict] = {}
        for name in names:  # each page loaded once; screenshots and the claim check on the way
            info = _load(browser, root_uri + name)
            _check_page(name, info, ("file:",))
            seen[name] = info
            if name not in ("index.html", "verification.html"):  # notebooks and THEORY have math
                assert info["math"], f"{name}: no typeset formula"
            if name == "index.html":  # tall enough for the contents and the gallery's first row
                browser.set_window_size(1280, 1700)
                browser.save_screenshot(str(shots / "index.png"))
                browser.set_window_size(1280, 1000)
            elif name == "theory.html":
                browser.save_screenshot(str(shots / "theory.png"))
            elif name == nb:
                browser.execute_script(
                    "const img = document.querySelector('.jp-OutputArea-output img');"
                    "window.scrollTo(0, img.getBoundingClientRect().top + window.scrollY - 420);"
                )
                time.sleep(0.2)
                browser.save_screenshot(str(shots / "notebook.png"))
                if claims:  # the report's link lands on the cell whose output recorded the claim
                    frag = unquote(claims[0].split("#", 1)[1])
                    cell = browser.execute_script(
                        "location.hash = arguments[0];"  # same page: no reload
                        "const a = document.getElementById(arguments[0]);"
                        "let c = a.nextElementSibling; while (c && !c.classList.contains('jp-Cell'))"
                        " c = c.nextElementSibling;"
                        "return [c ? c.textContent : '', a.getBoundingClientRect().top,"
                        " window.innerHeight];",
                        frag,
                    )
                    assert re.search(r"\] [a-z0-9_.\-]+: measured", cell[0]), (
                        f"{frag}: no claim line"
                    )
                    assert -60 <= cell[1] < cell[2], f"{frag}: the cell is not in view"
                    browser.save_screenshot(str(shots / "claim.png"))
        return seen

    # the pages dealt to the browsers largest first, each to the one with the fewest bytes so far
    shares: list[list[str]] = [[] for _ in browsers]
    for name in sorted(pages, key=lambda n: -(site / n).stat().st_size):
        min(shares, key=lambda names: sum((site / n).stat().st_size for n in names)).append(name)
    seen: dict[str, dict] = {}
    with ThreadPoolExecutor(len(browsers)) as pool:
        for part in [
            pool.submit(visit, b, names) for b, names in zip(browsers, shares, strict=True)
        ]:
            seen.update(part.result())
    assert sorted(seen) == pages
    # every internal link points at a file of the site and, with a fragment, at an anchor
    n_links = 0
    for name, info in seen.items():
        for href in info["links"]:
            url = urlparse(href)
            if url.scheme != "file":
                continue
            n_links += 1
            target = Path(unquote(url.path))
            assert target.is_file() and site in target.parents, f"{name}: broken link {href}"
            if url.fragment:
                ids = seen[target.name]["ids"]  # browsers try the fragment, then it decoded
                assert url.fragment in ids or unquote(url.fragment) in ids, f"{name}: no {href}"
    linked = {
        Path(urlparse(h).path).name
        for h in seen["index.html"]["links"]
        if h.endswith(".html") or ".html#" in h
    }
    assert set(pages) - {"index.html"} <= linked, "pages the contents do not reach"
    # the same site served by `python -m http.server`
    with _http_server(site) as base:
        targets = {urljoin(base, n) for n in pages}
        for info in seen.values():
            for href in info["links"]:
                url = urlparse(href)
                if url.scheme == "file":
                    targets.add(urljoin(base, Path(url.path).relative_to(site).as_posix()))
        for url in sorted(targets):
            with urllib.request.urlopen(url, timeout=10) as r:
                assert r.status == 200, url

        def check_over_http(k: int, name: str) -> None:
            _check_page(name, _load(browsers[k % len(browsers)], base + name), (base,))

        with ThreadPoolExecutor(len(browsers)) as pool:
            for f in [pool.submit(check_over_http, *kn) for kn in enumerate(("index.html", nb))]:
                f.result()
    report = {
        "pages": len(pages),
        "internal_links": n_links,
        "http_urls": len(targets),
        "screenshots": sorted(str(p) for p in shots.glob("*.png")),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (shots / "browser-test.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"browser test: {report}")
