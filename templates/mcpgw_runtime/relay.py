"""What crosses the gateway besides request and answer: the relay between clients and backends.

    upstream client ──request──▶ Gateway.middleware ─ ORIGIN=Origin(ctx) ─▶ Backend.request
                                                                              │ BackendRelay.forwarding
    backend ◀──── request under the backend connection's own id, progress token = that id
    backend ──── notifications/progress ──▶ dispatcher on_progress ──▶ origin's progress (its token)
    backend ──── sampling / elicitation / roots ──▶ BackendRelay.on_request ──▶ the origin client
    backend ──── notifications/message ──▶ the origin's request stream (or opted-in clients)
    backend ──── resources/updated ──▶ the clients subscribed to that URI (UpstreamHub)
    backend ──── resources/list_changed ──▶ every client
    client  ──── notifications/cancelled ──▶ the dispatcher cancels the handler ──▶ the backend is
                 sent notifications/cancelled for *its* request id (and the other way round)

Request ids never cross: every backend connection mints its own, so concurrent clients cannot
collide, and progress and cancellation are matched through those ids. A backend's request to
the client goes to the client whose request is in flight on that backend connection; when
requests of several clients are in flight on one shared session the gateway cannot tell, and
answers the backend with an error instead of guessing.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp.server.connection import Connection as UpstreamConnection
from mcp.server.connection import allowed_log_levels
from mcp.server.context import ServerRequestContext
from mcp.shared.dispatcher import CallOptions, DispatchContext
from mcp.shared.exceptions import MCPError

from mcpgw_runtime.spec import JSON

log = logging.getLogger("mcpgw")

LOG_LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


@dataclass(eq=False, slots=True)
class Origin:
    """The upstream request on whose behalf the gateway is talking to a backend."""

    ctx: ServerRequestContext[Any, Any]

    @property
    def connection(self) -> UpstreamConnection:
        """The upstream client's connection (one per session; per request on stateless HTTP)."""
        connection: UpstreamConnection = self.ctx.session._connection
        return connection

    @property
    def channel(self) -> DispatchContext[Any]:
        """The request's own back-channel: on Streamable HTTP it rides that request's response stream."""
        channel: DispatchContext[Any] = self.ctx.session._request_outbound
        return channel

    def allows_log(self, level: str, hub: UpstreamHub | None) -> bool:
        """Era rules (2026-07-28: per-request opt-in) and the level this client set, if any."""
        if level not in allowed_log_levels(self.connection.protocol_version, self.ctx.meta):
            return False
        return hub is None or hub.wants_log(self.connection, level)


ORIGIN: ContextVar[Origin | None] = ContextVar("mcpgw_origin", default=None)
"""Set by the gateway's middleware for the duration of each upstream request."""


def _level_index(level: object) -> int:
    return LOG_LEVELS.index(level) if isinstance(level, str) and level in LOG_LEVELS else 0


class UpstreamHub:
    """The upstream connections the gateway has seen, and what each asked to hear.

    Held weakly: a connection that ends drops out of every table by itself.
    """

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[UpstreamConnection] = weakref.WeakSet()
        self._levels: weakref.WeakKeyDictionary[UpstreamConnection, str] = weakref.WeakKeyDictionary()
        self._subscribers: dict[str, weakref.WeakSet[UpstreamConnection]] = {}

    def seen(self, connection: UpstreamConnection) -> None:
        self._connections.add(connection)

    def set_level(self, connection: UpstreamConnection, level: str) -> str:
        """Record a client's `logging/setLevel`; the most verbose level any client wants, for backends."""
        self._levels[connection] = level
        return min(self._levels.values(), key=_level_index)

    def wants_log(self, connection: UpstreamConnection, level: str) -> bool:
        wanted = self._levels.get(connection)
        return wanted is None or _level_index(level) >= _level_index(wanted)

    def subscribe(self, connection: UpstreamConnection, uri: str) -> None:
        self._subscribers.setdefault(uri, weakref.WeakSet()).add(connection)

    def unsubscribe(self, connection: UpstreamConnection, uri: str) -> bool:
        """Drop one client's subscription; True when nobody is subscribed to `uri` any more."""
        subscribers = self._subscribers.get(uri)
        if subscribers is not None:
            subscribers.discard(connection)
        if not subscribers:
            self._subscribers.pop(uri, None)
            return True
        return False

    async def broadcast(self, method: str, params: Mapping[str, Any] | None, only: list[UpstreamConnection]) -> None:
        """A notification on each connection's standalone channel (best effort: it never raises)."""
        for connection in only:
            await connection.outbound.notify(method, params)

    def everyone(self) -> list[UpstreamConnection]:
        return list(self._connections)

    def subscribers(self, uri: str) -> list[UpstreamConnection]:
        return list(self._subscribers.get(uri, ()))

    def log_listeners(self, level: str) -> list[UpstreamConnection]:
        """Clients that asked for logs (`logging/setLevel`) at or below `level`."""
        return [c for c, wanted in list(self._levels.items()) if _level_index(level) >= _level_index(wanted)]


class BackendRelay:
    """One backend's side of the relay: who its in-flight requests are for, and delivery."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.hub: UpstreamHub | None = None
        self._inflight: list[Origin] = []

    @contextlib.contextmanager
    def forwarding(self, params: Mapping[str, Any] | None, opts: CallOptions) -> Iterator[None]:
        """Around one forwarded request: remember its origin and map its progress token."""
        origin = ORIGIN.get()
        if origin is None:
            yield
            return
        meta = (params or {}).get("_meta")
        if isinstance(meta, Mapping) and "progressToken" in meta:
            channel = origin.channel

            async def progress(progress: float, total: float | None, message: str | None) -> None:
                await channel.progress(progress, total, message)

            # The dispatcher sends the backend its own request id as the token and calls us back.
            opts["on_progress"] = progress
        self._inflight.append(origin)
        try:
            yield
        finally:
            self._inflight.remove(origin)

    def origin(self) -> Origin | None:
        """The latest in-flight request, when every in-flight request is from one client; else None."""
        clients = {id(o.connection) for o in self._inflight}
        return self._inflight[-1] if len(clients) == 1 else None

    async def on_request(self, method: str, params: Mapping[str, Any] | None) -> JSON:
        """A backend's request to the client (sampling, elicitation, roots): ask the client it is for."""
        origin = self.origin()
        if origin is None:
            clients = len({id(o.connection) for o in self._inflight})
            why = (
                f'requests of {clients} clients are in flight on its shared session ("session": "per-client" '
                "gives each client its own)"
                if clients
                else "no client request is in flight on it"
            )
            raise MCPError(types.INVALID_REQUEST, f"mcpgw cannot tell which client {method} is for: {why}")
        if not origin.channel.can_send_request:
            raise MCPError(
                types.INVALID_REQUEST,
                f"mcpgw cannot relay {method}: the client's connection ({origin.connection.protocol_version}) "
                "has no channel for server requests",
            )
        return await origin.channel.send_raw_request(method, params)

    async def on_notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        """A backend's notification: deliver it to the client(s) it concerns."""
        hub = self.hub
        if method == "notifications/message":
            level = str((params or {}).get("level"))
            origin = self.origin()
            if origin is not None:
                if origin.allows_log(level, hub):
                    await origin.channel.notify(method, params)
            elif self._inflight:
                # Requests of several clients share this session: handing the entry to the wrong client
                # would leak it, so it stays in the gateway's own log.
                log.debug("backend %s: log entry of unknown origin not relayed: %s", self.backend, params)
            elif hub is not None:
                await hub.broadcast(method, params, hub.log_listeners(level))
        elif method == "notifications/resources/updated" and hub is not None:
            await hub.broadcast(method, params, hub.subscribers(str((params or {}).get("uri"))))
        elif method == "notifications/resources/list_changed" and hub is not None:
            await hub.broadcast(method, params, hub.everyone())
        # progress and cancelled are matched by the dispatcher; tools/prompts list_changed go to the pins.
