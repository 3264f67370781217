"""JSON values as Python source, deterministically (sorted keys), for the embedded tables."""

from __future__ import annotations

from typing import Any


def pyliteral(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int | float | str):
        return repr(value)
    if isinstance(value, dict):
        items = ", ".join(f"{pyliteral(str(k))}: {pyliteral(v)}" for k, v in sorted(value.items()))
        return "{" + items + "}"
    if isinstance(value, list | tuple):
        inner = ", ".join(pyliteral(v) for v in value)
        return (
            "(" + inner + ",)"
            if isinstance(value, tuple) and len(value) == 1
            else ("(" + inner + ")" if isinstance(value, tuple) else "[" + inner + "]")
        )
    raise TypeError(f"not a JSON value: {type(value).__name__}")
