"""Exposed names (spec section 3): prefix, filters, renames, and the rules they must obey.

Every problem is collected, each with a suggested `rename`, because a build
that reports one collision at a time wastes a reviewer's afternoon.
Collisions are never resolved by "first wins".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mcpgw_runtime.spec import selected

from mcpgw.config import Backend, Config
from mcpgw.snapshot import BackendOffer
from mcpgw.specs import backend_spec

JSON = dict[str, Any]
LEGAL = re.compile(r"^[A-Za-z0-9_-]+$")
"""What the Anthropic and OpenAI tool APIs accept."""


@dataclass(frozen=True)
class Exposure:
    """One exposed tool or prompt: the name clients see and where it goes."""

    name: str
    backend: str
    original: str
    definition: JSON
    source: JSON
    """The backend's own definition, which the runtime pin is taken over."""


@dataclass
class Exposed:
    """Every routing table of the gateway, sorted."""

    tools: list[Exposure] = field(default_factory=list)
    prompts: list[Exposure] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)
    resource_templates: list[tuple[str, JSON]] = field(default_factory=list)


def _prefix(backend: Backend) -> str:
    return backend.name if backend.prefix is None else backend.prefix


def _join(prefix: str, separator: str, name: str) -> str:
    return f"{prefix}{separator}{name}" if prefix else name


def _expose(kind: str, backend: Backend, items: list[JSON], separator: str) -> list[Exposure]:
    spec = backend_spec(backend)
    out = []
    for item in items:
        definition = spec.expose(kind, item, separator)
        if definition is not None:
            out.append(Exposure(str(definition["name"]), backend.name, str(item["name"]), definition, item))
    return out


def _suggest(exposure: Exposure, prefix: str, separator: str, limit: int, taken: set[str], clash: bool) -> str:
    """A rename target for the original name that yields a legal, unique, short enough name."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", exposure.original).strip("_") or "item"
    if clash:
        stem = f"{exposure.backend}_{stem}"
    room = max(limit - len(prefix) - (len(separator) if prefix else 0), 1)
    candidate = stem[:room]
    n = 2
    while _join(prefix, separator, candidate) in taken:
        tail = f"_{n}"
        candidate = stem[: max(room - len(tail), 1)] + tail
        n += 1
    return candidate


def _check(kind: str, exposures: list[Exposure], config: Config) -> list[str]:
    sep, limit = config.gateway.separator, config.gateway.max_name_length
    extra = "".join(sorted({c for c in sep if not LEGAL.match(c)}))
    legal = re.compile(rf"^[A-Za-z0-9_{re.escape(extra)}-]+$")
    by_name: dict[str, list[Exposure]] = {}
    for e in exposures:
        by_name.setdefault(e.name, []).append(e)
    taken = set(by_name)
    problems: list[str] = []
    for name in sorted(by_name):
        group = by_name[name]
        faults = []
        if len(group) > 1:
            owners = ", ".join(f"{e.backend}/{e.original}" for e in group)
            faults.append(f"is exposed by more than one {kind} ({owners})")
        if len(name) > limit:
            faults.append(f"is {len(name)} characters long, over max_name_length {limit}")
        if not legal.match(name):
            faults.append("has characters outside [A-Za-z0-9_-]")
        if not faults:
            continue
        for e in group[1:] if len(group) > 1 and len(faults) == 1 else group:
            backend = config.backends[e.backend]
            target = _suggest(e, _prefix(backend), sep, limit, taken, len(group) > 1)
            taken.add(_join(_prefix(backend), sep, target))
            section = "tools" if kind == "tool" else "prompts"
            problems.append(
                f"{kind} name {name!r} {' and '.join(faults)}; suggested fix in backend {e.backend!r}: "
                f'"{section}": {{"rename": {{"{e.original}": "{target}"}}}}'
            )
    return problems


def _resources(config: Config, offers: dict[str, BackendOffer], exposed: Exposed) -> list[str]:
    problems = []
    template_owner: dict[str, str] = {}
    for name in sorted(offers):
        rules = config.backends[name].resources
        for r in offers[name].resources:
            uri = str(r["uri"])
            if not selected(uri, tuple(rules.include), tuple(rules.exclude)):
                continue
            owner = exposed.resources.setdefault(uri, name)
            if owner != name:
                problems.append(
                    f"resource {uri!r} is offered by backends {owner!r} and {name!r}; "
                    f'exclude it from one: "resources": {{"exclude": ["{uri}"]}}'
                )
        for t in offers[name].resource_templates:
            template = str(t["uriTemplate"])
            if not selected(template, tuple(rules.include), tuple(rules.exclude)):
                continue
            owner = template_owner.setdefault(template, name)
            if owner != name:
                problems.append(
                    f"resource template {template!r} is offered by backends {owner!r} and {name!r}; "
                    f'exclude it from one: "resources": {{"exclude": ["{template}"]}}'
                )
                continue
            exposed.resource_templates.append((name, t))
    return problems


def expose(config: Config, offers: dict[str, BackendOffer]) -> Exposed | list[str]:
    """The gateway's tables, or every naming problem found."""
    exposed = Exposed()
    sep = config.gateway.separator
    for name in sorted(offers):
        backend = config.backends[name]
        exposed.tools += _expose("tool", backend, offers[name].tools, sep)
        exposed.prompts += _expose("prompt", backend, offers[name].prompts, sep)
    problems = _check("tool", exposed.tools, config) + _check("prompt", exposed.prompts, config)
    problems += _resources(config, offers, exposed)
    if problems:
        return problems
    exposed.tools.sort(key=lambda e: e.name)
    exposed.prompts.sort(key=lambda e: e.name)
    exposed.resources = dict(sorted(exposed.resources.items()))
    exposed.resource_templates.sort(key=lambda bt: str(bt[1]["uriTemplate"]))
    return exposed
