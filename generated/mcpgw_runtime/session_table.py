# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""One table of the gateway's open Streamable HTTP sessions, the front's and the SDK's: a cap and an idle expiry.

Why one table in front of both halves: a session costs memory in the front (its
initialize, kept for the core), in the SDK (a transport, a task, its streams) and, with
`session: per-client` backends, a backend process each. Left to themselves the front
took any number and never expired one, and the SDK's manager has a fixed cap (10,000,
after which every new client gets 503 until a session ends) and a 30-minute expiry.
So `front.Front` runs every `/mcp` request through this table, whichever half answers
it, and the SDK's manager is built with neither (http.py): the cap and the expiry a
client meets are the gateway's `max_sessions` and `session_idle_timeout`.

    POST, no session id ─▶ room? ──yes──────────────────────────▶ on; the answer's session id enters the table
                              │ no (and it is an initialize)
                              ▼
                 the least recently used idle session ─▶ ended (evicted) ─▶ on
                              │ none: every session has a request in flight
                              ▼
                 HTTP 503, `Retry-After: RETRY_AFTER`, a JSON-RPC error body (as the SDK's own 503)
    a request of a known session ─▶ in flight while it is served; when it ends the idle clock restarts
    nothing in flight for `session_idle_timeout` ─▶ ended (expired); a held GET stream counts as in flight
    DELETE answered 2xx ─▶ forgotten

Idle means no request in flight. Which idle session is evicted is a segmented LRU:
a new session starts in `fresh` (probation) and moves to `used` (protected) with its
second request; `used` holds at most half the table, its least recently used session
going back to the newest end of `fresh` when it overflows. Eviction takes the least
recently used idle session of `fresh`, then of `used`; a session holding only a GET
stream goes last (the stream keeps it from expiring, as in the SDK, but not from
eviction: a stream costs only a held connection). So a flood of bare initializes only
evicts its own sessions, and clients past their handshake keep theirs; a flood that
also sends requests on its sessions evicts in plain LRU order, and a client's new
session still outlives half the table's worth of newer ones.

Per caller: an OAuth caller (caller.py's `identity`) may hold `max_per_caller` sessions
(`max_sessions_per_caller`); its initialize past that ends its own least recently used idle
session, never another caller's, and with all of its sessions busy it gets the 503. The static
token and no token are everyone's, so their sessions count only against the whole table.

Legacy `/sse` sessions count too: each is one session for as long as its stream is open
(`max_sse_streams` caps them; httplimits.py counts them), and the SDK ends it, with its
per-client backend connections, when the stream closes. A stream's session is never
evicted nor expired (its client is there while the stream is), so sessions of the table
make room for them: a new client's initialize finds the table full with the streams in it.

Ending a session is its owner's
job (`ender`, set by the front): the front forgets one it still holds (its stream
ends); the core terminates the SDK's transport, which closes the session's per-client
backend connections and stops their processes. The client's next request gets 404,
and the protocol has it open a new session.

Everything here runs on the server's event loop, between awaits: no locks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from mcpgw_runtime.caller import CALLER, identity
from mcpgw_runtime.early_sessions import HANDSHAKE_BYTES, SESSION_NOT_FOUND, VERSION_HEADER
from mcpgw_runtime.httplimits import COUNTS
from mcpgw_runtime.jsonrpc_http import (
    SESSION_HEADER,
    AsgiApp,
    AsgiMessage,
    AsgiReceive,
    AsgiScope,
    AsgiSend,
    parse_json,
    read_body,
    replay_body,
    respond,
)
from mcpgw_runtime.profiles import DEFAULT, PROFILE

log = logging.getLogger("mcpgw")

RETRY_AFTER = 5
"""Seconds a client refused for want of room is told to wait (`Retry-After`): a session's call usually ends by then."""

TOO_MANY = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Too many open sessions: every one is busy; '
    b'retry after the time in Retry-After"}}'
)
TOO_MANY_OF_YOURS = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Too many open sessions for this caller '
    b'(max_sessions_per_caller): every one is busy; retry after the time in Retry-After"}}'
)

WARN_EVERY = 60.0
"""Seconds between two warnings that the table is full (each eviction and refusal is logged at debug)."""


@dataclass(slots=True)
class Entry:
    """One open session: what it has in flight, and since when it has been idle."""

    last: float
    """When its last request began or ended."""
    busy: int = 0
    """Requests being served other than a held GET stream."""
    streams: int = 0
    """GET streams held open."""
    profile: str = DEFAULT
    """The profile whose path opened it (profiles.py): on any other profile's path it is unknown."""
    caller: object = None
    """Who opened it (`identity` of caller.CALLER): to any other caller it is unknown."""


class SessionTable:
    """The open Streamable HTTP sessions, least recently used first; `serve` applies the cap and the expiry."""

    def __init__(
        self,
        max_sessions: int,
        idle_timeout: float,
        *,
        allows: Callable[[Mapping[bytes, bytes]], bool],
        max_body: int,
        clock: Callable[[], float] = time.monotonic,
        max_per_caller: int | None = None,
    ) -> None:
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.allows = allows
        """The guard's check: a request it would refuse never evicts anything."""
        self.max_body = max_body
        self.clock = clock
        self.fresh: OrderedDict[bytes, Entry] = OrderedDict()
        """Probation: new sessions, and those `used` let go, least recently used first."""
        self.used: OrderedDict[bytes, Entry] = OrderedDict()
        """Protected: sessions used since they opened, least recently used first; at most `protected`."""
        self.protected = max(1, max_sessions - max_sessions // 2)
        self.opening = 0
        self.max_per_caller = max_sessions if max_per_caller is None else max_per_caller
        """`max_sessions_per_caller`: sessions one OAuth caller may hold. The static token, and no token, are
        everyone's: they are not counted per caller."""
        self.per_caller: Counter[object] = Counter()
        """Per OAuth caller (`identity`): its open sessions and its initializes admitted, not answered yet."""
        """Requests that may open a session, admitted and not answered yet: they hold a place."""
        self.ender: Callable[[bytes], None] = lambda sid: None
        """Ends a session wherever it lives (the front's `Front.end_session`)."""
        self.rejected = 0
        self.evicted = 0
        self.expired = 0
        self._warned = -WARN_EVERY

    def __len__(self) -> int:
        """Open sessions: Streamable HTTP ones, and legacy `/sse` ones (one per open stream, http.py)."""
        return len(self.fresh) + len(self.used) + COUNTS.sse_streams

    def __contains__(self, sid: bytes) -> bool:
        return sid in self.used or sid in self.fresh

    async def serve(self, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend, app: AsgiApp) -> None:
        """One `/mcp` request, through the table to `app` (the half that answers it)."""
        sid = version = None
        for key, value in scope["headers"]:
            if key == SESSION_HEADER:
                sid = value
            elif key == VERSION_HEADER:
                version = value
        method = scope["method"]
        if sid is None:  # another version header is 2026-07-28's: no session, nothing to count
            if method == "POST" and (version is None or version in HANDSHAKE_BYTES):
                await self._open(scope, receive, send, app)
            else:
                await app(scope, receive, send)
            return
        owner = self.used.get(sid) or self.fresh.get(sid)
        if owner is not None and (owner.profile != PROFILE.get() or owner.caller != identity(CALLER.get())):
            # another profile's session, or another caller's: not this request's to use
            await respond(send, 404, SESSION_NOT_FOUND, b"application/json")
            return
        entry = self._known(sid)
        if entry is None:  # unknown, or ended: the half that answers says 404
            await app(scope, receive, send)
        else:
            await self._in_session(sid, entry, scope, receive, send, app)

    def _known(self, sid: bytes) -> Entry | None:
        """The session's entry, moved to `used` (whose oldest goes back to `fresh` past `protected`)."""
        entry = self.used.get(sid)
        if entry is None:
            entry = self.fresh.pop(sid, None)
            if entry is None:
                return None
            self.used[sid] = entry
            if len(self.used) > self.protected:
                let_go, demoted = self.used.popitem(last=False)
                self.fresh[let_go] = demoted
        return entry

    def enter(self, sid: bytes) -> Entry | None:
        """A request of a known session begins outside `serve` (hotpath.py, which checked it as `serve` does):
        its entry, busy until `leave`; None for a session no longer in the table."""
        entry = self._known(sid)
        if entry is not None:
            entry.busy += 1
            self._touch(sid, entry)
        return entry

    def leave(self, sid: bytes, entry: Entry) -> None:
        """The request `enter` began has been answered."""
        entry.busy -= 1
        self._touch(sid, entry)

    async def _in_session(
        self, sid: bytes, entry: Entry, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend, app: AsgiApp
    ) -> None:
        """A request of a session in the table: in flight (busy, or a held stream) until it is answered."""
        method = scope["method"]
        stream = method == "GET"
        if stream:
            entry.streams += 1
        else:
            entry.busy += 1
        self._touch(sid, entry)
        try:
            if method == "DELETE":
                status = await _answered(app, scope, receive, send)
                if 200 <= status < 300:
                    self._forget(sid, entry)
            else:
                await app(scope, receive, send)
        finally:
            if stream:
                entry.streams -= 1
            else:
                entry.busy -= 1
            self._touch(sid, entry)

    def _touch(self, sid: bytes, entry: Entry) -> None:
        entry.last = self.clock()
        for table in (self.used, self.fresh):
            if table.get(sid) is entry:
                table.move_to_end(sid)

    def _forget(self, sid: bytes, entry: Entry) -> None:
        for table in (self.used, self.fresh):
            if table.get(sid) is entry:
                del table[sid]
                self._uncount(entry.caller)

    def _uncount(self, caller: object) -> None:
        if caller in self.per_caller:
            self.per_caller[caller] -= 1
            if self.per_caller[caller] <= 0:
                del self.per_caller[caller]

    async def _open(self, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend, app: AsgiApp) -> None:
        """A POST without a session id: the only kind of request that opens one (an initialize).

        Its body is read before it takes a place: a client sending it slowly (until `body_timeout`)
        holds no place meanwhile, so slow bodies cannot fill the table.
        """
        body, complete = await read_body(receive, self.max_body)
        receive = _replayed(body, complete, receive)
        caller = identity(CALLER.get())
        counted = caller if caller is not None and caller[0] == "oauth" else None
        if counted is not None and self.per_caller[counted] >= self.max_per_caller:
            message = parse_json(body) if complete else None
            if isinstance(message, dict) and message.get("method") == "initialize" and not self._room_for(counted):
                await _too_many(send, TOO_MANY_OF_YOURS)
                return
        if len(self) + self.opening >= self.max_sessions:
            if not self.allows(dict(scope["headers"])):
                await app(scope, receive, send)  # refused there, before it could cost anyone their session
                return
            message = parse_json(body) if complete else None
            if isinstance(message, dict) and message.get("method") == "initialize" and not self.make_room():
                await _too_many(send)
                return
        self.opening += 1
        if counted is not None:
            self.per_caller[counted] += 1
        opened: list[tuple[bytes, Entry]] = []

        async def learn(message: AsgiMessage) -> None:
            if message["type"] == "http.response.start" and not opened and message["status"] == 200:
                sid = _session_of(message.get("headers", ()))
                if sid is not None and sid not in self:
                    entry = Entry(self.clock(), busy=1, profile=PROFILE.get(), caller=identity(CALLER.get()))
                    self.opening -= 1
                    self.fresh[sid] = entry
                    opened.append((sid, entry))
            await send(message)

        try:
            await app(scope, receive, learn)
        finally:
            if opened:
                entry = opened[0][1]
                entry.busy -= 1
                entry.last = self.clock()
            else:
                self.opening -= 1
                if counted is not None:
                    self._uncount(counted)

    def make_room(self) -> bool:
        """End the least recently used idle sessions until one more fits; False (counted) when every one is busy."""
        while len(self) + self.opening >= self.max_sessions:
            sid = self._least_recently_used_idle()
            if sid is None:
                self.rejected += 1
                self._warn(f"refusing a new session (HTTP 503): all {len(self)} open sessions are busy")
                log.debug("session table: refused a new session, %d open, every one busy", len(self))
                return False
            self.evicted += 1
            self._warn(f"full at {self.max_sessions} sessions (max_sessions): evicting the least recently used idle")
            self._end(sid, "evicted (least recently used, to make room)")
        return True

    def _room_for(self, caller: object) -> bool:
        """End the caller's least recently used idle session so it may open one more; False (counted) if none is."""
        sid = self._least_recently_used_idle(caller)
        if sid is None:
            self.rejected += 1
            log.debug("session table: refused a new session, its caller's %d are all busy", self.per_caller[caller])
            return False
        self.evicted += 1
        self._end(sid, "evicted (its caller's least recently used, max_sessions_per_caller)")
        return True

    def _least_recently_used_idle(self, caller: object = None) -> bytes | None:
        """The session to evict (of `caller` only, if given), by the tiers of the module's docstring; None when every
        one is busy."""
        listening = None
        for table in (self.fresh, self.used):
            for sid, entry in table.items():
                if entry.busy == 0 and (caller is None or entry.caller == caller):
                    if entry.streams == 0:
                        return sid
                    if listening is None:
                        listening = sid
        return listening

    def expire(self) -> int:
        """End every session idle for `idle_timeout` or longer; how many."""
        deadline = self.clock() - self.idle_timeout
        stale: list[bytes] = []
        for table in (self.fresh, self.used):  # every entry: `fresh` is not in order of use (demoted ones)
            stale += [sid for sid, e in table.items() if e.last <= deadline and e.busy == 0 and e.streams == 0]
        for sid in stale:
            self.expired += 1
            self._end(sid, f"expired (idle for {self.idle_timeout:g}s, session_idle_timeout)")
        return len(stale)

    async def expire_forever(self) -> None:
        """Run `expire` a few times per `idle_timeout` (at least every 30 s) until cancelled."""
        interval = min(max(self.idle_timeout / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            self.expire()

    def _end(self, sid: bytes, why: str) -> None:
        entry = self.fresh.pop(sid, None)
        entry = self.used.pop(sid, None) or entry
        if entry is not None:
            self._uncount(entry.caller)
        log.debug("session %s: %s", sid.decode("latin-1"), why)
        try:
            self.ender(sid)
        except Exception:  # one session that fails to end must not stop the table from ending others
            log.exception("session %s: could not end it", sid.decode("latin-1"))

    def _warn(self, what: str) -> None:
        now = self.clock()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning(
                "session table: %s (open %d, evicted %d, expired %d, refused %d so far)",
                what, len(self), self.evicted, self.expired, self.rejected,
            )  # fmt: skip


def _replayed(body: bytes, complete: bool, receive: AsgiReceive) -> AsgiReceive:
    """A `receive` that gives back the body read so far, then the rest from the client (past `max_body`)."""
    if complete:
        return replay_body(body, receive)
    pending: list[AsgiMessage] = [{"type": "http.request", "body": body, "more_body": True}]

    async def rest() -> AsgiMessage:
        return pending.pop() if pending else await receive()

    return rest


def _session_of(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    for key, value in headers:
        if key.lower() == SESSION_HEADER:
            return bytes(value)
    return None


async def _answered(app: AsgiApp, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend) -> int:
    """Run `app` for one request; the HTTP status it answered with (0 if none)."""
    status = 0

    async def watch(message: AsgiMessage) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    await app(scope, receive, watch)
    return status


async def _too_many(send: AsgiSend, body: bytes = TOO_MANY) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"%d" % RETRY_AFTER),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class PerClient(Protocol):
    """What `/metrics` reads of a `session: per-client` backend's connections (`sessions.ClientSessions`)."""

    limit: int
    evicted: int
    expired: int
    turned_away: int

    def __len__(self) -> int: ...


def render_session_metrics(table: SessionTable | None, per_client: Mapping[str, PerClient]) -> str:
    """The session families of `/metrics` (http.py appends them): the table's, and per-client processes."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))
        lines.extend(f"{name}{labels} {int(value)}" for labels, value in samples)

    if table is not None:
        family("mcpgw_sessions_open", "gauge", "Streamable HTTP sessions open now.", [("", len(table))])
        family("mcpgw_sessions_max", "gauge", "The cap on open sessions (max_sessions).", [("", table.max_sessions)])
        family(
            "mcpgw_sessions_rejected_total",
            "counter",
            "New sessions refused with HTTP 503 because every open session was busy.",
            [("", table.rejected)],
        )
        family(
            "mcpgw_sessions_ended_total",
            "counter",
            "Sessions the gateway ended: evicted (the least recently used idle one, to admit a new client) "
            "or expired (idle for session_idle_timeout).",
            [('{reason="evicted"}', table.evicted), ('{reason="expired"}', table.expired)],
        )
    names = sorted(per_client)

    def each(attr: str) -> list[tuple[str, float]]:
        return [(f'{{backend="{n}"}}', getattr(per_client[n], attr)) for n in names]

    if names:
        family(
            "mcpgw_client_processes",
            "gauge",
            "session: per-client backends: connections (for stdio, processes) open for clients now.",
            [(f'{{backend="{n}"}}', len(per_client[n])) for n in names],
        )
        family("mcpgw_client_processes_max", "gauge", "The cap on them (max_client_sessions).", each("limit"))
        family(
            "mcpgw_client_processes_closed_total",
            "counter",
            "Per-client connections the gateway closed: evicted (the least recently used idle one, for a new "
            "client) or expired (idle for client_idle_timeout).",
            [
                (f'{{backend="{n}",reason="{reason}"}}', getattr(per_client[n], reason))
                for n in names
                for reason in ("evicted", "expired")
            ],
        )
        family(
            "mcpgw_client_processes_refused_total",
            "counter",
            "Calls refused because every per-client connection of the backend was busy (max_client_sessions).",
            each("turned_away"),
        )
    return "\n".join(lines) + "\n" if lines else ""
