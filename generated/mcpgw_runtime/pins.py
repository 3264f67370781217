# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Rug-pull protection: live tool and prompt definitions checked against the snapshot's pins.

A backend is verified when it connects, after every reconnect and on every
`list_changed` it sends. The verdict says what clients may see of that
backend: under `strict` only definitions whose digest still matches, under
`warn` the live definitions (with a loud log line naming the drift codes),
under `off` the live definitions silently. Removed items are never shown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcpgw_runtime.drift import Change, digest, prompt_changes, summary, tool_changes
from mcpgw_runtime.spec import JSON, BackendSpec

log = logging.getLogger("mcpgw")

KINDS: tuple[str, ...] = ("tool", "prompt")


@dataclass(frozen=True, slots=True)
class Pinned:
    """One item as built into the gateway: the name clients see, its pin, its exposed definition."""

    exposed: str
    digest: str
    definition: JSON


@dataclass(slots=True)
class Verdict:
    """What one backend may expose of one kind, and why the rest is held back."""

    kind: str
    expose: dict[str, tuple[str, JSON]] = field(default_factory=dict)
    """Exposed name → (original name, definition clients see)."""
    held: dict[str, str] = field(default_factory=dict)
    """Exposed name → the error a call to it returns."""
    changes: list[Change] = field(default_factory=list)
    originals: dict[str, str] = field(default_factory=dict)
    """Exposed name → the backend's name, for every item seen live or pinned."""


def _source(spec: BackendSpec, kind: str, original: str, pinned: Pinned, live: Mapping[str, Any]) -> JSON:
    """The backend's own definition at build time, rebuilt from the exposed one.

    Renames are undone; a description the config overrides is unknown here, so
    it is taken from the live side and not compared (clients never saw it).
    """
    source = {**pinned.definition, "name": original}
    if kind == "tool" and original in spec.tool_describe:
        if "description" in live:
            source["description"] = live["description"]
        else:
            source.pop("description", None)
    return source


def _changes(spec: BackendSpec, kind: str, original: str, pinned: Pinned, live: Mapping[str, Any]) -> list[Change]:
    before = _source(spec, kind, original, pinned, live)
    differ = tool_changes if kind == "tool" else prompt_changes
    found = differ(spec.name, original, before, live)
    if not found:  # the digest moved but the rebuilt source hides where: the overridden description
        code = "TOOL_DESCRIPTION_CHANGED" if kind == "tool" else "PROMPT_DESCRIPTION_CHANGED"
        found = [Change(code, spec.name, kind, original, "description changed (overridden by the config)")]
    return found


def verify(spec: BackendSpec, kind: str, live: list[JSON], pinned: Mapping[str, Pinned], separator: str) -> Verdict:
    """Compare a backend's live list of one kind with its pins (keyed by original name) under its policy."""
    verdict = Verdict(kind)
    upper = kind.upper()
    seen: set[str] = set()
    for item in live:
        original = item.get("name")
        if not isinstance(original, str) or original in seen:
            continue
        seen.add(original)
        pin = pinned.get(original)
        definition = spec.expose(kind, item, separator)
        if definition is None:
            continue  # the config filters it out, whatever it says
        name = str(definition["name"])
        verdict.originals[name] = original
        if pin is not None and digest(item) == pin.digest:
            verdict.expose[name] = (original, pin.definition)
            continue
        if pin is None:
            changes = [Change(f"{upper}_ADDED", spec.name, kind, original, f"new {kind} since the snapshot")]
            why = f"{kind} {name!r} is new on backend {spec.name!r} since the snapshot ({upper}_ADDED)"
        else:
            changes = _changes(spec, kind, original, pin, item)
            why = (
                f"{kind} {name!r} changed on backend {spec.name!r} since the snapshot was reviewed ({summary(changes)})"
            )
        verdict.changes += changes
        if spec.pin == "strict":
            verdict.held[name] = (
                f"{why}; the gateway holds it back under pin 'strict'. Review the change with "
                f"`mcpgw check` and re-approve it with `mcpgw build`."
            )
            log.warning("pin: %s; held back", why)
            continue
        if spec.pin == "warn":
            log.warning("pin: %s; exposing the live definition (pin 'warn')", why)
        else:
            log.debug("pin: %s; exposed (pin 'off')", why)
        verdict.expose[name] = (original, definition)
    for original, pin in sorted(pinned.items()):
        if original not in seen:
            verdict.originals[pin.exposed] = original
            verdict.changes.append(Change(f"{upper}_REMOVED", spec.name, kind, original, f"{kind} removed"))
            verdict.held[pin.exposed] = (
                f"{kind} {pin.exposed!r}: backend {spec.name!r} no longer offers it ({upper}_REMOVED)"
            )
            log.warning("pin: backend %s no longer offers %s %r (%s_REMOVED)", spec.name, kind, original, upper)
    return verdict


def pinned_items(
    backend: str, items: tuple[JSON, ...], routes: Mapping[str, Any], pins: Mapping[str, str]
) -> dict[str, Pinned]:
    """The embedded tables of one backend and kind, keyed by the backend's original names."""
    out: dict[str, Pinned] = {}
    for definition in items:
        name = str(definition["name"])
        route = routes[name]
        if route.backend == backend:
            out[route.name] = Pinned(name, pins[name], definition)
    return out


def status(policy: str, verdicts: Mapping[str, Verdict] | None, error: str | None = None) -> JSON:
    """The `pin` entry of a backend in `/healthz`."""
    if error is not None:
        return {"policy": policy, "status": "unverified", "error": error, "held": {}, "changes": []}
    if verdicts is None:
        return {"policy": policy, "status": "pending", "held": {}, "changes": []}
    changes = [c for v in verdicts.values() for c in v.changes]
    held = {name: why for v in verdicts.values() for name, why in sorted(v.held.items())}
    return {
        "policy": policy,
        "status": "drift" if changes else "verified",
        "held": held,
        "changes": [f"{c.kind} {c.name}: {c.code}" + (f" ({c.path})" if c.path else "") for c in changes],
    }
