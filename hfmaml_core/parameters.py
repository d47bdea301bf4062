"""Notebook parameters: the ``parameters`` cell's defaults and the checked ``-p`` overrides.

:func:`notebook_parameters` reads the plain literal assignments of a notebook's cell tagged
``parameters``; :func:`check_parameters` checks overrides against them (known name, same
type, integers >= 0, finite floats) before any cell runs, naming the parameter and the
allowed values; :func:`parse_value` reads one ``-p`` value. Re-exported by
:mod:`hfmaml_core.pipeline`.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path


def parse_value(text: str) -> object:
    """Parse a ``-p`` value as papermill's CLI does: a Python literal, else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def notebook_parameters(path: Path) -> dict[str, object]:
    """The defaults of a notebook's ``parameters`` cell, read with :mod:`ast` (nothing runs).

    Raises ``ValueError`` unless the notebook has exactly one cell tagged
    ``parameters`` holding only assignments of literals to plain names.
    """
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(
            f"{path.name} must have exactly one cell tagged 'parameters'; it has {len(cells)}"
        )
    src = cells[0]["source"]
    src = "".join(src) if isinstance(src, list) else src
    out: dict[str, object] = {}
    for stmt in ast.parse(src).body:
        if not (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            raise ValueError(
                f"{path.name}: the parameters cell must hold plain assignments `name = literal` "
                f"only (line {stmt.lineno})"
            )
        try:
            out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
        except ValueError:
            raise ValueError(
                f"{path.name}: parameter {stmt.targets[0].id} must be a literal value "
                f"(line {stmt.lineno}); derived values go in the next cell"
            ) from None
    return out


def _kind_of(default: object) -> str:
    """The allowed values of a parameter, from the type of its default, in words."""
    if isinstance(default, bool):
        return "True or False"
    if isinstance(default, int):
        return "an integer >= 0"
    if isinstance(default, float):
        return "a finite number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (list, tuple)):
        inner = (
            f" of {_kind_of(default[0]).removeprefix('a ').removeprefix('an ')}s" if default else ""
        )
        return f"a list{inner}"
    return "a Python literal"


def _conforms(value: object, default: object) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if isinstance(default, float):
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple)) and (
            not default or all(_conforms(v, default[0]) for v in value)
        )
    return True


def check_parameters(name: str, parameters: dict, defaults: dict) -> dict[str, object]:
    """Parameters checked against the notebook's defaults; raises ``ValueError`` before any run.

    Every name must be one of the notebook's parameters, and every value of the
    kind of its default: ``True``/``False`` for a bool, an integer >= 0 for an
    int, a finite number for a float (an integer is converted), a string for a
    string, a list of such values for a list. The error names the notebook, the
    parameter and the allowed values.
    """
    unknown = sorted(set(parameters) - set(defaults))
    if unknown:
        raise ValueError(
            f"{name}: unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; its parameters are {', '.join(defaults)}"
        )
    out: dict[str, object] = {}
    for key, value in parameters.items():
        default = defaults[key]
        if not _conforms(value, default):
            raise ValueError(
                f"{name}: parameter {key} must be {_kind_of(default)} (its default is "
                f"{default!r}); got {value!r}"
            )
        if isinstance(default, float):
            value = float(value)
        elif isinstance(default, (list, tuple)) and default and isinstance(default[0], float):
            value = [float(v) for v in value]
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def overridden(parameters: dict, defaults: dict) -> dict[str, object]:
    """The checked parameters whose value differs from the notebook's default."""
    return {
        k: v
        for k, v in parameters.items()
        if not (type(v) is type(defaults[k]) and v == defaults[k])
        and not (isinstance(defaults[k], tuple) and list(defaults[k]) == v)
    }
