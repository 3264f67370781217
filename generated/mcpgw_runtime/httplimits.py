# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Caps on what a client can make the gateway hold before its request reaches the app.

Why: uvicorn buffers a request head without a ceiling (httptools joins a header line
that never ends into one ever-growing bytes object: 60 MB of header took the gateway
from 85 to 188 MB, 200 MB cost 79 s of CPU), and times out neither a connection that
sends nothing, nor a head or a body sent a byte at a time. About 1,000 such
connections (the common open-file limit is 1,024) refused every other client until
they left. All of it happens before the guard sees a request, so it needs no token.

So the protocol uvicorn runs for each connection (a subclass of its httptools
protocol, or of its h11 one where httptools is missing) enforces, per connection:

    max_header_bytes  431  request line and headers together, counted as they arrive
    max_headers       431  header fields in one request
    header_timeout    408  from the connection's open, or a request's first byte, to its headers' end
    body_timeout      408  from the headers' end to the body's end (a total, not a rate)
    max_connections   503  + Retry-After, at accept, before the client sends anything

and http.py caps the core's `/sse` streams (`max_sse_streams`, 503 + Retry-After) with
`SSE_STREAMS`. A refused client gets its answer, then the gateway half-closes and reads
(and drops) what it still sends for at most `LINGER` seconds, so the answer is not lost
to a TCP reset; then the connection is closed. Every closing is counted by reason
(`render_http_limits`, on `/metrics`) and logged at most once per `LOG_INTERVAL` per reason.

The deadlines are not timers per request: a connection only records its phase, and
one sweep per server (every second at most; none while nothing is connected) stamps
when it first sees a phase and closes what has been in it too long. So a timeout fires
up to two sweep intervals late, and the per-request cost is a few attribute writes.
A connection whose reading uvicorn paused (a pipelined request waiting for the one
before it) is not the client's fault and is not timed.

Idle keep-alive connections stay uvicorn's (`timeout_keep_alive`, 5 s). uvicorn's own
`limit_concurrency` does not serve here: it answers only once a request's headers are
complete, so clients that never complete them hold their file descriptors regardless.
Nothing here imports the SDK: the front runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from uvicorn.protocols.http.flow_control import FlowControl

    from mcpgw_runtime.spec import GatewaySpec

log = logging.getLogger("mcpgw")

LIMIT_FIELDS = ("max_header_bytes", "max_headers", "header_timeout", "body_timeout", "max_connections")
"""The `gateway` fields (and `GatewaySpec` fields) the HTTP protocol enforces; `max_sse_streams` is http.py's."""

CLOSE_REASONS = (*LIMIT_FIELDS, "max_sse_streams")
"""The `reason` label of `mcpgw_connections_closed_total`: the setting whose cap was reached."""

RETRY_AFTER_CONNECTION = 1
"""Seconds a client over `max_connections` is told to wait: slots free as slow clients are timed out."""
RETRY_AFTER_STREAM = 10
"""Seconds a client over `max_sse_streams` is told to wait: a stream frees only when its client leaves."""

LINGER = 2.0
"""Seconds a refused connection is kept half-closed, its input read and dropped, so the answer arrives."""
LINGER_MAX = 64
"""Refused connections lingering at once; past it a refused connection is closed as soon as answered."""
FD_RESERVE = 128
"""File descriptors kept for everything but client connections: the listening socket, the event loop,
log files, each backend's pipes. `max_connections` is lowered (with a warning) if the open-file
limit leaves less than this besides it and `LINGER_MAX`."""

LOG_INTERVAL = 10.0
"""Seconds between two log lines for one reason; the counts are on `/metrics`."""

IDLE, HEAD, BODY, CLOSING = 0, 1, 2, 3
"""A connection's phase: between requests (or while the app answers), receiving a head, receiving a body,
refused (the answer written, the input dropped until the close)."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one connection may hold, from the spec (the config, overridden by the command line)."""

    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def of(cls, spec: GatewaySpec) -> HttpLimits:
        return cls(**{name: getattr(spec, name) for name in LIMIT_FIELDS})


FLAGS: tuple[tuple[str, type[int] | type[float], str, str], ...] = (
    ("max_header_bytes", int, "BYTES", "largest request head (request line and headers); 431 beyond"),
    ("max_headers", int, "N", "most header fields in a request; 431 beyond"),
    ("header_timeout", float, "SECONDS", "time to send a request's headers, from the connection's open; 408 after"),
    ("body_timeout", float, "SECONDS", "time to send a request's body, from its headers' end; 408 after"),
    ("max_connections", int, "N", "client connections open at once; 503 with Retry-After beyond"),
    ("max_sse_streams", int, "N", "legacy /sse streams open at once; 503 with Retry-After beyond"),
)
"""The caps' command-line flags (`--max-header-bytes` ...): each overrides the config's `gateway` field."""


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
        return value

    return parse


def add_limit_flags(parser: argparse.ArgumentParser, spec: GatewaySpec) -> None:
    for name, kind, metavar, text in FLAGS:
        flag = "--" + name.replace("_", "-")
        default = getattr(spec, name)
        parser.add_argument(flag, type=_positive(kind), default=default, metavar=metavar, help=f"{text} "
                            f"(default: {default:g}, the config's gateway.{name})")  # fmt: skip


def with_limit_flags(spec: GatewaySpec, args: argparse.Namespace) -> tuple[GatewaySpec, argparse.Namespace]:
    """`spec` with the caps the command line gave (a flag overrides the config), and `args` as they were."""
    return replace(spec, **{name: getattr(args, name) for name, *_ in FLAGS}), args


class _Counts:
    """The module's counters, like metrics.py's: the front counts before the core exists."""

    __slots__ = ("closed", "connections", "sse_streams")

    def __init__(self) -> None:
        self.closed = dict.fromkeys(CLOSE_REASONS, 0)
        self.connections = 0
        self.sse_streams = 0


COUNTS = _Counts()
_last_logged: dict[str, float] = {}


def _closed(reason: str, why: str) -> None:
    COUNTS.closed[reason] += 1
    now = time.monotonic()
    if now - _last_logged.get(reason, -LOG_INTERVAL) >= LOG_INTERVAL:
        _last_logged[reason] = now
        count = COUNTS.closed[reason]
        log.warning(
            "closing a client connection: %s (%d so far; at most one such line per %gs)", why, count, LOG_INTERVAL
        )


def render_http_limits() -> str:
    """`mcpgw_connections_closed_total` by reason, and the open connections and `/sse` streams, for `/metrics`."""
    closed = "mcpgw_connections_closed_total"
    lines = [
        f"# HELP {closed} Client connections the gateway answered with 431, 408 or 503 and closed, by the "
        "gateway setting whose cap was reached.",
        f"# TYPE {closed} counter",
        *(f'{closed}{{reason="{reason}"}} {count}' for reason, count in COUNTS.closed.items()),
        "# HELP mcpgw_connections_open Client connections open (at most max_connections).",
        "# TYPE mcpgw_connections_open gauge",
        f"mcpgw_connections_open {COUNTS.connections}",
        "# HELP mcpgw_sse_streams_open Legacy /sse streams open (at most max_sse_streams).",
        "# TYPE mcpgw_sse_streams_open gauge",
        f"mcpgw_sse_streams_open {COUNTS.sse_streams}",
    ]
    return "\n".join(lines) + "\n"


def _answer(status: int, phrase: str, text: str, retry_after: int | None = None) -> bytes:
    body = text.encode() + b"\n"
    head = [f"HTTP/1.1 {status} {phrase}", "content-type: text/plain; charset=utf-8", f"content-length: {len(body)}"]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join([*head, "connection: close", "", ""])).encode() + body


def _texts(limits: HttpLimits) -> dict[str, str]:
    """Why each cap closes a connection, as the answer's body and the log line say it."""
    return {
        "max_header_bytes": f"request head over {limits.max_header_bytes} bytes (max_header_bytes)",
        "max_headers": f"more than {limits.max_headers} header fields (max_headers)",
        "header_timeout": f"request head not received within {limits.header_timeout:g}s (header_timeout)",
        "body_timeout": f"request body not received within {limits.body_timeout:g}s (body_timeout)",
        "max_connections": f"{limits.max_connections} connections open (max_connections); retry later",
    }


class Watch:
    """One server's connections: the cap on how many are open, and the sweep that enforces the deadlines."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.open: set[_Limited] = set()
        self.lingering = 0
        self.interval = min(1.0, limits.header_timeout / 4, limits.body_timeout / 4)
        self.texts = _texts(limits)
        self.answers = {
            "max_header_bytes": _answer(431, "Request Header Fields Too Large", self.texts["max_header_bytes"]),
            "max_headers": _answer(431, "Request Header Fields Too Large", self.texts["max_headers"]),
            "header_timeout": _answer(408, "Request Timeout", self.texts["header_timeout"]),
            "body_timeout": _answer(408, "Request Timeout", self.texts["body_timeout"]),
            "max_connections": _answer(
                503, "Service Unavailable", self.texts["max_connections"], RETRY_AFTER_CONNECTION
            ),
        }
        self._sweeping: asyncio.TimerHandle | None = None

    def admit(self, conn: _Limited, loop: asyncio.AbstractEventLoop) -> bool:
        if len(self.open) >= self.limits.max_connections:
            return False
        self.open.add(conn)
        COUNTS.connections = len(self.open)
        if self._sweeping is None:
            self._sweeping = loop.call_later(self.interval, self._sweep, loop)
        return True

    def discard(self, conn: _Limited) -> None:
        self.open.discard(conn)
        COUNTS.connections = len(self.open)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        head, body = self.limits.header_timeout, self.limits.body_timeout
        for conn in list(self.open):
            phase = conn.gw_phase
            if phase not in (HEAD, BODY):
                continue
            since = conn.gw_since
            if since == 0.0 or conn.flow.read_paused:  # a phase begun since the last sweep, or not the client's fault
                conn.gw_since = now
            elif now - since >= (head if phase == HEAD else body):
                conn.gw_refuse("header_timeout" if phase == HEAD else "body_timeout")
        self._sweeping = loop.call_later(self.interval, self._sweep, loop) if self.open else None


class _Limited:
    """What both protocols share: admission, the refusal, the close. Mixed in before uvicorn's class."""

    watch: Watch
    transport: asyncio.Transport
    flow: FlowControl
    loop: asyncio.AbstractEventLoop
    gw_phase: int = IDLE
    gw_since: float = 0.0
    """When the current phase was first seen (the loop's clock), 0.0 until a sweep or the start stamps it."""
    gw_left: int = 0
    """Bytes the request head being received may still take."""
    _linger: asyncio.TimerHandle | None = None

    def gw_cycle(self) -> Any:
        """uvicorn's current request-response cycle, or None (each protocol has its own class for it)."""
        raise NotImplementedError

    def gw_admit(self) -> None:
        """From `connection_made`: open, waiting for a head; or over `max_connections`, answered 503."""
        if self.watch.admit(self, self.loop):
            self.gw_phase, self.gw_since, self.gw_left = HEAD, self.loop.time(), self.watch.limits.max_header_bytes
        else:
            self.gw_refuse("max_connections")

    def gw_refuse(self, reason: str) -> None:
        """Answer the cap that was reached (unless a response is under way), half-close, linger, close."""
        _closed(reason, self.watch.texts[reason])
        receiving_body, self.gw_phase = self.gw_phase == BODY, CLOSING
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.gw_cycle()
        writable = True
        if cycle is not None and not cycle.response_complete:
            writable = not cycle.response_started
            cycle.disconnected = True  # the app sees its client leave; whatever it still sends goes nowhere
            cycle.message_event.set()
        elif cycle is not None and receiving_body:  # answered before its body ended (413, 401): say no more
            writable = False
        self.flow.resume_reading()  # read what the client still sends, so closing does not reset the connection
        watch = self.watch
        if not writable:
            transport.close()
            return
        transport.write(watch.answers[reason])
        if watch.lingering >= LINGER_MAX or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        watch.lingering += 1
        self._linger = self.loop.call_later(LINGER, transport.close)

    def gw_forget(self) -> None:
        """From `connection_lost`."""
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
            self.watch.lingering -= 1
        self.watch.discard(self)


def _httptools_class(watch: Watch) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    max_head, max_headers = watch.limits.max_header_bytes, watch.limits.max_headers

    class LimitedHttpToolsProtocol(_Limited, HttpToolsProtocol):
        """uvicorn's httptools protocol with the caps: the head counted before the parser sees it."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.gw_admit()

        def connection_lost(self, exc: Exception | None) -> None:
            self.gw_forget()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            phase = self.gw_phase
            if phase == BODY:
                super().data_received(data)
                return
            if phase == CLOSING:
                return
            if phase == IDLE:  # the next request's first bytes (or a pipelined one's)
                self.gw_phase, self.gw_since, self.gw_left = HEAD, 0.0, max_head
            left = self.gw_left
            if len(data) <= left:
                self.gw_left = left - len(data)
                super().data_received(data)
                return
            super().data_received(data[:left])  # all the head may still take; the rest only if it ended in there
            if self.gw_phase == HEAD:
                self.gw_refuse("max_header_bytes")
            elif self.gw_phase != CLOSING and not self.transport.is_closing() and self.transport.get_protocol() is self:
                self.data_received(data[left:])

        def on_headers_complete(self) -> None:
            if self.gw_phase == CLOSING:  # a request pipelined behind a refused one
                return
            if len(self.headers) > max_headers:
                self.gw_refuse("max_headers")
                return
            self.gw_phase, self.gw_since = BODY, 0.0
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if self.gw_phase != CLOSING:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self.gw_phase != CLOSING:
                self.gw_phase = IDLE
                super().on_message_complete()

        def send_400_response(self, msg: str) -> None:
            if self.gw_phase != CLOSING:
                self.gw_phase = CLOSING
                super().send_400_response(msg)

        def handle_websocket_upgrade(self) -> None:
            self.gw_phase = IDLE  # the websocket protocol owns the connection from here
            self.watch.discard(self)
            super().handle_websocket_upgrade()

        def shutdown(self) -> None:
            if self.gw_phase in (HEAD, CLOSING):
                self.transport.close()
            else:
                super().shutdown()

        def gw_cycle(self) -> Any:
            return self.cycle

    LimitedHttpToolsProtocol.watch = watch
    return LimitedHttpToolsProtocol


def _h11_class(watch: Watch) -> type[asyncio.Protocol]:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    max_head, max_headers = watch.limits.max_header_bytes, watch.limits.max_headers

    class LimitedH11Protocol(_Limited, H11Protocol):
        """uvicorn's h11 protocol with the caps; the phase is read from h11's state after each read."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            app = self.app

            async def counted(scope: Any, receive: Any, send: Any) -> None:  # h11 has no headers-complete hook
                if len(scope["headers"]) > max_headers:
                    self.gw_refuse("max_headers")
                    return
                await app(scope, receive, send)

            self.app = counted

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.gw_admit()

        def connection_lost(self, exc: Exception | None) -> None:
            self.gw_forget()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            phase = self.gw_phase
            if phase == CLOSING:
                return
            if phase == IDLE:
                self.gw_phase, self.gw_since, self.gw_left = HEAD, 0.0, max_head
            left = self.gw_left
            if self.gw_phase != HEAD or len(data) <= left:
                self.gw_left = left - len(data)
                super().data_received(data)
                return
            super().data_received(data[:left])
            if self.gw_phase == HEAD:
                self.gw_refuse("max_header_bytes")
            elif self.gw_phase != CLOSING and not self.transport.is_closing():
                self.data_received(data[left:])

        def handle_events(self) -> None:
            """uvicorn's, then the phase from h11's state: from a read, or a pipelined request after a response."""
            cycle = self.cycle
            super().handle_events()
            if self.gw_phase == CLOSING:
                return
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                if self.gw_phase != BODY or self.cycle is not cycle:
                    self.gw_phase, self.gw_since = BODY, 0.0
            elif state is h11.IDLE:
                if self.cycle is not cycle:  # a whole request was read, and the next one begun
                    self.gw_phase, self.gw_since, self.gw_left = HEAD, 0.0, max_head
            else:
                self.gw_phase = IDLE

        def send_400_response(self, msg: str) -> None:
            if self.gw_phase != CLOSING:
                self.gw_phase = CLOSING
                super().send_400_response(msg)

        def handle_websocket_upgrade(self, event: h11.Request) -> None:
            self.gw_phase = IDLE
            self.watch.discard(self)
            super().handle_websocket_upgrade(event)

        def shutdown(self) -> None:
            if self.gw_phase in (HEAD, CLOSING):
                self.transport.close()
            else:
                super().shutdown()

        def gw_cycle(self) -> Any:
            return self.cycle

    LimitedH11Protocol.watch = watch
    return LimitedH11Protocol


def protocol_class(limits: HttpLimits) -> type[asyncio.Protocol]:
    """The HTTP protocol class for `uvicorn.Config(http=...)`: httptools' where installed (uvicorn's own
    choice), h11's otherwise, each with `limits` enforced."""
    watch = Watch(limits)
    try:
        import httptools  # noqa: F401
    except ImportError:
        return _h11_class(watch)
    return _httptools_class(watch)


def fit_open_files(limits: HttpLimits) -> HttpLimits:
    """`limits` with `max_connections` the process can keep open: the soft open-file limit is raised
    towards the hard one if it must be; if even that is too low, the cap is lowered, with a warning."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to fit
        return limits
    need = limits.max_connections + LINGER_MAX + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return limits
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft >= need:
        return limits
    fitted = max(1, soft - LINGER_MAX - FD_RESERVE)
    log.warning(
        "max_connections %d lowered to %d: the open-file limit is %d (hard %s); raise it (ulimit -n, "
        "systemd LimitNOFILE=) to at least %d to keep the configured cap",
        limits.max_connections, fitted, soft, "unlimited" if hard == resource.RLIM_INFINITY else hard, need,
    )  # fmt: skip
    return replace(limits, max_connections=fitted)


class StreamSlots:
    """The core's open `/sse` streams, against `max_sse_streams`."""

    __slots__ = ()

    def take(self, limit: int) -> bool:
        if COUNTS.sse_streams >= limit:
            return False
        COUNTS.sse_streams += 1
        return True

    def release(self) -> None:
        COUNTS.sse_streams -= 1


SSE_STREAMS = StreamSlots()


async def refuse_stream(send: Callable[[MutableMapping[str, Any]], Awaitable[None]], limit: int) -> None:
    """Over `max_sse_streams`: 503 with Retry-After; `connection: close` has uvicorn close the connection."""
    text = f"{limit} /sse streams open (max_sse_streams); retry later"
    _closed("max_sse_streams", text)
    body = text.encode() + b"\n"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_STREAM).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
