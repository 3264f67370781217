"""The HTTP fast path (templates/mcpgw_runtime/fastpath.py) against a real gateway and backend.

The backend is the conformance fixture server (stdio, the `mcp` SDK); requests are sent raw over
HTTP so each test controls exactly what the client declares and sees which path answered:
`application/json` with the `mcpgw_fast_path_requests_total` counter moving is the fast path,
`text/event-stream` is the SDK's. What must hold either way: the same answers, byte for byte
in their JSON meaning, and nothing the client could receive is lost.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests import peers

FIXTURE = Path(__file__).parent / "conformance" / "fixture_server.py"
HANDSHAKE = "2025-11-25"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("fastpath")
    config = {
        "mcpServers": {"fx": {"type": "stdio", "command": "python", "args": [str(FIXTURE), "stdio"], "prefix": ""}},
        "gateway": {"name": "fastpath"},
    }
    script = peers.build_gateway(work, config)
    port = peers.free_port()
    command = [sys.executable, str(script), "--port", str(port), "--transport", "http", "--log-level", "warning"]
    with peers.run_process(command, port):
        yield f"http://127.0.0.1:{port}"


class Client:
    """A raw Streamable HTTP client: one session, declared capabilities of the test's choosing."""

    def __init__(self, base: str, capabilities: dict[str, Any] | None = None, version: str = HANDSHAKE) -> None:
        self.base = base
        self.http = httpx2.Client(timeout=30)
        self.version = version
        self.ids = iter(range(1, 1_000_000))
        response = self.post({"method": "initialize", "params": self._init(capabilities or {})}, session=False)
        assert response.status_code == 200, response.text
        self.session = response.headers["mcp-session-id"]
        self.post({"method": "notifications/initialized"}, rid=False)

    def _init(self, capabilities: dict[str, Any]) -> dict[str, Any]:
        return {
            "protocolVersion": self.version,
            "capabilities": capabilities,
            "clientInfo": {"name": "t", "version": "0"},
        }

    def post(self, message: dict[str, Any], *, rid: Any = True, session: bool = True) -> httpx2.Response:
        body = {"jsonrpc": "2.0", **message}
        if rid is True:
            body["id"] = next(self.ids)
        elif rid is not False:
            body["id"] = rid
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        if session:
            headers["mcp-session-id"] = self.session
            headers["mcp-protocol-version"] = self.version
        return self.http.post(f"{self.base}/mcp", content=json.dumps(body), headers=headers)

    def call(
        self, method: str, params: dict[str, Any] | None = None, rid: Any = True
    ) -> tuple[str, list[dict[str, Any]]]:
        """The response's content type and every JSON-RPC message in it (one, or an SSE stream's events)."""
        message: dict[str, Any] = {"method": method}
        if params is not None:
            message["params"] = params
        response = self.post(message, rid=rid)
        assert response.status_code == 200, response.text
        kind = response.headers["content-type"].split(";")[0]
        if kind == "application/json":
            return kind, [response.json()]
        return kind, [json.loads(m) for m in re.findall(r"^data: (.+)$", response.text, re.MULTILINE)]


def raw_request(gateway: str, body: dict[str, Any], session: str, *, extra: str = "", version: str = "1.1") -> bytes:
    """A `POST /mcp` as bytes on the wire, for tests that talk to the socket themselves."""
    host = gateway.removeprefix("http://")
    raw = json.dumps(body).encode()
    return (
        f"POST /mcp HTTP/{version}\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"accept: application/json, text/event-stream\r\nmcp-session-id: {session}\r\n"
        f"mcp-protocol-version: {HANDSHAKE}\r\ncontent-length: {len(raw)}\r\n{extra}\r\n"
    ).encode() + raw


def fast_count(base: str) -> int:
    text = httpx2.get(f"{base}/metrics", timeout=10).text
    found = re.search(r"^mcpgw_fast_path_requests_total (\d+)$", text, re.MULTILINE)
    assert found, text
    return int(found.group(1))


def result_of(messages: list[dict[str, Any]]) -> dict[str, Any]:
    answers = [m for m in messages if "id" in m and "method" not in m]
    assert len(answers) == 1, messages
    return answers[0]


FIDELITY_CALLS = [
    ("tools/list", None),
    ("prompts/list", None),
    ("tools/call", {"name": "test_simple_text", "arguments": {}}),
    ("tools/call", {"name": "test_multiple_content_types", "arguments": {}}),
    ("tools/call", {"name": "test_error_handling", "arguments": {}}),
    ("tools/call", {"name": "slow_echo", "arguments": {"tag": "x", "steps": 1, "delay": 0}}),
    ("tools/call", {"name": "no_such_tool", "arguments": {}}),
]


def test_fast_path_answers_exactly_what_the_sdk_path_answers(gateway: str) -> None:
    """A client without server→client capabilities takes the fast path; one with them, the SDK's: same answers."""
    fast, full = Client(gateway), Client(gateway, {"sampling": {}, "roots": {}})
    for method, params in FIDELITY_CALLS:
        before = fast_count(gateway)
        kind, fast_messages = fast.call(method, params, rid=7)
        # plain JSON, unless the backend logged during the call (slow_echo does): then SSE, as the SDK answers
        assert kind == ("text/event-stream" if params and params["name"] == "slow_echo" else "application/json")
        assert fast_count(gateway) == before + 1
        kind, full_messages = full.call(method, params, rid=7)
        assert kind == "text/event-stream", (method, params)
        assert fast_count(gateway) == before + 1
        notes = [[m["method"] for m in ms if "method" in m] for ms in (fast_messages, full_messages)]
        assert notes[0] == notes[1], (method, params, notes)
        fast_answer, full_answer = result_of(fast_messages), result_of(full_messages)
        if "error" in full_answer:
            assert fast_answer["error"]["code"] == full_answer["error"]["code"]
            assert fast_answer["error"]["message"] == full_answer["error"]["message"]
        else:
            assert fast_answer == full_answer, method


def test_string_ids_and_structured_results_pass_through(gateway: str) -> None:
    client = Client(gateway)
    _, messages = client.call("tools/call", {"name": "slow_echo", "arguments": {"tag": "s", "steps": 1}}, rid="abc")
    answer = result_of(messages)
    assert answer["id"] == "abc"
    assert answer["result"]["structuredContent"] == {"tag": "s", "steps": 1}
    assert answer["result"]["_meta"] == {"echo": "s"}


def test_what_the_fast_path_must_not_take_goes_to_the_sdk(gateway: str) -> None:
    client = Client(gateway)
    before = fast_count(gateway)
    # a progress token: progress needs a stream
    params = {"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "p1"}}
    kind, messages = client.call("tools/call", params)
    assert kind == "text/event-stream"
    progress = [m for m in messages if m.get("method") == "notifications/progress"]
    assert [m["params"]["progress"] for m in progress] == [0, 50, 100]
    assert result_of(messages)["result"]["content"][0]["text"] == "Tool with progress executed successfully"
    # other methods
    kind, _ = client.call("resources/list")
    assert kind == "text/event-stream"
    # a batch is not a single request
    response = client.post({"method": "tools/list"}, rid=False)  # a notification-shaped request: no id
    assert response.status_code in (200, 202, 400)
    # an unknown session is the SDK's 404, never served here
    client.session = "0" * 32
    assert client.post({"method": "tools/list"}).status_code == 404
    assert fast_count(gateway) == before


def test_modern_era_requests_take_the_sdk_path(gateway: str) -> None:
    before = fast_count(gateway)
    http = httpx2.Client(timeout=30)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {}}}
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": "2026-07-28",
    }
    response = http.post(f"{gateway}/mcp", content=json.dumps(body), headers=headers)
    assert fast_count(gateway) == before
    assert response.status_code in (200, 400), response.text


def test_deleted_session_is_not_served(gateway: str) -> None:
    client = Client(gateway)
    kind, _ = client.call("tools/list")
    assert kind == "application/json"
    headers = {"mcp-session-id": client.session, "mcp-protocol-version": HANDSHAKE}
    assert client.http.delete(f"{gateway}/mcp", headers=headers).status_code in (200, 204)
    assert client.post({"method": "tools/list"}).status_code == 404


def test_cancellation_of_a_fast_call_reaches_the_backend(gateway: str) -> None:
    client = Client(gateway)
    answer: dict[str, Any] = {}

    def slow() -> None:
        params = {"name": "slow_echo", "arguments": {"tag": "fast-cancel", "steps": 200, "delay": 0.05}}
        answer["messages"] = client.call("tools/call", params, rid=41)[1]

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(1.0)  # the call is in flight at the backend
    other = Client(gateway)
    canceller = httpx2.Client(timeout=30)
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-session-id": client.session,
        "mcp-protocol-version": HANDSHAKE,
    }
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 41, "reason": "test"}}
    assert canceller.post(f"{gateway}/mcp", content=json.dumps(note), headers=headers).status_code == 202
    thread.join(timeout=20)
    assert not thread.is_alive(), "the cancelled call never ended"
    assert "error" in result_of(answer["messages"])
    deadline = time.monotonic() + 10
    while True:
        _, messages = other.call("tools/call", {"name": "cancelled_tags", "arguments": {}})
        if "fast-cancel" in result_of(messages)["result"]["structuredContent"]["tags"]:
            break
        assert time.monotonic() < deadline, "the backend never saw the cancellation"
        time.sleep(0.2)


def test_client_disconnect_cancels_the_backend_call(gateway: str) -> None:
    client = Client(gateway)
    body = {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "tools/call",
        "params": {"name": "slow_echo", "arguments": {"tag": "fast-gone", "steps": 200, "delay": 0.05}},
    }
    host, port = gateway.removeprefix("http://").split(":")
    request = raw_request(gateway, body, client.session)
    code = (
        "import socket, sys, time\n"
        f"s = socket.create_connection(({host!r}, {port}))\n"
        "s.sendall(sys.stdin.buffer.read())\n"
        "time.sleep(1.0)\n"
        "s.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], input=request, timeout=30, check=True)
    deadline = time.monotonic() + 10
    while True:
        _, messages = client.call("tools/call", {"name": "cancelled_tags", "arguments": {}})
        if "fast-gone" in result_of(messages)["result"]["structuredContent"]["tags"]:
            break
        assert time.monotonic() < deadline, "the backend never saw the cancellation"
        time.sleep(0.2)


def test_backend_logs_during_a_fast_call_reach_that_client(gateway: str) -> None:
    """The answer turns into an SSE stream when the backend logs first, as the SDK's would; others hear nothing."""
    client, bystander = Client(gateway), Client(gateway)
    bystander.call("logging/setLevel", {"level": "debug"})
    before = fast_count(gateway)
    kind, messages = client.call("tools/call", {"name": "test_tool_with_logging", "arguments": {}})
    assert fast_count(gateway) == before + 1
    assert kind == "text/event-stream"
    logs = [m["params"]["data"] for m in messages if m.get("method") == "notifications/message"]
    assert logs == ["Tool execution started", "Tool processing data", "Tool execution completed"]
    assert result_of(messages)["result"]["content"][0]["text"] == "Tool with logging executed successfully"
    # a client that asked for errors only hears none of them, and its call still takes the fast path
    quiet = Client(gateway)
    quiet.call("logging/setLevel", {"level": "error"})
    kind, messages = quiet.call("tools/call", {"name": "test_tool_with_logging", "arguments": {}})
    assert kind == "application/json"
    assert [m for m in messages if m.get("method")] == []


def test_fast_origin_has_every_member_the_relay_reads() -> None:
    """FastOrigin stands in for relay.Origin: a member added there must be added here, or this fails."""
    from mcpgw_runtime.fastpath import FastOrigin
    from mcpgw_runtime.relay import Origin

    wanted = {name for name in dir(Origin) if not name.startswith("_")} | set(Origin.__dataclass_fields__)
    missing = {name for name in wanted if not hasattr(FastOrigin, name) and name not in FastOrigin.__slots__}
    assert not missing, f"FastOrigin lacks {sorted(missing)}"
