"""The hot path below uvicorn (templates/mcpgw_runtime/hotpath.py): the same answers as uvicorn's path.

A request sent whole in one write is the hot path's to take; the same request with its
head and its body in two writes (a pause between them) reaches the protocol in two reads,
and the hot path leaves it to uvicorn and the ASGI front. Both must answer with the same
bytes (the `date` header aside), for answers, errors, an answer that became an SSE stream
because the backend logged during the call, refusals, pipelined requests mixing both
paths, and they must count alike in `/metrics`.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests import peers
from tests.test_fastpath import FIXTURE, Client
from tests.test_fastpath import raw_request as request
from tests.test_fastpath_http11 import Responses

TOKEN = "hot-path-token-1234567890"
SLOW = 0.2
"""Seconds between a head and its body that leave the request to uvicorn (past hotpath.HOLD)."""


def _serve(work: Path) -> Iterator[str]:
    config = {
        "mcpServers": {"fx": {"type": "stdio", "command": "python", "args": [str(FIXTURE), "stdio"], "prefix": ""}},
        "gateway": {"name": "hotpath", "profiles": {"small": {"tools": {"include": ["slow_echo"]}}}},
    }
    script = peers.build_gateway(work, config)
    port = peers.free_port()
    command = [sys.executable, str(script), "--port", str(port), "--transport", "http", "--log-level", "warning"]
    with peers.run_process(command, port, env={"MCPGW_TOKEN": TOKEN}):
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the front serves calls itself once its backend is ready
            health = httpx2.get(f"{base}/healthz", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10)
            if health.json()["status"] == "ok":
                break
            time.sleep(0.1)
        yield base


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One gateway for the module; nothing here asks it for `/metrics`, which would load the core."""
    yield from _serve(tmp_path_factory.mktemp("hotpath"))


class TokenClient(Client):
    """The fast path's raw client, with the gateway's token on every request."""

    def post(self, message: dict[str, Any], *, rid: Any = True, session: bool = True) -> httpx2.Response:
        self.http.headers["authorization"] = f"Bearer {TOKEN}"
        return super().post(message, rid=rid, session=session)


def raw(gateway: str, body: dict[str, Any], session: str, *, path: str = "/mcp", token: str = TOKEN) -> bytes:
    data = request(gateway, body, session, extra=f"authorization: Bearer {token}\r\n")
    return data.replace(b"POST /mcp ", f"POST {path} ".encode(), 1)


def answers(gateway: str, data: bytes, count: int, *, split: float | None = None) -> list[dict[str, Any]]:
    """Send `data` (whole, or its head, `split` seconds' pause, its body) and read `count` responses."""
    host, port = gateway.removeprefix("http://").split(":")
    responses = Responses()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        if split is not None:  # 0.2 s: uvicorn's parser has the head before the body (hotpath.HOLD is 0.05 s)
            head, _, body = data.partition(b"\r\n\r\n")
            sock.sendall(head + b"\r\n\r\n")
            time.sleep(split)
            sock.sendall(body)
        else:
            sock.sendall(data)
        while len(responses.done) < count:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(responses.done)} of {count} responses"
            responses.parser.feed_data(chunk)
    for response in responses.done:
        response["headers"].pop("date", None)
    return responses.done


def counters(gateway: str) -> dict[str, int]:
    text = httpx2.get(f"{gateway}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10).text
    wanted = (
        r"^(mcpgw_fast_path_requests_total|mcpgw_requests_total\{[^}]*\}|"
        r"mcpgw_auth_accepted_total\{[^}]*\}) (\d+)$"
    )
    return {m.group(1): int(m.group(2)) for m in re.finditer(wanted, text, re.MULTILINE)}


CALLS = [
    ("tools/call", {"name": "slow_echo", "arguments": {"tag": "x", "steps": 0, "delay": 0}}),
    ("tools/call", {"name": "test_multiple_content_types", "arguments": {}}),
    ("tools/call", {"name": "test_error_handling", "arguments": {}}),
    ("tools/call", {"name": "no_such_tool", "arguments": {}}),
    ("tools/call", {"name": 7}),
    ("tools/call", {"name": "test_tool_with_logging", "arguments": {}}),
    ("prompts/get", {"name": "test_simple_prompt"}),
    ("resources/read", {"uri": "test://static-text"}),
    ("tools/list", None),
]


@pytest.mark.parametrize(("method", "params"), CALLS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(CALLS)])
def test_whole_and_split_requests_get_the_same_answer(gateway: str, method: str, params: Any) -> None:
    client = TokenClient(gateway)
    message = {"jsonrpc": "2.0", "id": 41, "method": method, **({"params": params} if params else {})}
    [whole] = answers(gateway, raw(gateway, message, client.session), 1)
    [split] = answers(gateway, raw(gateway, message, client.session), 1, split=SLOW)
    [apart] = answers(gateway, raw(gateway, message, client.session), 1, split=0.0)  # held for its body
    assert whole == split == apart
    assert whole["status"] == 200
    if params and params.get("name") == "test_tool_with_logging":
        assert whole["headers"]["content-type"] == "text/event-stream"
        assert whole["body"].count(b"event: message\r\n") == 4  # three log entries, then the answer
    else:
        assert whole["headers"]["content-type"] == "application/json"
        assert json.loads(whole["body"])["id"] == 41


def test_both_paths_count_alike(tmp_path: Path) -> None:
    """`/metrics` once, at the end (it loads the core, which takes over from the front and its hot path)."""
    calls = 3
    with contextlib.contextmanager(_serve)(tmp_path) as gateway:
        client = TokenClient(gateway)  # initialize and notifications/initialized: 2 requests the front serves
        message = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": CALLS[0][1]}
        for _ in range(calls):
            answers(gateway, raw(gateway, message, client.session), 1)
            answers(gateway, raw(gateway, message, client.session), 1, split=SLOW)
        counted = counters(gateway)
    assert counted["mcpgw_fast_path_requests_total"] == 2 + 2 * calls
    [series] = [k for k in counted if k.startswith("mcpgw_requests_total") and 'tool="slow_echo"' in k]
    assert counted[series] == 2 * calls and 'profile="default"' in series, counted
    assert counted['mcpgw_auth_accepted_total{kind="static"}'] >= 2 + 2 * calls


def test_a_profile_path_is_served_in_its_profile(gateway: str) -> None:
    host = gateway.removeprefix("http://")
    client = TokenClient(gateway)
    client.base = gateway  # the session opened on /mcp is unknown on /mcp/small: a profile's own session
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": client.version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    opened = httpx2.post(
        f"{gateway}/mcp/small",
        json=init,
        headers={"authorization": f"Bearer {TOKEN}", "accept": "application/json, text/event-stream", "host": host},
        timeout=30,
    )
    session = opened.headers["mcp-session-id"]
    allowed = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": CALLS[0][1]}
    hidden = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": CALLS[1][1]}
    for message in (allowed, hidden):
        data = raw(gateway, message, session, path="/mcp/small")
        [whole] = answers(gateway, data, 1)
        [split] = answers(gateway, data, 1, split=SLOW)
        assert whole == split
    assert b'"result"' in whole["body"] or b"unknown tool" in whole["body"]


def test_pipelined_requests_mixing_both_paths_are_answered_in_order(gateway: str) -> None:
    client = TokenClient(gateway)
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": CALLS[0][1]},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": CALLS[1][1]},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": CALLS[0][1]},
    ]
    data = b"".join(raw(gateway, m, client.session) for m in messages)
    responses = answers(gateway, data, 4)
    assert [json.loads(r["body"])["id"] for r in responses] == [1, 2, 3, 4]
    assert all(r["status"] == 200 for r in responses)


def test_a_client_leaving_mid_call_leaves_the_connection_table_and_session_usable(gateway: str) -> None:
    client = TokenClient(gateway)
    slow = {"name": "slow_echo", "arguments": {"tag": "gone", "steps": 1, "delay": 2}}
    host, port = gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(raw(gateway, {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": slow}, client.session))
        time.sleep(0.3)
    message = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": CALLS[0][1]}
    [after] = answers(gateway, raw(gateway, message, client.session), 1)
    assert json.loads(after["body"])["result"]["structuredContent"]["tag"] == "x"


@pytest.mark.parametrize(
    "change",
    ["wrong token", "no token", "wrong host", "evil origin", "unknown session", "other profile", "old version"],
)
def test_refusals_are_the_same_on_both_paths(gateway: str, change: str) -> None:
    """Last in the module: a request of another protocol version is the core's, which then loads."""
    client = TokenClient(gateway)
    message = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": CALLS[0][1]}
    session, path, token = client.session, "/mcp", TOKEN
    if change == "wrong token":
        token = "not-the-token"
    elif change == "unknown session":
        session = "0123456789abcdef0123456789abcdef"
    elif change == "other profile":
        path = "/mcp/small"
    data = raw(gateway, message, session, path=path, token=token)
    if change == "no token":
        data = data.replace(f"authorization: Bearer {TOKEN}\r\n".encode(), b"")
    elif change == "wrong host":
        data = re.sub(rb"host: [^\r]*", b"host: evil.example", data)
    elif change == "evil origin":
        data = data.replace(b"\r\n\r\n", b"\r\norigin: http://evil.example\r\n\r\n", 1)
    elif change == "old version":
        data = data.replace(b"mcp-protocol-version: 2025-11-25", b"mcp-protocol-version: 1999-01-01")
    [whole] = answers(gateway, data, 1)
    [split] = answers(gateway, data, 1, split=SLOW)
    assert whole == split
    assert whole["status"] != 200 or b'"error"' in whole["body"], whole


def test_an_oauth_token_takes_the_hot_path_only_once_the_gate_has_verified_it() -> None:
    """The hot path reads the auth gate's cache of verified tokens and nothing else: an unseen, expired or
    under-scoped token is left to the gate, which checks it and answers 401 or 403 itself."""
    from types import SimpleNamespace

    from mcpgw_runtime.hotpath import Hot
    from mcpgw_runtime.oauth import Verified, VerifiedCache

    now = 1_000_000.0
    cache = VerifiedCache()
    verifier = SimpleNamespace(cache=cache, clock=lambda: now, spec=SimpleNamespace(clock_skew=30.0))
    oauth: Any = SimpleNamespace(verifier=verifier, required=frozenset({"mcp:tools"}))
    claims = {"sub": "alice", "client_id": "agent"}
    cache.put("fresh", Verified("alice", "agent", frozenset({"mcp:tools", "x"}), claims, now + 60))
    cache.put("expired", Verified("alice", "agent", frozenset({"mcp:tools"}), claims, now - 31))
    cache.put("narrow", Verified("alice", "agent", frozenset({"x"}), claims, now + 60))

    caller = Hot._oauth_caller(oauth, "fresh")
    assert caller is not False
    assert (caller.kind, caller.subject, caller.client_id) == ("oauth", "alice", "agent")
    assert caller.scopes == frozenset({"mcp:tools", "x"})
    for token in ("unseen", "expired", "narrow"):
        assert Hot._oauth_caller(oauth, token) is False, token
