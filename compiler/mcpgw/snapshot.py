"""The snapshot: a lockfile of what every backend offered when it was probed.

Definitions are stored exactly as the backend sent them (before renames), each
tool and prompt with the digest the gateway pins at run time, and each tool with
what its definition costs the model in tokens (tokens.py), so a drift report can
show the change. Only an explicit probe changes this file; `--frozen` builds read
it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcpgw import __version__
from mcpgw.canonical import digest, pretty
from mcpgw.tokens import tool_tokens

FILENAME = "snapshot.json"
FORMAT = 1

JSON = dict[str, Any]


@dataclass(frozen=True)
class BackendOffer:
    """What one backend offered: identity plus every list, raw."""

    server_info: JSON
    protocol_version: str
    capabilities: JSON
    instructions: str | None
    tools: list[JSON] = field(default_factory=list)
    prompts: list[JSON] = field(default_factory=list)
    resources: list[JSON] = field(default_factory=list)
    resource_templates: list[JSON] = field(default_factory=list)


def _keyed(items: list[JSON], key: str) -> dict[str, JSON]:
    return {str(item[key]): item for item in sorted(items, key=lambda i: str(i[key]))}


def build_snapshot(offers: dict[str, BackendOffer], config_digest: str) -> JSON:
    """The snapshot document; sorted, digest per tool and prompt, tokens per tool, no timestamps."""
    backends: JSON = {}
    for name in sorted(offers):
        offer = offers[name]
        backends[name] = {
            "capabilities": offer.capabilities,
            "instructions": offer.instructions,
            "prompts": {n: {"definition": p, "sha256": digest(p)} for n, p in _keyed(offer.prompts, "name").items()},
            "protocol_version": offer.protocol_version,
            "resource_templates": _keyed(offer.resource_templates, "uriTemplate"),
            "resources": _keyed(offer.resources, "uri"),
            "server_info": offer.server_info,
            "tools": {
                n: {"definition": t, "sha256": digest(t), "tokens": tool_tokens(t)}
                for n, t in _keyed(offer.tools, "name").items()
            },
        }
    return {
        "backends": backends,
        "config_digest": config_digest,
        "format": FORMAT,
        "generator": f"mcpgw {__version__}",
    }


def offers_from_snapshot(doc: JSON) -> dict[str, BackendOffer]:
    """Read the offers back, for `--frozen` builds."""
    offers: dict[str, BackendOffer] = {}
    for name, b in doc.get("backends", {}).items():
        offers[name] = BackendOffer(
            server_info=b["server_info"],
            protocol_version=b["protocol_version"],
            capabilities=b["capabilities"],
            instructions=b.get("instructions"),
            tools=[t["definition"] for t in b.get("tools", {}).values()],
            prompts=[p["definition"] for p in b.get("prompts", {}).values()],
            resources=list(b.get("resources", {}).values()),
            resource_templates=list(b.get("resource_templates", {}).values()),
        )
    return offers


def render_snapshot(doc: JSON) -> str:
    return pretty(doc)


class SnapshotError(Exception):
    """The snapshot file is missing or unreadable; the message says which and why."""


def read_snapshot(path: Path) -> JSON:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no snapshot to build from; run `mcpgw build` without --frozen first") from None
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{path}: cannot read snapshot: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("backends"), dict):
        raise SnapshotError(f"{path}: not an mcpgw snapshot of format {FORMAT}")
    return doc
