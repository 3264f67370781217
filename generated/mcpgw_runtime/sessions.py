# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""`session: per-client`: every upstream client session gets its own connection to the backend.

    client A (session) ──▶ Backend.request ─ per_client hook ─▶ A's own connection ──▶ backend process #A
    client B (session) ──▶ Backend.request ─ per_client hook ─▶ B's own connection ──▶ backend process #B
    2026-07-28 / stateless ──▶ Backend.request ─────────────────▶ the backend's shared connection

A client's connection (its own stdio child; for an SSE/HTTP backend its own session with the
server, whose local process, if any, stays the one the shared connection started) is opened on
its first request to the backend (that request waits up to `startup_timeout`) and closed when
the client's session ends: the SDK unwinds the upstream connection's `exit_stack` when a
Streamable HTTP session is deleted, or ended by the gateway's session table (evicted or expired,
session_table.py), when an SSE stream closes, when a stdio client leaves. Gateway shutdown cancels them
all; a stdio backend's process group is stopped (stdin closed, SIGTERM, SIGKILL), as for the
shared connection. If a client's connection dies, its next request opens a new one (the
backend's per-session state is gone, as it would be with the backend itself restarted). If it
fails to open, the client's requests fail at once with that error until a backoff delay has
passed (0.5 s doubling to the backend's `max_backoff`, with jitter, as for the shared
connection), so a backend that cannot start is not respawned on every request. They
share the backend's `max_concurrency` and timeouts; `/healthz` lists them per backend under
`client_sessions` (how many are open, their pids).

Bounded, because each is a process (tens of MB for a Python server) a client can make the
gateway start with one call:

    a client's first call ─▶ fewer than `max_client_sessions` open? ─yes─▶ open one
                                   │ no
                                   ▼
         the least recently used idle one (no call in flight) ─▶ closed (evicted) ─▶ open one
                                   │ none: every one has a call in flight
                                   ▼
         MCPError BACKEND_BUSY naming the backend and the cap (nothing started)

    opening: once the evicted one's process is gone (so never more than the cap run at
    once), and within the spawn rate (`SpawnRate`: `client_spawn_rate` a second, spaced
    evenly); the call waits for both within `startup_timeout`.
    no call for `client_idle_timeout` ─▶ closed (expired); the client's next call opens a new one

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

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
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
from mcpgw_runtime.forwarding import BACKEND_BUSY, BACKEND_UNAVAILABLE
from mcpgw_runtime.relay import ORIGIN, BackendRelay, UpstreamHub

log = logging.getLogger("mcpgw")

Held = dict[tuple[str, str], str]
"""(kind, the backend's own name) → the error a call to it gets on one connection."""

ClientCheck = Callable[[Backend, Connection, frozenset[str], float], Awaitable[Held]]
"""The gateway's pin check of one per-client connection, for the kinds that changed, each list bounded."""

Refused = Callable[[Backend, str, str], None]
"""Counts a call refused by a pin hold: (backend, kind, the backend's own name)."""

HELD_METHODS = {"tools/call": "tool", "prompts/get": "prompt"}


class SpawnRate:
    """A token bucket: `burst` openings at once, then `per_second`; `take` waits for a token.

    Why a rate as well as the cap: past the cap each new client evicts an idle one, so a
    stream of new sessions would otherwise restart a process per call, as fast as they come;
    and a Python server takes about a second of CPU to start, so the rate bounds the share of
    the machine a flood of new sessions can take. The burst is one second's worth (at least
    one): sixteen processes started at once would take every core for seconds.
    """

    def __init__(self, burst: int, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = float(burst)
        self.per_second = per_second
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def wait(self) -> float:
        """Seconds until a token is free (0: one is)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second

    async def take(self) -> None:
        while (wait := self.wait()) > 0:
            await anyio.sleep(wait)
        self.tokens -= 1


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
    in_flight: int = 0
    """Calls using this connection now (the first one while it opens): it is busy, never evicted or expired."""
    last_used: float = field(default_factory=time.monotonic)
    """When its last call ended (or it was opened)."""
    closed: anyio.Event = field(default_factory=anyio.Event)
    """Set once it is closed and its process stopped (or it never started one)."""
    after: ClientConnection | None = None
    """The connection whose place this one takes: this one starts once that one's process is gone."""
    replaced: bool = False
    """A connection opening in its place waits for it (each closing one makes room for one new one)."""

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
        self._alive: set[ClientConnection] = set()
        """Every connection opening, open or still closing: what runs, or may run, a process."""
        self.limit = backend.spec.max_client_sessions
        self.idle_timeout = backend.spec.client_idle_timeout
        rate = backend.spec.client_spawn_rate
        self.spawns = SpawnRate(max(1, math.ceil(rate)), rate)
        self.evicted = 0
        self.expired = 0
        self.turned_away = 0
        """Calls refused because every connection was busy (`/metrics`)."""
        # SSE/HTTP: a new session with the same server; the local process it runs on (`command`) is
        # the one the shared connection started, never a second one on the same port (but one of
        # ours all the same: while it starts, it is waited for, not given up on when it refuses).
        self._launch = backend.spec.type == "stdio"
        backend.per_client = self.use

    def __len__(self) -> int:
        return len(self._by_client)

    def pids(self) -> list[int]:
        """The processes of the open per-client connections (stdio child or local server)."""
        return [pid for entry in self._by_client.values() if entry.conn is not None for pid in entry.pids[-1:]]

    async def run(self) -> None:
        """Host the per-client connections, and expire idle ones, until cancelled (shutdown closes them all)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                interval = min(max(self.idle_timeout / 4, 0.05), 15.0)
                while True:
                    await anyio.sleep(interval)
                    self.expire()
            finally:
                self._tg = None

    def expire(self) -> None:
        """Close every open connection that has had no call for `client_idle_timeout`."""
        deadline = time.monotonic() - self.idle_timeout
        for entry in list(self._by_client.values()):
            if entry.in_flight == 0 and entry.conn is not None and entry.last_used <= deadline:
                self.expired += 1
                log.info(
                    "backend %s: closing a client's session idle for %gs (client_idle_timeout)",
                    self.backend.name, self.idle_timeout,
                )  # fmt: skip
                self._close(entry)

    def _close(self, entry: ClientConnection) -> None:
        """Take it out of the table now (its place is free) and stop it; `entry.closed` says when it is gone."""
        if self._by_client.get(entry.client) is entry:
            del self._by_client[entry.client]
        entry.stop.set()

    @contextlib.asynccontextmanager
    async def use(self, method: str, params: Mapping[str, Any] | None) -> AsyncIterator[Connection | None]:
        """The calling client's own connection for one call, opened on first use; None when it has no session.

        While the block runs the connection is busy: it is neither evicted nor expired.
        """
        origin = ORIGIN.get()
        if origin is None or not origin.has_session or self.backend.stopping or self._tg is None:
            yield None
            return
        entry = self._by_client.get(origin.connection)
        if entry is None:
            entry = self._admit(origin.connection, self._tg)
        entry.in_flight += 1
        try:
            yield await self._ready(entry, method, params)
        finally:
            entry.in_flight -= 1
            entry.last_used = time.monotonic()

    def _admit(self, client: UpstreamConnection, tg: anyio.abc.TaskGroup) -> ClientConnection:
        """Open a connection for a client that has none: room made by evicting, or an error naming the cap."""
        retry = self._retry.get(client)
        wait = retry.not_before - time.monotonic() if retry is not None else 0.0
        if retry is not None and wait > 0:
            raise MCPError(
                BACKEND_UNAVAILABLE,
                f"backend {self.backend.name!r} (this client's own session): {retry.error}; "
                f"next attempt in {wait:.1f}s",
            )
        victim = None
        if len(self._alive) >= self.limit:
            victim = next((e for e in self._alive if not e.replaced and self._by_client.get(e.client) is not e), None)
        if len(self._alive) >= self.limit and victim is None:  # none closing already: close one
            idle = [e for e in self._by_client.values() if e.in_flight == 0]
            if not idle:
                self.turned_away += 1
                raise MCPError(
                    BACKEND_BUSY,
                    f"backend {self.backend.name!r}: all {self.limit} of its per-client sessions "
                    f"(max_client_sessions) are busy with calls; try again when one ends",
                )
            victim = min(idle, key=lambda e: e.last_used)
            self.evicted += 1
            log.info(
                "backend %s: %d per-client sessions open (max_client_sessions): closing the least recently used "
                "idle one for a new client",
                self.backend.name, len(self._by_client),
            )  # fmt: skip
            self._close(victim)
        if victim is not None:
            victim.replaced = True
        return self._open(client, tg, after=victim)

    async def _ready(self, entry: ClientConnection, method: str, params: Mapping[str, Any] | None) -> Connection:
        """Wait (within `startup_timeout`) for the connection to be open; the pin hold of this call, if any."""
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

    def _open(
        self, client: UpstreamConnection, tg: anyio.abc.TaskGroup, after: ClientConnection | None = None
    ) -> ClientConnection:
        relay = BackendRelay(self.backend.name, owner=client)
        relay.hub = self.hub
        relay.timeout = self.backend.spec.timeout
        entry = ClientConnection(client, relay, after=after)
        self._by_client[client] = entry
        self._alive.add(entry)
        client.exit_stack.callback(entry.stop.set)  # the upstream session ended: close this one too
        client.exit_stack.callback(self._retry.pop, client, None)
        tg.start_soon(self._hold, entry)
        return entry

    async def _hold(self, entry: ClientConnection) -> None:
        """Open, verify and keep one client's connection until its session ends or it dies."""
        backend = self.backend
        ORIGIN.set(None)  # this task outlives the request that opened it: its own requests are the gateway's
        try:
            if entry.after is not None:  # the one evicted for this one: its process goes first
                await entry.after.closed.wait()
                entry.after = None
            await self.spawns.take()
            # closed before it started (evicted in turn, or its client left), or no call waits for it any
            # more (each gave up after startup_timeout): nothing is started for it
            if entry.stop.is_set() or entry.in_flight == 0:
                return
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
            self._alive.discard(entry)
            entry.closed.set()
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
