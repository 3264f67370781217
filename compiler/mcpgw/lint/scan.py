"""Walk what the backends offer, run the detectors on every string, apply the config's acceptances.

What is linted is what the model would see: each enabled backend's exposed
tools and prompts (filters applied, a `describe` override in place of the
backend's description), its exposed resources and resource templates, and
its server instructions. Every string and object key of a definition is
visited with its JSON pointer, so text hidden in a nested schema (a
property's description, an enum value, a default, a title) is found where
it sits. A finding is accepted when the backend's `lint.accept` lists its
rule ID for that item; an acceptance that matches nothing is itself a
finding (MCPGW-L901), so acceptances never outlive what they were for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mcpgw.config import Config
from mcpgw.jsonpos import pointer
from mcpgw.lint.rules import BY_ID, Severity
from mcpgw.lint.text import Hit, confusable_name, confusable_words, hidden_characters, normalise, phrasing
from mcpgw.snapshot import BackendOffer
from mcpgw.specs import backend_spec

INSTRUCTIONS = "$instructions"
"""The `lint.accept` key of a backend's server instructions (no tool name starts with "$")."""
KIND_ORDER = ("instructions", "tool", "prompt", "resource", "resource_template", "config")
_SECTIONS = {"tool": "tools", "prompt": "prompts", "resource": "resources", "resource_template": "resource_templates"}
_CODE_KEYS = frozenset(
    {"type", "format", "$ref", "$schema", "$id", "$anchor", "pattern", "mimeType", "uri", "uriTemplate"}
    | {"contentEncoding", "contentMediaType", "src"}
)
"""Keys whose string values are machine text: checked for hidden characters only."""
ONCE_PER_ITEM = frozenset({"MCPGW-L104"})
"""Rules reported at their first place in an item only: a look-alike parameter name recurs in its
generated title and in `required`, and is one finding, not three."""
_SKIPPED = frozenset({"icons"})
"""Subtrees not shown to the model as text (icons are images, often large data: URIs)."""


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in one string of one item. `pointer` is RFC 6901 inside the item's definition."""

    backend: str
    kind: str
    """tool, prompt, resource, resource_template, instructions; config for a stale acceptance."""
    item: str
    """The original tool or prompt name, the resource's URI or template; "" for instructions."""
    pointer: str
    rule: str
    message: str
    accepted: bool = False

    @property
    def severity(self) -> Severity:
        return "note" if self.accepted else BY_ID[self.rule].severity

    @property
    def failing(self) -> bool:
        return self.severity == "error"

    @property
    def accept_key(self) -> str:
        return INSTRUCTIONS if self.kind == "instructions" else self.item

    @property
    def subject(self) -> str:
        """`tool echo`, `server instructions`, `lint.accept "echo"`."""
        if self.kind == "instructions":
            return "server instructions"
        if self.kind == "config":
            return f"lint.accept {self.item!r}"
        return f"{self.kind.replace('_', ' ')} {self.item}"

    @property
    def snapshot_pointer(self) -> str:
        """Where the string is in snapshot.json ("" for a config-level finding)."""
        if self.kind == "config":
            return ""
        if self.kind == "instructions":
            return pointer(["backends", self.backend, "instructions"])
        base = pointer(["backends", self.backend, _SECTIONS[self.kind], self.item])
        return base + ("/definition" if self.kind in ("tool", "prompt") else "") + self.pointer

    def sort_key(self) -> tuple[str, int, str, str, str]:
        return (self.backend, KIND_ORDER.index(self.kind), self.item, self.pointer, self.rule)


@dataclass(frozen=True)
class _Item:
    backend: str
    kind: str
    item: str
    definition: Any


def _walk(node: Any, ptr: str = "", key: str = "") -> Iterator[tuple[str, str, str]]:
    """(pointer, text, role) for every string and object key; role is `name`, `code` or `prose`."""
    if isinstance(node, str):
        if ptr == "/name" or (key == "name" and "/arguments/" in ptr):
            yield ptr, node, "name"
        elif key in _CODE_KEYS:
            yield ptr, node, "code"
        else:
            yield ptr, node, "prose"
    elif isinstance(node, dict):
        for k in sorted(node):
            child = f"{ptr}/{k.replace('~', '~0').replace('/', '~1')}"
            yield child, k, "key"
            if k not in _SKIPPED:
                yield from _walk(node[k], child, k)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{ptr}/{i}", key)


def _items(config: Config, offers: Mapping[str, BackendOffer]) -> Iterator[_Item]:
    sep = config.gateway.separator
    for name in sorted(offers):
        backend = config.backends.get(name)
        if backend is None or not backend.enabled:
            continue
        offer, spec = offers[name], backend_spec(backend)
        if offer.instructions:
            yield _Item(name, "instructions", "", offer.instructions)
        for kind, items in (("tool", offer.tools), ("prompt", offer.prompts)):
            for raw in sorted(items, key=lambda i: str(i.get("name"))):
                definition = spec.expose(kind, raw, sep)
                if definition is not None:
                    yield _Item(name, kind, str(raw["name"]), definition)
        for kind, key, items in (
            ("resource", "uri", offer.resources),
            ("resource_template", "uriTemplate", offer.resource_templates),
        ):
            for raw in sorted(items, key=lambda i: str(i.get(key))):
                if spec.exposes_resource(str(raw.get(key))):
                    yield _Item(name, kind, str(raw[key]), raw)


_DISTINCT = re.compile(r"[_\-/.\d]|[a-z][A-Z]")


def _distinctive(name: str) -> bool:
    """A name that cannot be an ordinary word of a sentence: `send_email`, `getTime`, `git-log`, not `echo`."""
    return len(name) >= 5 and _DISTINCT.search(name) is not None


@dataclass(frozen=True)
class _Mentions:
    """Other backends' tool names, matched as whole tokens in one backend's strings."""

    pattern: re.Pattern[str] | None
    owners: dict[str, tuple[str, str, str]]
    """mentioned name → (backend, original, exposed)."""

    def find(self, text: str) -> list[Hit]:
        if self.pattern is None:
            return []
        plain = normalise(text, lower=False)
        found = sorted({m.group(1) for m in self.pattern.finditer(plain)})
        hits = []
        for name in found[:1]:
            backend, original, exposed = self.owners[name]
            also = f" (exposed as {exposed!r})" if exposed != name else ""
            more = f" and {len(found) - 1} more" if len(found) > 1 else ""
            hits.append(Hit("MCPGW-L301", f"names tool {original!r} of backend {backend!r}{also}{more}"))
        return hits


def _mentions(config: Config, offers: Mapping[str, BackendOffer]) -> dict[str, _Mentions]:
    sep = config.gateway.separator
    tools: dict[str, list[tuple[str, str]]] = {}
    # Every tool name a backend offers, filtered out or not: a server naming its own tools is not shadowing.
    offered: dict[str, set[str]] = {}
    for name in sorted(offers):
        backend = config.backends.get(name)
        if backend is None or not backend.enabled:
            continue
        spec = backend_spec(backend)
        offered[name] = {str(raw.get("name")) for raw in offers[name].tools}
        for raw in offers[name].tools:
            original = str(raw.get("name"))
            exposed = spec.exposed_name("tool", original, sep)
            if exposed is not None:
                tools.setdefault(name, []).append((original, exposed))
    out = {}
    for name, mine in tools.items():
        own = offered[name] | {exposed for _, exposed in mine}
        owners: dict[str, tuple[str, str, str]] = {}
        for other in sorted(tools):
            if other == name:
                continue
            for original, exposed in tools[other]:
                for token in (exposed, original):
                    if _distinctive(token) and token not in own:
                        owners.setdefault(token, (other, original, exposed))
        alternatives = "|".join(re.escape(t) for t in sorted(owners, key=lambda t: (-len(t), t)))
        pattern = re.compile(rf"(?<![\w-])({alternatives})(?![\w-])") if owners else None
        out[name] = _Mentions(pattern, owners)
    return out


def _hits(text: str, role: str, mentions: _Mentions | None, own_tools: frozenset[str]) -> list[Hit]:
    hits = hidden_characters(text)
    if role in ("name", "key"):
        hits += confusable_name(text)
    elif role == "prose":
        hits += confusable_words(text) + phrasing(text, own_tools)
        if mentions is not None:
            hits += mentions.find(text)
    return hits


def _raw(config: Config, offers: Mapping[str, BackendOffer]) -> list[Finding]:
    mentions = _mentions(config, offers)
    own = {name: frozenset(str(t.get("name")) for t in offer.tools) for name, offer in offers.items()}
    out: list[Finding] = []
    for it in _items(config, offers):
        once: set[str] = set()
        for ptr, text, role in _walk(it.definition):
            for hit in _hits(text, role, mentions.get(it.backend), own[it.backend]):
                if hit.rule in ONCE_PER_ITEM and hit.rule in once:
                    continue
                once.add(hit.rule)
                out.append(Finding(it.backend, it.kind, it.item, ptr, hit.rule, hit.message))
    return out


def lint(config: Config, offers: Mapping[str, BackendOffer]) -> list[Finding]:
    """Every finding over the enabled backends in `offers`, acceptances applied, stale ones reported; sorted."""
    found = _raw(config, offers)
    out = []
    for f in found:
        accepted = f.rule in config.backends[f.backend].lint.accept.get(f.accept_key, [])
        out.append(Finding(f.backend, f.kind, f.item, f.pointer, f.rule, f.message, accepted) if accepted else f)
    seen = {(f.backend, f.accept_key, f.rule) for f in found}
    for name in sorted(offers):
        backend = config.backends.get(name)
        if backend is None or not backend.enabled:
            continue
        for key, ids in sorted(backend.lint.accept.items()):
            for rule in ids:
                if (name, key, rule) in seen:
                    continue
                what = "no such rule" if rule not in BY_ID else f"no {rule} finding on {key!r}"
                out.append(Finding(name, "config", key, "", "MCPGW-L901", f"accepts {rule}, but there is {what}"))
    return sorted(out, key=Finding.sort_key)
