"""SARIF 2.1.0 for code-scanning upload: the lint's findings, and `mcpgw check`'s drift.

One run, tool `mcpgw`, every lint rule in `tool.driver.rules` (so rule
indices never move) plus the drift codes a check report uses. A result sits
on the config line of its backend (lint) or the snapshot line of its item
(drift), names the backend and item as a logical location, and carries the
JSON pointer in its properties. Accepted findings are results with an
external suppression, so code scanning shows them as dismissed, not open.
A test validates the output against the OASIS schema.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mcpgw_runtime.drift import CODES, Change

from mcpgw import __version__
from mcpgw.jsonpos import Parsed, parse
from mcpgw.lint.output import Located, fix_for
from mcpgw.lint.rules import RULES, Rule

if TYPE_CHECKING:
    from mcpgw.report import Report

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_SECURITY_SEVERITY = {"error": "8.0", "warning": "5.0", "note": "2.0"}
_DRIFT_LEVEL = {"breaking": "error", "security": "error", "additive": "note"}
_LOGICAL_KIND = {
    "tool": "function",
    "prompt": "member",
    "resource": "resource",
    "resource_template": "resource",
    "instructions": "module",
    "config": "object",
    "backend": "module",
    "runtime": "module",
}


def artifact_uri(file: str) -> str:
    """A URI reference for a path as the user gave it: relative stays relative (code scanning wants that)."""
    path: PurePath = PureWindowsPath(file) if "\\" in file else PurePosixPath(file)
    if path.is_absolute():
        return "file://" + quote(path.as_posix() if path.as_posix().startswith("/") else "/" + path.as_posix())
    return quote(path.as_posix())


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def _lint_rule(rule: Rule) -> dict[str, Any]:
    security = rule.id != "MCPGW-L901"
    props: dict[str, Any] = {"tags": ["mcp", "security"] if security else ["mcp", "maintainability"]}
    if security:
        props["security-severity"] = _SECURITY_SEVERITY[rule.severity]
    return {
        "id": rule.id,
        "name": _pascal(rule.name),
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.why},
        "help": {
            "text": f"{rule.why}\n\nFix: {rule.fix}",
            "markdown": f"{rule.why}\n\n**Fix:** {rule.fix}\n\nRules and examples: docs/lint.md in mcpgw.",
        },
        "defaultConfiguration": {"level": rule.severity},
        "properties": props,
    }


def _drift_rule(code: str) -> dict[str, Any]:
    cls, meaning = CODES[code]
    return {
        "id": code,
        "name": _pascal(code.lower()),
        "shortDescription": {"text": meaning},
        "fullDescription": {"text": f"{meaning} ({cls} drift from the reviewed snapshot)"},
        "help": {"text": f"{meaning}. Review the change, then re-approve it with `mcpgw build` (docs/check.md)."},
        "defaultConfiguration": {"level": _DRIFT_LEVEL.get(cls, "warning")},
        "properties": {"tags": ["mcp", "drift", cls]},
    }


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _lint_result(loc: Located, index: dict[str, int]) -> dict[str, Any]:
    f = loc.finding
    where = f"{f.backend}: {f.subject}" + (f" {f.pointer}" if f.pointer else "")
    name = f.item or f.backend
    result: dict[str, Any] = {
        "ruleId": f.rule,
        "ruleIndex": index[f.rule],
        "level": "note" if f.accepted else f.severity,
        "message": {"text": f"{where}: {f.message}. Fix: {fix_for(f)}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": artifact_uri(loc.file)},
                    "region": {"startLine": loc.line, "startColumn": loc.col},
                },
                "logicalLocations": [
                    {
                        "name": name,
                        "fullyQualifiedName": f"{f.backend}/{f.kind}/{f.item}" if f.item else f"{f.backend}/{f.kind}",
                        "kind": _LOGICAL_KIND[f.kind],
                    }
                ],
            }
        ],
        "partialFingerprints": {"mcpgwFinding/v1": _fingerprint(f.backend, f.kind, f.item, f.pointer, f.rule)},
        "properties": {
            "backend": f.backend,
            "kind": f.kind,
            "item": f.item,
            "pointer": f.pointer,
            "snapshotPointer": f.snapshot_pointer,
            "accepted": f.accepted,
        },
    }
    if f.accepted:
        result["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": f"accepted in {loc.file} (lint.accept)"}
        ]
    return result


def _drift_result(change: Change, report: Report, parsed: Parsed | None, failing: bool, index: int) -> dict[str, Any]:
    from mcpgw.report import line_of

    subject = f"{change.kind.replace('_', ' ')} {change.name}" if change.name else change.kind
    path = f" ({change.path})" if change.path else ""
    logical = [c for c in (change.backend, change.kind, change.name) if c]
    return {
        "ruleId": change.code,
        "ruleIndex": index,
        "level": "error" if failing else "warning" if _DRIFT_LEVEL.get(change.severity) == "error" else "note",
        "message": {"text": f"{change.backend or 'gateway'}: {subject}{path}: {change.message}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": artifact_uri(report.snapshot_file)},
                    "region": {"startLine": line_of(parsed, change)},
                },
                "logicalLocations": [
                    {
                        "name": change.name or change.backend or change.kind,
                        "fullyQualifiedName": "/".join(logical),
                        "kind": _LOGICAL_KIND.get(change.kind, "object"),
                    }
                ],
            }
        ],
        "partialFingerprints": {
            "mcpgwDrift/v1": _fingerprint(change.code, change.backend, change.kind, change.name, change.path)
        },
        "properties": {"class": change.severity, "backend": change.backend, "kind": change.kind, "path": change.path},
    }


def sarif_log(located: list[Located], report: Report | None = None) -> dict[str, Any]:
    """The SARIF document: lint findings, and with a check report its drift."""
    rules = [_lint_rule(r) for r in RULES]
    index = {r.id: i for i, r in enumerate(RULES)}
    results = [_lint_result(loc, index) for loc in located]
    if report is not None:
        parsed_or_error = parse(report.snapshot_text, report.snapshot_file)
        parsed = parsed_or_error if isinstance(parsed_or_error, Parsed) else None
        failing = {id(c) for c in report.failing}
        for code in sorted({c.code for c in report.changes}):
            index[code] = len(rules)
            rules.append(_drift_rule(code))
        results += [_drift_result(c, report, parsed, id(c) in failing, index[c.code]) for c in report.changes]
    driver = {"name": "mcpgw", "version": __version__, "semanticVersion": __version__, "rules": rules}
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": results}],
    }


def format_sarif(located: list[Located], report: Report | None = None) -> str:
    return json.dumps(sarif_log(located, report), indent=2, ensure_ascii=False) + "\n"
