# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""What clients see right now, per kind, and where each name goes: the tables, then the pins' verdicts.

The core starts from the embedded tables and replaces one backend's entries
whenever its live lists are checked against the pins (at connect, and after
every `list_changed`): under `strict` a drifted item is held back with the
error a call to it gets; under `warn`/`off` the live definition is exposed.
A changed list is announced to every connected client. The per-client
connections of `session: per-client` backends are checked the same way
(`check_client`), without publishing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
from mcp.shared.exceptions import MCPError

from mcpgw_runtime.backends import Backend
from mcpgw_runtime.connect import BackendError, Connection
from mcpgw_runtime.envsubst import redact
from mcpgw_runtime.forwarding import INVALID_PARAMS, live_verdicts, unknown
from mcpgw_runtime.pins import KINDS, Verdict, pinned_items, status
from mcpgw_runtime.relay import UpstreamHub
from mcpgw_runtime.sessions import Held
from mcpgw_runtime.spec import JSON, GatewaySpec, Target

log = logging.getLogger("mcpgw")


class Exposure:
    """The exposed tools and prompts, their routes, what is held back and why, and the refusals counted."""

    def __init__(self, spec: GatewaySpec, backends: Mapping[str, Backend], hub: UpstreamHub) -> None:
        self.separator = spec.separator
        self.hub = hub
        tables = {"tool": (spec.tools, spec.tool_routes, spec.tool_pins)}
        tables["prompt"] = (spec.prompts, spec.prompt_routes, spec.prompt_pins)
        self._exposed: dict[str, dict[str, JSON]] = {k: {str(d["name"]): d for d in t[0]} for k, t in tables.items()}
        self._routes: dict[str, dict[str, Target]] = {k: dict(t[1]) for k, t in tables.items()}
        self.held: dict[str, dict[str, tuple[str, str]]] = {k: {} for k in KINDS}
        """Kind → held-back name → (backend, the error a call to it gets)."""
        self.refused: dict[tuple[str, str, str], int] = {}
        """(backend, kind, held-back name) → calls refused because of the hold, for `/metrics`."""
        self._verdicts: dict[str, dict[str, Verdict]] = {b: {} for b in backends}
        self._pinned = {b: {k: pinned_items(b, *t) for k, t in tables.items()} for b in backends}
        self._tools_result: JSON = {"tools": list(spec.tools)}
        self._prompts_result: JSON = {"prompts": list(spec.prompts)}

    def routes_to(self, kind: str, name: str) -> str | None:
        """The backend an exposed name goes to now, if any."""
        route = self._routes[kind].get(name)
        return route.backend if route is not None else None

    def list_result(self, method: str) -> JSON:
        """The current answer to `tools/list` or `prompts/list` (a new object whenever it changes)."""
        return self._tools_result if method == "tools/list" else self._prompts_result

    async def verify(self, backend: Backend, conn: Connection, kinds: frozenset[str], timeout: float) -> None:
        """Check a backend's live lists against its pins and publish what its policy allows.

        `timeout` bounds each list request: the backend's `startup_timeout` while it connects.
        """
        try:
            verdicts = await self._live_verdicts(backend, conn, kinds, timeout)
        except (MCPError, BackendError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            # a backend that cannot list cannot be verified
            message = f"backend {backend.name!r}: cannot verify pins: {redact(str(exc), backend.secrets)}"
            log.error("%s", message)
            backend.pin = status(backend.spec.pin, None, message)
            if backend.spec.pin == "strict":
                for kind in kinds:
                    pinned = self._pinned[backend.name][kind].values()
                    held = {p.exposed: f"{message}; held back under pin 'strict'" for p in pinned}
                    await self._publish(backend.name, Verdict(kind, held=held))
            return
        self._verdicts[backend.name].update(verdicts)
        backend.pin = status(backend.spec.pin, self._verdicts[backend.name])
        for verdict in verdicts.values():
            await self._publish(backend.name, verdict)

    async def check_client(self, backend: Backend, conn: Connection, kinds: frozenset[str], timeout: float) -> Held:
        """The pins of one client's own connection (sessions.py): what calls through it must refuse.

        The same check as `verify`, but nothing is published: what clients list stays the
        embedded tables (and the shared connection's verdict); only this client's calls of an
        item that drifted *on its connection* get the pin error.
        """
        held: Held = {}
        spec = backend.spec
        for kind in sorted(kinds):
            pinned = self._pinned[backend.name][kind]
            try:
                verdict = (await self._live_verdicts(backend, conn, {kind}, timeout))[kind]
            except (MCPError, BackendError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                why = redact(str(exc), backend.secrets)
                message = f"backend {backend.name!r}: cannot verify pins of this client's session: {why}"
                log.error("%s", message)
                if spec.pin == "strict":
                    held.update({(kind, original): f"{message}; held back under pin 'strict'" for original in pinned})
                continue
            held.update({(kind, verdict.originals[exposed]): why for exposed, why in verdict.held.items()})
        return held

    async def _live_verdicts(
        self, backend: Backend, conn: Connection, kinds: frozenset[str] | set[str], timeout: float
    ) -> dict[str, Verdict]:
        """What the connection offers of these kinds, checked against the pins (forwarding.live_verdicts)."""
        caps = conn.init.capabilities

        def offers(capability: str) -> bool:
            return getattr(caps, capability) is not None

        async def fetch(method: str, params: Mapping[str, Any] | None) -> JSON:
            return await conn.request(method, params, timeout)

        pinned = self._pinned[backend.name]
        return await live_verdicts(backend.spec, kinds, offers, fetch, pinned, self.separator, BackendError)

    async def _publish(self, backend: str, verdict: Verdict) -> None:
        """Replace one backend's entries of one kind; tell clients if their list changed."""
        kind = verdict.kind
        exposed, routes, held = self._exposed[kind], self._routes[kind], self.held[kind]
        for name in [n for n, t in routes.items() if t.backend == backend]:
            del routes[name]
            exposed.pop(name, None)
        for name in [n for n, (owner, _) in held.items() if owner == backend]:
            del held[name]
        for name, (original, definition) in verdict.expose.items():
            other = routes.get(name)
            if other is not None:
                log.warning(
                    "%s %r of backend %s collides with backend %s: not exposed", kind, name, backend, other.backend
                )
                continue
            routes[name] = Target(backend, original)
            exposed[name] = definition
        for name, why in verdict.held.items():
            if name not in routes:
                held[name] = (backend, why)
        listing = [exposed[n] for n in sorted(exposed)]
        result_key, old = ("tools", self._tools_result) if kind == "tool" else ("prompts", self._prompts_result)
        if listing == old[result_key]:
            return
        if kind == "tool":
            self._tools_result = {"tools": listing}
        else:
            self._prompts_result = {"prompts": listing}
        await self._notify_list_changed(f"notifications/{result_key}/list_changed")

    async def _notify_list_changed(self, method: str) -> None:
        clients = self.hub.everyone()
        log.info("%s: telling %d connected client(s)", method, len(clients))
        await self.hub.broadcast(method, None, clients)

    def route(self, kind: str, name: str) -> Target:
        """Where a call of this exposed name goes; a held-back name's error, or unknown (counted for `/metrics`)."""
        route = self._routes[kind].get(name)
        if route is None:
            held = self.held[kind].get(name)
            if held is not None:
                self._count_refusal(held[0], kind, name)
                raise MCPError(INVALID_PARAMS, held[1])
            refused = unknown(kind, name)
            raise MCPError(refused.code, refused.message)
        return route

    def _count_refusal(self, backend: str, kind: str, exposed: str) -> None:
        key = (backend, kind, exposed)
        self.refused[key] = self.refused.get(key, 0) + 1

    def refused_on_client_session(self, backend: Backend, kind: str, original: str) -> None:
        """A pin hold on one client's own connection (sessions.py) refused a call: counted like the others."""
        exposed = backend.spec.exposed_name(kind, original, self.separator)
        self._count_refusal(backend.name, kind, exposed or original)
