"""The traps a newcomer used to fall into, each replayed on tiny notebooks in a temporary tree.

- a manual run with other parameters (or ``--fast``) must never reach ``figures/``;
- an interrupted or failed manual run must never block ``make figures``;
- notebook parameters are type-checked before any cell runs;
- ``collect`` is all or nothing, whatever step it is interrupted at;
- ``make distclean`` deletes only a virtual environment the Makefile created;
- notebooks carry the project's kernel and open in JupyterLab unmodified.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from hfmaml_core import _io, paths, pipeline

PARAMS = (
    'fast = False\nseed = 0\ndim = 5\ninput_scale = 2.0\ndims = [1, 10]\nresults_file = "cost.json"'
)
TINY_BODY = """\
import json, os
from hfmaml_core.claims import ClaimRecorder
rec = ClaimRecorder("tiny")
rec.check("dim", None, "the dimension the run used", kind="check", measured=float(dim),
          relation=">=", bound=0.0)
rec.save()
"""


def _tiny_notebook(folder: Path, name: str = "tiny", body: str = TINY_BODY) -> Path:
    nb = new_notebook(
        cells=[
            new_markdown_cell("# tiny"),
            new_code_cell(PARAMS),
            new_code_cell(body),
            new_markdown_cell("end"),
        ]
    )
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata.update(kernelspec=dict(pipeline.KERNELSPEC), language_info={"name": "python"})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A project tree with one tiny notebook; every pipeline path points into it."""
    _tiny_notebook(tmp_path / "notebooks")
    monkeypatch.setattr(paths, "NOTEBOOKS", tmp_path / "notebooks")
    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    monkeypatch.setattr(paths, "STAGE", tmp_path / "build" / "stage")
    monkeypatch.setattr(paths, "EXECUTED", tmp_path / "build" / "executed")
    monkeypatch.setattr(paths, "FIGURES", tmp_path / "figures")
    # the library is being edited by others while tests run: pin its hash
    monkeypatch.setattr(pipeline, "library_hashes", lambda: {"hfmaml_core/x.py": "0" * 64})
    return tmp_path


def _claim(cid: str, notebook: str) -> dict:
    return {"id": cid, "notebook": notebook, "theory": "H1", "kind": "check", "statement": "s",
            "measured": 1.0, "relation": "<=", "bound": 2.0, "holds": True}  # fmt: skip


def _fake_papermill(monkeypatch, *, interrupt: bool = False):
    """Replace papermill's executor by one that records a claim and a figure, or is interrupted."""
    import papermill as pm

    calls = []

    def execute(src, dst, *, parameters, **kwargs):
        calls.append(dict(parameters))
        if interrupt:
            Path(dst).write_text("{half a notebook")
            raise KeyboardInterrupt
        out = Path(os.environ[paths.OUTPUT_ENV])
        name = Path(src).stem
        claims = [_claim("c", name)]
        (out / f"claims-{name}.json").write_text(json.dumps({"notebook": name, "claims": claims}))
        (out / f"fig-{name}.pdf").write_bytes(b"%PDF " + json.dumps(parameters).encode())
        (out / f"fig-{name}.png").write_bytes(b"png")
        shutil.copy(src, dst)

    monkeypatch.setattr(pm, "execute_notebook", execute)
    return calls


# ------------------------------------------------------- 1. parameters are type-checked
@pytest.mark.parametrize(
    "args, words",
    [
        (["-p", "fast", "false"], ["fast", "True or False", "'false'"]),
        (["-p", "fast", "maybe"], ["fast", "True or False", "'maybe'"]),
        (["-p", "fast", "1"], ["fast", "True or False"]),
        (["-p", "seed", "abc"], ["seed", "integer >= 0", "'abc'"]),
        (["-p", "seed", "-1"], ["seed", "integer >= 0", "-1"]),
        (["-p", "dim", "2.5"], ["dim", "integer >= 0"]),
        (["-p", "dim", "True"], ["dim", "integer >= 0"]),
        (["-p", "input_scale", "big"], ["input_scale", "finite number"]),
        (["-p", "input_scale", "inf"], ["input_scale", "finite number"]),
        (["-p", "dims", "[1, -2]"], ["dims", "list of integer >= 0s"]),
        (["-p", "results_file", "3"], ["results_file", "string"]),
        (["-p", "dimm", "10"], ["unknown parameter dimm", "fast, seed, dim"]),
    ],
)
def test_bad_parameters_are_refused_before_anything_runs(tree, monkeypatch, capsys, args, words):
    calls = _fake_papermill(monkeypatch)
    stage = paths.STAGE / "tiny"
    stage.mkdir(parents=True)
    (stage / pipeline.DEFAULTS_STAMP).write_text("{}")  # a previous good run
    assert pipeline.main(["run", "tiny", *args]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, (w, err)
    assert err.startswith("tiny: ")
    assert not calls, "no cell may run"
    assert (stage / pipeline.DEFAULTS_STAMP).exists(), "a refused run must not touch the stage"


def test_good_parameters_are_converted_to_the_defaults_types(tree, monkeypatch):
    calls = _fake_papermill(monkeypatch)
    assert pipeline.main(["run", "tiny", "-p", "input_scale", "3", "-p", "fast", "True"]) == 0
    assert calls == [{"input_scale": 3.0, "fast": True}]
    assert type(calls[0]["input_scale"]) is float


def test_the_parameters_cell_must_hold_literals(tmp_path):
    path = _tiny_notebook(tmp_path)
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source = "fast = False\nseed = 0\nn = seed + 1"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="parameter n must be a literal"):
        pipeline.notebook_parameters(path)


def test_a_real_run_receives_the_checked_parameters(tree, capsys):
    """Papermill itself, on the tiny notebook: the notebook sees dim = 7, an int."""
    stage = pipeline.run("tiny", parameters={"dim": 7})
    claims = json.loads((stage / "claims-tiny.json").read_text())["claims"]
    assert claims[0]["measured"] == 7.0
    out = capsys.readouterr().out
    assert "[tiny] started with dim=7" in out and "[tiny] finished in" in out
    assert "1 claims, all hold" in out


# ------------------------------------------- 2. manual runs never reach figures/
def test_only_a_run_with_the_defaults_leaves_the_stamp(tree, monkeypatch, capsys):
    _fake_papermill(monkeypatch)
    stage = pipeline.run("tiny")
    assert (stage / pipeline.DEFAULTS_STAMP).exists()
    assert "[tiny] started with the defaults" in capsys.readouterr().out
    pipeline.run("tiny", parameters={"seed": 0})  # the default, spelled out
    assert (stage / pipeline.DEFAULTS_STAMP).exists()
    # README's example: a manual fast run with dim = 10
    assert pipeline.main(["run", "tiny", "-p", "dim", "10", "--fast"]) == 0
    assert not (stage / pipeline.DEFAULTS_STAMP).exists()
    record = json.loads((stage / "run.json").read_text())
    assert record["parameters"] == {"dim": 10, "fast": True}


def test_collect_refuses_a_run_not_made_with_the_defaults(tree, monkeypatch):
    _fake_papermill(monkeypatch)
    pipeline.run("tiny")
    assert pipeline.collect() == 0
    before = _snapshot(paths.FIGURES)
    pipeline.run("tiny", fast=True, parameters={"dim": 10})
    with pytest.raises(SystemExit, match=r"tiny was made with parameters other than the defaults"):
        pipeline.collect()
    assert _snapshot(paths.FIGURES) == before


def test_verify_fails_on_figures_not_made_with_the_defaults(tree, monkeypatch, capsys):
    _fake_papermill(monkeypatch)
    pipeline.run("tiny")
    pipeline.collect()
    assert pipeline.verify() == 0
    manifest = paths.FIGURES / "MANIFEST.json"
    m = json.loads(manifest.read_text())
    m["parameters"]["tiny"] = {"dim": 10}  # as an old pipeline (or a hand edit) left it
    manifest.write_text(json.dumps(m))
    capsys.readouterr()
    assert pipeline.verify() == 1
    assert "not made with the default parameters: tiny" in capsys.readouterr().err


# ---------------------------- 3. interrupted or failed runs never block make figures
def test_an_interrupted_run_leaves_no_stamp_and_no_partial_copy(tree, monkeypatch):
    _fake_papermill(monkeypatch)
    stage = pipeline.run("tiny")
    _fake_papermill(monkeypatch, interrupt=True)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run("tiny")
    assert not (stage / pipeline.DEFAULTS_STAMP).exists(), "make figures must rerun it"
    assert not list(paths.EXECUTED.glob(".running-*"))
    with pytest.raises(SystemExit, match="interrupted or failed\\): `make figures` runs it"):
        pipeline.collect()
    _fake_papermill(monkeypatch)
    pipeline.run("tiny")  # what make figures does next
    assert pipeline.collect() == 0


def test_a_failed_run_leaves_no_stamp(tree):
    _tiny_notebook(paths.NOTEBOOKS, body="raise RuntimeError('planted')")
    stage = paths.STAGE / "tiny"
    stage.mkdir(parents=True)
    (stage / pipeline.DEFAULTS_STAMP).write_text("{}")
    with pytest.raises(SystemExit):
        pipeline.run("tiny")
    assert not (stage / pipeline.DEFAULTS_STAMP).exists()


# ------------------------------------------------ the Makefile's side of traps 1 to 3
FAKE_PY = r"""#!/bin/sh
# stands in for the venv's python: `-m hfmaml_core.pipeline run NAME [args]` behaves like
# the pipeline (empties the stage; only a run with no arguments leaves the stamp)
echo "$@" >> "$LOG"
if [ "$1 $2 $3" = "-m hfmaml_core.pipeline run" ]; then
  rm -rf "build/stage/$4"; mkdir -p "build/stage/$4" build/executed
  touch "build/executed/$4.ipynb"
  if [ $# -eq 4 ]; then touch "build/stage/$4/defaults.stamp"; fi
fi
exit 0
"""


@pytest.fixture
def make_tree(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = tmp_path / "repo"
    (root / "hfmaml_core").mkdir(parents=True)
    (root / "hfmaml_core" / "lib.py").write_text("")
    _tiny_notebook(root / "notebooks", "aa")
    _tiny_notebook(root / "notebooks", "bb")
    (root / "pyproject.toml").write_text("")
    shutil.copy(paths.ROOT / "Makefile", root / "Makefile")
    venv = root / "fakevenv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(FAKE_PY)
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    (venv / ".hfmaml-installed").touch()
    return root


def _make(root, *args, check=True):
    env = {**os.environ, "LOG": str(root / "log")}
    (root / "log").write_text("")
    res = subprocess.run(
        ["make", "-s", f"VENV={root / 'fakevenv'}", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if check:
        assert res.returncode == 0, res.stderr
    runs = [ln.split()[3] for ln in (root / "log").read_text().splitlines() if " run " in ln]
    return res, runs


def test_make_figures_reruns_what_a_manual_run_overwrote(make_tree):
    fakepy = str(make_tree / "fakevenv" / "bin" / "python")
    _, runs = _make(make_tree, "figures")
    assert runs == ["aa", "bb"]
    _, runs = _make(make_tree, "figures")
    assert runs == [], "incremental: nothing changed"
    # README's example of a manual run, then make figures
    env = {**os.environ, "LOG": str(make_tree / "log")}
    cmd = [fakepy, "-m", "hfmaml_core.pipeline", "run", "aa", "-p", "dim", "10", "--fast"]
    subprocess.run(cmd, cwd=make_tree, env=env, check=True)
    _, runs = _make(make_tree, "figures")
    assert runs == ["aa"], "the manual run must be redone with the defaults"
    # an interrupted manual run: the stage was emptied, nothing else written
    shutil.rmtree(make_tree / "build" / "stage" / "bb")
    _, runs = _make(make_tree, "figures")
    assert runs == ["bb"]


def test_make_figures_takes_no_parameters(make_tree):
    res, runs = _make(make_tree, "figures", "P=-p seed 3", check=False)
    assert res.returncode != 0 and runs == []
    assert "make runs P='-p seed 3'" in res.stderr
    res, runs = _make(make_tree, "runs", "P=-p seed 3")
    assert runs == ["aa", "bb"]


def test_distclean_deletes_only_an_environment_make_created(make_tree):
    venv = make_tree / "fakevenv"
    res, _ = _make(make_tree, "distclean")
    assert venv.exists() and (venv / "bin" / "python").exists(), "not created by make: kept"
    assert "left" in res.stdout and "did not create it" in res.stdout
    assert not (venv / ".hfmaml-installed").exists()
    (venv / ".hfmaml-created-by-make").write_text("created by hfmaml's Makefile")
    _make(make_tree, "distclean")
    assert not venv.exists()


def test_the_makefile_bootstrap_marks_the_venv_it_creates():
    text = (paths.ROOT / "Makefile").read_text()
    boot = text[text.index("$(STAMP): pyproject.toml") :].split("\n\n")[0]
    assert "$(PYTHON) -m venv $(VENV) && echo" in boot and "> $(CREATED)" in boot
    assert "CREATED := $(VENV)/.hfmaml-created-by-make" in text


# ---------------------------------------------------------- 4. collect is all or nothing
def _snapshot(folder: Path) -> dict[str, bytes] | None:
    if not folder.exists():
        return None
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _stage(tree: Path, stage_root: Path, version: str) -> None:
    for name in pipeline.notebook_names():
        stage = stage_root / name
        stage.mkdir(parents=True, exist_ok=True)
        (stage / "run.json").write_text(
            json.dumps(
                {"notebook": name, "inputs": pipeline._notebook_inputs(name), "parameters": {}}
            )
        )
        claims = [_claim(f"c-{version}", name)]
        (stage / f"claims-{name}.json").write_text(json.dumps({"claims": claims}))
        for i in range(3):
            (stage / f"fig{i}-{version}.pdf").write_bytes(f"%PDF {version} {i}".encode())
            (stage / f"fig{i}-{version}.png").write_bytes(f"png {version} {i}".encode())


class _Interrupt:
    """Wraps the file operations of collect; raises KeyboardInterrupt at operation number k."""

    def __init__(self, monkeypatch, k: int | None, after: bool = False):
        self.k, self.after, self.n = k, after, 0
        targets = [
            (_io, "write_atomic"),
            (_io, "write_text_atomic"),
            (_io, "fsync_dir"),
            (_io, "exchange"),
            (os, "replace"),
            (shutil, "rmtree"),
            (shutil, "copy2"),
            (shutil, "copytree"),
        ]
        for mod, attr in targets:
            monkeypatch.setattr(mod, attr, self._wrap(getattr(mod, attr)))

    def _wrap(self, fn):
        def wrapped(*args, **kwargs):
            self.n += 1
            if self.n == self.k and not self.after:
                raise KeyboardInterrupt
            out = fn(*args, **kwargs)
            if self.n == self.k and self.after:
                raise KeyboardInterrupt
            return out

        return wrapped


@pytest.mark.parametrize("atomic_exchange", [True, False], ids=["renameat2", "two-renames"])
def test_collect_interrupted_at_every_step_leaves_figures_old_or_new(
    tree, monkeypatch, atomic_exchange
):
    monkeypatch.setattr(
        os, "fsync", lambda fd: None
    )  # the order of operations is tested, not the disk
    if not atomic_exchange:
        monkeypatch.setattr(_io, "exchange", lambda a, b: False)
    figdir = paths.FIGURES
    _stage(tree, tree / "old", "old")
    pipeline.collect(tree / "old", figdir)
    (figdir / ".gitattributes").write_text("keep me")  # not written by collect, kept
    old = _snapshot(figdir)
    _stage(tree, tree / "new", "new")
    with monkeypatch.context() as m:  # count the steps of an uninterrupted collect
        counter = _Interrupt(m, None)
        pipeline.collect(tree / "new", figdir)
        steps = counter.n
    new = _snapshot(figdir)
    assert new != old and new[".gitattributes"] == b"keep me"
    assert steps > 10
    seen = set()
    for after in (False, True):
        for k in range(1, steps + 1):
            shutil.rmtree(figdir)
            for leftover in pipeline.swap_dirs(figdir):
                shutil.rmtree(leftover, ignore_errors=True)
            pipeline.collect(tree / "old", figdir)
            (figdir / ".gitattributes").write_text("keep me")
            assert _snapshot(figdir) == old
            with monkeypatch.context() as m:
                _Interrupt(m, k, after)
                try:
                    pipeline.collect(tree / "new", figdir)
                except KeyboardInterrupt:
                    pass
            now = _snapshot(figdir)
            if atomic_exchange:
                assert now in (old, new), f"step {k}: figures/ is neither old nor new"
            else:  # between the two renames figures/ is briefly absent; recovery completes it
                assert now in (old, new, None), f"step {k}: figures/ is neither old nor new"
            pipeline.recover_figures(figdir)
            now = _snapshot(figdir)
            assert now in (old, new), f"step {k} (after={after}): not old or new after recovery"
            assert not any(p.exists() for p in pipeline.swap_dirs(figdir))
            seen.add("old" if now == old else "new")
            assert pipeline.collect(tree / "new", figdir) == 0  # the next collect completes
            assert _snapshot(figdir) == new
    assert seen == {"old", "new"}


def test_a_collect_refused_or_interrupted_in_staging_leaves_no_trace(tree):
    figdir = paths.FIGURES
    _stage(tree, tree / "old", "old")
    pipeline.collect(tree / "old", figdir)
    new_dir, old_dir = pipeline.swap_dirs(figdir)
    new_dir.mkdir()
    (new_dir / "half.pdf").write_bytes(b"half")  # a crash while staging
    assert "removed .figures.new" in pipeline.recover_figures(figdir)
    assert not new_dir.exists() and not old_dir.exists()


# ------------------------------------- 5. the project's kernel; notebooks open unmodified
def _messy_notebook(tmp_path: Path) -> Path:
    """A notebook as JupyterLab leaves it after a run on the wrong kernel."""
    nb = new_notebook(cells=[new_markdown_cell("# t"), new_code_cell("fast = False\nseed = 0"),
                             new_code_cell("print(1)")])  # fmt: skip
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[2].execution_count = 3
    nb.cells[2].metadata.update({"scrolled": True, "execution": {"iopub.status.busy": "x"}})
    nb.metadata.update(
        kernelspec={
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        language_info={"name": "python"},
        papermill={"duration": 1.0},
    )
    nb.nbformat_minor = 4
    for c in nb.cells:
        c.pop("id", None)
    path = tmp_path / "messy.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    return path


def test_strip_writes_the_form_jupyterlab_saves(tmp_path):
    text = _messy_notebook(tmp_path).read_text()
    out = pipeline.canonical_notebook(text)
    nb = json.loads(out)
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5)
    assert nb["metadata"]["kernelspec"] == pipeline.KERNELSPEC
    assert nb["metadata"]["language_info"] == pipeline.kernel_language_info()
    assert "papermill" not in nb["metadata"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert nb["cells"][1]["metadata"] == {"tags": ["parameters"]}
    assert nb["cells"][2]["metadata"] == {}
    ids = [c["id"] for c in nb["cells"]]
    assert len(set(ids)) == 3 and all(ids)
    # idempotent, deterministic, and byte-identical to what jupyter-server writes on save
    assert pipeline.canonical_notebook(out) == out
    assert pipeline.canonical_notebook(text) == out
    saved = nbformat.writes(nbformat.from_dict(json.loads(out)), version=nbformat.NO_CONVERT)
    assert saved + "\n" == out
    # ids already present are kept
    nb["cells"][0]["id"] = "my-own-id"
    assert json.loads(pipeline.canonical_notebook(json.dumps(nb)))["cells"][0]["id"] == "my-own-id"


def test_the_kernel_make_lab_registers_is_the_one_notebooks_name(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "BUILD", tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", "")
    root = pipeline.ensure_kernel()
    spec = json.loads((root / "kernels" / pipeline.KERNEL_NAME / "kernel.json").read_text())
    # what JupyterLab writes into metadata.kernelspec when the kernel starts
    assert {"name": pipeline.KERNEL_NAME, "display_name": spec["display_name"],
            "language": spec["language"]} == pipeline.KERNELSPEC  # fmt: skip
    assert spec["argv"][0] == sys.executable
    text = (paths.ROOT / "Makefile").read_text()
    lab = text[text.index("\nlab:") :].split("\n\n")[0]
    assert "ensure_kernel()" in lab and "JUPYTER_PATH=build/jupyter" in lab
    strip = text[text.index("\nstrip:") :].split("\n\n")[0]
    assert "hfmaml_core.pipeline strip" in strip


def test_language_info_is_what_the_running_kernel_reports(tmp_path, monkeypatch):
    """JupyterLab copies the kernel_info reply into metadata.language_info on open."""
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setattr(paths, "BUILD", tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", "")
    pipeline.ensure_kernel()
    km, kc = start_new_kernel(kernel_name=pipeline.KERNEL_NAME)
    try:
        kc.kernel_info()
        reply = kc.get_shell_msg(timeout=30)
        while reply["msg_type"] != "kernel_info_reply":
            reply = kc.get_shell_msg(timeout=30)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["language_info"] == pipeline.kernel_language_info()


def test_strip_check_lists_notebooks_not_in_committed_form(tree, capsys):
    _messy_notebook(paths.NOTEBOOKS)
    assert pipeline.main(["strip", "--check"]) == 1
    assert "messy, tiny" in capsys.readouterr().err
    assert pipeline.main(["strip"]) == 0
    assert pipeline.main(["strip", "--check"]) == 0
    # another Python version in language_info is not a difference for --check
    path = paths.NOTEBOOKS / "tiny.ipynb"
    nb = json.loads(path.read_text())
    nb["metadata"]["language_info"]["version"] = "3.99.0"
    path.write_text(nbformat.writes(nbformat.from_dict(nb)) + "\n")
    assert pipeline.strip(check=True) == []


@pytest.mark.parametrize("name", pipeline.notebook_names())
def test_committed_notebooks_are_in_the_form_jupyterlab_saves(name):
    """Project kernel, no outputs, nbformat 4.5 with cell ids: open and save is a no-op.

    Fix: `make strip`.
    """
    assert pipeline.strip([name], check=True) == [], f"{name}: run `make strip`"


# ------------------------------- the same, in a real JupyterLab driven by headless Chromium
_JS_STATE = """
const app = window.jupyterapp; if (!app) return null;
const w = app.shell.currentWidget;
if (!w || !w.context || !w.sessionContext || !w.context.isReady) return null;
const k = w.sessionContext.session && w.sessionContext.session.kernel;
return {path: w.context.path, dirty: w.context.model.dirty, kernel: k ? k.name : null,
        status: w.sessionContext.kernelDisplayStatus};
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.browser
def test_jupyterlab_opens_a_stripped_notebook_unmodified(tmp_path, monkeypatch):
    """Open a stripped notebook and, as the control, the same notebook unstripped (nbformat
    4.4, kernel python3, language_info {name}) in JupyterLab; wait for the kernel to be idle.

    The stripped one runs on the project's kernel and is not dirty; the control is dirty.
    """
    import time
    import urllib.request

    chromium, driver_exe = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (os.access(chromium, os.X_OK) and os.access(driver_exe, os.X_OK)):
        pytest.skip("headless Chromium is not installed: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    root = tmp_path / "nb"
    root.mkdir()
    raw = _messy_notebook(root).read_text()
    (root / "control.ipynb").write_text(raw)
    (root / "stripped.ipynb").write_text(pipeline.canonical_notebook(raw))
    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    monkeypatch.setenv("JUPYTER_PATH", "")
    jp = pipeline.ensure_kernel()
    env = {**os.environ, "JUPYTER_PATH": str(jp), "SE_OFFLINE": "true"}
    for var, sub in (("JUPYTER_RUNTIME_DIR", "rt"), ("JUPYTER_CONFIG_DIR", "cfg"),
                     ("JUPYTER_DATA_DIR", "data")):  # fmt: skip
        env[var] = str(tmp_path / sub)
    port, token = _free_port(), "hfmaml-test-token"
    args = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True", "--allow-root"]  # fmt: skip
    log = open(tmp_path / "lab.log", "w")  # noqa: SIM115
    lab = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    opts = Options()
    opts.binary_location = str(chromium)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    drv = None
    try:
        drv = webdriver.Chrome(service=Service(str(driver_exe)), options=opts)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}")
                break
            except OSError:
                time.sleep(0.3)
        states = {}
        for name in ("stripped.ipynb", "control.ipynb"):
            drv.get(f"http://127.0.0.1:{port}/lab/tree/{name}?token={token}")
            deadline, state = time.time() + 120, None
            while time.time() < deadline:
                state = drv.execute_script(_JS_STATE)
                if state and state["path"] == name and state["status"] == "idle":
                    break
                time.sleep(0.5)
            time.sleep(3)  # the kernel_info reply and the kernelspec update land after idle
            states[name] = drv.execute_script(_JS_STATE)
        assert states["stripped.ipynb"]["kernel"] == pipeline.KERNEL_NAME, states
        assert states["stripped.ipynb"]["dirty"] is False, states
        assert states["control.ipynb"]["dirty"] is True, f"the control must be dirty: {states}"
        assert (root / "control.ipynb").read_text() == raw  # nothing saved behind our back
    finally:
        if drv is not None:
            drv.quit()
        lab.terminate()
        lab.wait(30)
        log.close()
