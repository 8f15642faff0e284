"""A small JSON path: ``$``, ``.name``, ``['name']`` and ``[index]`` (negative counts from the end).

Enough to point at one value of an API's answer (``$.status``, ``$.items[0].name``,
``$['health-check'].ok``); no wildcards, filters or slices, so a path names at most one value.
"""

from __future__ import annotations

import json
import re
from typing import Any

_STEP = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_-]*)|\[(-?\d+)\]|\['([^']*)'\]|\["([^"]*)"\]""")

PathStep = str | int


class JsonPathError(ValueError):
    """The path is not written in the supported syntax."""


def parse_json_path(path: str) -> tuple[PathStep, ...]:
    """The steps of ``path``: names (str) and list indexes (int)."""
    if not path.startswith("$"):
        raise JsonPathError(f"JSON path {path!r} must start with $")
    steps: list[PathStep] = []
    position = 1
    while position < len(path):
        match = _STEP.match(path, position)
        if match is None:
            raise JsonPathError(
                f"JSON path {path!r}: cannot read {path[position:]!r} (use .name, ['name'] or [index])"
            )
        name, index, quoted, double_quoted = match.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(next(s for s in (name, quoted, double_quoted) if s is not None))
        position = match.end()
    return tuple(steps)


def find(document: Any, steps: tuple[PathStep, ...]) -> tuple[bool, Any]:
    """``(True, value)`` at ``steps`` in ``document``, or ``(False, None)`` when it is not there."""
    value: Any = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return False, None
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                return False, None
            value = value[step]
    return True, value


def as_text(value: Any) -> str:
    """A value as compared with an expected text: strings as they are, ``true``/``false``/``null``
    and numbers as JSON writes them, lists and objects as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
