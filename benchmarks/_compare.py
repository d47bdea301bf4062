"""Compare every ratio of two copies of ``benchmarks/results/`` (two ``make bench`` runs).

Run from the repository root, e.g. after copying the results of a first run aside::

    cp -r benchmarks/results /tmp/bench-1 && make bench
    .venv/bin/python benchmarks/_compare.py /tmp/bench-1 benchmarks/results

Every reported ratio (a number under a key containing ``ratio`` or ``_over_``, or the median of
such a ratio's summary; at any depth of every JSON file present in both) is compared; the script prints the largest relative changes and exits with status 1 when one
exceeds ``--tolerance`` (15 %, issue 15's reproducibility target).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path


def _is_ratio(key: str) -> bool:
    return "ratio" in key or "_over_" in key


def ratios(node: object, path: str = "", inside: bool = False) -> Iterator[tuple[str, float]]:
    """Every ``(path, value)`` of a reported ratio: a number under a key that names a ratio
    (``ratio``, ``x_over_y``), or the median of a ratio's summary (median and quartiles)."""
    if isinstance(node, dict):
        if inside and isinstance(node.get("median"), int | float):
            yield f"{path}.median", float(node["median"])
            return
        for key, value in node.items():
            here, named = f"{path}.{key}", inside or _is_ratio(key)
            if named and isinstance(value, int | float) and not isinstance(value, bool):
                yield here, float(value)
            else:
                yield from ratios(value, here, named)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from ratios(value, f"{path}[{i}]", inside)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="results folder of the first run")
    parser.add_argument("second", type=Path, help="results folder of the second run")
    parser.add_argument("--tolerance", type=float, default=0.15, help="largest relative change")
    parser.add_argument("--show", type=int, default=10, help="how many of the largest to print")
    args = parser.parse_args(argv)
    for folder in (args.first, args.second):
        if not folder.is_dir():
            parser.error(f"{folder} is not a folder of results")
    if not 0 < args.tolerance < 10:
        parser.error(f"--tolerance must be in (0, 10); got {args.tolerance}")
    changes = []
    for a in sorted(args.first.glob("*.json")):
        b = args.second / a.name
        if not b.exists():
            print(f"{a.name}: not in {args.second}")
            continue
        second = dict(ratios(json.loads(b.read_text())))
        for key, x in ratios(json.loads(a.read_text())):
            if key in second and x > 0:
                changes.append((abs(second[key] / x - 1.0), a.name, key, x, second[key]))
    if not changes:
        parser.error("no ratio found in both folders")
    changes.sort(reverse=True)
    for change, name, key, x, y in changes[: args.show]:
        print(f"{change:7.1%}  {name}{key}: {x:.4g} -> {y:.4g}")
    over = [c for c in changes if c[0] > args.tolerance]
    print(
        f"{len(changes)} ratios compared; largest change {changes[0][0]:.1%}; "
        f"{len(over)} above {args.tolerance:.0%}"
    )
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
