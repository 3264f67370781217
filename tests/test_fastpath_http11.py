"""The HTTP fast path (templates/mcpgw_runtime/fastpath.py) under raw HTTP/1.1.

The fast path reads a `POST /mcp` body itself and answers without the SDK. What HTTP/1.1
allows a client to do around that must still work as uvicorn alone would do it: pipelined
requests answered in order, a body bigger than uvicorn's read buffer, `Expect: 100-continue`,
`Connection: close`, HTTP/1.0. The requests are written to a socket byte for byte so that
no client library between the test and the gateway smooths them over.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import httptools  # type: ignore[import-untyped]
import pytest

from tests.test_fastpath import Client, fast_count, gateway
from tests.test_fastpath import raw_request as request

__all__ = ["gateway"]  # the module-scoped gateway fixture, shared with test_fastpath.py


class Responses:
    """Parses the HTTP/1.1 responses arriving on one socket, in order."""

    def __init__(self) -> None:
        self.done: list[dict[str, Any]] = []
        self._current: dict[str, Any] = {}
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self._current = {"headers": {}, "body": b""}

    def on_status(self, status: bytes) -> None:
        self._current["status"] = self.parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current["headers"][name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._current["body"] += body

    def on_message_complete(self) -> None:
        self.done.append(self._current)


def exchange(
    gateway: str, data: bytes, count: int, *, pause_after: bytes | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Send `data`, read `count` responses; also whether the server then closed the connection."""
    host, port = gateway.removeprefix("http://").split(":")
    responses = Responses()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        if pause_after is not None:  # the headers first; the body only once the server asked for it
            head, _, rest = data.partition(pause_after)
            sock.sendall(head + pause_after)
            interim = sock.recv(65536)
            assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
            data = rest
        sock.sendall(data)
        while len(responses.done) < count:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(responses.done)} of {count} responses"
            responses.parser.feed_data(chunk)
        sock.settimeout(0.5)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    return responses.done, closed


def echo(tag: str, rid: int) -> dict[str, Any]:
    arguments = {"tag": tag, "steps": 0, "delay": 0}
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {"name": "slow_echo", "arguments": arguments},
    }


def tag_of(response: dict[str, Any]) -> tuple[int, str]:
    assert response["status"] == 200, response
    answer = json.loads(response["body"])
    return answer["id"], answer["result"]["structuredContent"]["tag"]


def test_pipelined_requests_are_answered_in_order(gateway: str) -> None:
    client = Client(gateway)
    before = fast_count(gateway)
    data = b"".join(request(gateway, echo(f"p{i}", 100 + i), client.session) for i in range(5))
    responses, closed = exchange(gateway, data, 5)
    assert [tag_of(r) for r in responses] == [(100 + i, f"p{i}") for i in range(5)]
    assert not closed
    assert fast_count(gateway) - before >= 5


def test_a_request_with_a_body_past_the_read_buffer_is_answered(gateway: str) -> None:
    client = Client(gateway)
    big = "b" * 200_000  # past uvicorn's 64 KiB read buffer: the body arrives in several chunks
    responses, _ = exchange(gateway, request(gateway, echo(big, 7), client.session), 1)
    assert tag_of(responses[0]) == (7, big)


def test_expect_100_continue_is_honoured(gateway: str) -> None:
    client = Client(gateway)
    data = request(gateway, echo("cont", 8), client.session, extra="expect: 100-continue\r\n")
    responses, _ = exchange(gateway, data, 1, pause_after=b"\r\n\r\n")
    assert tag_of(responses[0]) == (8, "cont")


@pytest.mark.parametrize(("extra", "version"), [("connection: close\r\n", "1.1"), ("", "1.0")])
def test_connection_close_and_http_1_0_close_after_the_answer(gateway: str, extra: str, version: str) -> None:
    client = Client(gateway)
    responses, closed = exchange(
        gateway, request(gateway, echo("bye", 9), client.session, extra=extra, version=version), 1
    )
    assert tag_of(responses[0]) == (9, "bye")
    assert responses[0]["headers"]["content-type"] == "application/json"
    assert closed


def test_answers_carry_uvicorn_s_headers_and_the_session(gateway: str) -> None:
    client = Client(gateway)
    responses, _ = exchange(gateway, request(gateway, echo("h", 10), client.session), 1)
    headers = responses[0]["headers"]
    assert headers["mcp-session-id"] == client.session
    assert headers["content-length"] == str(len(responses[0]["body"]))
    assert "date" in headers and "server" in headers
