# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""`session: per-client`: every upstream client session gets its own connection to the backend.

    client A (session) ──▶ Backend.request ─ per_client hook ─▶ A's own connection ──▶ backend process #A
    client B (session) ──▶ Backend.request ─ per_client hook ─▶ B's own connection ──▶ backend process #B
    2026-07-28 / stateless ──▶ Backend.request ─────────────────▶ the backend's shared connection

A client's connection (its own stdio child; for an SSE/HTTP backend its own session with the
server, whose local process, if any, stays the one the shared connection started) is opened on
its first request to the backend (that request waits up to `startup_timeout`) and closed when
the client's session ends: the SDK unwinds the upstream connection's `exit_stack` when a
Streamable HTTP session is deleted or reaped as idle (the SDK's default: 30 minutes without a
request), when an SSE stream closes, when a stdio client leaves. Gateway shutdown cancels them
all; a stdio backend's process group is stopped (stdin closed, SIGTERM, SIGKILL), as for the
shared connection. If a client's connection dies, its next request opens a new one (the
backend's per-session state is gone, as it would be with the backend itself restarted). If it
fails to open, the client's requests fail at once with that error until a backoff delay has
passed (0.5 s doubling to the backend's `max_backoff`, with jitter, as for the shared
connection), so a backend that cannot start is not respawned on every request. They
share the backend's `max_concurrency` and timeouts; `/healthz` lists them per backend under
`client_sessions` (how many are open, their pids).

Each of these connections has its own relay with the client as `owner`: a backend's request
to the client (sampling, elicitation, roots) goes to exactly that client, even between calls
(on its standalone channel), and so do its log entries and resource notifications.

Requests without a session of their own keep using the backend's shared connection (the one
`/healthz` shows and the pins are first verified on): 2026-07-28 clients (the protocol has
no session; their backend requests are routed exactly by input-required rounds, rounds.py)
and stateless Streamable HTTP (`--stateless`).

Pins: every per-client connection is verified when it opens, and again when it announces
that its tools or prompts changed, against the same snapshot pins as the shared one. A call
to a tool or prompt whose live definition on *this* connection breaks its pin under
`strict` (or that this connection no longer offers) gets the pin error; `tools/list` still
answers from the embedded tables.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.client.session import IncomingMessage
from mcp.server.connection import Connection as UpstreamConnection
from mcp.shared.exceptions import MCPError

from mcpgw_runtime.backends import Backend, Backoff, describe_failure
from mcpgw_runtime.connect import LIST_CHANGED, Connection, open_backend
from mcpgw_runtime.forwarding import BACKEND_UNAVAILABLE
from mcpgw_runtime.relay import ORIGIN, BackendRelay, UpstreamHub

log = logging.getLogger("mcpgw")

Held = dict[tuple[str, str], str]
"""(kind, the backend's own name) → the error a call to it gets on one connection."""

ClientCheck = Callable[[Backend, Connection, frozenset[str], float], Awaitable[Held]]
"""The gateway's pin check of one per-client connection, for the kinds that changed, each list bounded."""

Refused = Callable[[Backend, str, str], None]
"""Counts a call refused by a pin hold: (backend, kind, the backend's own name)."""

HELD_METHODS = {"tools/call": "tool", "prompts/get": "prompt"}


@dataclass
class Retry:
    """Why a client's own connection failed to open, and when the next request may try again."""

    error: str
    backoff: Backoff
    not_before: float


@dataclass(eq=False)
class ClientConnection:
    """One upstream session's own connection to one backend, and its state."""

    client: UpstreamConnection
    relay: BackendRelay
    ready: anyio.Event = field(default_factory=anyio.Event)
    stop: anyio.Event = field(default_factory=anyio.Event)
    conn: Connection | None = None
    error: str | None = None
    held: Held = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    dirty: anyio.Event = field(default_factory=anyio.Event)

    async def on_message(self, message: IncomingMessage) -> None:
        """Runs in the connection's read loop: only note a list change (re-verified by `_reverify`)."""
        kind = LIST_CHANGED.get(type(message))
        if kind is not None:
            self.changed.add(kind)
            self.dirty.set()


class ClientSessions:
    """The per-client connections of one `session: per-client` backend."""

    def __init__(self, backend: Backend, hub: UpstreamHub, check: ClientCheck, refused: Refused) -> None:
        self.backend = backend
        self.hub = hub
        self.check = check
        self.refused = refused
        self._by_client: dict[UpstreamConnection, ClientConnection] = {}
        self._retry: dict[UpstreamConnection, Retry] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        # SSE/HTTP: a new session with the same server; the local process it runs on (`command`) is
        # the one the shared connection started, never a second one on the same port (but one of
        # ours all the same: while it starts, it is waited for, not given up on when it refuses).
        self._launch = backend.spec.type == "stdio"
        backend.per_client = self.connection

    def __len__(self) -> int:
        return len(self._by_client)

    def pids(self) -> list[int]:
        """The processes of the open per-client connections (stdio child or local server)."""
        return [pid for entry in self._by_client.values() if entry.conn is not None for pid in entry.pids[-1:]]

    async def run(self) -> None:
        """Host the per-client connections until cancelled (gateway shutdown closes them all)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None

    async def connection(self, method: str, params: Mapping[str, Any] | None) -> Connection | None:
        """The calling client's own connection, opened on first use; None when it has no session."""
        origin = ORIGIN.get()
        if origin is None or not origin.has_session or self.backend.stopping or self._tg is None:
            return None
        entry = self._by_client.get(origin.connection)
        if entry is None:
            retry = self._retry.get(origin.connection)
            wait = retry.not_before - time.monotonic() if retry is not None else 0.0
            if retry is not None and wait > 0:
                raise MCPError(
                    BACKEND_UNAVAILABLE,
                    f"backend {self.backend.name!r} (this client's own session): {retry.error}; "
                    f"next attempt in {wait:.1f}s",
                )
            entry = self._open(origin.connection, self._tg)
        if not entry.ready.is_set():
            with anyio.move_on_after(self.backend.spec.startup_timeout):
                await entry.ready.wait()
        conn = entry.conn
        if conn is None:
            why = entry.error or f"not connected within {self.backend.spec.startup_timeout:g}s"
            raise MCPError(BACKEND_UNAVAILABLE, f"backend {self.backend.name!r} (this client's own session): {why}")
        kind = HELD_METHODS.get(method)
        if kind is not None:
            name = str((params or {}).get("name"))
            held = entry.held.get((kind, name))
            if held is not None:
                self.refused(self.backend, kind, name)
                raise MCPError(types.INVALID_PARAMS, held)
        return conn

    async def set_level(self, client: UpstreamConnection, level: str) -> None:
        """A client's `logging/setLevel`, for its own connection if it has one open."""
        entry = self._by_client.get(client)
        if entry is not None and entry.conn is not None:
            await self._set_level(entry.conn, level)

    async def _set_level(self, conn: Connection, level: str) -> None:
        if conn.init.capabilities.logging is None:
            return
        try:
            await conn.request("logging/setLevel", {"level": level}, self.backend.spec.timeout)
        except MCPError as exc:
            log.warning("backend %s: logging/setLevel failed: %s", self.backend.name, exc.error.message)

    def _open(self, client: UpstreamConnection, tg: anyio.abc.TaskGroup) -> ClientConnection:
        relay = BackendRelay(self.backend.name, owner=client)
        relay.hub = self.hub
        relay.timeout = self.backend.spec.timeout
        entry = ClientConnection(client, relay)
        self._by_client[client] = entry
        client.exit_stack.callback(entry.stop.set)  # the upstream session ended: close this one too
        client.exit_stack.callback(self._retry.pop, client, None)
        tg.start_soon(self._hold, entry)
        return entry

    async def _hold(self, entry: ClientConnection) -> None:
        """Open, verify and keep one client's connection until its session ends or it dies."""
        backend = self.backend
        ORIGIN.set(None)  # this task outlives the request that opened it: its own requests are the gateway's
        try:
            async with open_backend(
                backend.spec,
                backend.base_dir,
                client_version=backend.client_version,
                message_handler=entry.on_message,
                pids=entry.pids,
                launch=self._launch,
            ) as conn:
                conn.dispatcher.relay = entry.relay
                # still opening: its lists are bounded by `startup_timeout`, as its handshake was
                entry.held = await self.check(
                    backend, conn, frozenset(LIST_CHANGED.values()), backend.spec.startup_timeout
                )
                level = self.hub.level_of(entry.client)
                if level is not None:
                    await self._set_level(conn, level)
                entry.conn = conn
                entry.ready.set()
                self._retry.pop(entry.client, None)
                log.info("backend %s: opened a session for a client (%d open)", backend.name, len(self._by_client))
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._reverify, entry, conn)
                    tg.start_soon(_cancel_when, conn.dispatcher.closed, tg.cancel_scope)
                    await entry.stop.wait()
                    tg.cancel_scope.cancel()
                self._forget(entry)  # before the process is stopped: /healthz never counts a dying one as open
        except Exception as raised:  # noqa: BLE001 -- logged below, redacted; one client's failure is not the gateway's
            entry.error = describe_failure(raised, backend.name, backend.secrets)
            log.error("a client's own session failed: %s", entry.error)
            if not entry.ready.is_set():  # it never opened: the client's next requests wait for a backoff
                self._back_off(entry.client, entry.error)
        finally:
            self._forget(entry)
            log.info("backend %s: closed a client's session (%d open)", backend.name, len(self._by_client))

    def _forget(self, entry: ClientConnection) -> None:
        entry.conn = None
        entry.ready.set()
        if self._by_client.get(entry.client) is entry:
            del self._by_client[entry.client]

    def _back_off(self, client: UpstreamConnection, error: str) -> None:
        previous = self._retry.get(client)
        backoff = previous.backoff if previous is not None else Backoff(self.backend.max_backoff)
        self._retry[client] = Retry(error, backoff, time.monotonic() + backoff.next_wait())

    async def _reverify(self, entry: ClientConnection, conn: Connection) -> None:
        while True:
            await entry.dirty.wait()
            entry.dirty = anyio.Event()
            kinds, entry.changed = frozenset(entry.changed), set()
            if kinds:
                kept = {key: why for key, why in entry.held.items() if key[0] not in kinds}
                entry.held = kept | await self.check(self.backend, conn, kinds, self.backend.spec.timeout)


async def _cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
