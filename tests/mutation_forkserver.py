"""Fork server for tests/test_mutations.py: one warm interpreter, one fresh pytest run per mutant.

Every sandboxed run used to be a new ``python -m pytest`` that spent most of its seconds
importing numpy, sympy and pytest itself. This process imports those once
(never ``hfmaml_core``, never a test module: each run must import the sandbox's copies),
then serves requests, one JSON object per line on stdin::

    {"id": ..., "cwd": sandbox, "pythonpath": sandbox/src, "env": {...}, "args": [...], "log": file}

For each it forks; the child takes the request's environment and working directory, puts
``pythonpath`` first on ``sys.path`` (what ``PYTHONPATH`` does for ``python -m pytest``, which
also puts the working directory next), sends its output to ``log`` and runs
``pytest.main(args)``: a complete, independent pytest session (its own configuration,
collection and imports) against the sandbox. The parent answers ``{"id": ..., "returncode": n}``
when the child exits, so several runs proceed at once.

Started by test_mutations.py as ``python -I mutation_forkserver.py`` (isolated: no
``PYTHON*`` variables, no user site, not even this file's folder on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import sys
import threading

# Warm imports: what every run would otherwise pay for: numpy, sympy, pytest, and the
# installed pytest plugins (hypothesis, xdist, anyio, ...). pytest would rewrite the asserts
# of every module of those plugins' packages at each run's start-up (about 120 modules, more
# than a second per run, since the sandboxes write no bytecode); imported here, they are
# taken as they are, and the sandbox's pytest.ini ignores the warning that says so. Their
# asserts are not what the mutants are tested by: the test modules are still rewritten.
from importlib import import_module
from importlib.metadata import entry_points

import hypothesis  # noqa: F401 - its pytest plugin imports it late, after pytest has started
import hypothesis.strategies  # noqa: F401
import numpy  # noqa: F401
import pytest
import sympy  # noqa: F401

for _plugin in entry_points(group="pytest11"):
    import_module(_plugin.value.split(":")[0])

assert not [m for m in sys.modules if m.split(".")[0] in ("hfmaml_core", "oracles")], (
    "the fork server must not import the library or the oracles: each run imports its own"
)

_lock = threading.Lock()
_pending: dict[int, object] = {}


def _child(req: dict) -> None:  # pragma: no cover - runs in the forked child, ends in _exit
    code = 3
    try:
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        sys.dont_write_bytecode = True
        sys.path[:0] = [req["pythonpath"], req["cwd"]]
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdin = open(os.devnull)  # noqa: SIM115
        sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
        code = int(pytest.main(req["args"]))
    except BaseException as err:  # noqa: BLE001 - reported through the log and exit code 3
        try:
            print(f"mutation fork server: the run broke: {err!r}", file=sys.stderr)
        except BaseException:  # noqa: BLE001
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reap() -> None:
    """Answer each finished child's request with its exit code."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:  # no child right now: wait for the next fork
            with _lock:
                done = not _pending and _closed.is_set()
            if done:
                return
            _forked.wait(0.05)
            _forked.clear()
            continue
        with _lock:
            rid = _pending.pop(pid)
            print(json.dumps({"id": rid, "returncode": os.waitstatus_to_exitcode(status)}))
            sys.stdout.flush()


_closed = threading.Event()
_forked = threading.Event()


def main() -> None:
    reaper = threading.Thread(target=_reap, daemon=True)
    reaper.start()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        with _lock:  # the child starts single-threaded; nothing it uses is held by the reaper
            pid = os.fork()
            if pid == 0:
                _child(req)
            _pending[pid] = req["id"]
        _forked.set()
    _closed.set()
    reaper.join()


if __name__ == "__main__":
    main()
