"""A minimal HTTP/1.1 client connection on asyncio's socket API: keep-alive, Content-Length and chunked bodies.

Far lighter than a general HTTP client, so the load generator's own CPU stays small next to
the server under test on a 2-core machine. One request at a time per connection; open one
connection per concurrent session.

Why raw sockets rather than anyio's buffered streams: a body with a Content-Length is read
straight into one buffer of its size (`recv_into`). Through anyio's streams, every read was
copied into a growing buffer and out again, which cost the client about 1 ms of its own
per 512 KB answer, after the last byte had arrived. A stdio client pays its copies while the
backend still writes, so that cost fell on the HTTP targets alone (bench/README.md).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

_MAX_HEAD = 64 * 1024
_READ_BYTES = 64 * 1024


class HttpError(Exception):
    """The server broke the protocol or answered with an unexpected status."""


class ConnectionEnded(ConnectionError):
    """The server closed the connection before the answer was complete."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes | bytearray


class HttpConnection:
    """One keep-alive connection to `host:port`, reopened lazily after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._buffer = bytearray()  # bytes read past what was asked for so far
        self._answered = False

    async def _open(self) -> socket.socket:
        if self._sock is None:
            infos = await asyncio.get_running_loop().getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await asyncio.get_running_loop().sock_connect(sock, address)
            except BaseException:
                sock.close()
                raise
            self._sock, self._buffer = sock, bytearray()
        return self._sock

    async def aclose(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._buffer = None, bytearray()

    async def _fill(self) -> None:
        """Read what the socket has (at least one byte) into the buffer."""
        data = await asyncio.get_running_loop().sock_recv(await self._open(), _READ_BYTES)
        if not data:
            raise ConnectionEnded("the server closed the connection")
        self._buffer += data

    async def _until(self, delimiter: bytes, limit: int) -> bytes:
        """The bytes up to `delimiter` (consumed, not returned)."""
        start = 0
        while (index := self._buffer.find(delimiter, start)) < 0:
            if len(self._buffer) > limit:
                raise HttpError(f"no {delimiter!r} within {limit} bytes")
            start = max(0, len(self._buffer) - len(delimiter) + 1)
            await self._fill()
        found = bytes(self._buffer[:index])
        del self._buffer[: index + len(delimiter)]
        return found

    async def _exactly(self, size: int) -> bytes | bytearray:
        """`size` bytes: what is buffered, then straight from the socket into one new buffer (returned as it is)."""
        if len(self._buffer) >= size:
            found = bytes(self._buffer[:size])
            del self._buffer[:size]
            return found
        body = bytearray(size)
        view = memoryview(body)
        got = len(self._buffer)
        view[:got] = self._buffer
        self._buffer.clear()
        sock, loop = await self._open(), asyncio.get_running_loop()
        while got < size:
            count = await loop.sock_recv_into(sock, view[got:])
            if not count:
                raise ConnectionEnded(f"the server closed the connection {size - got} bytes before the body's end")
            got += count
        view.release()
        return body

    async def _send_head(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> None:
        sock = await self._open()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        await asyncio.get_running_loop().sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    async def _read_head(self) -> tuple[int, dict[str, str]]:
        head = (await self._until(b"\r\n\r\n", _MAX_HEAD)).decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    async def _body_chunks(self, headers: Mapping[str, str]) -> AsyncIterator[bytes | bytearray]:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await self._until(b"\r\n", 1024)
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    while await self._until(b"\r\n", _MAX_HEAD):
                        pass  # trailers, up to the empty line
                    return
                yield await self._exactly(size)
                await self._exactly(2)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length:
                yield await self._exactly(length)
        else:
            raise HttpError("response with neither Content-Length nor chunked encoding")

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        """Send one request and read its whole response.

        A kept-alive connection the server closed while it idled (uvicorn does after 5 s) ends
        before the first byte of the answer: then the request is sent once more on a new one,
        as general HTTP clients do.
        """
        if self._sock is not None:
            try:
                return await self._request(method, path, headers, body)
            except ConnectionError as exc:
                if self._answered:
                    raise HttpError(f"connection lost mid-answer: {type(exc).__name__}") from exc
        return await self._request(method, path, headers, body)

    async def _request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        self._answered = False
        try:
            await self._send_head(method, path, headers, body)
            status, response_headers = await self._read_head()
            self._answered = True
            chunks = [chunk async for chunk in self._body_chunks(response_headers)]
            payload = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except BaseException:
            await self.aclose()
            raise
        if response_headers.get("connection", "").lower() == "close":
            await self.aclose()
        return Response(status, response_headers, payload)

    async def stream(
        self, method: str, path: str, headers: Mapping[str, str]
    ) -> tuple[int, AsyncIterator[bytes | bytearray]]:
        """Send one request and return its status and an iterator over the body as it arrives."""
        await self._send_head(method, path, headers, b"")
        status, response_headers = await self._read_head()
        return status, self._body_chunks(response_headers)
