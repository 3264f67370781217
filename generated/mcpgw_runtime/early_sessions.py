# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The sessions the front opens before the core is loaded, and their handover to the core.

Why apart from front.py (which decides who answers a request): a session's life
before the core is its own job: `initialize` (handshake-era versions) opens it,
its GET stream is held open, DELETE ends it, and once the core is up the core
adopts it under the same id: the SDK opens a session and the client's `initialize`
(and `notifications/initialized`) is replayed into it (`Core.adopt`), its log level
and subscriptions go to the core's `UpstreamHub`, then the held stream becomes the SDK's.

Until then these sessions are what the core's `UpstreamHub` is once loaded: who set
which log level (`logging/setLevel`, relays.py), who is subscribed to which URI, and
the GET streams a backend's notifications outside any request go to (`log_entry`,
`resource_updated`), framed as the SDK's transport frames them.

    POST initialize ─▶ EarlySessions.initialize ─▶ open[sid] = EarlySession
    GET (SSE)       ─▶ listen: held, carries the notifications meant for the session,
                       until the core is up ─▶ adopt ─▶ the SDK serves it
    DELETE          ─▶ end: forgotten, its stream ended, its relayed requests cancelled
    core up         ─▶ hand_over: every open session adopted, then the backends start
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pydantic_core

from mcpgw_runtime.jsonrpc_http import (
    SESSION_HEADER,
    AsgiApp,
    AsgiMessage,
    AsgiReceive,
    AsgiScope,
    AsgiSend,
    gone,
    is_request_id,
    notification,
    replay_body,
    respond,
    result_body,
    sse_event,
)
from mcpgw_runtime.profiles import DEFAULT, PROFILE
from mcpgw_runtime.spec import JSON, GatewaySpec

log = logging.getLogger("mcpgw")

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
"""Versions negotiated by `initialize` (the SDK's `HANDSHAKE_PROTOCOL_VERSIONS`; a test keeps them equal)."""

CAPABILITIES: JSON = {
    "completions": {},
    "logging": {},
    "prompts": {"listChanged": True},
    "resources": {"listChanged": True, "subscribe": True},
    "tools": {"listChanged": True},
}
"""What the core's SDK server advertises; the core checks on load that it still does (`Core.initialize_result`)."""

VERSION_HEADER = b"mcp-protocol-version"
HANDSHAKE_BYTES = frozenset(v.encode() for v in HANDSHAKE_VERSIONS)
CLIENT_REQUEST_CAPABILITIES = ("sampling", "elicitation", "roots")
"""What a backend may ask the client for during a call; a client that declares any of them needs the core."""

SESSION_NOT_FOUND = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}'
"""The SDK's answer (HTTP 404) to a request naming a session it does not have (a test keeps them equal)."""


ADOPTION_WAIT = 5.0
"""Seconds the core's backends wait at most for the sessions the front opened to be adopted."""

ADOPTING_AT_ONCE = 8
"""Sessions handed to the core at the same time at takeover; the rest wait their turn.

Why: each adoption replays an initialize into the SDK; all of them at once (up to
`max_sessions`) would hold the event loop long enough to stall every client. A session
whose client sends a request meanwhile is adopted at once, ahead of its turn.
"""

LOG_LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
"""`logging/setLevel`'s levels, least severe first (relay.LOG_LEVELS; a test keeps them equal)."""

PING_INTERVAL = 15.0
"""Seconds between the comments that keep a held GET stream alive through proxies (sse_starlette's default)."""

OUTBOX_LIMIT = 256
"""Notifications waiting for a held GET stream whose client does not read; more are dropped (best effort,
as the SDK's standalone stream is: a notification never holds up the backend's pipe)."""


def level_index(level: object) -> int:
    """A level's rank; an unknown one ranks as `debug` (relay._level_index)."""
    return LOG_LEVELS.index(level) if isinstance(level, str) and level in LOG_LEVELS else 0


def wants_log(level: object, wanted: str | None) -> bool:
    """Whether a log entry during one of a session's requests reaches it (relay.Origin.allows_log).

    The handshake-era versions admit the eight levels, nothing else; then the session's own
    `logging/setLevel`, when it set one.
    """
    return level in LOG_LEVELS and (wanted is None or level_index(level) >= level_index(wanted))


def initialize_result(spec: GatewaySpec, version: str) -> JSON:
    """The gateway's answer to `initialize` at a handshake-era version."""
    result: JSON = {
        "capabilities": CAPABILITIES,
        "protocolVersion": version,
        "serverInfo": {"name": spec.name, "version": spec.version},
    }
    if spec.instructions is not None:
        result["instructions"] = spec.instructions
    return result


@dataclass(slots=True)
class EarlySession:
    """A session the front opened before the core was up: what the core needs to take it over."""

    initialize: bytes
    """The client's initialize request, byte for byte."""
    headers: list[tuple[bytes, bytes]]
    """That request's headers (they passed the guard)."""
    version: str
    asks: bool = False
    """The client declared a capability a backend could use mid-call (sampling, elicitation, roots)."""
    initialized: bool = False
    adoption: asyncio.Future[None] | None = field(default=None, repr=False)
    listening: bool = False
    """The front holds the session's GET stream open for the core (`EarlySessions._listen`)."""
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """The client deleted the session before the core took it."""
    level: str | None = None
    """The level the client set with `logging/setLevel`; None: it never did (it hears no log outside a request)."""
    subscriptions: set[str] = field(default_factory=set)
    """The URIs the client subscribed to (`resources/subscribe`)."""
    outbox: deque[bytes] = field(default_factory=deque, repr=False)
    """SSE events for the held GET stream, in order; `_listen` sends them."""
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """Set when something is put in `outbox`."""
    profile: str = DEFAULT
    """The profile whose path opened it (profiles.py); the core's session for it gets the same."""


class Core(Protocol):
    """What the front needs of the loaded core (http.py builds it)."""

    app: AsgiApp

    def run(self) -> AbstractAsyncContextManager[None]:
        """Backends and session manager running for as long as the context is open."""
        ...

    async def adopt(self, sid: bytes, session: EarlySession) -> None:
        """The SDK's session for it, under the same id; its level and subscriptions carried over."""
        ...

    def listening(self, sid: bytes) -> bool:
        """Whether the SDK serves a GET stream for this session (its notifications have somewhere to go)."""
        ...

    def start_backends(self) -> None:
        """Start the backends (once the sessions the front opened are the core's)."""
        ...

    def stop_backends(self) -> None: ...

    def end_session(self, sid: bytes) -> None:
        """End one of the core's sessions (the session table evicted or expired it); unknown ids are ignored."""
        ...

    def initialize_result(self, version: str) -> JSON: ...


class EarlySessions:
    """The sessions the front opened (`open`), from `initialize` to their adoption by the core."""

    def __init__(
        self,
        spec: GatewaySpec,
        stateless: bool,
        calls: Mapping[tuple[bytes, object], asyncio.Future[Any]],
        ready: asyncio.Event,
        closing: asyncio.Event,
        core: Callable[[], Core | None],
    ) -> None:
        self.spec = spec
        self.stateless = stateless
        self.open: dict[bytes, EarlySession] = {}
        """Sessions the front opened that the core has not adopted yet."""
        self.calls = calls
        """The front's relayed requests in flight, by session: ending a session cancels its own."""
        self.ready = ready
        """Set once the core is up (or could not load)."""
        self.closing = closing
        """Set on SIGINT/SIGTERM: the GET streams held end at once."""
        self.core = core

    async def hand_over(self, core: Core) -> list[asyncio.Task[None]]:
        """Have the core adopt every open session; wait (up to `ADOPTION_WAIT`) until it serves their streams.

        Why wait: a list change found by the backends' first check (they start after this)
        then reaches these sessions, on the GET streams the front held for them.
        """
        deadline = asyncio.get_running_loop().time() + ADOPTION_WAIT
        held = [(sid, session) for sid, session in self.open.items() if session.listening]
        turns = asyncio.Semaphore(ADOPTING_AT_ONCE)

        async def in_turn(sid: bytes) -> None:
            async with turns:
                await self.adopt(core, sid)

        first = sorted(self.open, key=lambda sid: not self.open[sid].listening)  # held streams first
        adoptions = [asyncio.ensure_future(in_turn(sid)) for sid in first]
        if adoptions:
            await asyncio.wait(adoptions, timeout=ADOPTION_WAIT)
        while held and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
            held = [(sid, session) for sid, session in held if session.listening and not core.listening(sid)]
        return adoptions

    async def outside_posts(
        self, scope: AsgiScope, headers: Mapping[bytes, bytes], receive: AsgiReceive, send: AsgiSend
    ) -> bool:
        """A session's GET and DELETE, and any request naming a session nobody knows; False to go on.

        Until the core is up the front's sessions are the only ones there are, so an
        unknown id gets the SDK's 404 here: loading the core would not find it either.
        """
        sid = headers.get(SESSION_HEADER)
        if sid is None:
            return False
        session = self.open.get(sid)
        if session is None:
            await respond(send, 404, SESSION_NOT_FOUND, b"application/json")
            return True
        version = headers.get(VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_BYTES:
            return False
        if scope["method"] == "DELETE":
            self.end(sid, session)
            await respond(send, 200, b"", b"application/json", session=sid)
            return True
        if scope["method"] != "GET" or session.listening or b"last-event-id" in headers:
            return False
        wants_stream = b"text/event-stream" in headers.get(b"accept", b"")
        if wants_stream:
            await self._listen(scope, sid, session, receive, send)
        return wants_stream

    def end(self, sid: bytes, session: EarlySession) -> None:
        """The client deleted a session the front opened: forget it, end its stream, cancel its calls."""
        self.open.pop(sid, None)
        session.ended.set()
        for (owner, _), call in list(self.calls.items()):
            if owner == sid:
                call.cancel()

    # -- what the core's UpstreamHub keeps, for the sessions the front has -------------

    def set_level(self, session: EarlySession, level: str) -> str:
        """Record a session's `logging/setLevel`; the most verbose level any session wants, for the backends."""
        session.level = level
        return min([level, *(s.level for s in self.open.values() if s.level is not None)], key=level_index)

    def unsubscribe(self, session: EarlySession, uri: str) -> bool:
        """Drop one session's subscription; True when no session is subscribed to `uri` any more."""
        session.subscriptions.discard(uri)
        return not any(uri in s.subscriptions for s in self.open.values())

    def log_entry(self, params: object) -> None:
        """A backend's log entry outside any request: to each session whose level admits it.

        As the core's relay broadcasts it (`UpstreamHub.log_listeners`): only sessions that set a
        level hear it, an unknown level ranks as `debug`.
        """
        rank = level_index(str(params.get("level") if type(params) is dict else None))
        listeners = [s for s in self.open.values() if s.level is not None and rank >= level_index(s.level)]
        self.notify("notifications/message", params, listeners)

    def resource_updated(self, params: object) -> None:
        """A backend's `notifications/resources/updated`: to the sessions subscribed to its URI only."""
        uri = str(params.get("uri")) if type(params) is dict else "None"
        self.notify(
            "notifications/resources/updated", params, [s for s in self.open.values() if uri in s.subscriptions]
        )

    @staticmethod
    def notify(method: str, params: object, sessions: Iterable[EarlySession]) -> None:
        """A notification on each session's GET stream; a session without one does not get it, as with the SDK."""
        event: bytes | None = None
        for session in sessions:
            if not session.listening:
                continue
            if len(session.outbox) >= OUTBOX_LIMIT:
                log.debug("a session's GET stream is not read: %s dropped", method)
                continue
            event = event or sse_event(notification(method, params))
            session.outbox.append(event)
            session.wake.set()

    # -- the GET stream --------------------------------------------------------------

    async def _listen(
        self, scope: AsgiScope, sid: bytes, session: EarlySession, receive: AsgiReceive, send: AsgiSend
    ) -> None:
        """Open the session's GET stream now and hold it; once the core is up, the SDK serves it.

        Why: a client opens this stream right after `initialize`; answering it here keeps
        the core unloaded (`--lazy-core`) for clients that only list and call tools. Until
        the core is up it carries what the backends send the session outside any request
        (`notify`), and a comment every `PING_INTERVAL` as the SDK's stream does.
        """
        session.listening = True
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache, no-transform"),
            (b"connection", b"keep-alive"),
            (b"x-accel-buffering", b"no"),
            (SESSION_HEADER, sid),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        waits = [
            asyncio.ensure_future(gone(receive)),
            asyncio.ensure_future(self.ready.wait()),
            asyncio.ensure_future(session.ended.wait()),
            asyncio.ensure_future(self.closing.wait()),
        ]
        try:
            await self._carry(session, waits, send)
        finally:
            for wait in waits:
                wait.cancel()
        core = self.core()
        try:
            if waits[0].done() and not waits[0].cancelled():
                return  # the client left
            if core is None or session.ended.is_set() or self.closing.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await _flush(session, send)  # what came before the backends were handed over goes first
            await self.adopt(core, sid)
            await core.app(scope, replay_body(b"", receive), started(send))
        finally:
            session.listening = False
            session.outbox.clear()

    @staticmethod
    async def _carry(session: EarlySession, waits: Sequence[asyncio.Future[Any]], send: AsgiSend) -> None:
        """Send the session's notifications, and a ping when idle, until one of `waits` is done."""
        loop = asyncio.get_running_loop()
        ping_at = loop.time() + PING_INTERVAL
        while not any(w.done() for w in waits):
            session.wake.clear()
            await _flush(session, send)
            if loop.time() >= ping_at:
                ping = f": ping - {datetime.now(UTC)}\r\n\r\n".encode()
                await send({"type": "http.response.body", "body": ping, "more_body": True})
                ping_at = loop.time() + PING_INTERVAL
            woken = asyncio.ensure_future(session.wake.wait())
            try:
                await asyncio.wait([*waits, woken], timeout=ping_at - loop.time(), return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()

    async def initialize(
        self, message: dict[str, Any], raw: list[tuple[bytes, bytes]], body: bytes, send: AsgiSend
    ) -> bool:
        rid, version = message.get("id"), _handshake_version(message.get("params"))
        if not is_request_id(rid) or version is None:
            return False
        result = pydantic_core.to_json(initialize_result(self.spec, version))
        sid = None if self.stateless else uuid.uuid4().hex.encode()
        if sid is not None:
            declared = message["params"]["capabilities"]
            asks = any(declared.get(c) is not None for c in CLIENT_REQUEST_CAPABILITIES)
            self.open[sid] = EarlySession(body, raw, version, asks, profile=PROFILE.get())
        await respond(send, 200, result_body(rid, result), b"application/json", session=sid)
        return True

    async def adopt(self, core: Core, sid: bytes) -> None:
        """Hand one early session to the core, once; concurrent requests of the session wait for it."""
        session = self.open.get(sid)
        if session is None:
            return
        if session.adoption is None:
            session.adoption = asyncio.ensure_future(core.adopt(sid, session))
        try:
            await asyncio.shield(session.adoption)
        except Exception:  # the core then answers 404 for the session, and the client starts a new one
            log.warning("session %s: could not hand it to the core", sid.decode("latin-1"), exc_info=True)
        finally:
            self.open.pop(sid, None)
        if session.ended.is_set():  # ended (deleted, evicted, expired) while the core was taking it
            core.end_session(sid)


def _handshake_version(params: object) -> str | None:
    """The requested version when the params are what the SDK accepts and it negotiates to itself, else None."""
    if not isinstance(params, dict):
        return None
    version, info, capabilities = params.get("protocolVersion"), params.get("clientInfo"), params.get("capabilities")
    if version not in HANDSHAKE_VERSIONS or not isinstance(capabilities, dict) or not isinstance(info, dict):
        return None
    if not (isinstance(info.get("name"), str) and isinstance(info.get("version"), str)):
        return None
    if not all(isinstance(value, dict) for value in capabilities.values()):
        return None
    return str(version)


async def _flush(session: EarlySession, send: AsgiSend) -> None:
    while session.outbox:
        await send({"type": "http.response.body", "body": session.outbox.popleft(), "more_body": True})


def started(send: AsgiSend) -> AsgiSend:
    """`send` for a response whose start the front already sent: the SDK's own start is dropped.

    A start other than 200 (the session could not be handed over) ends the stream instead
    of writing an error body into it.
    """
    refused = False

    async def forward(message: AsgiMessage) -> None:
        nonlocal refused
        if message["type"] == "http.response.start":
            refused = message["status"] != 200
            if refused:
                log.warning("GET /mcp: the core answered HTTP %s for a stream the front held", message["status"])
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif not refused:
            await send(message)

    return forward
