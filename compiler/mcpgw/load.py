"""config.json → `Config`, or every problem in it: read, parse with positions, validate, build.

Bad input is never an exception here: each problem is a located `Diagnostic`,
and the CLI alone turns them into exit code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mcpgw.config import Config, config_from_document
from mcpgw.diagnostics import Diagnostic, has_errors
from mcpgw.jsonpos import Parsed, escape, parse
from mcpgw.validate import validate


@dataclass(frozen=True)
class Loaded:
    """The config when there is no error, and every diagnostic (warnings too), sorted by position."""

    config: Config | None
    diagnostics: list[Diagnostic]


def _decode(data: bytes, file: str) -> str | Diagnostic:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        return Diagnostic(file, line, col, "", f"not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded")


def _model_errors(exc: ValidationError, parsed: Parsed, file: str) -> list[Diagnostic]:
    """Only reached if schema and models disagree, which a test guards against; still located."""
    document = parsed.value if isinstance(parsed.value, dict) else {}
    shape_root = next((f"/{key}" for key in ("mcpServers", "servers") if key in document), "")
    out = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if loc[:1] == ["backends"]:
            loc = loc[1:]
            ptr = shape_root + "".join(f"/{escape(p)}" for p in loc)
        else:
            ptr = "".join(f"/{escape(p)}" for p in loc)
        line, col = parsed.locate(ptr)
        out.append(Diagnostic(file, line, col, ptr, f"invalid config: {error['msg']}"))
    return out


def load(path: Path) -> Loaded:
    """Read and validate `path`; diagnostics name it as given, so relative stays relative."""
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Loaded(None, [Diagnostic(file, 1, 1, "", f"cannot read config: {exc.strerror or exc}")])
    text = _decode(data, file)
    if isinstance(text, Diagnostic):
        return Loaded(None, [text])
    parsed = parse(text, file)
    if isinstance(parsed, Diagnostic):
        return Loaded(None, [parsed])
    diagnostics = sorted(set(parsed.duplicates) | set(validate(parsed, file)))
    if has_errors(diagnostics):
        return Loaded(None, diagnostics)
    try:
        config = config_from_document(parsed.value)
    except ValidationError as exc:
        return Loaded(None, sorted(diagnostics + _model_errors(exc, parsed, file)))
    return Loaded(config, diagnostics)


def load_config(path: Path) -> Config | list[Diagnostic]:
    """The config, or every diagnostic when any is an error.

    Warnings of a valid config are dropped here; callers that print them use `load`.
    """
    loaded = load(path)
    return loaded.config if loaded.config is not None else loaded.diagnostics
