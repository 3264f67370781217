"""config.json → `Config`, or every problem in it: read, parse with positions, validate, build.

Bad input is never an exception here: each problem is a located `Diagnostic`,
and the CLI alone turns them into exit code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mcpgw.config import CLIENTS_KEYS, Config, config_from_document
from mcpgw.diagnostics import Diagnostic, has_errors
from mcpgw.jsonpos import Parsed, escape, parse
from mcpgw.validate import did_you_mean, validate


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


def _client_settings(parsed: Parsed, file: str) -> list[Diagnostic]:
    """Drop a client's own top-level settings (Claude Desktop's `preferences`, ...) beside `mcpServers`.

    A key close to one of ours (`gatway`) or shaped like a backend stays, so
    validation still reports it as the mistake it probably is.
    """
    document = parsed.value
    if not isinstance(document, dict) or "mcpServers" not in document:
        return []
    ours = sorted(CLIENTS_KEYS)
    out = []
    for key in [k for k in document if k not in CLIENTS_KEYS]:
        value = document[key]
        if did_you_mean(key, ours) or (isinstance(value, dict) and {"command", "url"} & set(value)):
            continue
        line, col = parsed.locate(f"/{escape(key)}", at_key=True)
        message = f"ignored {key!r}: a client setting, not an mcpgw one"
        out.append(Diagnostic(file, line, col, f"/{escape(key)}", message, "warning"))
        del document[key]
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
    ignored = _client_settings(parsed, file)
    diagnostics = sorted(set(parsed.duplicates) | set(ignored) | set(validate(parsed, file)))
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
