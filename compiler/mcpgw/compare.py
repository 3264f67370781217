"""Snapshot against snapshot: every drift between what was reviewed and what the backends offer now.

Definitions of tools and prompts are classified by the runtime's `drift`
module, the same one a running gateway uses to hold a tool back. Items the
config filters out are not reported: they are never exposed, whatever they say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcpgw_runtime.drift import Change, prompt_changes, tool_changes
from mcpgw_runtime.spec import BackendSpec, selected

JSON = dict[str, Any]


def _keyed_changes(
    backend: str, kind: str, before: Mapping[str, Any], after: Mapping[str, Any], prefix: str
) -> list[Change]:
    out: list[Change] = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            out.append(Change(f"{prefix}_REMOVED", backend, kind, key, f"{kind.replace('_', ' ')} removed"))
        elif key not in before:
            out.append(Change(f"{prefix}_ADDED", backend, kind, key, f"new {kind.replace('_', ' ')}"))
        elif before[key] != after[key]:
            b, a = before[key], after[key]
            fields = sorted(k for k in set(b) | set(a) if b.get(k) != a.get(k))
            out.append(Change(f"{prefix}_CHANGED", backend, kind, key, f"changed: {', '.join(fields)}"))
    return out


def _definitions(
    backend: str, kind: str, before: Mapping[str, Any], after: Mapping[str, Any], spec: BackendSpec, sep: str
) -> list[Change]:
    """Tools or prompts: added, removed and changed, for the names the config exposes."""
    upper = kind.upper()
    differ = tool_changes if kind == "tool" else prompt_changes
    out: list[Change] = []
    for name in sorted(set(before) | set(after)):
        if spec.exposed_name(kind, name, sep) is None:
            continue
        if name not in after:
            out.append(Change(f"{upper}_REMOVED", backend, kind, name, f"{kind} removed"))
        elif name not in before:
            out.append(Change(f"{upper}_ADDED", backend, kind, name, f"new {kind}"))
        elif before[name]["sha256"] != after[name]["sha256"]:
            out += differ(backend, name, before[name]["definition"], after[name]["definition"])
    return out


def _identity(backend: str, before: JSON, after: JSON) -> list[Change]:
    out: list[Change] = []
    b_info, a_info = before.get("server_info") or {}, after.get("server_info") or {}
    if (b_info.get("name"), b_info.get("version")) != (a_info.get("name"), a_info.get("version")):
        shown = [f"{i.get('name')} {i.get('version')}" for i in (b_info, a_info)]
        out.append(Change("SERVER_INFO_CHANGED", backend, "backend", "", f"server {shown[0]} → {shown[1]}"))
    if before.get("protocol_version") != after.get("protocol_version"):
        versions = f"{before.get('protocol_version')} → {after.get('protocol_version')}"
        out.append(Change("PROTOCOL_VERSION_CHANGED", backend, "backend", "", f"protocol {versions}"))
    b_caps, a_caps = set(before.get("capabilities") or {}), set(after.get("capabilities") or {})
    out += [
        Change("CAPABILITY_REMOVED", backend, "backend", "", f"capability {c!r} removed")
        for c in sorted(b_caps - a_caps)
    ]
    out += [
        Change("CAPABILITY_ADDED", backend, "backend", "", f"capability {c!r} added") for c in sorted(a_caps - b_caps)
    ]
    if before.get("instructions") != after.get("instructions"):
        out.append(
            Change("INSTRUCTIONS_CHANGED", backend, "backend", "", "the server's instructions to the model changed")
        )
    return out


def _exposed_resources(items: Mapping[str, Any], spec: BackendSpec) -> dict[str, Any]:
    return {k: v for k, v in items.items() if selected(k, spec.resource_include, spec.resource_exclude)}


def compare_backend(name: str, before: JSON, after: JSON, spec: BackendSpec, separator: str) -> list[Change]:
    """Everything that differs for one backend present in both snapshots."""
    out = _identity(name, before, after)
    out += _definitions(name, "tool", before.get("tools") or {}, after.get("tools") or {}, spec, separator)
    out += _definitions(name, "prompt", before.get("prompts") or {}, after.get("prompts") or {}, spec, separator)
    for key, kind, prefix in (
        ("resource_templates", "resource_template", "RESOURCE_TEMPLATE"),
        ("resources", "resource", "RESOURCE"),
    ):
        b = _exposed_resources(before.get(key) or {}, spec)
        a = _exposed_resources(after.get(key) or {}, spec)
        out += _keyed_changes(name, kind, b, a, prefix)
    return out


def compare(
    before: JSON,
    after: JSON,
    specs: Mapping[str, BackendSpec],
    separator: str,
    unreachable: Mapping[str, str],
) -> list[Change]:
    """Drift from the committed snapshot `before` to the freshly probed `after`.

    `specs` are the enabled backends of the current config; `unreachable` maps
    the ones that could not be probed to why.
    """
    out: list[Change] = []
    if before.get("config_digest") != after.get("config_digest"):
        out.append(Change("CONFIG_CHANGED", "", "config", "", "the config changed since the snapshot was built"))
    b_backends, a_backends = before.get("backends") or {}, after.get("backends") or {}
    for name in sorted(set(b_backends) | set(specs)):
        if name in unreachable:
            out.append(Change("BACKEND_UNREACHABLE", name, "backend", "", unreachable[name]))
        elif name not in specs:
            out.append(Change("BACKEND_REMOVED", name, "backend", "", "in the snapshot but not enabled in the config"))
        elif name not in b_backends:
            out.append(Change("BACKEND_ADDED", name, "backend", "", "enabled in the config but not in the snapshot"))
        else:
            out += compare_backend(name, b_backends[name], a_backends[name], specs[name], separator)
    return out
