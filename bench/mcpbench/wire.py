"""JSON-RPC messages and Server-Sent Events, as bytes: no I/O here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = "2025-11-25"
"""The handshake-era version every target negotiates (mcp-proxy's SDK 1.x knows no newer one)."""

JSON = dict[str, Any]


class RpcError(Exception):
    """The server answered a request with a JSON-RPC error (or an unusable message)."""


def request(request_id: int, method: str, params: JSON | None = None) -> bytes:
    message: JSON = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message, separators=(",", ":")).encode()


def notification(method: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method}, separators=(",", ":")).encode()


def initialize_params() -> JSON:
    return {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "mcpbench", "version": "0"},
    }


def result_of(message: JSON) -> JSON:
    """The `result` of a response, raising on an error response."""
    if "error" in message:
        raise RpcError(f"JSON-RPC error: {message['error']}")
    result = message.get("result")
    if not isinstance(result, dict):
        raise RpcError(f"response without a result object: {str(message)[:200]}")
    return result


def tool_error(result: JSON) -> str | None:
    """The text of a tool result flagged `isError`, None for a successful call."""
    if not result.get("isError"):
        return None
    return str(result.get("content"))[:200]


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str


class SseParser:
    """Incremental text/event-stream parser: feed bytes, get complete events."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes | bytearray) -> list[SseEvent]:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        events: list[SseEvent] = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return events
            block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            event = _parse_block(block.decode())
            if event is not None:
                events.append(event)


def _parse_block(block: str) -> SseEvent | None:
    name = "message"
    data: list[str] = []
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if not any(data):
        return None  # e.g. a priming event that only carries an id
    return SseEvent(name, "\n".join(data))


def messages_in_body(content_type: str, body: bytes | bytearray) -> list[JSON]:
    """The JSON-RPC messages of one HTTP response body, JSON or a finished SSE stream."""
    if content_type.startswith("text/event-stream"):
        return [json.loads(e.data) for e in SseParser().feed(body + b"\n\n") if e.event == "message"]
    if not body:
        return []
    decoded = json.loads(body)
    return decoded if isinstance(decoded, list) else [decoded]
