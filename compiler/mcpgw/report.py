"""How `mcpgw check` shows drift: a readable summary with diffs, stable JSON, or GitHub annotations.

Every change points at the line of the committed snapshot it concerns, so a
reviewer (or a GitHub annotation) lands on the definition that moved.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mcpgw_runtime.drift import ADDITIVE, BREAKING, SECURITY, SEVERITY_ORDER, Change

from mcpgw.budgets import ProfileCost, TokenChange, token_changes_json, token_changes_text
from mcpgw.budgets import report_json as surface_json
from mcpgw.canonical import pretty
from mcpgw.diagnostics import escape_data, escape_property
from mcpgw.jsonpos import Parsed, parse, pointer
from mcpgw.lint.output import Located
from mcpgw.lint.output import format_github as lint_github
from mcpgw.lint.output import format_text as lint_text
from mcpgw.lint.output import summary as lint_summary

REPORT_FORMAT = 1
FAIL_ON: dict[str, frozenset[str]] = {
    "breaking": frozenset({BREAKING}),
    "security": frozenset({BREAKING, SECURITY}),
    "any": frozenset({BREAKING, SECURITY, ADDITIVE}),
}
"""`--fail-on X` fails on X and everything more severe: security includes breaking."""

_SECTIONS = {"tool": "tools", "prompt": "prompts", "resource": "resources", "resource_template": "resource_templates"}


@dataclass(frozen=True)
class Report:
    """One check's findings and where they came from."""

    changes: list[Change]
    snapshot_file: str
    config_file: str
    output_dir: str
    fail_on: str
    before: dict[str, Any]
    after: dict[str, Any]
    snapshot_text: str
    surface: list[ProfileCost] = field(default_factory=list)
    """Each profile's listing over the live tools, priced (budgets.py)."""
    tokens: list[TokenChange] = field(default_factory=list)
    """Each exposed tool whose token cost changed since the snapshot."""
    lint: list[Located] = field(default_factory=list)
    """The lint's findings over the live offers (docs/lint.md)."""

    @property
    def failing(self) -> list[Change]:
        return [c for c in self.changes if c.severity in FAIL_ON[self.fail_on]]

    @property
    def lint_failing(self) -> list[Located]:
        """Error-level findings the config does not accept; security-relevant, so gated like security drift."""
        if SECURITY not in FAIL_ON[self.fail_on]:
            return []
        return [loc for loc in self.lint if loc.finding.failing]

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.changes if c.severity == s) for s in SEVERITY_ORDER}


def _pointer(change: Change) -> str:
    if change.kind == "config":
        return "/config_digest"
    if change.kind == "runtime":
        return ""  # not in the snapshot: its first line
    if change.kind == "profile":
        return ""  # a profile lives in the config; the snapshot's first line
    if change.kind == "backend" or not change.name:
        return pointer(["backends", change.backend])
    return pointer(["backends", change.backend, _SECTIONS[change.kind], change.name])


def _definition(doc: dict[str, Any], change: Change) -> Any:
    node: Any = doc
    for token in ["backends", change.backend, _SECTIONS.get(change.kind, ""), change.name]:
        node = node.get(token) if isinstance(node, dict) else None
    if isinstance(node, dict) and "definition" in node:
        return node["definition"]
    return node


def line_of(parsed: Parsed | None, change: Change) -> int:
    """The snapshot line of the changed item, or of its nearest recorded parent."""
    if parsed is None:
        return 1
    return parsed.locate(_pointer(change), at_key=True)[0]


GATEWAY_LEVEL = ("config", "backend", "runtime", "profile")
"""Kinds of change that concern no single tool, prompt or resource (no definition to diff)."""


def _where(change: Change) -> str:
    if change.kind in GATEWAY_LEVEL:
        return ""
    name = f"{change.kind.replace('_', ' ')} {change.name}"
    return f"{name} ({change.path}): " if change.path else f"{name}: "


def _hint(report: Report, change: Change) -> str:
    if change.code == "CONFIG_CHANGED":
        return f"; rebuild: mcpgw build {report.config_file} -o {report.output_dir}"
    return ""


def _parsed(report: Report) -> Parsed | None:
    result = parse(report.snapshot_text, report.snapshot_file)
    return result if isinstance(result, Parsed) else None


def _diffs(report: Report) -> Iterable[str]:
    """A unified diff of each changed definition, snapshot first, live second."""
    done: set[tuple[str, str, str]] = set()
    for change in report.changes:
        key = (change.backend, change.kind, change.name)
        if change.kind in GATEWAY_LEVEL or key in done:
            continue
        done.add(key)
        old, new = _definition(report.before, change), _definition(report.after, change)
        where = "/".join(("backends", change.backend, _SECTIONS[change.kind], change.name))
        yield from difflib.unified_diff(
            pretty(old).splitlines(keepends=True) if old is not None else [],
            pretty(new).splitlines(keepends=True) if new is not None else [],
            fromfile=f"{report.snapshot_file} {where}",
            tofile=f"live {where}",
        )


def format_text(report: Report) -> str:
    """Summary grouped by backend, then the diffs; empty changes give a one-line all-clear."""
    if not report.changes:
        return (
            f"no drift: every backend matches {report.snapshot_file}\n"
            + _surface_section(report)
            + _lint_section(report)
        )
    counts = report.counts()
    lines = [
        f"drift against {report.snapshot_file}: "
        + ", ".join(f"{counts[s]} {s}" for s in SEVERITY_ORDER)
        + f" (--fail-on {report.fail_on}: {'fails' if report.failing else 'passes'})",
    ]
    width = max(len(c.code) for c in report.changes)
    groups: dict[str, list[Change]] = {}
    for change in report.changes:
        groups.setdefault(change.backend, []).append(change)
    for backend, changes in groups.items():
        lines += ["", f"backend {backend}" if backend else "gateway"]
        for c in changes:
            lines.append(f"  {c.code:<{width}}  {c.severity:<8}  {_where(c)}{c.message}{_hint(report, c)}")
    diff = "".join(_diffs(report))
    if diff:
        lines += ["", diff.rstrip("\n")]
    return "\n".join(lines) + "\n" + _surface_section(report) + _lint_section(report)


def _lint_section(report: Report) -> str:
    if not report.lint:
        return ""
    verdict = f" (--fail-on {report.fail_on}: {'fails' if report.lint_failing else 'passes'})"
    return "\n" + "\n".join([lint_summary(report.lint) + verdict, *lint_text(report.lint)]) + "\n"


def _surface_section(report: Report) -> str:
    """Each exposed tool's token change (the profiles' figures go to stderr, as the build's do)."""
    lines = token_changes_text(report.tokens)
    return "\n" + "\n".join(lines) + "\n" if lines else ""


def to_json(report: Report) -> dict[str, Any]:
    """The documented shape of `--error-format json` (docs/check.md); keys never renamed."""
    parsed = _parsed(report)
    return {
        "changes": [{**c.as_json(), "line": line_of(parsed, c), "pointer": _pointer(c)} for c in report.changes],
        "config": report.config_file,
        "counts": report.counts(),
        "fail_on": report.fail_on,
        "failed": bool(report.failing or report.lint_failing),
        "format": REPORT_FORMAT,
        "lint": [loc.to_json() for loc in report.lint],
        "snapshot": report.snapshot_file,
        "surface": surface_json(report.surface),
        "tokens": token_changes_json(report.tokens),
    }


def format_json(report: Report) -> str:
    return json.dumps(to_json(report), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def format_github(report: Report) -> str:
    """Workflow commands: each change an annotation on its snapshot line; failing ones are errors."""
    parsed = _parsed(report)
    failing = {id(c) for c in report.failing}
    out = []
    for c in report.changes:
        level = "error" if id(c) in failing else "warning"
        props = f"file={escape_property(report.snapshot_file)},line={line_of(parsed, c)}"
        props += f",title={escape_property(f'{c.code} ({c.severity})')}"
        subject = f"{c.backend}: " if c.backend else ""
        out.append(f"::{level} {props}::{escape_data(subject + _where(c) + c.message + _hint(report, c))}")
    return "".join(line + "\n" for line in out + lint_github(report.lint))
