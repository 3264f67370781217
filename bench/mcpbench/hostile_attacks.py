"""The attacks of the hostile-clients phase, each a raw asyncio client that runs until cancelled.

Why raw sockets: an attacker does not behave like a client library. It sends a header a byte
at a time, a header line that never ends, opens streams it never reads, or floods requests
on as many connections as it can; a library would time out, buffer or read for it. Each
attack tallies what the gateway answered (`Counter` of short outcome names) so the report
can show the caps at work. They share one well-behaved client (`Rpc`): initialize, list,
call, DELETE, the way an MCP client on one keep-alive connection does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mcpbench import wire
from mcpbench.http11 import HttpConnection, HttpError
from mcpbench.procs import LOCALHOST
from mcpbench.wire import JSON, RpcError

Tally = Counter[str]
Attack = Callable[[int, "Strength", Tally], Awaitable[None]]

POSTED = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = wire.request(1, "initialize", wire.initialize_params())
SHARED_TOOL = "echo__echo"
PER_CLIENT_TOOL = "pc__echo"
RETRY_PAUSE = 1.0
"""Seconds an attacker waits after a 503 before it reconnects (the gateway's `Retry-After: 1`)."""


@dataclass(frozen=True, slots=True)
class Strength:
    """How hard each attack pushes; the defaults are the strengths the issue measured."""

    session_flooders: int = 10
    per_client_connections: int = 50
    slow_connections: int = 1000
    slow_bodies: int = 1000
    endless_connections: int = 1
    endless_bytes: int = 200 * 1024 * 1024
    sse_streams: int = 500
    flood_connections: int = 600
    trickle_every: float = 1.0


class Rpc:
    """One MCP session over a given keep-alive connection: JSON-RPC posts, the session id kept."""

    def __init__(self, conn: HttpConnection) -> None:
        self.conn = conn
        self.headers = dict(POSTED)
        self.next_id = 0

    async def post(self, body: bytes, request_id: int | None) -> JSON | None:
        response = await self.conn.request("POST", "/mcp", self.headers, body)
        if response.status >= 300:
            raise HttpError(f"HTTP {response.status}: {bytes(response.body[:120])!r}")
        if "mcp-session-id" in response.headers:
            self.headers["mcp-session-id"] = response.headers["mcp-session-id"]
        if request_id is None:
            return None
        for message in wire.messages_in_body(response.headers.get("content-type", ""), response.body):
            if message.get("id") == request_id:
                return message
        raise RpcError(f"no answer to request {request_id}")

    async def call(self, method: str, params: JSON | None = None) -> JSON:
        self.next_id += 1
        message = await self.post(wire.request(self.next_id, method, params), self.next_id)
        assert message is not None
        return wire.result_of(message)

    async def open(self) -> None:
        result = await self.call("initialize", wire.initialize_params())
        self.headers["mcp-protocol-version"] = str(result.get("protocolVersion", wire.PROTOCOL_VERSION))
        await self.post(wire.notification("notifications/initialized"), None)

    async def tool(self, name: str) -> JSON:
        result = await self.call("tools/call", {"name": name, "arguments": {"text": "hello"}})
        error = wire.tool_error(result)
        if error is not None:
            raise RpcError(f"tool error: {error}")
        return result

    async def delete(self) -> None:
        await self.conn.request("DELETE", "/mcp", self.headers)


async def well_behaved_cycle(conn: HttpConnection) -> None:
    """initialize + notifications/initialized + tools/list + tools/call (shared backend) + DELETE."""
    rpc = Rpc(conn)
    await rpc.open()
    tools = await rpc.call("tools/list")
    if SHARED_TOOL not in [t.get("name") for t in tools.get("tools", [])]:
        raise RpcError(f"{SHARED_TOOL} not listed")
    result = await rpc.tool(SHARED_TOOL)
    if result["content"][0]["text"] != "hello":
        raise RpcError(f"wrong echo: {result}")
    await rpc.delete()


def outcome(exc: BaseException) -> str:
    """A short name for a failure, e.g. `HTTP 503`, `-32003`, `ConnectionResetError`."""
    text = str(exc)
    if text.startswith("HTTP "):
        return text.split(":", 1)[0]
    if isinstance(exc, RpcError) and "'code': " in text:
        return text.split("'code': ", 1)[1].split(",", 1)[0]
    return type(exc).__name__


def status_of(data: bytes) -> str:
    """`HTTP 408` from the first bytes of a response, or what they are."""
    if data.startswith(b"HTTP/1.1 "):
        return f"HTTP {data[9:12].decode(errors='replace')}"
    return "closed" if not data else "other"


# ---- the attacks --------------------------------------------------------------------------------------


async def session_flood(port: int, strength: Strength, tally: Tally) -> None:
    """Bare `initialize` requests back to back on `session_flooders` keep-alive connections (shared backend)."""

    async def flooder() -> None:
        conn = HttpConnection(LOCALHOST, port)
        try:
            while True:
                try:
                    response = await conn.request("POST", "/mcp", POSTED, INITIALIZE)
                    tally[f"HTTP {response.status}"] += 1
                except (OSError, HttpError) as exc:
                    tally[outcome(exc)] += 1
                    await asyncio.sleep(0.05)
        finally:
            await conn.aclose()

    await asyncio.gather(*(flooder() for _ in range(strength.session_flooders)))


async def per_client_flood(port: int, strength: Strength, tally: Tally) -> None:
    """On each connection: a new session and one call to the `session: per-client` backend, again and again."""

    async def flooder() -> None:
        conn = HttpConnection(LOCALHOST, port)
        try:
            while True:
                rpc = Rpc(conn)
                try:
                    await rpc.open()
                    await rpc.tool(PER_CLIENT_TOOL)
                    tally["answered"] += 1
                except (OSError, HttpError, RpcError, KeyError) as exc:
                    tally[outcome(exc)] += 1
                    await asyncio.sleep(0.05)
        finally:
            await conn.aclose()

    await asyncio.gather(*(flooder() for _ in range(strength.per_client_connections)))


async def _trickling(port: int, head: bytes, slow: bytes, strength: Strength, tally: Tally) -> None:
    """One connection at a time: `head` at once, then `slow` a byte per `trickle_every`; reopened when closed."""
    await asyncio.sleep(random.random() * strength.trickle_every)
    while True:
        try:
            reader, writer = await asyncio.open_connection(LOCALHOST, port)
        except OSError as exc:
            tally[type(exc).__name__] += 1
            await asyncio.sleep(RETRY_PAUSE)
            continue
        tally["connections"] += 1
        answer = b""
        try:
            writer.write(head)
            for index in range(len(slow)):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(strength.trickle_every):
                        answer = await reader.read(64)
                        break
                writer.write(slow[index : index + 1])
                await writer.drain()
        except OSError as exc:
            answer = answer or type(exc).__name__.encode()
        finally:
            writer.close()
        status = status_of(answer)
        tally[status] += 1
        if status == "HTTP 503":
            await asyncio.sleep(RETRY_PAUSE)


async def slow_headers(port: int, strength: Strength, tally: Tally) -> None:
    """Slowloris: `slow_connections` connections sending a request's headers a byte a second, reopened when closed."""
    head = f"GET /healthz HTTP/1.1\r\nHost: {LOCALHOST}:{port}\r\n".encode()
    slow = b"X-Slow: 1\r\n" * 1000
    await asyncio.gather(*(_trickling(port, head, slow, strength, tally) for _ in range(strength.slow_connections)))


async def slow_body(port: int, strength: Strength, tally: Tally) -> None:
    """`slow_bodies` connections each sending a whole `POST /mcp` head, then its body a byte a second."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": wire.initialize_params()})
    body_bytes = body.encode().ljust(2000)
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {LOCALHOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nContent-Length: {len(body_bytes)}\r\n\r\n"
    ).encode()
    await asyncio.gather(*(_trickling(port, head, body_bytes, strength, tally) for _ in range(strength.slow_bodies)))


async def endless_header(port: int, strength: Strength, tally: Tally) -> None:
    """A header line that never ends: up to `endless_bytes` of it per connection, sent as fast as it goes."""
    chunk = b"a" * 65536

    async def sender() -> None:
        while True:
            reader, writer = await asyncio.open_connection(LOCALHOST, port)
            answer = asyncio.ensure_future(reader.read(64))
            sent = 0
            try:
                writer.write(f"POST /mcp HTTP/1.1\r\nHost: {LOCALHOST}:{port}\r\nX-Endless: ".encode())
                while sent < strength.endless_bytes and not answer.done():
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
                tally[status_of(await answer)] += 1
            except OSError as exc:
                tally[type(exc).__name__] += 1
            finally:
                answer.cancel()
                writer.close()
                tally["bytes sent"] += sent

    await asyncio.gather(*(sender() for _ in range(strength.endless_connections)))


async def unread_sse(port: int, strength: Strength, tally: Tally) -> None:
    """`sse_streams` `GET /sse` requests whose answers are never read (peeked at only, to tell 200 from 503)."""
    loop = asyncio.get_running_loop()
    request = f"GET /sse HTTP/1.1\r\nHost: {LOCALHOST}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()

    async def holder() -> None:
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (LOCALHOST, port))
                await loop.sock_sendall(sock, request)
                while True:  # peek without reading: the stream's bytes stay in the kernel's buffers
                    await asyncio.sleep(1.0)
                    try:
                        first = sock.recv(12, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        continue
                    if first.startswith(b"HTTP/1.1 200"):
                        tally["held"] += 1
                        await asyncio.Event().wait()  # held until the attack ends
                    tally[status_of(first)] += 1
                    break
            except OSError as exc:
                tally[type(exc).__name__] += 1
            finally:
                sock.close()
            await asyncio.sleep(10.0)  # the Retry-After of a refused stream

    await asyncio.gather(*(holder() for _ in range(strength.sse_streams)))


async def connection_flood(port: int, strength: Strength, tally: Tally) -> None:
    """`flood_connections` sessions, one connection each, calling the shared backend's tool back to back."""

    async def caller() -> None:
        conn = HttpConnection(LOCALHOST, port)
        try:
            rpc = Rpc(conn)
            while True:
                try:
                    if "mcp-session-id" not in rpc.headers:
                        await rpc.open()
                    await rpc.tool(SHARED_TOOL)
                    tally["answered"] += 1
                except (OSError, HttpError, RpcError, KeyError) as exc:
                    tally[outcome(exc)] += 1
                    if isinstance(exc, (OSError, HttpError)):
                        rpc = Rpc(conn)
                        await asyncio.sleep(0.05)
        finally:
            await conn.aclose()

    await asyncio.gather(*(caller() for _ in range(strength.flood_connections)))
