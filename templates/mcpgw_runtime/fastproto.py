"""The fast path one layer down: uvicorn's HTTP protocol offers a complete `POST /mcp` to `FastPath` first.

Why: through ASGI, every request costs uvicorn a request cycle, a task running
the app, an event per body chunk, a task watching for the disconnect, and two
socket writes for the answer (status line and headers, then the body); on a
forwarded call that is a third of the gateway's CPU (bench/results/profile-calls.txt).
Here a `POST /mcp` waits in the protocol until its body is complete; if
`FastPath.take` accepts it, one task answers it and the whole response leaves
in one write; a dropped connection cancels that task (and with it the backend
call). Anything else (another path or method, `Expect: 100-continue`, a body
past uvicorn's read buffer, a request `take` declines) starts the ordinary ASGI
task with the body already buffered, so the app sees exactly what it would have.

This leans on uvicorn's `HttpToolsProtocol` internals, pinned by the generated
requirements.txt; when they are not there (another uvicorn, no httptools), the
ASGI-level `FastPath` serves alone and nothing changes but speed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import Message

from mcpgw_runtime.fastpath import FastPath

log = logging.getLogger("mcpgw")

_SESSION_HEADER = b"mcp-session-id"


def fast_protocol(fast: FastPath) -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol with `fast` in front of its ASGI tasks, or None where that cannot be had."""
    try:
        from uvicorn.protocols.http import httptools_impl as impl
    except ImportError:
        return None
    base = getattr(impl, "HttpToolsProtocol", None)
    status_line = getattr(impl, "STATUS_LINE", None)
    high_water = getattr(impl, "HIGH_WATER_LIMIT", None)
    cycle_type = getattr(impl, "RequestResponseCycle", None)
    expected = ("_start_asgi_task", "on_body", "on_message_complete", "connection_lost")
    if (
        base is None
        or cycle_type is None
        or not isinstance(status_line, dict)
        or not isinstance(high_water, int)
        or not all(hasattr(base, name) for name in expected)
    ):
        log.debug("uvicorn's httptools protocol is not the one fastproto.py knows; ASGI fast path only")
        return None
    ok_line: bytes = status_line[200]
    body_limit: int = high_water

    class FastHttpToolsProtocol(base):  # type: ignore[misc,valid-type]
        """One per connection; at most one request of it is answered at a time (HTTP/1.1 has no multiplexing)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deferred: tuple[Any, Any] | None = None
            self._answering: asyncio.Task[None] | None = None

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            scope = cycle.scope
            if scope["method"] != "POST" or scope["path"] != "/mcp" or cycle.waiting_for_100_continue:
                super()._start_asgi_task(cycle, app)
            elif cycle.more_body:
                self._deferred = (cycle, app)  # until the body is complete (or too big to wait for)
            else:
                self._dispatch(cycle, app)  # a pipelined request whose body came in while it queued

        def on_body(self, body: bytes) -> None:
            super().on_body(body)
            deferred = self._deferred
            if deferred is not None and deferred[0] is self.cycle and len(self.cycle.body) > body_limit:
                self._deferred = None  # uvicorn stopped reading; only the app's `receive` resumes it
                super()._start_asgi_task(*deferred)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            deferred = self._deferred
            if deferred is not None and deferred[0] is self.cycle:
                self._deferred = None
                self._dispatch(*deferred)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            self._deferred = None
            if self._answering is not None:
                self._answering.cancel()  # the client left: stop the backend call too

        def _dispatch(self, cycle: Any, app: Any) -> None:
            headers = dict(cycle.scope["headers"])
            message = fast.take(headers, bytes(cycle.body))
            if message is None:
                super()._start_asgi_task(cycle, app)
                return
            cycle.body = bytearray()
            cycle.more_body = False
            task = self.loop.create_task(self._answer(cycle, message, headers.get(_SESSION_HEADER) or b""))
            self._answering = task
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

        async def _answer(self, cycle: Any, message: dict[str, Any], sid: bytes) -> None:
            try:
                await fast.answer(message, sid, _OneWrite(cycle, ok_line).send)
            except asyncio.CancelledError:
                if not cycle.disconnected:
                    raise  # the server is stopping, not the client
            except Exception:
                log.exception("fast path: answering %s failed", message.get("method"))
                cycle.transport.close()
            finally:
                self._answering = None

    return FastHttpToolsProtocol


class _OneWrite:
    """The ASGI `send` of one fast-path answer: a plain JSON answer leaves in a single socket write.

    A streamed answer (no content-length: an SSE stream opened by a backend's log
    entry) goes through uvicorn's own `send` for its chunked framing.
    """

    __slots__ = ("_cycle", "_head", "_ok_line")

    def __init__(self, cycle: Any, ok_line: bytes) -> None:
        self._cycle = cycle
        self._ok_line = ok_line
        self._head: bytes | None = None

    async def send(self, message: Message) -> None:
        cycle = self._cycle
        if cycle.disconnected:
            return
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            if message["status"] == 200 and any(name == b"content-length" for name, _ in headers):
                lines = [self._ok_line]
                for name, value in (*cycle.default_headers, *headers):
                    lines += (name, b": ", value, b"\r\n")
                if not cycle.keep_alive:
                    lines.append(b"connection: close\r\n")
                lines.append(b"\r\n")
                self._head = b"".join(lines)
                return
        elif self._head is not None and not message.get("more_body", False):
            body: bytes = message.get("body", b"")
            if cycle.flow.write_paused:
                await cycle.flow.drain()
            cycle.transport.write(self._head + body)
            self._head = None
            cycle.response_started = cycle.response_complete = True
            cycle.message_event.set()
            if cycle.access_log:
                cycle.access_logger.info('%s - "POST /mcp HTTP/%s" 200', _client(cycle), cycle.scope["http_version"])
            if not cycle.keep_alive:
                cycle.transport.close()
            cycle.on_response()
            return
        await cycle.send(message)


def _client(cycle: Any) -> str:
    client = cycle.scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"
