"""benchmarks/network_scaling.py: its quick mode, its arguments, its results files.

The benchmark runs in-process at tiny widths (a second or so); its JSON is checked for
completeness and internal consistency (medians and quartiles against the stored rounds,
per-round ratios recomputed from them, positive and finite), never against a timing bound.
The PyTorch yardstick is checked only where torch can be imported (not a project dependency:
``make bench-torch``), for agreement of the directions, never for speed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import numpy as np
import pytest

from hfmaml_core import paths

METHODS = ("MAML", "FO-MAML", "HF-MAML")


def load(name: str):
    if str(paths.BENCHMARKS) not in sys.path:  # as when run as a script: its folder is importable
        sys.path.insert(0, str(paths.BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"{name}_bench", paths.BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load("network_scaling")


def check_summary(s: dict, n: int) -> None:
    assert s["n"] == n == len(s["times_ms"])
    q25, med, q75 = np.percentile(s["times_ms"], [25, 50, 75])
    assert s["median_ms"] == pytest.approx(med, rel=1e-3)
    assert s["q25_ms"] == pytest.approx(q25, rel=1e-3)
    assert s["q75_ms"] == pytest.approx(q75, rel=1e-3)
    assert 0 < s["q25_ms"] <= s["median_ms"] <= s["q75_ms"] < math.inf


def check_ratio(r: dict, numerator: list, denominator: list) -> None:
    """The ratio summary is that of the per-round ratios, positive and finite."""
    ratios = np.asarray(numerator) / np.asarray(denominator)
    assert r["n"] == ratios.size
    assert r["median"] == pytest.approx(np.median(ratios), rel=2e-3)
    assert 0 < r["q25"] <= r["median"] <= r["q75"] < math.inf


def check_results(res: dict, widths: list[int]) -> None:
    assert res["config"]["widths"] == widths
    assert res["config"]["meta_batch"] == 25 and res["config"]["alpha"] == 0.01
    assert [r["width"] for r in res["results"]] == widths
    machine = res["machine"]
    assert machine["blas"] and machine["load_average_before"] and machine["load_average_after"]
    for row in res["results"]:
        H = row["width"]
        assert row["d"] == H * H + 4 * H + 1
        assert set(row["methods"]) == set(METHODS)
        for s in row["methods"].values():
            check_summary(s, row["rounds"])
            assert s["peak_bytes"] > 0
        fo = row["methods"]["FO-MAML"]["times_ms"]
        check_ratio(row["ratios"]["MAML/FO-MAML"], row["methods"]["MAML"]["times_ms"], fo)
        check_ratio(row["ratios"]["HF-MAML/FO-MAML"], row["methods"]["HF-MAML"]["times_ms"], fo)
        hess = row["hessian_formed"]
        assert isinstance(hess["formed"], bool) and hess["reason"]
        if hess["formed"]:
            check_summary(hess, len(hess["fomaml_alongside_ms"]))
            check_ratio(hess["ratio_to_fomaml"], hess["times_ms"], hess["fomaml_alongside_ms"])
            assert hess["max_relative_difference_to_maml"] < 1e-10  # the same direction


def test_quick_mode_writes_a_consistent_file(bench, tmp_path, capsys):
    target = tmp_path / "ns.json"
    assert (
        bench.main(["--quick", "--widths", "3,5", "--threads", "0", "--output", str(target)]) == 0
    )
    out = capsys.readouterr().out
    res = json.loads(target.read_text())
    check_results(res, [3, 5])
    assert all(r["hessian_formed"]["formed"] for r in res["results"])  # tiny: always feasible
    assert "\n" not in json.dumps(res["config"])  # plain data
    if importlib.util.find_spec("torch") is None:
        assert "torch is not installed" in out and not (tmp_path / "ns_torch.json").exists()


def test_quick_mode_without_output_writes_nothing(bench, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "never.json")
    monkeypatch.setattr(bench, "TORCH_RESULTS", tmp_path / "never_torch.json")
    assert bench.main(["--quick", "--widths", "2", "--threads", "0", "--no-torch"]) == 0
    assert "results not written" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--widths", "0"], "--widths must be comma-separated integers in [1, 2048]"),
        (["--widths", "40,5000"], "--widths must be comma-separated integers in [1, 2048]"),
        (["--widths", "forty"], "--widths must be comma-separated integers in [1, 2048]"),
        (["--budget", "0"], "--budget must be > 0 seconds"),
        (["--delta", "2"], "--delta must be in (0, 1]"),
        (["--min-rounds", "5", "--max-rounds", "2"], "--max-rounds >= --min-rounds"),
        (["--warmup", "0"], "--warmup must be >= 1"),
        (["--threads", "-1"], "--threads must be >= 0"),
        (["--hessian-repeats", "0"], "--hessian-repeats must be >= 1"),
        (["--torch-only", "--no-torch"], "exclude each other"),
    ],
)
def test_bad_arguments_are_refused_by_name_before_any_work(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as err:
        bench.main(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_hessian_is_skipped_with_a_reason_where_it_cannot_fit(bench):
    args = bench.parse_args(["--widths", "640"])
    tasks = bench.S.sample_tasks(np.random.default_rng(0), 25)
    plan = bench.hessian_plan(bench.Setting(640, tasks, 0, 1e-3), args)
    assert plan["formed"] is False and plan["reason"].startswith("memory: ")
    assert "--hessian-max-bytes" in plan["reason"] and plan["memory_estimate_bytes"] > 2**40


def test_committed_results_are_complete_and_consistent():
    res = json.loads((paths.BENCH_RESULTS / "network_scaling.json").read_text())
    check_results(res, res["config"]["widths"])
    assert res["config"]["widths"][0] <= 40 and max(res["config"]["dims"]) >= 4 * 10**5
    assert any(r["hessian_formed"]["formed"] for r in res["results"])


def test_torch_yardstick_agrees_with_hfmaml(bench, tmp_path):
    pytest.importorskip("torch")
    target = tmp_path / "ns_torch.json"
    argv = ["--quick", "--widths", "3", "--threads", "0", "--torch-only"]
    assert bench.main([*argv, "--torch-output", str(target)]) == 0
    (row,) = json.loads(target.read_text())["results"]
    for m in METHODS:
        assert row["max_relative_difference"][m] <= bench.AGREEMENT[m]
        assert 0 < row["torch_over_hfmaml"][m]["median"] < math.inf


def test_compare_finds_every_ratio_and_fails_on_a_change(tmp_path):
    """benchmarks/_compare.py: the ratios of two results folders; exit 1 above the tolerance."""
    compare = load("_compare")
    doc = {
        "results": [
            {"ratio_to_fo_maml": 2.0, "ratios": {"HF/FO": {"median": 2.2, "q25": 2.0}}},
            {"torch_over_hfmaml": {"MAML": {"median": 4.0}}, "median_ms": 3.0},
        ]
    }
    found = dict(compare.ratios(doc))
    assert found == {
        ".results[0].ratio_to_fo_maml": 2.0,
        ".results[0].ratios.HF/FO.median": 2.2,
        ".results[1].torch_over_hfmaml.MAML.median": 4.0,
    }
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x.json").write_text(json.dumps(doc))
    doc["results"][0]["ratios"]["HF/FO"]["median"] = 2.2 * 1.1
    (b / "x.json").write_text(json.dumps(doc))
    assert compare.main([str(a), str(b)]) == 0  # 10 % <= 15 %
    assert compare.main([str(a), str(b), "--tolerance", "0.05"]) == 1
