"""Mutation tests: proof that the kernel tests (and their oracles) bite.

For each mutation, the ``hfmaml_core`` package and the targeted test module (with
``oracles.py``) are copied to a temporary directory, one line of library source
is changed textually, and the targeted tests run in a subprocess against the
mutated copy. The run must *fail* (pytest exit code 1). A control run with no
mutation must *pass*, which proves the harness itself works (right package
imported, tests collected, no spurious failures).

Each sandbox has a ``conftest.py`` that records which ``hfmaml_core`` was imported
and refuses to run against anything but the sandbox copy, so a mutant can never
"fail to fail" because the repository's package was imported instead.

The original text of every mutation must occur exactly once in the library
source: when the code changes, this test breaks loudly instead of silently
testing nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "hfmaml_core"
#: Copied into every sandbox (the repository's own conftest.py is replaced by the guard).
TEST_FILES = (
    "oracles.py",
    "test_tasks.py",
    "test_hvp.py",
    "test_meta.py",
    "test_validation.py",
    "test_cost.py",
    "test_engine.py",
)

GUARD = '''\
"""Sandbox guard written by test_mutations.py: only the sandbox copy may be imported."""
import os
from pathlib import Path

import hfmaml_core

_actual = Path(hfmaml_core.__file__).resolve()
_expected = Path(os.environ["HFMAML_SANDBOX_PACKAGE"]).resolve()
Path(os.environ["HFMAML_SANDBOX_REPORT"]).write_text(str(_actual))
if _actual.parent != _expected:
    raise RuntimeError(f"imported {_actual}, expected the sandbox copy in {_expected}")

# As in the suite (tests/conftest.py): a fixed sequence of examples, so whether a mutant is
# killed does not depend on the run. A failing example is reported as found, not shrunk:
# shrinking only makes the report prettier and cost most of some mutants' runs.
from hypothesis import Phase, settings

settings.register_profile(
    "mutants", derandomize=True, database=None, deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.load_profile("mutants")
'''

#: The fork server has imported the pytest plugins, so pytest cannot rewrite their asserts and
#: says so (PytestAssertRewriteWarning); every other warning is an error.
PYTEST_INI = """\
[pytest]
filterwarnings =
    error
    ignore::pytest.PytestAssertRewriteWarning
addopts = -p no:cacheprovider
"""


@dataclass(frozen=True)
class Mutation:
    """One textual change to one library file and the tests expected to catch it."""

    name: str
    file: str  # relative to hfmaml_core/
    old: str
    new: str
    module: str  # test module run against the mutant
    select: str  # pytest -k expression (keeps the run short)


MUTATIONS = [
    Mutation(
        "engine-hessian-term-sign",
        "engine.py",
        "HG *= -alpha",
        "HG *= alpha",
        "test_engine.py",
        "rows_are_the_theorys_formulas",
    ),
    Mutation(
        "theorem-delta-wrong-constant",
        "hvp.py",
        "1.0 / (6.0 * rho * alpha * safe)",
        "1.0 / (3.0 * rho * alpha * safe)",
        "test_engine.py",
        "hf_deltas_rules",
    ),
    Mutation(
        "hvp-sum-instead-of-difference",
        "hvp.py",
        "(g_plus - g_minus)",
        "(g_plus + g_minus)",
        "test_hvp.py",
        "cubic_lambda or exact_on_quadratics",
    ),
    Mutation(
        "hvp-step-not-doubled",
        "hvp.py",
        "(2.0 * delta)",
        "delta",
        "test_hvp.py",
        "cubic_lambda",
    ),
    Mutation(
        "meta-hessian-term-sign",
        "meta.py",
        "g_out - a * (H @ g_out)",
        "g_out + a * (H @ g_out)",
        "test_meta.py",
        "match_symbolic and not weighted and welsch-d2",
    ),
    Mutation(
        "meta-inner-step-sign",
        "meta.py",
        "t.grad(wa - a * np.asarray(t.grad(wa)))",
        "t.grad(wa + a * np.asarray(t.grad(wa)))",
        "test_meta.py",
        "richardson and quadratic-d2",
    ),
    Mutation(
        "welsch-second-derivative-sign",
        "tasks.py",
        "(1.0 - rc * rc)",
        "(1.0 + rc * rc)",
        "test_tasks.py",
        "exact_kernels_match_sympy and welsch-factory-d2",
    ),
    Mutation(
        "quadratic-grad-noise-sign",
        "tasks.py",
        "s[:, None] * Ad + b",
        "s[:, None] * Ad - b",
        "test_tasks.py",
        "minibatch_kernels_match_sympy and quadratic-factory-d2",
    ),
    Mutation(
        "welsch-central-difference-sum",
        "tasks.py",
        "c = welsch(r + s, 1) - welsch(r - s, 1)",
        "c = welsch(r + s, 1) + welsch(r - s, 1)",
        "test_cost.py",
        "welsch_central_differences_match_the_written_out",
    ),
    Mutation(
        "welsch-max-d3-too-large",
        "tasks.py",
        "WELSCH_MAX_D3: float = math.sqrt(",
        "WELSCH_MAX_D3: float = 1.01 * math.sqrt(",
        "test_tasks.py",
        "sharp_for_one_point",
    ),
    Mutation(
        "welsch-max-d3-too-small",
        "tasks.py",
        "WELSCH_MAX_D3: float = math.sqrt(",
        "WELSCH_MAX_D3: float = 0.99 * math.sqrt(",
        "test_tasks.py",
        "max_derivative_constants_match_sympy",
    ),
    Mutation(
        "sigma-tilde-wrong-normalisation",
        "kernels.py",
        'out[t] = np.einsum("nd,nd->", dev, dev) / self.n_points',
        'out[t] = np.einsum("nd,nd->", dev, dev) / (self.n_points - 1)',
        "test_tasks.py",
        "moments_brute_force and welsch-factory-d2",
    ),
    Mutation(
        "task-index-off-by-one",
        "kernels.py",
        "if T.min() < 0 or T.max() >= self.n_tasks:",
        "if T.min() < 0 or T.max() > self.n_tasks:",
        "test_validation.py",
        "kernel_arguments_rejected and welsch",
    ),
]

#: The control run: no mutation, every module and selection the mutants use, one subprocess.
CONTROL = Mutation(
    "control-no-mutation",
    "",
    "",
    "",
    " ".join(sorted({m.module for m in MUTATIONS})),
    " or ".join(f"({m.select})" for m in MUTATIONS),
)


@dataclass
class Outcome:
    """Result of one sandboxed pytest run."""

    returncode: int
    output: str
    imported: str
    sandbox_package: Path


def _make_sandbox(root: Path, mutation: Mutation) -> Path:
    """Copy the package (mutated unless control) and the test files into ``root``."""
    pkg = root / "src" / "hfmaml_core"
    shutil.copytree(PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if mutation.file:
        path = pkg / mutation.file
        text = path.read_text()
        count = text.count(mutation.old)
        assert count == 1, (
            f"mutation {mutation.name!r}: expected the text {mutation.old!r} exactly once in "
            f"hfmaml_core/{mutation.file}, found it {count} times; update MUTATIONS"
        )
        path.write_text(text.replace(mutation.old, mutation.new))
    tests = root / "tests"
    tests.mkdir()
    for name in TEST_FILES:
        shutil.copy2(TESTS / name, tests / name)
    (tests / "conftest.py").write_text(GUARD)
    (root / "pytest.ini").write_text(PYTEST_INI)
    return pkg


def _run_in_sandbox(root: Path, mutation: Mutation) -> Outcome:
    """Build the sandbox, then run ``pytest -x -q <modules> -k <select>`` in it, isolated.

    The run is a fresh process forked from the warm fork server (:class:`_ForkServer`).
    ``PYTHONPATH`` puts the sandbox copy first, the working directory is the sandbox
    (so the repository is not on ``sys.path``), inherited ``PYTEST_*``/``PYTHON*``
    variables are dropped, and the guard conftest records and checks the import.
    """
    pkg = _make_sandbox(root, mutation)
    report = root / "imported.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    env.update(
        PYTHONPATH=str(pkg.parent),
        PYTHONDONTWRITEBYTECODE="1",
        HFMAML_SANDBOX_PACKAGE=str(pkg),
        HFMAML_SANDBOX_REPORT=str(report),
    )
    modules = [f"tests/{m}" for m in mutation.module.split()]
    args = [  # the arguments of `python -m pytest`
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        str(root / "pytest.ini"),
        "--rootdir",
        str(root),
        *modules,
        "-k",
        mutation.select,
    ]
    returncode, output = _SERVER.run(args, cwd=root, env=env)
    imported = report.read_text() if report.exists() else "<the guard conftest did not run>"
    return Outcome(returncode, output, imported, pkg.resolve())


class _ForkServer:
    """The one warm interpreter (tests/mutation_forkserver.py) that forks every sandboxed run.

    Each run is still a complete pytest session in its own process, against the sandbox
    copy (the guard conftest checks it); only the start-up imports (numpy, sympy,
    pytest) are paid once instead of once per mutant. Started on first use.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._waiting: dict[int, Future[int]] = {}
        self._next = 0

    def _start(self) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", str(TESTS / "mutation_forkserver.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=TESTS.parent,
        )
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()
        return proc

    def _read(self, proc: subprocess.Popen[str]) -> None:
        for line in proc.stdout:
            msg = json.loads(line)
            with self._lock:
                fut = self._waiting.pop(msg["id"])
            fut.set_result(msg["returncode"])
        with self._lock:  # the server died: fail every run still waiting, loudly
            waiting, self._waiting, self._proc = self._waiting, {}, None
        for fut in waiting.values():
            fut.set_exception(RuntimeError(f"the mutation fork server exited ({proc.wait()})"))

    def run(self, args: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
        """``python -m pytest *args`` in ``cwd`` with ``env``, forked: (exit code, output)."""
        log = Path(cwd) / "pytest-output.txt"
        fut: Future[int] = Future()
        with self._lock:
            if self._proc is None:
                self._proc = self._start()
            self._next += 1
            self._waiting[self._next] = fut
            req = dict(
                id=self._next,
                cwd=str(cwd),
                pythonpath=env["PYTHONPATH"],
                env=env,
                args=args,
                log=str(log),
            )
            self._proc.stdin.write(json.dumps(req) + "\n")
            self._proc.stdin.flush()
        returncode = fut.result(timeout=600)
        return returncode, log.read_text() if log.exists() else "<no output>"

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            proc.stdin.close()
            proc.wait(timeout=60)
            proc.stdout.close()


_SERVER = _ForkServer()


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Mutation], Outcome]]:
    """``outcome(mutation)`` runs (or fetches) the sandboxed run of one mutation.

    In a plain pytest run every sandbox is started at once on a small thread pool
    (the subprocesses dominate the cost, so this about halves the wall time). Under
    pytest-xdist each worker runs only the mutations of the tests it was given.
    """
    jobs = [CONTROL, *MUTATIONS]
    futures: dict[str, Future[Outcome]] = {}
    pool = None
    if "PYTEST_XDIST_WORKER" not in os.environ:
        pool = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)))
        for m in jobs:
            futures[m.name] = pool.submit(_run_in_sandbox, tmp_path_factory.mktemp(m.name), m)

    def get(mutation: Mutation) -> Outcome:
        if mutation.name not in futures:
            f: Future[Outcome] = Future()
            f.set_result(_run_in_sandbox(tmp_path_factory.mktemp(mutation.name), mutation))
            futures[mutation.name] = f
        return futures[mutation.name].result()

    yield get
    if pool is not None:
        pool.shutdown(wait=True)
    _SERVER.close()


def _describe(o: Outcome) -> str:
    return f"exit code {o.returncode}; imported {o.imported}\n{o.output[-3000:]}"


def test_control_run_passes(outcome: Callable[[Mutation], Outcome]) -> None:
    """Unmutated, every selection the mutants use passes, against the sandbox copy.

    Proves the harness: the sandbox package is the one imported (the guard
    conftest ran and checked it), tests are collected (exit code 0, not 5), and the
    selected tests pass without the mutation.
    """
    o = outcome(CONTROL)
    assert Path(o.imported).parent == o.sandbox_package, _describe(o)
    assert o.returncode == 0, f"control run failed: {_describe(o)}"
    assert " passed" in o.output and " failed" not in o.output, _describe(o)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_mutant_is_killed(mutation: Mutation, outcome: Callable[[Mutation], Outcome]) -> None:
    """The targeted tests fail on the mutated library (exit code 1: test failures).

    Exit codes 2-5 (interrupted, internal error, usage error, nothing collected)
    would mean the harness broke, not that the mutant was caught, so only 1 counts.
    """
    o = outcome(mutation)
    assert Path(o.imported).parent == o.sandbox_package, _describe(o)
    assert o.returncode == 1, f"mutant {mutation.name} survived or the run broke: {_describe(o)}"
    assert " failed" in o.output, _describe(o)
