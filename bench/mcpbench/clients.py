"""Raw MCP client sessions: just enough JSON-RPC to initialize, list and call, over three transports.

They build messages by hand and parse results with `json`, never validate models, and never
open a second connection per call: the load generator should cost far less than what it measures.
`open_session(endpoint, "sdk")` opens the `mcp` SDK's own client instead (`sdkclient.py`).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from mcpbench import wire
from mcpbench.http11 import HttpConnection, HttpError
from mcpbench.wire import JSON, RpcError

Driver = Literal["raw", "sdk"]
"""Which client drives a session: the raw one here, or the `mcp` SDK's own (`sdkclient.py`)."""
DRIVERS: tuple[Driver, ...] = ("raw", "sdk")

_MAX_LINE = 64 * 1024 * 1024
CALL_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a session connects: a stdio command it spawns, or an HTTP URL."""

    kind: Literal["stdio", "http", "sse"]
    url: str = ""
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # sent with every HTTP request (e.g. Authorization)


class Session(Protocol):
    async def call(self, method: str, params: JSON | None = None) -> JSON: ...


class _Ids:
    def __init__(self) -> None:
        self._next = 0

    def next(self) -> int:
        self._next += 1
        return self._next


class StdioSession:
    """Newline-delimited JSON-RPC over a child process's pipes."""

    def __init__(self, process: anyio.abc.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self._ids = _Ids()

    async def call(self, method: str, params: JSON | None = None) -> JSON:
        request_id = self._ids.next()
        await self._stdin.send(wire.request(request_id, method, params) + b"\n")
        while True:
            line = await self._stdout.receive_until(b"\n", _MAX_LINE)
            message = json.loads(line)
            if message.get("id") == request_id:
                return wire.result_of(message)

    async def notify(self, method: str) -> None:
        await self._stdin.send(wire.notification(method) + b"\n")


class HttpSession:
    """Streamable HTTP: one keep-alive connection, JSON or single-event SSE responses."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.path = parts.path or "/"
        self.conn = HttpConnection(parts.hostname or "127.0.0.1", parts.port or 80)
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **(headers or {}),
        }
        self._ids = _Ids()

    async def _post(self, body: bytes, request_id: int | None) -> JSON | None:
        response = await self.conn.request("POST", self.path, self._headers, body)
        if response.status >= 300:
            raise HttpError(f"HTTP {response.status} from {self.path}: {response.body[:200]!r}")
        if "mcp-session-id" in response.headers:
            self._headers["mcp-session-id"] = response.headers["mcp-session-id"]
        if request_id is None:
            return None
        for message in wire.messages_in_body(response.headers.get("content-type", ""), response.body):
            if message.get("id") == request_id:
                return wire.result_of(message)
        raise RpcError(f"no response to request {request_id} in HTTP {response.status} body")

    async def call(self, method: str, params: JSON | None = None) -> JSON:
        request_id = self._ids.next()
        result = await self._post(wire.request(request_id, method, params), request_id)
        assert result is not None
        return result

    async def notify(self, method: str) -> None:
        await self._post(wire.notification(method), None)

    def negotiated(self, version: str) -> None:
        self._headers["mcp-protocol-version"] = version


class SseSession:
    """Legacy HTTP+SSE: answers arrive on a GET stream, requests go by POST to the announced endpoint."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
        self.stream_conn = HttpConnection(self.host, self.port)
        self.post_conn = HttpConnection(self.host, self.port)
        self.post_path = ""
        self._ids = _Ids()
        self._waiting: dict[int, tuple[anyio.Event, list[JSON]]] = {}
        self._endpoint = anyio.Event()

    async def connect(self) -> AsyncIterator[bytes | bytearray]:
        """Open the GET stream; its body is then read by `pump`."""
        status, chunks = await self.stream_conn.stream("GET", self.path, {"Accept": "text/event-stream"})
        if status != 200:
            raise HttpError(f"HTTP {status} from GET {self.path}")
        return chunks

    async def pump(self, chunks: AsyncIterator[bytes | bytearray]) -> None:
        """Route the stream's events: the endpoint announcement, then answers to their waiting callers."""
        parser = wire.SseParser()
        async for chunk in chunks:
            for event in parser.feed(chunk):
                if event.event == "endpoint":
                    self.post_path = event.data if event.data.startswith("/") else urlsplit(event.data).path
                    if "?" in event.data and "?" not in self.post_path:
                        self.post_path += "?" + event.data.split("?", 1)[1]
                    self._endpoint.set()
                elif event.event == "message":
                    message = json.loads(event.data)
                    waiter = self._waiting.pop(message.get("id"), None)
                    if waiter is not None:
                        waiter[1].append(message)
                        waiter[0].set()

    async def _post(self, body: bytes) -> None:
        await self._endpoint.wait()
        response = await self.post_conn.request("POST", self.post_path, {"Content-Type": "application/json"}, body)
        if response.status >= 300:
            raise HttpError(f"HTTP {response.status} from POST {self.post_path}")

    async def call(self, method: str, params: JSON | None = None) -> JSON:
        request_id = self._ids.next()
        done, slot = anyio.Event(), list[JSON]()
        self._waiting[request_id] = (done, slot)
        await self._post(wire.request(request_id, method, params))
        with anyio.fail_after(CALL_TIMEOUT):  # the stream may end without the answer
            await done.wait()
        return wire.result_of(slot[0])

    async def notify(self, method: str) -> None:
        await self._post(wire.notification(method))


async def _handshake(session: StdioSession | HttpSession | SseSession) -> str:
    result = await session.call("initialize", wire.initialize_params())
    version = str(result.get("protocolVersion", wire.PROTOCOL_VERSION))
    if isinstance(session, HttpSession):
        session.negotiated(version)
    await session.notify("notifications/initialized")
    return version


@contextlib.asynccontextmanager
async def open_session(endpoint: Endpoint, driver: Driver = "raw") -> AsyncIterator[Session]:
    """An initialized session; for stdio the server process lives exactly as long as the session."""
    if driver == "sdk":
        from mcpbench.sdkclient import open_sdk_session  # the SDK is imported only when it drives

        async with open_sdk_session(endpoint) as sdk:
            yield sdk
    elif endpoint.kind == "stdio":
        process = await anyio.open_process(
            list(endpoint.command), env=dict(endpoint.env) or None, cwd=endpoint.cwd, stderr=subprocess.DEVNULL
        )
        try:
            stdio = StdioSession(process)
            await _handshake(stdio)
            yield stdio
        finally:
            with anyio.CancelScope(shield=True):
                await _stop_child(process)
    elif endpoint.kind == "http":
        http = HttpSession(endpoint.url, endpoint.headers)
        try:
            await _handshake(http)
            yield http
        finally:
            with anyio.CancelScope(shield=True):
                await http.conn.aclose()
    else:
        sse = SseSession(endpoint.url)
        try:
            chunks = await sse.connect()  # outside the task group: a refused connection stays a plain OSError
            async with anyio.create_task_group() as tg:
                tg.start_soon(sse.pump, chunks)
                await _handshake(sse)
                yield sse
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await sse.stream_conn.aclose()
                await sse.post_conn.aclose()


async def _stop_child(process: anyio.abc.Process) -> None:
    if process.stdin is not None:
        await process.stdin.aclose()
    with anyio.move_on_after(2):
        await process.wait()
        return
    process.kill()
    await process.wait()


async def call_tool(session: Session, name: str, arguments: JSON) -> JSON:
    """`tools/call`, raising when the tool reports an error."""
    result = await session.call("tools/call", {"name": name, "arguments": arguments})
    error = wire.tool_error(result)
    if error is not None:
        raise RpcError(f"tool {name} failed: {error}")
    return result


async def list_tools(session: Session) -> list[JSON]:
    """Every tool, following `nextCursor`."""
    tools: list[JSON] = []
    cursor: str | None = None
    while True:
        page = await session.call("tools/list", {"cursor": cursor} if cursor else None)
        tools += page.get("tools") or []
        cursor = page.get("nextCursor")
        if not cursor:
            return tools
