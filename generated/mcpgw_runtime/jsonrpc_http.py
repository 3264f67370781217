# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""ASGI and JSON-RPC plumbing of the requests the gateway answers without the SDK.

Why apart: the front (front.py), the requests it relays (relays.py) and the core's
HTTP fast path (fastpath.py) all read bodies, parse JSON-RPC and answer with
plain JSON or a one-answer SSE stream, and must do it byte for byte alike. Only
pydantic_core is used, so nothing here waits for the SDK.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pydantic_core

from mcpgw_runtime.heap import LARGE_MESSAGE, keep_freed_memory
from mcpgw_runtime.spec import JSON

SESSION_HEADER = b"mcp-session-id"

AsgiScope = MutableMapping[str, Any]
AsgiMessage = MutableMapping[str, Any]
AsgiReceive = Callable[[], Awaitable[AsgiMessage]]
AsgiSend = Callable[[AsgiMessage], Awaitable[None]]
AsgiApp = Callable[[AsgiScope, AsgiReceive, AsgiSend], Awaitable[None]]
"""ASGI's shapes, spelled out: starlette is not imported before the core."""

SPLIT_BYTES = 64 * 1024
"""An answer's tail this large is sent as a write of its own rather than copied into one body."""


class Reply:
    """One fast-path answer: a plain JSON response, unless something for the request must go first.

    A backend may log (or otherwise notify) during a call; the relay (or, with
    `--lazy-core`, the front's own screen of the backend's pipe) hands such a
    message to `notify`, which turns the response into an SSE stream (the headers
    are not sent before the answer is known, so the choice is still open), exactly
    as the SDK's transport would have answered. The answer then ends the stream.
    """

    def __init__(self, send: AsgiSend, sid: bytes) -> None:
        self._send = send
        self._sid = sid
        self._streaming = False
        self._done = False
        self._lock = asyncio.Lock()

    @property
    def session(self) -> bytes:
        """The client's session id (empty: a request of no session, `--stateless`)."""
        return self._sid

    def _headers(self, kind: bytes) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", kind)]
        if self._sid:
            headers.append((SESSION_HEADER, self._sid))
        return headers

    async def notify(self, method: str, params: Any) -> None:
        async with self._lock:
            if self._done:
                return  # the answer is out: too late for this request, as on the SDK's stream
            if not self._streaming:
                self._streaming = True
                headers = [*self._headers(b"text/event-stream"), (b"cache-control", b"no-cache")]
                await self._send({"type": "http.response.start", "status": 200, "headers": headers})
            await self._send(
                {"type": "http.response.body", "body": sse_event(notification(method, params)), "more_body": True}
            )

    async def finish(self, body: bytes, tail: bytes | memoryview = b"") -> None:
        """Send the answer: `body`, then `tail` (a large tail goes out as its own write, uncopied)."""
        async with self._lock:
            self._done = True
            if self._streaming:
                await self._send({"type": "http.response.body", "body": sse_event(b"".join((body, tail)))})
                return
            size = len(body) + len(tail)
            headers = [*self._headers(b"application/json"), (b"content-length", b"%d" % size)]
            await self._send({"type": "http.response.start", "status": 200, "headers": headers})
            if len(tail) < SPLIT_BYTES:
                await self._send({"type": "http.response.body", "body": b"".join((body, tail)) if tail else body})
                return
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
            await self._send({"type": "http.response.body", "body": tail})


def sse_event(data: bytes) -> bytes:
    """One JSON-RPC message as the SDK's transport frames it (sse_starlette: `event: message`, no id
    without an event store, CRLF)."""
    return b"event: message\r\ndata: " + data + b"\r\n\r\n"


def notification(method: str, params: Any) -> bytes:
    """A notification's JSON as the SDK puts it on the wire (`params` left out when there are none)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return pydantic_core.to_json(message)


def id_key(value: object) -> object:
    """JSON-RPC ids compare by type and value: 1 and "1" are different requests."""
    return (type(value).__name__, value)


async def disconnected(receive: AsgiReceive) -> bool:
    """True once the client goes away before the answer (uvicorn says so through `receive`)."""
    message = await receive()
    return bool(message["type"] == "http.disconnect")


async def gone(receive: AsgiReceive) -> None:
    """Returns once the client has gone; a request without a body (a GET) has nothing else to say."""
    while (await receive())["type"] != "http.disconnect":
        pass


def request_id(body: bytes | None) -> object:
    """The id of the JSON-RPC request in `body`, or None (no body, a notification, a batch, not JSON)."""
    message = parse_json(body) if body is not None else None
    rid = message.get("id") if isinstance(message, dict) and "method" in message else None
    return rid if is_request_id(rid) else None


def error_answer(rid: object, error: JSON) -> bytes:
    return pydantic_core.to_json({"jsonrpc": "2.0", "id": rid, "error": error})


def is_request_id(value: object) -> bool:
    return type(value) is str or type(value) is int


def parse_json(body: bytes) -> Any:
    try:
        return pydantic_core.from_json(body)
    except ValueError:
        return None


def result_body(rid: object, result: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":%b,"result":%b}' % (pydantic_core.to_json(rid), result)


async def respond(
    send: AsgiSend,
    status: int,
    body: bytes,
    content_type: bytes | None,
    *,
    session: bytes | None = None,
) -> None:
    headers = [(b"content-length", b"%d" % len(body))]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    if session is not None:
        headers.append((SESSION_HEADER, session))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: AsgiReceive, limit: int) -> tuple[bytes, bool]:
    """The request body, or what was read of it when it grew past `limit` (then False)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            if size >= LARGE_MESSAGE:
                keep_freed_memory()
            return chunks[0] if len(chunks) == 1 else b"".join(chunks), True


def replay_body(body: bytes, receive: AsgiReceive) -> AsgiReceive:
    """A `receive` that first gives back the body already read, then the client's own."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> AsgiMessage:
        if pending:
            return pending.pop()
        return await receive()

    return replay
