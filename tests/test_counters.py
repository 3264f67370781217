"""`mcpgw_fast_path_requests_total` counts every request answered without the SDK, whichever part answered it.

A default (lazy-core) gateway over tests/servers/asking_server.py (stdio): the front answers a
session's first requests and tool calls from its tables and its own backend process; `GET
/metrics` then loads the core, whose page must report what the front served, and the calls
the fast path answers after that add to the same counter.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests import peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ASKING = Path(__file__).parent / "servers" / "asking_server.py"
VERSION = "2025-11-25"
COUNTER = re.compile(r"^mcpgw_fast_path_requests_total (\d+)$", re.MULTILINE)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[httpx2.Client]:
    config = {"as": {"type": "stdio", "command": "python", "args": [str(ASKING)], "prefix": ""}}
    script = peers.build_gateway(tmp_path, config)
    port = peers.free_port()
    command = [sys.executable, str(script), "--port", str(port), "--transport", "http", "--log-level", "warning"]
    with peers.run_process(command, port), httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http


def post(http: httpx2.Client, body: dict[str, Any], sid: str | None = None) -> httpx2.Response:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    if sid is not None:
        headers |= {"mcp-session-id": sid, "mcp-protocol-version": VERSION}
    return http.post("/mcp", content=json.dumps({"jsonrpc": "2.0", **body}), headers=headers)


def plain_answer(response: httpx2.Response) -> dict[str, Any]:
    """The JSON answer of a request answered without the SDK (the SDK's transport answers with an SSE stream)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    answer: dict[str, Any] = response.json()
    return answer


def count(http: httpx2.Client, sid: str, rid: int) -> str:
    answer = plain_answer(post(http, {"id": rid, "method": "tools/call", "params": {"name": "count"}}, sid))
    return str(answer["result"]["content"][0]["text"])


def served_without_sdk(http: httpx2.Client) -> int:
    page = http.get("/metrics").text
    assert page.count("# HELP mcpgw_fast_path_requests_total ") == 1, page
    found = COUNTER.search(page)
    assert found, page
    return int(found.group(1))


def wait_ready(http: httpx2.Client) -> None:
    deadline = time.monotonic() + 60
    while http.get("/healthz").json()["backends"]["as"]["state"] != "ready":
        assert time.monotonic() < deadline, "the backend never became ready"
        time.sleep(0.05)


def test_the_counter_counts_what_the_front_and_the_fast_path_served(gateway: httpx2.Client) -> None:
    wait_ready(gateway)  # the front's own health: the core is not loaded
    init = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    opened = post(gateway, {"id": 1, "method": "initialize", "params": init})
    plain_answer(opened)
    sid = opened.headers["mcp-session-id"]
    assert post(gateway, {"method": "notifications/initialized"}, sid).status_code == 202
    listed = plain_answer(post(gateway, {"id": 2, "method": "tools/list"}, sid))
    assert "count" in {t["name"] for t in listed["result"]["tools"]}
    assert [count(gateway, sid, rid) for rid in (3, 4, 5)] == ["1", "2", "3"]
    # six POSTs answered by the front; /metrics is the core's, so this loads it
    assert served_without_sdk(gateway) == 6
    assert [count(gateway, sid, rid) for rid in (6, 7)] == ["4", "5"]  # the fast path, same session and process
    assert served_without_sdk(gateway) == 8
    # a request only the SDK serves adds nothing
    templates = post(gateway, {"id": 8, "method": "resources/templates/list"}, sid)
    assert templates.status_code == 200 and templates.headers["content-type"].startswith("text/event-stream")
    assert served_without_sdk(gateway) == 8
