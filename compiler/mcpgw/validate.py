"""Every problem in a parsed config, each located at its line:col and JSON pointer.

Two passes, all errors collected: the JSON Schema (the same file editors use),
with jsonschema's messages rewritten into "expected X, got Y" at the offending
key or value; then the checks a schema cannot express (malformed `${...}`,
rename collisions, URL schemes, the "/" separator).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]  # stubs not in test deps
from jsonschema.exceptions import ValidationError, best_match  # type: ignore[import-untyped, unused-ignore]
from mcpgw_runtime.envsubst import malformed

from mcpgw.clients import editor_variable_problem, plain_refs
from mcpgw.config import SEED_RESERVED
from mcpgw.diagnostics import Diagnostic, Severity
from mcpgw.jsonpos import Parsed, escape, pointer
from mcpgw.resources import schema_path

_NOUNS = {
    "string": ("a string", "string"),
    "number": ("a number", "number"),
    "integer": ("an integer", "integer"),
    "boolean": ("true or false", "boolean"),
    "object": ("an object", "object"),
    "array": ("an array", "array"),
    "null": ("null", "null"),
}
_HINTS = {
    "disabled": 'write "enabled": false instead',
    "transport": 'the field is "type"',
    "transportType": 'the field is "type"',
    "serverUrl": 'the field is "url"',
    "environment": 'the field is "env"',
    "envFile": 'not read by mcpgw: list the variables in "env", e.g. "KEY": "${env:KEY}"',
    "dev": "VS Code's development mode; leave it out of a gateway's config",
    "autoApprove": "approval is the client's business; configure it in the client that uses the gateway",
    "alwaysAllow": "approval is the client's business; configure it in the client that uses the gateway",
}
"""Fields other clients' configs use, where the closest spelling would mislead."""


@cache
def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_path("config.schema.json").read_text(encoding="utf-8"))
    return loaded


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(_schema())


def schema_errors(document: object) -> list[ValidationError]:
    """Raw jsonschema errors, for tests that compare the schema with the models."""
    return list(_validator().iter_errors(document))


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:56] + '..."'


def _resolve(schema: object) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    ref = schema.get("$ref", "")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**_schema()["$defs"][ref.removeprefix("#/$defs/")], **schema}
    return schema


def _expected(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_NOUNS[k][0] for k in kind)
    inner = _resolve(schema.get("items") if kind == "array" else schema.get("additionalProperties")).get("type")
    if kind == "array" and isinstance(inner, str) and inner in _NOUNS:
        return f"an array of {_NOUNS[inner][1]}s"
    if kind == "object" and inner in ("string", "number", "integer", "boolean"):
        return f"an object with {_NOUNS[inner][1]} values"
    return _NOUNS[kind][0] if kind in _NOUNS else f"a value of type {kind}"


def did_you_mean(word: str, options: list[str], cutoff: float = 0.6) -> str | None:
    """The closest option (a case-only difference first), or None when nothing is close."""
    folded = {o.lower(): o for o in options}
    if word.lower() in folded:
        return folded[word.lower()]
    close = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    return close[0] if close else None


class _Report:
    def __init__(self, parsed: Parsed, file: str) -> None:
        self.parsed = parsed
        self.file = file
        self.found: list[Diagnostic] = []

    def add(self, ptr: str, message: str, *, at_key: bool = False, severity: Severity = "error") -> None:
        line, col = self.parsed.locate(ptr, at_key=at_key)
        self.found.append(Diagnostic(self.file, line, col, ptr, message, severity))


def _unknown_fields(report: _Report, error: ValidationError) -> set[tuple[str, str]]:
    """One error per unknown key, at the key; returns (object pointer, suggested field) pairs."""
    known = sorted(error.schema.get("properties", {}) if isinstance(error.schema, dict) else {})
    ptr = pointer(error.absolute_path)
    suggested = set()
    instance = error.instance if isinstance(error.instance, dict) else {}
    for key in [k for k in instance if k not in known]:
        guess = did_you_mean(key, known)
        hint = _HINTS.get(key) or (f'did you mean "{guess}"?' if guess else None)
        if not ptr and isinstance(instance[key], dict) and {"command", "url"} & set(instance[key]):
            hint = 'a backend? move it into "mcpServers"'
        if guess and key not in _HINTS:
            suggested.add((ptr, guess))
        note = f" ({hint})" if hint else ""
        report.add(
            f"{ptr}/{escape(key)}", f"unknown field {_show(key)}{note}; valid fields: {', '.join(known)}", at_key=True
        )
    return suggested


def _message(error: ValidationError) -> str:  # noqa: PLR0911 - one return per schema keyword
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom, got, value = schema.get("errorMessage"), _show(error.instance), error.validator_value
    if isinstance(custom, str):
        return custom
    match error.validator:
        case "type":
            return f"expected {_expected(schema)}, got {got}"
        case "enum":
            guess = did_you_mean(error.instance, [str(v) for v in value]) if isinstance(error.instance, str) else None
            hint = f' (did you mean "{guess}"?)' if guess else ""
            return f"expected one of {', '.join(json.dumps(v) for v in value)}, got {got}{hint}"
        case "const":
            return f"expected {json.dumps(value)}, got {got}"
        case "minLength":
            return f"expected a non-empty string, got {got}" if value == 1 else f"expected {value}+ characters"
        case "exclusiveMinimum":
            return f"expected a number greater than {value}, got {got}"
        case "minimum":
            return f"expected at least {value}, got {got}"
        case "maximum":
            return f"expected at most {value}, got {got}"
        case "required":
            missing = [p for p in value if not isinstance(error.instance, dict) or p not in error.instance]
            return f"missing required field {_show(missing[0] if missing else value[0])}"
        case "pattern":
            return f"{schema.get('patternErrorMessage') or 'expected text matching ' + str(value)}, got {got}"
    return str(error.message)


def _schema_pass(report: _Report) -> None:
    errors = [best_match([e]) if e.context else e for e in _validator().iter_errors(report.parsed.value)]
    suggested: set[tuple[str, str]] = set()
    for error in errors:
        if error.validator == "additionalProperties":
            suggested |= _unknown_fields(report, error)
    for error in errors:
        ptr = pointer(error.absolute_path)
        if error.validator == "additionalProperties":
            continue
        if "propertyNames" in error.absolute_schema_path:
            name_ptr = f"{ptr}/{escape(str(error.instance))}"
            what = "profile name" if ptr == "/gateway/profiles" else "backend name"
            report.add(name_ptr, f"invalid {what}: {_message(error)}", at_key=True)
        elif error.validator == "required":
            instance = error.instance if isinstance(error.instance, dict) else {}
            missing = [p for p in error.validator_value if p not in instance]
            if all((ptr, p) not in suggested for p in missing):
                report.add(ptr, _message(error))
        else:
            report.add(ptr, _message(error))


def _backends(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    root = next((key for key in ("mcpServers", "servers") if key in document), None)
    if root is not None:
        servers, base = document[root], f"/{root}"
        servers = servers if isinstance(servers, dict) else {}
    else:
        servers, base = {k: v for k, v in document.items() if k not in SEED_RESERVED}, ""
    for name, backend in servers.items():
        if isinstance(backend, dict):
            yield f"{base}/{escape(name)}", backend


def _strings(backend: dict[str, Any], ptr: str) -> Iterator[tuple[str, str]]:
    """Every (pointer, text) where `${VAR}` is expanded at run time."""
    for field in ("command", "cwd", "url"):
        if isinstance(backend.get(field), str):
            yield f"{ptr}/{field}", backend[field]
    if isinstance(backend.get("args"), list):
        yield from ((f"{ptr}/args/{i}", a) for i, a in enumerate(backend["args"]) if isinstance(a, str))
    for field in ("env", "headers"):
        if isinstance(backend.get(field), dict):
            items = backend[field].items()
            yield from ((f"{ptr}/{field}/{escape(k)}", v) for k, v in items if isinstance(v, str))


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)")


def _url_problem(url: str) -> str | None:
    head = url.split("${", 1)[0]
    if "://" not in head and "${" in url:
        return None  # scheme or host comes from a variable: checked when expanded
    match = _SCHEME.match(url)
    if match is None:
        return f"expected an http:// or https:// URL, got {_show(url)}"
    if match.group(1).lower() not in ("http", "https"):
        return f"unsupported URL scheme {_show(match.group(1))}: expected http:// or https://"
    if not match.group(2):
        return f"the URL has no host: {_show(url)}"
    return None


def _check_references(report: _Report, backend: dict[str, Any], ptr: str) -> None:
    for where, text in _strings(backend, ptr):
        if problem := editor_variable_problem(text):
            report.add(where, problem)
        elif malformed(plain_refs(text)):
            report.add(where, f"malformed variable reference in {_show(text)}: write ${{NAME}} or ${{NAME:-default}}")


def _semantic_pass(report: _Report) -> None:
    document = report.parsed.value
    if not isinstance(document, dict):
        return
    for ptr, backend in _backends(document):
        _check_references(report, backend, ptr)
        if isinstance(backend.get("url"), str) and (problem := _url_problem(backend["url"])):
            report.add(f"{ptr}/url", problem)
        for kind in ("tools", "prompts"):
            rules = backend.get(kind)
            rename = rules.get("rename") if isinstance(rules, dict) else None
            owners: dict[str, str] = {}
            for original, target in (rename or {}).items() if isinstance(rename, dict) else ():
                if isinstance(target, str) and owners.setdefault(target, original) != original:
                    report.add(
                        f"{ptr}/{kind}/rename/{escape(original)}",
                        f"{_show(original)} and {_show(owners[target])} are both renamed to {_show(target)}; "
                        "exposed names must be unique",
                    )
    gateway = document.get("gateway")
    if isinstance(gateway, dict) and gateway.get("separator") == "/":
        report.add(
            "/gateway/separator",
            'separator "/" breaks the Anthropic and OpenAI tool-name rules (^[a-zA-Z0-9_-]+$); '
            'clients on those APIs will reject the tools; "__" is the default',
            severity="warning",
        )
    if "mcpServers" not in document and "servers" not in document:
        for key in document:
            guess = did_you_mean(key, ["gateway", "mcpServers"], cutoff=0.8)
            if key not in SEED_RESERVED and guess and key != guess:
                report.add(
                    f"/{escape(key)}",
                    f"{_show(key)} is read as a backend name; did you mean {_show(guess)}?",
                    at_key=True,
                    severity="warning",
                )


def validate(parsed: Parsed, file: str) -> list[Diagnostic]:
    """Every schema and semantic problem in `parsed`, sorted by position, errors and warnings."""
    report = _Report(parsed, file)
    _schema_pass(report)
    _semantic_pass(report)
    return sorted(set(report.found))
