"""A minimal HTTP/1.1 client connection over anyio: keep-alive, Content-Length and chunked bodies.

Far lighter than a general HTTP client, so the load generator's own CPU stays small next to
the server under test on a 2-core machine. One request at a time per connection; open one
connection per concurrent session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

_MAX_HEAD = 64 * 1024


class HttpError(Exception):
    """The server broke the protocol or answered with an unexpected status."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpConnection:
    """One keep-alive connection to `host:port`, reopened lazily after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._stream: SocketStream | None = None
        self._reader: BufferedByteReceiveStream | None = None
        self._answered = False

    async def _open(self) -> tuple[SocketStream, BufferedByteReceiveStream]:
        if self._stream is None or self._reader is None:
            self._stream = await anyio.connect_tcp(self.host, self.port)
            self._reader = BufferedByteReceiveStream(self._stream)
        return self._stream, self._reader

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
        self._stream = self._reader = None

    async def _send_head(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> None:
        stream, _ = await self._open()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    async def _read_head(self) -> tuple[int, dict[str, str]]:
        _, reader = await self._open()
        head = (await reader.receive_until(b"\r\n\r\n", _MAX_HEAD)).decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    async def _body_chunks(self, headers: Mapping[str, str]) -> AsyncIterator[bytes]:
        _, reader = await self._open()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await reader.receive_until(b"\r\n", 1024)
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    while await reader.receive_until(b"\r\n", _MAX_HEAD):
                        pass  # trailers, up to the empty line
                    return
                yield await reader.receive_exactly(size)
                await reader.receive_exactly(2)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length:
                yield await reader.receive_exactly(length)
        else:
            raise HttpError("response with neither Content-Length nor chunked encoding")

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        """Send one request and read its whole response.

        A kept-alive connection the server closed while it idled (uvicorn does after 5 s) ends
        before the first byte of the answer: then the request is sent once more on a new one,
        as general HTTP clients do.
        """
        if self._stream is not None:
            try:
                return await self._request(method, path, headers, body)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, ConnectionError) as exc:
                if self._answered:
                    raise HttpError(f"connection lost mid-answer: {type(exc).__name__}") from exc
        return await self._request(method, path, headers, body)

    async def _request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        self._answered = False
        try:
            await self._send_head(method, path, headers, body)
            status, response_headers = await self._read_head()
            self._answered = True
            payload = b"".join([chunk async for chunk in self._body_chunks(response_headers)])
        except BaseException:
            await self.aclose()
            raise
        if response_headers.get("connection", "").lower() == "close":
            await self.aclose()
        return Response(status, response_headers, payload)

    async def stream(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[int, AsyncIterator[bytes]]:
        """Send one request and return its status and an iterator over the body as it arrives."""
        await self._send_head(method, path, headers, b"")
        status, response_headers = await self._read_head()
        return status, self._body_chunks(response_headers)
