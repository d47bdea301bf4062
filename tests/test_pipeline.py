"""savefig, claim recording and the pipeline's failure behaviour."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from hfmaml_core import paths, pipeline, plotting
from hfmaml_core.claims import ClaimRecorder


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUT_ENV, str(tmp_path))
    return tmp_path


def _fig():
    fig, ax = plotting.figure()
    ax.plot(np.arange(5), np.arange(5) ** 2, label=r"$w^2$")
    ax.set(xlabel=r"$\alpha$", title="t")
    ax.legend()
    return fig


# ------------------------------------------------------------------- savefig
def test_savefig_writes_pdf_and_png_with_deterministic_bytes(out):
    fig = _fig()
    first = {p.suffix: p.read_bytes() for p in plotting.savefig(fig, "demo")}
    assert set(first) == {".pdf", ".png"}
    assert first[".pdf"].startswith(b"%PDF") and first[".png"].startswith(b"\x89PNG")
    plt.close(fig)
    fig = _fig()
    second = {p.suffix: p.read_bytes() for p in plotting.savefig(fig, "demo")}
    assert first == second
    assert b"CreationDate" not in first[".pdf"]
    assert sorted(p.name for p in out.iterdir()) == ["demo.pdf", "demo.png"]  # no temp files left


@pytest.mark.parametrize("name", ["", "a/b", "../x", "fig.pdf", "Fig", " x"])
def test_savefig_rejects_bad_names(out, name):
    with pytest.raises(ValueError, match="name"):
        plotting.savefig(_fig(), name)
    assert not list(out.iterdir())


def test_savefig_rejects_empty_figure_and_non_figures(out):
    fig, _ = plotting.figure()
    with pytest.raises(ValueError, match="empty"):
        plotting.savefig(fig, "empty")
    with pytest.raises(ValueError, match="fig"):
        plotting.savefig("not a figure", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dpi"):
        plotting.savefig(_fig(), "x", dpi=0)
    assert not list(out.iterdir())


def test_savefig_failure_leaves_the_previous_file_intact(out, monkeypatch):
    fig = _fig()
    plotting.savefig(fig, "keep")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError):
        plotting.savefig(fig, "keep")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# -------------------------------------------------------------------- claims
def _ctl(measured, **kw):
    return {
        "statement": "the same measurement where the statement is false",
        "measured": measured,
        **kw,
    }


def test_claim_verdicts_are_computed_from_the_numbers(out):
    rec = ClaimRecorder("nb")
    k = {"kind": "check"}
    assert rec.check("a", "H1", "s", measured=0.5, bound=1.0, **k).holds
    assert not rec.check("b", "H1", "s", measured=1.5, bound=1.0, **k).holds
    assert rec.check("c", "L2", "s", measured=0.9, relation=">=", bound=0.8, **k).holds
    assert not rec.check("d", "L2", "s", measured=0.8, relation=">", bound=0.8, **k).holds
    assert rec.check(
        "e", "S1", "s", measured=1e-12, relation="==", bound=0.0, tolerance=1e-10, **k
    ).holds
    assert not rec.check(
        "f", "S1", "s", measured=1e-9, relation="==", bound=0.0, tolerance=1e-10, **k
    ).holds
    assert rec.check("g", "T1", "s", measured=-2.0, relation="in", bound=(-2.2, -1.8), **k).holds
    assert not rec.check("h", "T1", "s", measured=float("nan"), bound=1.0, **k).holds
    assert [c.id for c in rec.failed] == ["b", "d", "f", "h"]
    saved = json.loads(rec.save().read_text())
    assert saved["claims"][7]["measured"] is None and saved["claims"][7]["holds"] is False
    assert {c["kind"] for c in saved["claims"]} == {"check"}


def test_controls_are_evaluated_with_the_claims_relation_and_must_fail(out):
    rec = ClaimRecorder("nb")
    good = rec.check("good", "H1", "s", kind="theory", measured=0.4, bound=1.0, control=_ctl(2.0))
    assert good.holds and good.control.holds is False and good.ok
    # a control that holds: the claim itself holds, but the check cannot discriminate
    weak = rec.check("weak", "H1", "s", kind="theory", measured=0.4, bound=1.0, control=_ctl(0.9))
    assert weak.holds and weak.control.holds and not weak.discriminates and not weak.ok
    # the control may name its own relation, bound and tolerance
    own = rec.check(
        "own", "T1", "s", kind="finding", measured=-2.0, relation="in", bound=(-2.2, -1.8),
        control=_ctl(-0.5, relation="<=", bound=-1.5),
    )  # fmt: skip
    assert own.control.relation == "<=" and own.control.bound == -1.5 and own.ok
    eq = rec.check(
        "eq", "H1", "s", kind="theory", measured=0.5, relation="==", bound=0.5,
        tolerance=1e-9, control=_ctl(0.45),
    )  # fmt: skip
    assert eq.control.tolerance == 1e-9 and not eq.control.holds
    nan = rec.check(
        "nan", "H1", "s", kind="theory", measured=0.1, bound=1.0, control=_ctl(float("nan"))
    )
    assert nan.control.measured is None and not nan.control.holds  # a non-finite control fails
    assert [c.id for c in rec.failed] == ["weak"]
    saved = json.loads(rec.save().read_text())["claims"]
    assert saved[0]["control"]["holds"] is False and saved[1]["control"]["holds"] is True


@pytest.mark.parametrize("kind", ["theory", "finding"])
def test_theory_and_finding_claims_need_a_control_and_an_item(kind):
    with pytest.raises(ValueError, match="control is required"):
        ClaimRecorder("nb").check("x", "H1", "s", kind=kind, measured=0.0, bound=1.0)
    with pytest.raises(ValueError, match="theory must be one of"):
        ClaimRecorder("nb").check(
            "x", None, "s", kind=kind, measured=0.0, bound=1.0, control=_ctl(2.0)
        )


def test_checks_and_performance_may_stand_without_a_control_or_an_item():
    rec = ClaimRecorder("nb")
    assert rec.check("x", None, "s", kind="check", measured=0.0, bound=1.0).control is None
    assert rec.check("y", "T3", "s", kind="performance", measured=0.0, bound=1.0).ok


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"id": "Bad Id"}, "id"),
        ({"theory": "Z9"}, "theory"),
        ({"statement": " "}, "statement"),
        ({"relation": "~"}, "relation"),
        ({"bound": float("inf")}, "bound"),
        ({"relation": "==", "bound": 1.0}, "tolerance"),
        ({"tolerance": 0.1}, "tolerance"),
        ({"relation": "in", "bound": (2.0, 1.0)}, "bound"),
        ({"measured": "big"}, "measured"),
        ({"kind": "theorem"}, "kind"),
        ({"control": 3.0}, "control must be a mapping"),
        ({"control": {"measured": 2.0}}, "control statement"),
        ({"control": {"statement": "c"}}, "control measured"),
        ({"control": _ctl(2.0, extra=1)}, "unknown keys"),
        ({"control": _ctl(2.0, relation="~")}, "control relation"),
        ({"control": _ctl(2.0, bound=float("inf"))}, "control bound"),
        ({"control": _ctl(2.0, relation="==")}, "control tolerance"),
        ({"control": _ctl("big")}, "control measured"),
    ],
)
def test_claim_recorder_rejects_bad_input(kwargs, word):
    args = {"id": "x", "theory": "H1", "statement": "s", "measured": 1.0, "bound": 2.0,
            "kind": "theory", "control": _ctl(3.0), **kwargs}  # fmt: skip
    with pytest.raises(ValueError, match=word):
        ClaimRecorder("nb").check(args.pop("id"), args.pop("theory"), args.pop("statement"), **args)


def test_claim_ids_are_unique_and_empty_recorders_do_not_save(out):
    rec = ClaimRecorder("nb")
    with pytest.raises(ValueError, match="recorded no claims"):
        rec.save()
    rec.check("x", "H1", "s", kind="check", measured=0.0, bound=1.0)
    with pytest.raises(ValueError, match="unique"):
        rec.check("x", "H1", "s", kind="check", measured=0.0, bound=1.0)


# ------------------------------------------------------------------ pipeline
def _stage_fake_run(stage_root, name, holds=True, control_holds=False):
    """A staged run of the real notebook `name` with one claim and one figure.

    The claim is recorded by the real ClaimRecorder, so its verdicts are computed.
    """
    stage = stage_root / name
    stage.mkdir(parents=True)
    (stage / "run.json").write_text(
        json.dumps({"notebook": name, "inputs": pipeline._notebook_inputs(name), "parameters": {}})
    )
    rec = ClaimRecorder(name)
    rec.check(
        "c", "H1", "s", kind="theory", measured=2.0, bound=3.0 if holds else 1.0,
        control=_ctl(2.5 if control_holds else 4.0),
    )  # fmt: skip
    rec.check("k", None, "setup", kind="check", measured=0.0, bound=1.0)
    payload = {"notebook": name, "claims": [c.as_dict() for c in rec.claims]}
    (stage / f"claims-{name}.json").write_text(json.dumps(payload))
    (stage / f"fig-{name}.pdf").write_bytes(b"%PDF-fake")
    (stage / f"fig-{name}.png").write_bytes(b"png-fake")


def test_collect_writes_the_report_and_reports_failed_claims(tmp_path, capsys):
    names = pipeline.notebook_names()
    for i, name in enumerate(names):
        _stage_fake_run(tmp_path / "stage", name, holds=i > 0)
    figdir = tmp_path / "figures"
    figdir.mkdir()
    (figdir / "stale-figure.pdf").write_bytes(b"old")
    assert pipeline.collect(tmp_path / "stage", figdir) == 1
    report = (figdir / "VERIFICATION.md").read_text()
    assert "**FAILS**" in report and f"{names[0]}:c" in report
    assert f"{names[0]}:c (theory, H1): does not hold" in capsys.readouterr().err
    claims = json.loads((figdir / "claims.json").read_text())["claims"]
    assert len(claims) == 2 * len(names)
    # the report opens with the counts per kind, before any table
    head = report.split("## ")[0]
    assert f"| theory | {len(names)} | {len(names) - 1} | {len(names)} | {len(names)} |" in head
    assert f"| check | {len(names)} | {len(names)} | 0 | 0 |" in head
    assert not (figdir / "stale-figure.pdf").exists()
    # collecting twice gives byte-identical files
    before = {p.name: p.read_bytes() for p in figdir.iterdir()}
    pipeline.collect(tmp_path / "stage", figdir)
    assert {p.name: p.read_bytes() for p in figdir.iterdir()} == before


def test_a_control_that_holds_fails_collect_like_a_failed_claim(tmp_path, capsys):
    """A planted non-discriminating control: the claim holds, its control holds too."""
    names = pipeline.notebook_names()
    for i, name in enumerate(names):
        _stage_fake_run(tmp_path / "stage", name, control_holds=i == 0)
    figdir = tmp_path / "figures"
    assert pipeline.collect(tmp_path / "stage", figdir) == 1
    err = capsys.readouterr().err
    assert f"{names[0]}:c (theory, H1): its control holds, so the check cannot discriminate" in err
    assert "cannot discriminate" in (figdir / "VERIFICATION.md").read_text()
    for name in names:
        _stage_fake_run(tmp_path / "ok", name)
    assert pipeline.collect(tmp_path / "ok", tmp_path / "figures-ok") == 0


def test_collect_refuses_missing_or_stale_runs_before_writing(tmp_path):
    names = pipeline.notebook_names()
    figdir = tmp_path / "figures"
    figdir.mkdir()
    (figdir / "keep.pdf").write_bytes(b"old")
    with pytest.raises(SystemExit, match="has no complete staged run"):
        pipeline.collect(tmp_path / "stage", figdir)
    for name in names:
        _stage_fake_run(tmp_path / "stage", name)
    record = tmp_path / "stage" / names[0] / "run.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "inputs": "0" * 64}))
    with pytest.raises(SystemExit, match="other inputs"):
        pipeline.collect(tmp_path / "stage", figdir)
    assert [p.name for p in figdir.iterdir()] == ["keep.pdf"]


def test_a_failing_cell_names_the_notebook_and_the_cell(tmp_path, monkeypatch, capsys):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    nb = new_notebook(cells=[new_code_cell("fast = False\nseed = 0"), new_code_cell("x = 1"),
                             new_code_cell("raise RuntimeError('planted failure')")])  # fmt: skip
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, nbdir / "broken.ipynb")
    monkeypatch.setattr(paths, "NOTEBOOKS", nbdir)
    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    with pytest.raises(SystemExit) as exc:
        pipeline.run("broken", out=tmp_path / "out", executed=tmp_path / "broken.ipynb")
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "broken.ipynb failed in cell" in err and "planted failure" in err
    assert not (tmp_path / "broken.ipynb").exists()
    assert (tmp_path / "build" / "failed" / "broken.ipynb").exists()


def test_run_rejects_unknown_notebooks():
    with pytest.raises(ValueError, match="name must be one of"):
        pipeline.run("no-such-notebook")


def test_parameter_values_parse_like_papermill():
    assert pipeline.parse_value("3") == 3
    assert pipeline.parse_value("0.5") == 0.5
    assert pipeline.parse_value("True") is True
    assert pipeline.parse_value("welsch") == "welsch"
    assert pipeline.parse_value("[1, 2]") == [1, 2]


def test_readme_findings_table_is_written_between_its_markers_only():
    begin, end = pipeline.README_FINDINGS
    rec = ClaimRecorder("nb")
    rec.check("f", "T2", "a | b", kind="finding", measured=0.1, bound=0.01, relation=">=",
              control=_ctl(1e-15))  # fmt: skip
    rec.check("k", None, "setup", kind="check", measured=0.0, bound=1.0)
    claims = [c.as_dict() for c in rec.claims]
    text = f"intro\n{begin}\nold table\n{end}\nrest\n"
    out = pipeline.readme_with_findings(text, claims)
    assert out.startswith(f"intro\n{begin}\n| claim |") and out.endswith(f"{end}\nrest\n")
    assert "`nb:f`" in out and "`nb:k`" not in out and "a \\| b" in out and "old table" not in out
    assert pipeline.readme_with_findings(out, claims) == out
    for bad in ("no markers", f"{end}\n{begin}", f"{begin}{begin}{end}"):
        with pytest.raises(ValueError, match="markers"):
            pipeline.readme_with_findings(bad, claims)


def test_savefig_in_a_notebook_shows_the_saved_png_and_closes_the_figure(out, monkeypatch):
    """Inside a kernel the reader sees exactly the PNG written, and the figure is not drawn again."""
    import IPython.display

    shown = []
    monkeypatch.setattr(plotting, "_in_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    fig = _fig()
    assert plt.fignum_exists(fig.number)
    written = plotting.savefig(fig, "shown")
    png = next(p for p in written if p.suffix == ".png").read_bytes()
    assert len(shown) == 1 and shown[0].data == png
    width = int.from_bytes(png[16:20], "big")
    assert shown[0].width == round(width * plotting.RC["figure.dpi"] / 300)
    assert not plt.fignum_exists(fig.number)


def test_savefig_outside_a_notebook_leaves_the_figure_open(out):
    fig = _fig()
    plotting.savefig(fig, "kept")
    assert plt.fignum_exists(fig.number)
    plt.close(fig)


def test_collect_rewrites_only_the_readme_it_is_given(tmp_path):
    names = pipeline.notebook_names()
    for name in names:
        _stage_fake_run(tmp_path / "stage", name)
    begin, end = pipeline.README_FINDINGS
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{begin}\nstale\n{end}\n")
    before = (paths.ROOT / "README.md").read_bytes()
    assert pipeline.collect(tmp_path / "stage", tmp_path / "figures") == 0
    assert "stale" in readme.read_text()  # not passed: untouched
    assert pipeline.collect(tmp_path / "stage", tmp_path / "figures", readme=readme) == 0
    assert "stale" not in readme.read_text() and "| claim |" in readme.read_text()
    assert (paths.ROOT / "README.md").read_bytes() == before
