"""How lint findings are shown: located in the config, as text, JSON lines or GitHub annotations.

A finding lives in a backend's definition, which is not a file in the
repository; what a reviewer edits to act on it is the config. So every
finding points at its backend's entry in the config (an accepted one, or a
stale acceptance, at its `lint.accept` entry), and names the item and the
JSON pointer inside it, and where that string is in snapshot.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcpgw.config import Config
from mcpgw.diagnostics import escape_data, escape_property
from mcpgw.jsonpos import Parsed, parse, pointer
from mcpgw.lint.rules import BY_ID
from mcpgw.lint.scan import Finding
from mcpgw.wording import plural

_GITHUB_LEVEL = {"error": "error", "warning": "warning", "note": "notice"}


@dataclass(frozen=True)
class Located:
    """A finding and where to act on it: the config file as the user named it, 1-based line and column."""

    finding: Finding
    file: str
    line: int
    col: int

    def to_json(self) -> dict[str, Any]:
        f = self.finding
        return {
            "accepted": f.accepted,
            "backend": f.backend,
            "col": self.col,
            "file": self.file,
            "fix": fix_for(f),
            "item": f.item,
            "kind": f.kind,
            "line": self.line,
            "message": f.message,
            "name": BY_ID[f.rule].name,
            "pointer": f.pointer,
            "rule": f.rule,
            "severity": f.severity,
            "snapshot_pointer": f.snapshot_pointer,
        }


def _backend_root(config: Config, backend: str) -> list[str]:
    section = {"mcpServers": ["mcpServers"], "servers": ["servers"]}.get(config.shape, [])
    return [*section, backend]


def locate_all(findings: Iterable[Finding], config_path: Path, config: Config) -> list[Located]:
    """Each finding at its backend's key in the config (its `lint.accept` entry when it is about one)."""
    file = str(config_path)
    try:
        result = parse(config_path.read_text(encoding="utf-8-sig"), file)
    except OSError:
        result = None
    parsed = result if isinstance(result, Parsed) else None
    out = []
    for f in findings:
        tokens = _backend_root(config, f.backend)
        if f.accepted or f.kind == "config":
            tokens += ["lint", "accept", f.accept_key]
        line, col = parsed.locate(pointer(tokens), at_key=True) if parsed is not None else (1, 1)
        out.append(Located(f, file, line, col))
    return out


def fix_for(f: Finding) -> str:
    """A concrete next step for this finding: the config lines to write."""
    accept = f'"lint": {{"accept": {{{json.dumps(f.accept_key)}: ["{f.rule}"]}}}}'
    if f.kind == "config":
        return f"remove the stale ID from backend {f.backend!r}'s lint.accept entry {json.dumps(f.item)}"
    if f.accepted:
        return "accepted in the config; remove the acceptance if the item changes"
    if f.kind == "tool" and f.pointer == "/description":
        describe = f'"tools": {{"describe": {{{json.dumps(f.item)}: "<a description you reviewed>"}}}}'
        return f"override it in backend {f.backend!r}: {describe}, or once reviewed accept it: {accept}"
    if f.kind == "tool" and f.rule == "MCPGW-L104" and f.pointer == "/name":
        rename = f'"tools": {{"rename": {{{json.dumps(f.item)}: "<an ASCII name>"}}}}'
        return f"rename it in backend {f.backend!r}: {rename}, or once reviewed accept it: {accept}"
    leave_out = {"tool": "tools", "prompt": "prompts", "resource": "resources", "resource_template": "resources"}
    if f.kind in leave_out:
        exclude = f'"{leave_out[f.kind]}": {{"exclude": [{json.dumps(f.item)}]}}'
        return f"leave it out in backend {f.backend!r}: {exclude}, or once reviewed accept it: {accept}"
    return f"ask the server's authors to change its instructions, or once reviewed accept it: {accept}"


def counts(located: Iterable[Located]) -> dict[str, int]:
    out = {"error": 0, "warning": 0, "note": 0}
    for loc in located:
        out[loc.finding.severity] += 1
    return out


def summary(located: list[Located]) -> str:
    """`lint: 2 errors, 1 warning, 1 accepted`."""
    c = counts(located)
    parts = [plural(c["error"], "error"), plural(c["warning"], "warning")]
    if c["note"]:
        parts.append(f"{c['note']} accepted")
    return "lint: " + ", ".join(parts)


def format_text(located: list[Located]) -> list[str]:
    """Per finding: `config.json:3:5: error[MCPGW-L201] backend b, tool t, /description: message`, then the fix."""
    lines = []
    for loc in located:
        f = loc.finding
        where = f"backend {f.backend}, {f.subject}" + (f", {f.pointer}" if f.pointer else "")
        label = "accepted" if f.accepted else f.severity
        lines.append(f"{loc.file}:{loc.line}:{loc.col}: {label}[{f.rule}] {where}: {f.message}")
        lines.append(f"  fix: {fix_for(f)}")
    return lines


def format_json_lines(located: list[Located]) -> list[str]:
    return [json.dumps(loc.to_json(), sort_keys=True, ensure_ascii=False) for loc in located]


def format_github(located: list[Located]) -> list[str]:
    """Workflow commands: an annotation on the backend's line in the config, titled with the rule."""
    out = []
    for loc in located:
        f = loc.finding
        props = f"file={escape_property(loc.file)},line={loc.line},col={loc.col}"
        props += f",title={escape_property(f'{f.rule} {BY_ID[f.rule].name}')}"
        where = f"{f.backend}: {f.subject}" + (f" {f.pointer}" if f.pointer else "")
        text = f"{where}: {f.message}" + ("" if f.accepted else f"; fix: {fix_for(f)}")
        out.append(f"::{_GITHUB_LEVEL[f.severity]} {props}::{escape_data(text)}")
    return out
