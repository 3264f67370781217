# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""What crosses the gateway besides request and answer: the relay between clients and backends.

    upstream client ──request──▶ Gateway.middleware ─ ORIGIN=Origin(ctx) ─▶ Backend.request
                                                                              │ BackendRelay.forwarding
    backend ◀──── request under the backend connection's own id, progress token = that id
    backend ──── notifications/progress ──▶ dispatcher on_progress ──▶ origin's progress (its token)
    backend ──── sampling / elicitation / roots ──▶ BackendRelay.on_request ──▶ the origin client
                 (its request's back-channel; a 2026-07-28 client: an input-required round, rounds.py)
    backend ──── notifications/message ──▶ the origin's request stream (or opted-in clients)
    backend ──── resources/updated ──▶ the clients subscribed to that URI (UpstreamHub)
    backend ──── resources/list_changed ──▶ every client
    client  ──── notifications/cancelled ──▶ the dispatcher cancels the handler ──▶ the backend is
                 sent notifications/cancelled for *its* request id (and the other way round)

Request ids never cross: every backend connection mints its own, so concurrent clients cannot
collide, and progress and cancellation are matched through those ids. A backend's request to
the client goes to the client whose request is in flight on that backend connection; when
requests of several clients are in flight on one shared session the gateway cannot tell, and
answers the backend with an error instead of guessing (a request that set no ORIGIN counts as
another client). A `session: per-client` connection has one client, its `owner` (sessions.py):
whatever its backend sends goes to that client, even between calls.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.server.connection import Connection as UpstreamConnection
from mcp.server.connection import allowed_log_levels
from mcp.server.context import ServerRequestContext
from mcp.shared.dispatcher import CallOptions, DispatchContext
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcpgw_runtime.sdk_internals import upstream_channels
from mcpgw_runtime.spec import JSON

log = logging.getLogger("mcpgw")

LOG_LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


@dataclass(eq=False, slots=True)
class Origin:
    """The upstream request on whose behalf the gateway is talking to a backend."""

    ctx: ServerRequestContext[Any, Any]
    ask: Callable[[str, Mapping[str, Any] | None], Awaitable[JSON]] | None = None
    """Set for a 2026-07-28 call: a backend's request to the client becomes an input-required round."""
    live: bool = True
    """False between two rounds of such a call: no request is open to carry progress or logs."""
    connection: UpstreamConnection = field(init=False)
    """The upstream client's connection (one per session; per request on stateless HTTP and 2026-07-28)."""
    channel: DispatchContext[Any] = field(init=False)
    """The request's own back-channel: on Streamable HTTP it rides that request's response stream."""

    def __post_init__(self) -> None:
        self.connection, self.channel = upstream_channels(self.ctx.session)

    def attach(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """Follow the next request of the same call (2026-07-28 rounds)."""
        self.ctx, self.live = ctx, True
        self.connection, self.channel = upstream_channels(ctx.session)

    @property
    def has_session(self) -> bool:
        """Whether the client has a session that outlives this request (handshake era, not stateless HTTP)."""
        connection = self.connection
        if connection.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return False
        # Stateful Streamable HTTP has a session id; stdio and SSE have none but are one duplex pipe
        # per client (their channel can carry requests); stateless HTTP has neither.
        return connection.session_id is not None or self.channel.can_send_request

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        if self.live:
            await self.ctx.session.report_progress(progress, total, message)

    def allows_log(self, level: str, hub: UpstreamHub | None) -> bool:
        """Era rules (2026-07-28: per-request opt-in) and the level this client set, if any."""
        if not self.live or level not in allowed_log_levels(self.connection.protocol_version, self.ctx.meta):
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
        self._sessions: weakref.WeakValueDictionary[str, UpstreamConnection] = weakref.WeakValueDictionary()
        self._levels: weakref.WeakKeyDictionary[UpstreamConnection, str] = weakref.WeakKeyDictionary()
        self._subscribers: dict[str, weakref.WeakSet[UpstreamConnection]] = {}

    def seen(self, connection: UpstreamConnection) -> None:
        self._connections.add(connection)
        if connection.session_id is not None:
            self._sessions[connection.session_id] = connection

    def by_session(self, session_id: str) -> UpstreamConnection | None:
        """The connection of a Streamable HTTP session (the fast path knows only the session id)."""
        return self._sessions.get(session_id)

    def set_level(self, connection: UpstreamConnection, level: str) -> str:
        """Record a client's `logging/setLevel`; the most verbose level any client wants, for backends."""
        self._levels[connection] = level
        return min(self._levels.values(), key=_level_index)

    def level_of(self, connection: UpstreamConnection) -> str | None:
        """The level this client set with `logging/setLevel`, if it did."""
        return self._levels.get(connection)

    def carry_over(self, connection: UpstreamConnection, level: str | None, uris: Iterable[str]) -> None:
        """A session the front served before the core: its level and subscriptions, as if set here.

        The backends already have them (the front asked them), so nothing is sent again.
        """
        if level is not None:
            self._levels[connection] = level
        for uri in uris:
            self.subscribe(connection, uri)

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
    """One backend connection's side of the relay: who its in-flight requests are for, and delivery.

    `owner` is set on a `session: per-client` connection (sessions.py): every request on it comes
    from that one upstream session, so what the backend sends outside any request (a request
    to the client, a log entry, a resource update) goes to that client and no other.
    """

    def __init__(self, backend: str, owner: UpstreamConnection | None = None) -> None:
        self.backend = backend
        self.owner = owner
        self.timeout: float | None = None
        """Bound on a request to the owner outside any call (its standalone channel may have no reader)."""
        self.hub: UpstreamHub | None = None
        self._inflight: list[Origin | None] = []
        """Requests in flight on this connection; None = of no known client (a path that set no ORIGIN)."""

    @contextlib.contextmanager
    def forwarding(self, params: Mapping[str, Any] | None, opts: CallOptions) -> Iterator[None]:
        """Around one forwarded request: remember its origin and map its progress token."""
        origin = ORIGIN.get()
        if origin is not None:
            meta = (params or {}).get("_meta")
            if isinstance(meta, Mapping) and "progressToken" in meta:
                # The dispatcher sends the backend its own request id as the token and calls us back.
                opts["on_progress"] = origin.progress
        self._inflight.append(origin)
        try:
            yield
        finally:
            self._inflight.remove(origin)

    def origin(self) -> Origin | None:
        """The latest in-flight request, when every in-flight request is from one client; else None.

        A request of no known client counts as another client (what it causes must not be handed
        to someone else), except on a per-client connection, where it can only be the gateway's own.
        """
        inflight = [o for o in self._inflight if o is not None] if self.owner is not None else self._inflight
        if not inflight:
            return None
        latest = inflight[-1]
        if latest is None:
            return None
        connection = latest.connection
        for other in inflight:
            if other is None or other.connection is not connection:
                return None
        return latest

    def _clients(self) -> int:
        return len({id(o.connection) if o is not None else 0 for o in self._inflight})

    async def on_request(self, method: str, params: Mapping[str, Any] | None) -> JSON:
        """A backend's request to the client (sampling, elicitation, roots): ask the client it is for."""
        origin = self.origin()
        if origin is None:
            if self.owner is not None and not any(self._inflight):
                opts: CallOptions = {} if self.timeout is None else {"timeout": self.timeout}
                return await self.owner.outbound.send_raw_request(method, params, opts)  # its own client, standalone
            clients = self._clients()
            why = (
                f'requests of {clients} clients are in flight on its shared session ("session": "per-client" '
                "gives each client its own)"
                if clients
                else "no client request is in flight on it"
            )
            raise MCPError(types.INVALID_REQUEST, f"mcpgw cannot tell which client {method} is for: {why}")
        if origin.ask is not None:  # a 2026-07-28 client: an input-required round (rounds.py)
            return await origin.ask(method, params)
        if not origin.channel.can_send_request:
            version = origin.connection.protocol_version
            why = (
                "a 2026-07-28 client can only be asked during tools/call, prompts/get or resources/read"
                if version in MODERN_PROTOCOL_VERSIONS
                else f"the client's connection ({version}) has no channel for server requests"
            )
            raise MCPError(types.INVALID_REQUEST, f"mcpgw cannot relay {method}: {why}")
        return await origin.channel.send_raw_request(method, params)

    def _only_owner(self, connections: list[UpstreamConnection]) -> list[UpstreamConnection]:
        owner = self.owner
        return connections if owner is None else [c for c in connections if c is owner]

    async def on_notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        """A backend's notification: deliver it to the client(s) it concerns."""
        hub = self.hub
        if method == "notifications/message":
            level = str((params or {}).get("level"))
            origin = self.origin()
            if origin is not None:
                if origin.allows_log(level, hub):
                    await origin.channel.notify(method, params)
            elif self._inflight and self.owner is None:
                # Requests of several clients share this session: handing the entry to the wrong client
                # would leak it, so it stays in the gateway's own log.
                log.debug("backend %s: log entry of unknown origin not relayed: %s", self.backend, params)
            elif hub is not None:
                await hub.broadcast(method, params, self._only_owner(hub.log_listeners(level)))
        elif method == "notifications/resources/updated" and hub is not None:
            await hub.broadcast(method, params, self._only_owner(hub.subscribers(str((params or {}).get("uri")))))
        elif method == "notifications/resources/list_changed" and hub is not None:
            await hub.broadcast(method, params, self._only_owner(hub.everyone()))
        # progress and cancelled are matched by the dispatcher; tools/prompts list_changed go to the pins.
