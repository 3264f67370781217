# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""What changed between two definitions of a tool or prompt, under stable codes.

`mcpgw check` and the running gateway classify changes with this one module,
so the code a CI job reports is the code a gateway logs when it holds a tool
back. Every code has a fixed class: `breaking` (a client that worked may now
fail), `security` (what the model is told or allowed changed: the rug-pull
surface) or `additive` (clients keep working). Input schemas are compared
parameter by parameter, through nested objects, array items and local `$ref`s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

BREAKING = "breaking"
SECURITY = "security"
ADDITIVE = "additive"
SEVERITY_ORDER: tuple[str, ...] = (BREAKING, SECURITY, ADDITIVE)

CODES: dict[str, tuple[str, str]] = {
    # gateway and backend level
    "CONFIG_CHANGED": (BREAKING, "the config changed since the snapshot was built"),
    "BACKEND_UNREACHABLE": (BREAKING, "a backend could not be probed"),
    "BACKEND_ADDED": (ADDITIVE, "a backend is in the config but not in the snapshot"),
    "BACKEND_REMOVED": (BREAKING, "a backend is in the snapshot but no longer enabled in the config"),
    "SERVER_INFO_CHANGED": (ADDITIVE, "the backend reports another name or version"),
    "PROTOCOL_VERSION_CHANGED": (ADDITIVE, "the backend negotiated another protocol version"),
    "CAPABILITY_ADDED": (ADDITIVE, "the backend declares a new capability"),
    "CAPABILITY_REMOVED": (BREAKING, "the backend no longer declares a capability"),
    "INSTRUCTIONS_CHANGED": (SECURITY, "the backend's instructions to the model changed"),
    "RUNTIME_MODIFIED": (SECURITY, "the vendored runtime beside gateway.py is not the one it was built with"),
    # profiles (the compiler's check of the live tools; a rebuild would fail on these)
    "BUDGET_EXCEEDED": (BREAKING, "a profile's live tools are over its budget of tools or tokens"),
    "TARGET_EXCEEDED": (BREAKING, "a profile's live tools break a client target it lists (tool cap, name rules)"),
    # tools
    "TOOL_ADDED": (ADDITIVE, "a new tool"),
    "TOOL_REMOVED": (BREAKING, "a tool is gone"),
    "TOOL_DESCRIPTION_CHANGED": (SECURITY, "a tool's description changed"),
    "TOOL_TITLE_CHANGED": (SECURITY, "a tool's title changed"),
    "ANNOTATIONS_CHANGED": (SECURITY, "a tool's behaviour hints changed"),
    "TOOL_META_CHANGED": (SECURITY, "a tool's _meta changed"),
    "TOOL_ICONS_CHANGED": (ADDITIVE, "a tool's icons changed"),
    "TOOL_EXECUTION_CHANGED": (BREAKING, "a tool's execution settings changed"),
    "TOOL_DEFINITION_CHANGED": (SECURITY, "a tool's definition changed in a field mcpgw does not analyse"),
    "PARAM_REMOVED": (BREAKING, "a parameter is gone"),
    "PARAM_REQUIRED_ADDED": (BREAKING, "a new required parameter"),
    "PARAM_OPTIONAL_ADDED": (ADDITIVE, "a new optional parameter"),
    "PARAM_MADE_REQUIRED": (BREAKING, "an optional parameter became required"),
    "PARAM_MADE_OPTIONAL": (ADDITIVE, "a required parameter became optional"),
    "PARAM_TYPE_CHANGED": (BREAKING, "a parameter no longer accepts a type it accepted"),
    "PARAM_TYPE_WIDENED": (ADDITIVE, "a parameter accepts more types"),
    "PARAM_ENUM_NARROWED": (BREAKING, "a parameter no longer accepts some values"),
    "PARAM_ENUM_WIDENED": (ADDITIVE, "a parameter accepts more values"),
    "PARAM_CONSTRAINT_TIGHTENED": (BREAKING, "a parameter's bounds, length, pattern or format got stricter"),
    "PARAM_CONSTRAINT_LOOSENED": (ADDITIVE, "a parameter's bounds or length got looser"),
    "PARAM_ADDITIONAL_RESTRICTED": (BREAKING, "an object no longer accepts extra properties"),
    "PARAM_ADDITIONAL_ALLOWED": (ADDITIVE, "an object now accepts extra properties"),
    "PARAM_DESCRIPTION_CHANGED": (SECURITY, "a parameter's description or title changed"),
    "PARAM_DEFAULT_CHANGED": (SECURITY, "a parameter's default changed: same call, other behaviour"),
    "PARAM_SCHEMA_CHANGED": (BREAKING, "a parameter's schema changed in a way mcpgw cannot prove compatible"),
    "OUTPUT_SCHEMA_ADDED": (ADDITIVE, "a tool now declares an output schema"),
    "OUTPUT_SCHEMA_REMOVED": (BREAKING, "a tool no longer declares its output schema"),
    "OUTPUT_SCHEMA_CHANGED": (BREAKING, "a tool's output schema changed"),
    # prompts
    "PROMPT_ADDED": (ADDITIVE, "a new prompt"),
    "PROMPT_REMOVED": (BREAKING, "a prompt is gone"),
    "PROMPT_DESCRIPTION_CHANGED": (SECURITY, "a prompt's description or title changed"),
    "PROMPT_ARGUMENT_REMOVED": (BREAKING, "a prompt argument is gone"),
    "PROMPT_ARGUMENT_REQUIRED_ADDED": (BREAKING, "a new required prompt argument"),
    "PROMPT_ARGUMENT_OPTIONAL_ADDED": (ADDITIVE, "a new optional prompt argument"),
    "PROMPT_ARGUMENT_MADE_REQUIRED": (BREAKING, "an optional prompt argument became required"),
    "PROMPT_ARGUMENT_MADE_OPTIONAL": (ADDITIVE, "a required prompt argument became optional"),
    "PROMPT_ARGUMENT_DESCRIPTION_CHANGED": (SECURITY, "a prompt argument's description or title changed"),
    "PROMPT_DEFINITION_CHANGED": (SECURITY, "a prompt's definition changed in a field mcpgw does not analyse"),
    # resources
    "RESOURCE_TEMPLATE_ADDED": (ADDITIVE, "a new resource template"),
    "RESOURCE_TEMPLATE_REMOVED": (BREAKING, "a resource template is gone"),
    "RESOURCE_TEMPLATE_CHANGED": (SECURITY, "a resource template's description, name or type changed"),
    "RESOURCE_ADDED": (ADDITIVE, "a new resource"),
    "RESOURCE_REMOVED": (BREAKING, "a resource is gone"),
    "RESOURCE_CHANGED": (SECURITY, "a resource's description, name or type changed"),
}
"""Every code mcpgw reports, its class and what it means. Codes are stable: never renamed."""

_BOUNDS_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_BOUNDS_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_EXACT = ("pattern", "format", "multipleOf", "uniqueItems", "contentEncoding", "contentMediaType")
_COMPOSITE = ("anyOf", "oneOf", "allOf", "not", "if", "then", "else", "prefixItems", "patternProperties")
_HANDLED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "description",
        "title",
        "default",
        "examples",
        "$ref",
        "$defs",
        "definitions",
        "$schema",
        "$id",
        "$comment",
        *_BOUNDS_LOWER,
        *_BOUNDS_UPPER,
        *_EXACT,
        *_COMPOSITE,
    }
)
_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})


@dataclass(frozen=True, slots=True)
class Change:
    """One reported difference. `name` is the tool/prompt/URI ("" for backend level); `path` a parameter."""

    code: str
    backend: str
    kind: str
    name: str
    message: str
    path: str = ""

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    def as_json(self) -> dict[str, str]:
        return {
            "backend": self.backend,
            "code": self.code,
            "kind": self.kind,
            "message": self.message,
            "name": self.name,
            "path": self.path,
            "severity": self.severity,
        }


def canonical(value: Any) -> str:
    """Sorted keys, no whitespace: the text every sha256 in mcpgw is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    """The pin of a definition, as the snapshot records it and the gateway re-checks it."""
    return "sha256:" + hashlib.sha256(canonical(value).encode()).hexdigest()


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _same(a: Any, b: Any) -> bool:
    return _show(a) == _show(b)


# -- JSON Schema, parameter by parameter ---------------------------------------------------------


class _Schemas:
    """Walks two schemas side by side, resolving each side's local `$ref`s against its own root."""

    def __init__(self, before: Any, after: Any) -> None:
        self.roots = (before, after)
        self.seen: set[tuple[str, str]] = set()

    def _resolve(self, schema: Any, side: int) -> Any:
        hops = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and hops < 32:
            ref: str = schema["$ref"]
            target = _pointer(self.roots[side], ref)
            if target is None:
                return schema  # remote or broken refs are compared as written
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if isinstance(target, dict) else target
            hops += 1
        return schema

    def walk(self, before: Any, after: Any, path: str) -> Iterator[tuple[str, str, str]]:
        """Yield (code, path, message) for every difference found at and below `path`."""
        refs = (_ref_of(before), _ref_of(after))
        if refs[0] is not None and refs[1] is not None:
            if refs in self.seen:
                return  # recursive schema: this pair is already being compared
            self.seen.add((refs[0], refs[1]))
        b, a = self._resolve(before, 0), self._resolve(after, 1)
        if _same(b, a):
            return
        if not isinstance(b, dict) or not isinstance(a, dict):
            yield "PARAM_SCHEMA_CHANGED", path, f"schema changed from {_show(b)} to {_show(a)}"
            return
        yield from _types(b, a, path)
        yield from _enums(b, a, path)
        yield from _bounds(b, a, path)
        yield from self._objects(b, a, path)
        if "items" in b or "items" in a:
            yield from self.walk(b.get("items", {}), a.get("items", {}), f"{path}[]")
        for key in ("description", "title"):
            if not _same(b.get(key), a.get(key)):
                yield "PARAM_DESCRIPTION_CHANGED", path, f"{key} changed: {_show(b.get(key))} → {_show(a.get(key))}"
        if not _same(b.get("default"), a.get("default")):
            yield "PARAM_DEFAULT_CHANGED", path, f"default {_show(b.get('default'))} → {_show(a.get('default'))}"
        for key in sorted((set(b) | set(a)) - _HANDLED):
            if not _same(b.get(key), a.get(key)):
                yield "PARAM_SCHEMA_CHANGED", path, f"{key} changed: {_show(b.get(key))} → {_show(a.get(key))}"
        for key in _COMPOSITE:
            if not _same(b.get(key), a.get(key)):
                yield "PARAM_SCHEMA_CHANGED", path, f"{key} changed"

    def _objects(self, b: dict[str, Any], a: dict[str, Any], path: str) -> Iterator[tuple[str, str, str]]:
        bp, ap = b.get("properties") or {}, a.get("properties") or {}
        if not isinstance(bp, dict) or not isinstance(ap, dict):
            return
        breq, areq = set(b.get("required") or ()), set(a.get("required") or ())
        for name in sorted(set(bp) | set(ap)):
            sub = f"{path}.{name}" if path else name
            if name not in ap:
                yield "PARAM_REMOVED", sub, "parameter removed"
            elif name not in bp:
                if name in areq:
                    yield "PARAM_REQUIRED_ADDED", sub, "new required parameter"
                else:
                    yield "PARAM_OPTIONAL_ADDED", sub, "new optional parameter"
            else:
                if name in areq and name not in breq:
                    yield "PARAM_MADE_REQUIRED", sub, "parameter is now required"
                elif name in breq and name not in areq:
                    yield "PARAM_MADE_OPTIONAL", sub, "parameter is now optional"
                yield from self.walk(bp[name], ap[name], sub)
        b_extra, a_extra = b.get("additionalProperties", True), a.get("additionalProperties", True)
        if b_extra is not False and a_extra is False:
            yield "PARAM_ADDITIONAL_RESTRICTED", path, "additional properties no longer allowed"
        elif b_extra is False and a_extra is not False:
            yield "PARAM_ADDITIONAL_ALLOWED", path, "additional properties now allowed"
        elif isinstance(b_extra, dict) and isinstance(a_extra, dict):
            yield from self.walk(b_extra, a_extra, f"{path}.*" if path else "*")


def _ref_of(schema: Any) -> str | None:
    return schema.get("$ref") if isinstance(schema, dict) and isinstance(schema.get("$ref"), str) else None


def _pointer(root: Any, ref: str) -> Any:
    """A local JSON pointer (`#/$defs/X`), or None if the ref is not local or does not resolve."""
    if not ref.startswith("#"):
        return None
    node = root
    for raw in ref[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _type_set(schema: dict[str, Any]) -> frozenset[str]:
    t = schema.get("type")
    if t is None:
        return _TYPES
    names = frozenset([t] if isinstance(t, str) else t if isinstance(t, list) else [])
    return names | {"integer"} if "number" in names else names


def _types(b: dict[str, Any], a: dict[str, Any], path: str) -> Iterator[tuple[str, str, str]]:
    bt, at = _type_set(b), _type_set(a)
    if bt == at:
        return
    was, now = _show(b.get("type", "any")), _show(a.get("type", "any"))
    if not bt <= at:
        yield "PARAM_TYPE_CHANGED", path, f"type {was} → {now}"
    else:
        yield "PARAM_TYPE_WIDENED", path, f"type {was} → {now}"


def _allowed(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return enum if isinstance(enum, list) else None


def _enums(b: dict[str, Any], a: dict[str, Any], path: str) -> Iterator[tuple[str, str, str]]:
    be, ae = _allowed(b), _allowed(a)
    if be is None and ae is None:
        return
    if ae is None:
        yield "PARAM_ENUM_WIDENED", path, "no longer restricted to a list of values"
        return
    if be is None:
        yield "PARAM_ENUM_NARROWED", path, f"now restricted to {_show(ae)}"
        return
    shown_b, shown_a = {_show(v) for v in be}, {_show(v) for v in ae}
    if gone := sorted(shown_b - shown_a):
        yield "PARAM_ENUM_NARROWED", path, f"values no longer accepted: {', '.join(gone)}"
    if new := sorted(shown_a - shown_b):
        yield "PARAM_ENUM_WIDENED", path, f"values now accepted: {', '.join(new)}"


def _bounds(b: dict[str, Any], a: dict[str, Any], path: str) -> Iterator[tuple[str, str, str]]:
    for key in (*_BOUNDS_LOWER, *_BOUNDS_UPPER, *_EXACT):
        was, now = b.get(key), a.get(key)
        if _same(was, now):
            continue
        detail = f"{key} {_show(was) if was is not None else 'unset'} → {_show(now) if now is not None else 'unset'}"
        if key in _EXACT or not isinstance(was, int | float) or not isinstance(now, int | float):
            looser = now is None
        else:
            looser = now < was if key in _BOUNDS_LOWER else now > was
        yield ("PARAM_CONSTRAINT_LOOSENED" if looser else "PARAM_CONSTRAINT_TIGHTENED"), path, detail


def schema_changes(before: Any, after: Any) -> list[tuple[str, str, str]]:
    """(code, parameter path, message) for every difference between two input schemas."""
    return list(_Schemas(before, after).walk(before or {}, after or {}, ""))


# -- tools and prompts ---------------------------------------------------------------------------

_TOOL_FIELDS = frozenset(
    {"name", "description", "title", "annotations", "inputSchema", "outputSchema", "icons", "_meta", "execution"}
)
_PROMPT_FIELDS = frozenset({"name", "description", "title", "arguments"})


def _changed(before: Mapping[str, Any], after: Mapping[str, Any], key: str) -> bool:
    """An absent key and an explicit null differ too: the digest sees the difference, so must we."""
    return (key in before) != (key in after) or not _same(before.get(key), after.get(key))


def _quote(text: Any) -> str:
    return _show(text) if text is not None else "none"


def _was_now(before: Mapping[str, Any], after: Mapping[str, Any], key: str) -> str:
    return f"{key} {_quote(before.get(key))} → {_quote(after.get(key))}"


_TOOL_SCALARS: tuple[tuple[str, str], ...] = (
    ("description", "TOOL_DESCRIPTION_CHANGED"),
    ("title", "TOOL_TITLE_CHANGED"),
    ("_meta", "TOOL_META_CHANGED"),
    ("icons", "TOOL_ICONS_CHANGED"),
    ("execution", "TOOL_EXECUTION_CHANGED"),
)


def _annotations(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    ba, aa = before.get("annotations") or {}, after.get("annotations") or {}
    if not isinstance(ba, dict) or not isinstance(aa, dict):
        return "annotations changed"
    return "; ".join(_was_now(ba, aa, k) for k in sorted(set(ba) | set(aa)) if _changed(ba, aa, k))


def _output_schema(before: Any, after: Any) -> tuple[str, str]:
    if before is None:
        return "OUTPUT_SCHEMA_ADDED", "output schema added"
    if after is None:
        return "OUTPUT_SCHEMA_REMOVED", "output schema removed"
    paths = sorted({p or "(root)" for _, p, _ in schema_changes(before, after)})
    return "OUTPUT_SCHEMA_CHANGED", f"output schema changed at {', '.join(paths) or '(root)'}"


def tool_changes(backend: str, name: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Every difference between two definitions of one tool; empty only if they are equal."""
    out: list[Change] = []

    def add(code: str, message: str, path: str = "") -> None:
        out.append(Change(code, backend, "tool", name, message, path))

    for key, code in _TOOL_SCALARS:
        if _changed(before, after, key):
            add(code, _was_now(before, after, key) if key != "icons" else "icons changed")
    if _changed(before, after, "annotations"):
        add("ANNOTATIONS_CHANGED", _annotations(before, after) or "annotations changed")
    if _changed(before, after, "inputSchema"):
        found = schema_changes(before.get("inputSchema"), after.get("inputSchema"))
        for code, path, message in found or [("PARAM_SCHEMA_CHANGED", "", "input schema changed")]:
            add(code, message, path)
    if _changed(before, after, "outputSchema"):
        add(*_output_schema(before.get("outputSchema"), after.get("outputSchema")))
    for key in sorted((set(before) | set(after)) - _TOOL_FIELDS):
        if _changed(before, after, key):
            add("TOOL_DEFINITION_CHANGED", _was_now(before, after, key))
    return out


def _arguments(prompt: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    args = prompt.get("arguments") or []
    return {str(a.get("name")): a for a in args if isinstance(a, dict)}


def prompt_changes(backend: str, name: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Every difference between two definitions of one prompt; empty only if they are equal."""
    out: list[Change] = []

    def add(code: str, message: str, path: str = "") -> None:
        out.append(Change(code, backend, "prompt", name, message, path))

    for key in ("description", "title"):
        if _changed(before, after, key):
            add("PROMPT_DESCRIPTION_CHANGED", _was_now(before, after, key))
    b_args, a_args = _arguments(before), _arguments(after)
    for arg in sorted(set(b_args) | set(a_args)):
        b_arg, a_arg = b_args.get(arg), a_args.get(arg)
        if a_arg is None:
            add("PROMPT_ARGUMENT_REMOVED", "argument removed", arg)
        elif b_arg is None:
            required = bool(a_arg.get("required"))
            code = "PROMPT_ARGUMENT_REQUIRED_ADDED" if required else "PROMPT_ARGUMENT_OPTIONAL_ADDED"
            add(code, f"new {'required' if required else 'optional'} argument", arg)
        else:
            if bool(a_arg.get("required")) and not b_arg.get("required"):
                add("PROMPT_ARGUMENT_MADE_REQUIRED", "argument is now required", arg)
            elif bool(b_arg.get("required")) and not a_arg.get("required"):
                add("PROMPT_ARGUMENT_MADE_OPTIONAL", "argument is now optional", arg)
            for key in ("description", "title"):
                if _changed(b_arg, a_arg, key):
                    add(
                        "PROMPT_ARGUMENT_DESCRIPTION_CHANGED",
                        _was_now(b_arg, a_arg, key),
                        arg,
                    )
    extra = sorted(k for k in (set(before) | set(after)) - _PROMPT_FIELDS if _changed(before, after, k))
    if extra or (not out and not _same(before, after)):
        add("PROMPT_DEFINITION_CHANGED", f"changed: {', '.join(extra) or 'arguments'}")
    return out


def summary(changes: list[Change]) -> str:
    """`CODE (path), CODE` — how a gateway names the changes in one line."""
    seen: dict[str, None] = {}
    for c in changes:
        seen.setdefault(f"{c.code} ({c.path})" if c.path else c.code, None)
    return ", ".join(seen)
