"""`--lazy-core` (front_backends.py): the front runs the backends and serves tool calls until the core is needed.

A gateway over tests/servers/asking_server.py (stdio, shared session), whose `count` tool
counts calls on its own process and whose `pid` names it, driven by raw HTTP and by the
`mcp` SDK's client. The import gate of test_front.py (a test-side `sitecustomize`) keeps
the SDK out of the gateway for as long as the test wants:

* with the gate shut, the front alone initializes, lists, calls, reports health, and the
  core is never even asked for;
* when something needs the core (a method the front does not serve), it takes over the
  running process: the counter goes on, the pid and the call counters stay;
* a client that declared sampling gets the core, which relays the backend's requests;
* a backend that exits brings the core, which starts it again;
* a log entry the backend sends during a call reaches that call (the answer becomes an SSE
  stream, as on the core's fast path), without the core (the conformance fixture server).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from tests import peers
from tests.test_front import FIXTURE, Gated, answer, gated, initialize
from tests.test_sessions import sampler

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ASKING = Path(__file__).parent / "servers" / "asking_server.py"


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("lazy")
    config = {"as": {"type": "stdio", "command": "python", "args": [str(ASKING)], "prefix": ""}}
    return peers.build_gateway(work, config)


def open_session(gw: Gated) -> str:
    opened = initialize(gw)
    assert answer(opened)[0] == "application/json"
    sid = opened.headers["mcp-session-id"]
    assert gw.post({"method": "notifications/initialized"}, sid).status_code == 202
    return sid


def call(gw: Gated, sid: str, name: str, rid: int = 9) -> dict[str, Any]:
    return answer(gw.post({"id": rid, "method": "tools/call", "params": {"name": name, "arguments": {}}}, sid))[1]


def text(answered: dict[str, Any]) -> str:
    assert "result" in answered, answered
    return str(answered["result"]["content"][0]["text"])


def health(gw: Gated) -> dict[str, Any]:
    response = gw.http.get(f"{gw.base}/healthz")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def wait_ready(gw: Gated, *, not_pid: int | None = None, name: str = "as") -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        backend: dict[str, Any] = health(gw)["backends"][name]
        if backend["state"] == "ready" and backend["pid"] not in (None, not_pid):
            return backend
        assert time.monotonic() < deadline, backend
        time.sleep(0.05)


def log_text(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))


@pytest.fixture
def lazy(script: Path, tmp_path: Path) -> Iterator[Gated]:
    with gated(script, tmp_path, "--lazy-core", "--log-dir", str(tmp_path / "logs")) as gw:
        yield gw


def test_the_front_serves_calls_without_the_sdk(lazy: Gated, tmp_path: Path) -> None:
    backend = wait_ready(lazy)  # the gate is shut: this is the front's own health
    assert backend["pin"]["status"] == "verified" and backend["restarts"] == 0
    sid = open_session(lazy)
    kind, listed = answer(lazy.post({"id": 2, "method": "tools/list"}, sid))
    assert kind == "application/json" and "count" in {t["name"] for t in listed["result"]["tools"]}
    assert [text(call(lazy, sid, "count", rid)) for rid in (3, 4)] == ["1", "2"]
    assert text(call(lazy, sid, "pid")) == str(backend["pid"])
    unknown = call(lazy, sid, "no_such_tool")
    assert unknown["error"] == {"code": -32602, "message": "unknown tool: 'no_such_tool'"}
    assert health(lazy)["backends"]["as"]["in_flight"] == 0
    written = log_text(tmp_path)
    assert "backend as ready (asking-server), served by the front" in written
    assert "loading the core" not in written, written


def test_the_core_takes_over_the_running_backend(lazy: Gated, tmp_path: Path) -> None:
    backend = wait_ready(lazy)
    sid = open_session(lazy)
    assert [text(call(lazy, sid, "count", rid)) for rid in (3, 4)] == ["1", "2"]
    lazy.open()
    # only the core serves this: it loads, adopts the session and the running process
    _, unknown = answer(lazy.post({"id": 5, "method": "no/such/method"}, sid))
    assert unknown["error"]["code"] == -32601, unknown
    assert "loading the core: a request the front does not serve" in log_text(tmp_path)
    assert text(call(lazy, sid, "count", 6)) == "3", "the backend was restarted, not taken over"
    assert text(call(lazy, sid, "pid", 7)) == str(backend["pid"])
    now = wait_ready(lazy)
    assert (now["pid"], now["restarts"], now["pin"]["status"]) == (backend["pid"], 0, "verified")
    metrics = lazy.http.get(f"{lazy.base}/metrics").text
    assert 'mcpgw_requests_total{backend="as",method="tools/call",tool="count"} 3' in metrics, metrics


def test_an_sdk_client_that_lists_and_calls_never_needs_the_core(lazy: Gated, tmp_path: Path) -> None:
    """The SDK's client opens a GET stream after `initialize` and deletes its session on exit: the front does both."""
    wait_ready(lazy)

    async def main() -> list[str]:
        async with Client(f"{lazy.base}/mcp", mode="legacy") as client:
            assert "count" in {t.name for t in (await client.list_tools()).tools}
            results = [await client.call_tool("count", {}) for _ in range(2)]
            return [b.text for r in results for b in r.content if isinstance(b, types.TextContent)]

    assert anyio.run(main) == ["1", "2"]
    assert "loading the core" not in log_text(tmp_path)


def open_stream(gw: Gated, sid: str) -> tuple[threading.Thread, dict[str, Any]]:
    """The session's GET stream, read in the background until it ends; status and headers as soon as they come."""
    seen: dict[str, Any] = {}
    opened = threading.Event()

    def read() -> None:
        headers = {"accept": "text/event-stream", "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
        with gw.http.stream("GET", f"{gw.base}/mcp", headers=headers, timeout=60) as response:
            seen["status"], seen["headers"] = response.status_code, dict(response.headers)
            opened.set()
            seen["body"] = b"".join(response.iter_bytes())
        seen["ended"] = True

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(10), "the GET stream was not answered"
    return reader, seen


def test_the_front_holds_a_get_stream_and_answers_delete(lazy: Gated, tmp_path: Path) -> None:
    wait_ready(lazy)
    sid = open_session(lazy)
    reader, stream = open_stream(lazy, sid)  # answered with the gate shut: by the front
    assert stream["status"] == 200 and stream["headers"]["content-type"] == "text/event-stream"
    assert stream["headers"]["mcp-session-id"] == sid
    assert text(call(lazy, sid, "count")) == "1"
    headers = {"mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
    assert lazy.http.delete(f"{lazy.base}/mcp", headers=headers).status_code == 200
    reader.join(5)
    assert stream.get("ended"), "deleting the session must end its stream"
    gone = lazy.post({"id": 4, "method": "tools/list"}, sid)
    assert (gone.status_code, gone.json()["error"]["message"]) == (404, "Session not found")
    assert "loading the core" not in log_text(tmp_path)


def test_a_held_get_stream_becomes_the_sdks(lazy: Gated, tmp_path: Path) -> None:
    """Once the core is up, the stream the front held is the session's SDK stream: a second one is refused."""
    wait_ready(lazy)
    sid = open_session(lazy)
    reader, stream = open_stream(lazy, sid)
    lazy.open()
    _, unknown = answer(lazy.post({"id": 5, "method": "no/such/method"}, sid))  # only the core answers it
    assert unknown["error"]["code"] == -32601, unknown
    deadline = time.monotonic() + 10
    while True:
        headers = {"accept": "text/event-stream", "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
        with lazy.http.stream("GET", f"{lazy.base}/mcp", headers=headers, timeout=5) as second:
            status = second.status_code  # the headers are enough: a 200 here would be a second live stream
        if status == 409:  # the SDK's "only one SSE stream per session"
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert reader.is_alive() and "ended" not in stream, "the held stream must stay open through the handover"
    assert text(call(lazy, sid, "count", 6)) == "1"
    headers = {"mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
    assert lazy.http.delete(f"{lazy.base}/mcp", headers=headers).status_code == 200
    reader.join(5)
    assert stream.get("ended"), "the SDK ends the stream it took over when the session ends"


def test_a_client_that_can_be_asked_gets_the_core(lazy: Gated) -> None:
    wait_ready(lazy)
    lazy.open()

    async def main() -> str:
        async with Client(f"{lazy.base}/mcp", mode="legacy", sampling_callback=sampler("A")) as client:
            result = await client.call_tool("two_at_once", {})
            block = result.content[0]
            assert isinstance(block, types.TextContent)
            return block.text

    assert anyio.run(main) == "left=A; right=A"


def test_a_backend_that_exits_brings_the_core_which_restarts_it(lazy: Gated, tmp_path: Path) -> None:
    first = wait_ready(lazy)
    sid = open_session(lazy)
    assert text(call(lazy, sid, "count")) == "1"
    lazy.open()
    os.kill(first["pid"], signal.SIGKILL)
    again = wait_ready(lazy, not_pid=first["pid"])
    assert again["restarts"] >= 1
    assert "loading the core: backend 'as' exited" in log_text(tmp_path)
    assert text(call(lazy, sid, "count")) == "1", "a new process counts from 1"


def test_lazy_core_is_refused_for_what_the_front_cannot_run(tmp_path: Path) -> None:
    config = {
        "as": {"type": "stdio", "command": "python", "args": [str(ASKING)], "session": "per-client"},
    }
    script = peers.build_gateway(tmp_path, config)
    port = peers.free_port()
    command = [sys.executable, str(script), "--port", str(port), "--lazy-core", "--log-dir", str(tmp_path / "logs")]
    with peers.run_process(command, port):
        deadline = time.monotonic() + 30
        while "--lazy-core ignored" not in log_text(tmp_path):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert "backend 'as' is stdio with session 'per-client'" in log_text(tmp_path)


def test_a_call_on_the_front_keeps_the_session_header(lazy: Gated) -> None:
    """A tool call on the front carries the session header, as every answer on a session does."""
    wait_ready(lazy)
    sid = open_session(lazy)
    params = {"name": "pid", "arguments": {}}
    response = lazy.post({"id": 3, "method": "tools/call", "params": params}, sid)
    assert response.headers["mcp-session-id"] == sid


@pytest.fixture(scope="module")
def logging_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("lazy-fixture")
    config = {"fx": {"type": "stdio", "command": "python", "args": [str(FIXTURE), "stdio"], "prefix": ""}}
    return peers.build_gateway(work, config)


def test_a_log_entry_during_a_call_reaches_that_call(logging_script: Path, tmp_path: Path) -> None:
    with gated(logging_script, tmp_path, "--lazy-core", "--log-dir", str(tmp_path / "logs")) as gw:
        sid = open_session(gw)
        params = {"name": "test_tool_with_logging", "arguments": {}}
        response = gw.post({"id": 5, "method": "tools/call", "params": params}, sid)
        assert response.headers["content-type"].startswith("text/event-stream"), response.text
        events = [json.loads(m) for m in re.findall(r"^data: (.+)$", response.text, re.MULTILINE)]
        logs = [e["params"]["data"] for e in events if e.get("method") == "notifications/message"]
        assert logs == ["Tool execution started", "Tool processing data", "Tool execution completed"]
        assert events[-1]["id"] == 5 and "executed successfully" in events[-1]["result"]["content"][0]["text"]
        assert "loading the core" not in log_text(tmp_path)


def slow_call_in_background(gw: Gated, sid: str, tag: str, rid: int) -> tuple[threading.Thread, list[dict[str, Any]]]:
    """A 30-second `slow_echo` call of the fixture server, in flight on return; its answer lands in the list."""
    answered: list[dict[str, Any]] = []
    slow = {"name": "slow_echo", "arguments": {"tag": tag, "steps": 1, "delay": 30}}
    body = {"id": rid, "method": "tools/call", "params": slow}
    caller = threading.Thread(target=lambda: answered.append(answer(gw.post(body, sid))[1]))
    caller.start()
    time.sleep(0.5)
    return caller, answered


def test_sigterm_before_the_core_fails_the_call_in_flight_and_stops_the_backends(
    logging_script: Path, tmp_path: Path
) -> None:
    port = peers.free_port()
    logs = str(tmp_path / "logs")
    command = [sys.executable, str(logging_script), "--port", str(port), "--lazy-core", "--log-dir", logs]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        peers.wait_for_port(peers.LOCALHOST, port, 30, process=process)
        gw = Gated(f"http://127.0.0.1:{port}", tmp_path / "no-gate")
        backend = wait_ready(gw, name="fx")["pid"]
        sid = open_session(gw)
        caller, answered = slow_call_in_background(gw, sid, "t", 5)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        caller.join(5)
        assert answered and "gateway is shutting down" in answered[0]["error"]["message"], answered
        assert time.monotonic() - started < 3
        assert process.wait(timeout=10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it drained
        deadline = time.monotonic() + 5
        while peers.alive(backend):
            assert time.monotonic() < deadline, "the backend outlived the gateway"
            time.sleep(0.05)
        assert "loading the core" not in log_text(tmp_path)
    finally:
        peers.kill_process_group(process)


def test_a_cancelled_call_is_cancelled_at_the_backend(logging_script: Path, tmp_path: Path) -> None:
    with gated(logging_script, tmp_path, "--lazy-core", "--log-dir", str(tmp_path / "logs")) as gw:
        wait_ready(gw, name="fx")
        sid = open_session(gw)
        caller, answered = slow_call_in_background(gw, sid, "gone", 7)
        cancel = {"method": "notifications/cancelled", "params": {"requestId": 7, "reason": "test"}}
        assert gw.post(cancel, sid).status_code == 202
        caller.join(5)
        assert answered and answered[0]["error"]["message"] == "Request cancelled", answered
        deadline = time.monotonic() + 10
        while "gone" not in text(call(gw, sid, "cancelled_tags", 8)):
            assert time.monotonic() < deadline, "the backend never saw the cancel"
            time.sleep(0.1)
        assert "loading the core" not in log_text(tmp_path)


def test_a_backend_that_cannot_start_is_said_so_and_left_to_the_core(tmp_path: Path) -> None:
    server = tmp_path / "asking_copy.py"
    shutil.copy(ASKING, server)
    script = peers.build_gateway(tmp_path, {"as": {"type": "stdio", "command": "python", "args": [str(server)]}})
    server.unlink()  # the interpreter starts, finds no script and exits before the handshake
    port = peers.free_port()
    command = [sys.executable, str(script), "--port", str(port), "--lazy-core", "--log-dir", str(tmp_path / "logs")]
    with peers.run_process(command, port):
        gw = Gated(f"http://127.0.0.1:{port}", tmp_path / "no-gate")
        deadline = time.monotonic() + 30
        while "loading the core: backend 'as' failed to start" not in log_text(tmp_path):
            assert time.monotonic() < deadline, log_text(tmp_path)
            time.sleep(0.05)
        written = log_text(tmp_path)
        said = written.find("backend 'as': initialize failed: Connection closed")  # in the core's words
        assert -1 < said < written.index("loading the core"), written  # and by the front, before the core
        backend = health(gw)["backends"]["as"]  # the core's now, retrying with backoff
        assert backend["state"] in ("failed", "starting") and backend["pid"] is None, backend
