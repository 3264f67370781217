# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The plain relayed call of a known session, answered below uvicorn's ASGI cycle.

Why: a forwarded call cost the gateway about 350-540 µs of CPU, of which uvicorn's
request handling (a task per request, a Python callback per header, the ASGI messages)
was about 90 µs and the front's layers around the relay (session table, guard, the
front's checks, a watcher task per call) most of the rest (bench/README.md). The call
both kinds of client send thousands of times is always the same shape, so the
connection's protocol recognises it in the raw bytes and serves it itself:

    bytes of a connection ─▶ HotProtocol.data_received, the parser between requests,
                              no response of uvicorn's under way
        one whole `POST /mcp` (or `/mcp/<profile>`) with a Content-Length and an
        ordinary head, a live session of the front (its profile, its caller), the
        guard's Host/Origin check and the static token passed, a JSON-RPC request
        of a method the front relays (`HOT_METHODS`), no progress token
            ──yes─▶ `Relays.serve` in one task (routes, profiles, policy, limits,
                     `Forwarder.request`: the same code the front's relay runs)
                     ─▶ status line, headers and body in one `transport.write`
            ──no──▶ the same bytes to uvicorn's parser, untouched: the ASGI front as before

Everything that is not that shape (no session, GET, DELETE, initialize, lists,
notifications, batches, a progress token, a refused or unknown session, an access
token the auth gate has not verified yet, the audit log or tracing configured, a
core loading or loaded, a pipelined request behind one uvicorn is serving, a body
that does not follow its head within `HOLD`) goes the ordinary way, and
the answers are the same bytes either way: the headers uvicorn writes (`date`,
`server`, then the front's), an SSE stream when the backend logs to the call
(`HotReply.notify`), the counters the front keeps (`mcpgw_fast_path_requests_total`,
the backend's call series with its profile label, the auth gate's acceptances).
A request the relay gives back (`serve` returns None: the core must answer) is fed
to uvicorn's parser then, as if it had just arrived.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import re
from typing import TYPE_CHECKING, Any, Literal

import pydantic_core

from mcpgw_runtime import exchange
from mcpgw_runtime.caller import CALLER, identity
from mcpgw_runtime.early_sessions import HANDSHAKE_BYTES, VERSION_HEADER, EarlySession, wants_log
from mcpgw_runtime.forwarding import INVALID_REQUEST, Refused
from mcpgw_runtime.httplimits import CLOSING, HEAD, IDLE, HttpLimits, protocol_class
from mcpgw_runtime.jsonrpc_http import (
    SESSION_HEADER,
    SPLIT_BYTES,
    error_answer,
    id_key,
    is_request_id,
    notification,
    parse_json,
    sse_event,
)
from mcpgw_runtime.metrics import SERVED_WITHOUT_SDK
from mcpgw_runtime.profiles import DEFAULT, PROFILE, path_profile
from mcpgw_runtime.relays import RELAYED, SESSION_METHODS

if TYPE_CHECKING:
    from mcpgw_runtime.auth import Caller, OAuth
    from mcpgw_runtime.front import Front
    from mcpgw_runtime.jsonrpc_http import AsgiApp
    from mcpgw_runtime.session_table import Entry

HOT_METHODS = RELAYED - SESSION_METHODS
"""What the hot path serves: the relayed methods that keep no state with the session."""

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_FIELDS = re.compile(rb"(?:" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*\r\n)*")
"""Header lines as nothing but uvicorn's parser could read them otherwise: a token, a colon, a plain value."""
_PATH = re.compile(rb"/mcp(?:/[0-9A-Za-z_.~-]+)?")
"""The request targets taken: `/mcp` and `/mcp/<name>`, no query, nothing escaped."""
_NOT_HERE = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"te", b"trailer"})
"""Header fields that make a request uvicorn's to read (chunked bodies, 100-continue, upgrades)."""
_START = b"POST "
_VERSION = b" HTTP/1.1"
_OK = b"HTTP/1.1 200 OK\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n\r\n"
_CANCELLED = {"code": INVALID_REQUEST, "message": "Request cancelled"}

HOLD = 0.05
"""Seconds a hot request's head is held for its body, read apart; then uvicorn reads both (and times the body)."""


class _Call:
    """One request the hot path took: what its answer needs, and what to undo when it ends."""

    __slots__ = ("data", "entry", "key", "method", "params", "path", "rid", "session", "sid")

    def __init__(
        self,
        data: bytes,
        path: str,
        sid: bytes,
        entry: Entry,
        session: EarlySession,
        method: str,
        params: object,
        rid: object,
    ) -> None:
        self.data = data
        self.path = path
        self.sid = sid
        self.entry = entry
        self.session = session
        self.method = method
        self.params = params
        self.rid = rid
        self.key = (sid, id_key(rid))


class Hot:
    """One server's hot path: the front it serves for, and the token the auth gate checks (if any)."""

    def __init__(self, front: Front, token: bytes | None, limits: HttpLimits, oauth: OAuth | None = None) -> None:
        self.front = front
        self.token = token
        self.oauth = oauth
        self.max_head = limits.max_header_bytes
        self.max_headers = limits.max_headers
        self.max_body = front.spec.max_body_bytes
        self.profiles = front.spec.profiles
        relays, table = front.relays, front.table
        assert relays is not None and table is not None
        self.relays = relays
        self.table = table
        self.guard = front.guard

    def take(self, data: bytes) -> tuple[_Call, int, str, Caller | None] | int | None:
        """The call in `data` and where it ends, its profile and caller; None: uvicorn's to read; the length
        of the whole request when `data` passes every check its head allows but its body is not all there.

        Nothing is changed here: a request that is not taken leaves no trace.
        """
        if self.front.core is not None or exchange.ACTIVE or not self.relays.settled():
            return None
        parsed = _head(data, self.max_head, self.max_headers)
        if parsed is None:
            return None
        path, headers, start = parsed
        size = _length(headers)
        stop = start + size
        admitted = self._admitted(path, headers) if size <= self.max_body else None
        if admitted is None or len(data) < stop:
            return None if admitted is None else stop
        sid, entry, session, profile, caller = admitted
        message = parse_json(data[start:stop])
        if type(message) is not dict or message.get("jsonrpc") != "2.0":
            return None
        method, rid, params = message.get("method"), message.get("id"), message.get("params")
        if method not in HOT_METHODS or not is_request_id(rid) or not _without_progress(params):
            return None
        return _Call(data[:stop], path, sid, entry, session, str(method), params, rid), stop, profile, caller

    def _admitted(
        self, path: str, headers: dict[bytes, bytes]
    ) -> tuple[bytes, Entry, EarlySession, str, Caller | None] | None:
        """The checks the ASGI layers make before the front relays a request (auth gate, guard, session
        table, the front's own), passed: the session's id, entry and state, the profile, the caller."""
        profile = DEFAULT if path == "/mcp" else path_profile(path, "/mcp", self.profiles)
        if profile is None or self.guard.refusal(headers) is not None:
            return None
        caller = self._caller(headers)
        sid = headers.get(SESSION_HEADER)
        version = headers.get(VERSION_HEADER)
        if caller is False or sid is None or not (version is None or version in HANDSHAKE_BYTES):
            return None
        entry = self.table.used.get(sid) or self.table.fresh.get(sid)
        if entry is None or entry.profile != profile or entry.caller != identity(caller):
            return None
        session = self.front.early.get(sid)
        accept = headers.get(b"accept", b"")
        plain = b"application/json" in accept and b"text/event-stream" in accept
        if session is None or session.asks or not plain:
            return None
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return None
        return sid, entry, session, profile, caller

    def _caller(self, headers: dict[bytes, bytes]) -> Caller | Literal[False] | None:
        """The bearer's caller, None without a token to check, False where the auth gate must decide."""
        if self.token is None and self.oauth is None:
            return None
        from mcpgw_runtime.auth import STATIC_CALLER, bearer_of

        bearer = bearer_of(headers.get(b"authorization"))
        if bearer is None:
            return False
        if self.token is not None and hmac.compare_digest(bearer.encode(), self.token):
            return STATIC_CALLER
        return False if self.oauth is None else self._oauth_caller(self.oauth, bearer)

    @staticmethod
    def _oauth_caller(oauth: OAuth, bearer: str) -> Caller | Literal[False]:
        """An access token the gate has verified and that has not expired since, with every required scope.

        Only the gate's cache is read: a token it has not seen, or one that fails now,
        goes to the gate (uvicorn's path), which checks it and answers 401 or 403 itself.
        """
        from mcpgw_runtime.auth import Caller

        verifier = oauth.verifier
        known = verifier.cache.get(bearer, verifier.clock(), verifier.spec.clock_skew)
        if known is None or not oauth.required <= known.scopes:
            return False
        return Caller("oauth", known.subject, known.client_id, known.scopes, known.claims)


def _head(data: bytes, max_head: int, max_headers: int) -> tuple[str, dict[bytes, bytes], int] | None:
    """The path, headers (names lowercased) and the body's start of a plain `POST /mcp...` HTTP/1.1 head."""
    end = data.find(b"\r\n\r\n")
    first = data.find(b"\r\n")
    if end < 0 or end + 4 > max_head or not data.startswith(_START) or data[first - 9 : first] != _VERSION:
        return None
    target = data[5 : first - 9]
    block = data[first + 2 : end + 2]
    if _PATH.fullmatch(target) is None or _FIELDS.fullmatch(block) is None:
        return None
    lines = block.split(b"\r\n")
    lines.pop()
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, _, value = line.partition(b":")
        value = value.lstrip(b" \t")
        if value.endswith((b" ", b"\t")):  # left for uvicorn's parser to trim (or not) as it does
            return None
        headers[name.lower()] = value
    connection = headers.get(b"connection", b"keep-alive")
    if len(headers) != len(lines) or len(lines) > max_headers or connection.lower() != b"keep-alive":
        return None
    return (target.decode("ascii"), headers, end + 4) if _NOT_HERE.isdisjoint(headers) else None


def _length(headers: dict[bytes, bytes]) -> int:
    """The Content-Length, when it is plain digits; otherwise more than any body the hot path takes."""
    length = headers.get(b"content-length")
    if length is None or not (length.isdigit() and length.isascii()) or len(length) > 12:
        return 1 << 62
    return int(length)


def _without_progress(params: object) -> bool:
    """Params the relay takes as they are, without a progress token (its answer comes on a stream).

    What `Relays.serve` would give back to the core (params or `_meta` not an object) is not taken either.
    """
    if params is None:
        return True
    if type(params) is not dict:
        return False
    meta = params.get("_meta")
    return meta is None or (type(meta) is dict and "progressToken" not in meta)


class HotReply:
    """A hot call's answer, written on the connection: plain JSON, or an SSE stream once the backend logs to it.

    The bytes are uvicorn's for the front's `SessionReply` (jsonrpc_http.Reply): its default headers
    (`date`, `server`), then the front's, `transfer-encoding: chunked` for a stream.
    """

    __slots__ = ("_conn", "_done", "_session", "_sid", "_streaming")

    def __init__(self, conn: Any, sid: bytes, session: EarlySession) -> None:
        self._conn = conn
        self._sid = sid
        self._session = session
        self._streaming = False
        self._done = False

    @property
    def session(self) -> bytes:
        return self._sid

    async def notify(self, method: str, params: Any) -> None:
        if method == "notifications/message":
            level = params.get("level") if isinstance(params, dict) else None
            if not wants_log(level, self._session.level):
                return
        if self._done:
            return
        chunk = _chunk(sse_event(notification(method, params)))
        if not self._streaming:
            self._streaming = True
            head = self._conn.hot_head(b"text/event-stream", None)
            self._conn.hot_write(head + chunk)
        else:
            self._conn.hot_write(chunk)

    def finish(self, body: bytes, tail: bytes | memoryview = b"") -> None:
        self._done = True
        conn = self._conn
        if self._streaming:
            conn.hot_write(_chunk(sse_event(b"".join((body, tail)))) + b"0\r\n\r\n")
            return
        head = conn.hot_head(b"application/json", len(body) + len(tail))
        if len(tail) < SPLIT_BYTES:
            conn.hot_write(b"".join((head, body, tail)))
        else:
            conn.hot_write(head + body, tail)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def _serve(hot: Hot, conn: Any, call: _Call) -> None:
    """Relay the call (as `Relays.answer` does, without the ASGI messages) and write its answer."""
    relays = hot.relays
    reply = HotReply(conn, call.sid, call.session)
    answered = True
    try:
        try:
            tail = await relays.serve(call.method, call.params, reply, call.session)
        except Refused as refused:
            SERVED_WITHOUT_SDK.count += 1
            reply.finish(error_answer(call.rid, refused.error))
            return
        except asyncio.CancelledError:
            if conn.hot_lost:
                return
            SERVED_WITHOUT_SDK.count += 1
            reply.finish(error_answer(call.rid, _CANCELLED))
            return
        if tail is None:
            answered = False
            return
        SERVED_WITHOUT_SDK.count += 1
        reply.finish(b'{"jsonrpc":"2.0","id":' + pydantic_core.to_json(call.rid), tail)
    finally:
        if relays.in_flight.get(call.key) is asyncio.current_task():
            del relays.in_flight[call.key]
        hot.table.leave(call.sid, call.entry)
        conn.hot_done(None if answered else call.data)


def hot_protocol_class(front: Front, app: AsgiApp | None, limits: HttpLimits) -> type[asyncio.Protocol]:
    """The HTTP protocol for `uvicorn.Config(http=...)`: httplimits' with the hot path, where it applies.

    It applies with uvicorn's httptools protocol, the front relaying (`--lazy-core`, Streamable HTTP
    with sessions), and nothing between uvicorn and the front but the auth gate (a static token, or OAuth
    access tokens the gate has verified: its cache); otherwise
    the protocol is httplimits' as it is.
    """
    base = protocol_class(limits)
    token: bytes | None = None
    oauth: OAuth | None = None
    if app is not None and app is not front:
        from mcpgw_runtime.auth import AuthGate

        if type(app) is not AuthGate or app.app is not front:
            return base
        token, oauth = app.token, app.oauth
    if front.relays is None or front.table is None or base.__name__ != "LimitedHttpToolsProtocol":
        return base  # h11's protocol (no httptools installed) reads its requests as it always has
    return _hot_class(base, Hot(front, token, limits, oauth))


def _hot_class(base: type[asyncio.Protocol], hot: Hot) -> type[asyncio.Protocol]:
    held_max = hot.max_head + hot.max_body

    class HotProtocol(base):  # type: ignore[valid-type,misc]
        """httplimits' httptools protocol, taking the hot path's requests before its parser sees them."""

        gw_phase: int  # httplimits' (`_Limited`), for the type checker: the base is only known at run time
        hot_call: asyncio.Task[None] | None = None
        hot_held = b""
        """What the client sent while a hot call was in flight (a pipelined request): read after its answer."""
        hot_clean = True
        """The parser is between requests: nothing of one is fed to it yet."""
        hot_close = False
        """The server is shutting down: close once the hot call is answered."""
        hot_lost = False
        hot_part = b""
        """A hot request's head (and what came of its body) while the rest is on its way."""
        _hot_wait: asyncio.TimerHandle | None = None
        _hot_defaults: tuple[object, bytes] = (None, b"")
        _hot_sid = b""

        def data_received(self, data: bytes) -> None:
            if self.hot_call is not None:
                if self.gw_phase == CLOSING:
                    return
                self.hot_held += data
                if len(self.hot_held) > held_max:
                    self.flow.pause_reading()
                return
            if self.hot_part:  # the rest of a head that came alone (the SDK's client writes head and body apart)
                data = self.hot_part + data
                self.hot_part = b""
                if self._hot_wait is not None:
                    self._hot_wait.cancel()
                    self._hot_wait = None
            phase = self.gw_phase
            cycle = self.cycle
            if (
                self.hot_clean
                and (phase == IDLE or (phase == HEAD and self.gw_left == hot.max_head))
                and (cycle is None or cycle.response_complete)
                and not self.pipeline
                and not self.flow.write_paused
            ):
                taken = hot.take(data)
                if type(taken) is int:  # the head of one: the body follows, or uvicorn reads it all after HOLD
                    self._unset_keepalive_if_required()
                    self.gw_phase = IDLE  # timed by HOLD, then by uvicorn's path
                    self.hot_part = data
                    self._hot_wait = self.loop.call_later(HOLD, self._hot_give_up)
                    return
                if type(taken) is tuple:
                    self._hot_start(*taken)
                    if len(data) > taken[1]:
                        self.hot_held = data[taken[1] :]
                    return
            super().data_received(data)

        def _hot_give_up(self) -> None:
            """The body did not follow its head within HOLD: uvicorn's to read, with its own body timeout."""
            self._hot_wait = None
            part, self.hot_part = self.hot_part, b""
            if part and not self.transport.is_closing():
                super().data_received(part)

        def _hot_start(self, call: _Call, stop: int, profile: str, caller: Caller | None) -> None:
            self._unset_keepalive_if_required()
            self.gw_phase = IDLE
            self._hot_sid = call.sid
            hot.table.enter(call.sid)  # the entry `take` found: nothing ran in between
            context: contextvars.Context | None = None
            if hot.profiles or caller is not None:
                context = contextvars.copy_context()
                if hot.profiles:
                    context.run(PROFILE.set, profile)
                if caller is not None:
                    context.run(CALLER.set, caller)
            task = self.loop.create_task(_serve(hot, self, call), context=context)
            self.hot_call = task
            hot.relays.in_flight[call.key] = task
            if caller is not None:
                from mcpgw_runtime.auth import ACCEPTED

                ACCEPTED[caller.kind].count += 1
            if self.access_log:
                client = self.client
                where = f"{client[0]}:{client[1]}" if client else ""
                self.access_logger.info('%s - "POST %s HTTP/1.1" %d', where, call.path, 200)

        def hot_head(self, kind: bytes, length: int | None) -> bytes:
            """The status line and headers as uvicorn writes the front's."""
            defaults = self.server_state.default_headers
            cached, text = self._hot_defaults
            if cached is not defaults:
                text = b"".join(b"%b: %b\r\n" % (name, value) for name, value in defaults)
                self._hot_defaults = (defaults, text)
            sid = self._hot_sid
            close = b"connection: close\r\n" if self.hot_close else b""
            if length is None:
                return b"%b%bcontent-type: %b\r\nmcp-session-id: %b\r\ncache-control: no-cache\r\n%b%b" % (
                    _OK,
                    text,
                    kind,
                    sid,
                    close,
                    _CHUNKED,
                )
            return b"%b%bcontent-type: %b\r\nmcp-session-id: %b\r\ncontent-length: %d\r\n%b\r\n" % (
                _OK,
                text,
                kind,
                sid,
                length,
                close,
            )

        def hot_write(self, data: bytes, more: bytes | memoryview = b"") -> None:
            transport = self.transport
            if transport.is_closing():
                return
            transport.write(data)
            if more:
                transport.write(more)

        def hot_done(self, unanswered: bytes | None) -> None:
            """The hot call ended: the connection goes on as after uvicorn's `on_response_complete`."""
            self.hot_call = None
            if self.hot_lost:
                return
            transport = self.transport
            if unanswered is not None:  # the core's to answer: uvicorn reads the request as if just arrived
                held, self.hot_held = self.hot_held, b""
                self.flow.resume_reading()
                super().data_received(unanswered + held)  # not the hot path again: it would give it back again
                return
            self.server_state.total_requests += 1
            if self.hot_close:
                transport.close()
            if transport.is_closing():
                return
            self.flow.resume_reading()
            held, self.hot_held = self.hot_held, b""
            if held:
                HotProtocol.data_received(self, held)
            else:
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )

        def on_message_begin(self) -> None:
            self.hot_clean = False
            super().on_message_begin()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self.hot_clean = True

        def connection_lost(self, exc: Exception | None) -> None:
            if self._hot_wait is not None:
                self._hot_wait.cancel()
            if self.hot_call is not None:
                self.hot_lost = True
                self.hot_call.cancel()
            super().connection_lost(exc)

        def shutdown(self) -> None:
            if self.hot_call is not None:
                self.hot_close = True
                return
            if self._hot_wait is not None:  # a request under way: uvicorn's to finish, then close
                self._hot_wait.cancel()
                self._hot_give_up()
            super().shutdown()

    return HotProtocol


__all__ = ["HOT_METHODS", "Hot", "HotReply", "hot_protocol_class"]
