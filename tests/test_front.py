"""The front (templates/mcpgw_runtime/front.py): a gateway serves before its core has loaded, and nothing is lost.

To hold the core back for as long as a test needs, the gateway runs with a
`sitecustomize` (a test-side import hook, not a switch in the gateway) that
blocks any import of `mcp` or `mcp_types` until a gate file exists. The front
imports neither, so whatever it answers while the gate is closed, it answers
without the SDK; everything else must wait for the core and then be served as
if the core had been there all along, on the same session. The backend is the
conformance fixture server (stdio, the `mcp` SDK); the clients are raw HTTP and
the SDK's own.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests import peers

FIXTURE = Path(__file__).parent / "conformance" / "fixture_server.py"
VERSION = "2025-06-18"
GATE_HOOK = """
import os
import sys
import time

_gate = os.environ.pop("MCPGW_TEST_CORE_GATE", None)  # popped: the backends this process starts are not held


class _HeldLoader:
    def __init__(self, real):
        self.real = real

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module):
        while not os.path.exists(_gate):
            time.sleep(0.01)
        self.real.exec_module(module)


class _Gate:
    # Holds the core's import (mcpgw_runtime.core, run in a worker thread) until the gate file exists.
    # It waits in exec_module, never in find_spec: Python holds its global import lock around
    # find_spec, and a thread waiting there would block every fork (a backend's spawn) and import.
    def find_spec(self, name, path=None, target=None):
        if not _gate or name != "mcpgw_runtime.core":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _HeldLoader(spec.loader)
                return spec
        return None


sys.meta_path.insert(0, _Gate())
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("front")
    config = {
        "mcpServers": {"fx": {"type": "stdio", "command": "python", "args": [str(FIXTURE), "stdio"], "prefix": ""}},
        "gateway": {"name": "front", "instructions": "Ask the fixture."},
    }
    return peers.build_gateway(work, config)


class Gated:
    """A gateway process whose core cannot load until `open()`."""

    def __init__(self, base: str, gate: Path) -> None:
        self.base = base
        self.gate = gate
        self.http = httpx2.Client(timeout=30)

    def open(self) -> None:
        self.gate.touch()

    def post(self, body: dict[str, Any], session: str | None = None, **headers: str) -> httpx2.Response:
        sent = {"accept": "application/json, text/event-stream", "content-type": "application/json", **headers}
        if session is not None:
            sent["mcp-session-id"] = session
            sent["mcp-protocol-version"] = VERSION
        return self.http.post(f"{self.base}/mcp", content=json.dumps({"jsonrpc": "2.0", **body}), headers=sent)


@contextmanager
def gated(script: Path, tmp_path: Path, *flags: str) -> Iterator[Gated]:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(GATE_HOOK)
    gate = tmp_path / "gate"
    port = peers.free_port()
    command = [sys.executable, str(script), "--port", str(port), "--transport", "http", *flags]
    env = {"PYTHONPATH": str(hooks), "MCPGW_TEST_CORE_GATE": str(gate)}
    with peers.run_process(command, port, env=env):
        gw = Gated(f"http://127.0.0.1:{port}", gate)
        try:
            yield gw
        finally:
            gw.open()  # never leave the core waiting: the process must be able to stop
            gw.http.close()


def answer(response: httpx2.Response) -> tuple[str, dict[str, Any]]:
    """The content type and the one JSON-RPC answer of a response (plain JSON or an SSE stream)."""
    assert response.status_code == 200, response.text
    kind = response.headers["content-type"].split(";")[0]
    if kind == "application/json":
        return kind, response.json()
    messages = [json.loads(m) for m in re.findall(r"^data: (.+)$", response.text, re.MULTILINE)]
    answers = [m for m in messages if "id" in m and "method" not in m]
    assert len(answers) == 1, messages
    return kind, answers[0]


def initialize(gw: Gated, version: str = VERSION, **headers: str) -> httpx2.Response:
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    return gw.post({"id": 1, "method": "initialize", "params": params}, **headers)


def test_front_answers_while_the_core_loads_and_hands_the_session_over(script: Path, tmp_path: Path) -> None:
    with gated(script, tmp_path, "--eager-core") as gw:
        opened = initialize(gw)
        kind, early_init = answer(opened)
        assert kind == "application/json"  # the SDK answers initialize as an SSE stream: this is the front
        sid = opened.headers["mcp-session-id"]
        assert gw.post({"method": "notifications/initialized"}, sid).status_code == 202
        kind, listed = answer(gw.post({"id": 2, "method": "tools/list"}, sid))
        assert kind == "application/json"
        names = {t["name"] for t in listed["result"]["tools"]}
        assert {"test_simple_text", "slow_echo"} <= names
        assert answer(gw.post({"id": 3, "method": "ping"}, sid))[1] == {"jsonrpc": "2.0", "id": 3, "result": {}}
        assert "prompts" in answer(gw.post({"id": 4, "method": "prompts/list"}, sid))[1]["result"]
        # the guard holds before the core too
        assert initialize(gw, host="evil.example").status_code == 421
        # health answers at once, and says that nothing runs yet
        health = gw.http.get(f"{gw.base}/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["backends"]["fx"]["state"] == "starting"

        # a call needs the core: it waits for it, and is then served on the same session
        results: list[httpx2.Response] = []
        params = {"name": "test_simple_text", "arguments": {}}
        caller = threading.Thread(
            target=lambda: results.append(gw.post({"id": 6, "method": "tools/call", "params": params}, sid))
        )
        caller.start()
        caller.join(1.0)
        assert caller.is_alive() and not results, "a tool call cannot be answered before the core loads"
        gw.open()
        caller.join(30)
        _, called = answer(results[0])
        assert called["result"]["content"][0]["type"] == "text", called
        assert gw.http.get(f"{gw.base}/healthz").json()["backends"]["fx"]["state"] == "ready"  # the core's now
        # methods only the SDK serves, on the session the front opened
        _, templates = answer(gw.post({"id": 7, "method": "resources/templates/list"}, sid))
        assert "resourceTemplates" in templates["result"], templates
        _, level = answer(gw.post({"id": 8, "method": "logging/setLevel", "params": {"level": "debug"}}, sid))
        assert level["result"] == {}, level
        # the SDK's own initialize answer (now that it is up) is the one the front gave
        kind, late_init = answer(initialize(gw))
        assert kind == "text/event-stream"
        assert late_init["result"] == early_init["result"]
        assert early_init["result"]["instructions"] == "Ask the fixture."
        assert early_init["result"]["capabilities"]["tools"] == {"listChanged": True}
        # and the session ends as any other
        ended = gw.http.delete(f"{gw.base}/mcp", headers={"mcp-session-id": sid, "mcp-protocol-version": VERSION})
        assert ended.status_code == 200
        assert gw.post({"id": 9, "method": "tools/list"}, sid).status_code == 404


def test_what_the_front_cannot_answer_waits_for_the_core(script: Path, tmp_path: Path) -> None:
    """An unsupported version waits for the core's answer; an unknown session is the SDK's 404 at once."""
    with gated(script, tmp_path, "--eager-core") as gw:
        pending: dict[str, httpx2.Response] = {}

        def send(key: str, make: Any) -> threading.Thread:
            thread = threading.Thread(target=lambda: pending.__setitem__(key, make()))
            thread.start()
            return thread

        threads = [send("old", lambda: initialize(gw, version="1999-01-01"))]
        # before the core, the front's sessions are the only ones: nobody has this one
        unknown = gw.post({"id": 1, "method": "tools/list"}, "0123456789abcdef")
        assert (unknown.status_code, unknown.json()["error"]["message"]) == (404, "Session not found")
        time.sleep(1.0)
        assert not pending, "answered without the core"
        gw.open()
        for thread in threads:
            thread.join(30)
        kind, negotiated = answer(pending["old"])
        assert kind == "text/event-stream" and negotiated["result"]["protocolVersion"] == "2025-11-25"


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # logging/setLevel, on purpose
def test_the_sdk_client_across_the_handover(script: Path, tmp_path: Path) -> None:
    """The `mcp` SDK's client connects and lists while the core is held, then calls through it."""

    async def scenario(gw: Gated) -> None:
        http = httpx2.AsyncClient(timeout=60)
        client = Client(streamable_http_client(f"{gw.base}/mcp", http_client=http), mode="legacy")
        async with http, client:
            assert client.server_info is not None and client.server_info.name == "front"
            assert client.instructions == "Ask the fixture."
            tools = await client.list_tools()
            assert any(t.name == "test_simple_text" for t in tools.tools)
            gw.open()
            result = await client.call_tool("test_simple_text", {})
            assert result.content and result.content[0].type == "text"
            await client.set_logging_level("info")
            templates = await client.list_resource_templates()
            assert templates.resource_templates is not None

    with gated(script, tmp_path) as gw:
        asyncio.run(scenario(gw))


def test_the_front_caps_its_sessions_and_the_core_takes_every_one_over(script: Path, tmp_path: Path) -> None:
    """Past `--max-sessions` the front evicts its least recently used idle sessions; the core then adopts all
    the others (none dropped, none refused by the SDK's own cap) and answers them at once."""
    cap = 120
    with gated(script, tmp_path, "--eager-core", "--max-sessions", str(cap)) as gw:
        sids = [initialize(gw).headers["mcp-session-id"] for _ in range(cap + 30)]
        assert gw.post({"id": 2, "method": "tools/list"}, sids[0]).status_code == 404  # evicted: least recently used
        assert answer(gw.post({"id": 2, "method": "tools/list"}, sids[-1]))[1]["result"]["tools"]
        gw.open()
        started = time.monotonic()
        _, called = answer(gw.post({"id": 3, "method": "tools/call", "params": {"name": "test_simple_text"}}, sids[-1]))
        assert "result" in called, called
        assert time.monotonic() - started < 15, "the takeover stalled the client"
        kept = sids[30:]
        statuses = [gw.post({"id": 4, "method": "ping"}, sid).status_code for sid in kept]
        assert statuses == [200] * len(kept), "the core dropped sessions the front had opened"
        page = gw.http.get(f"{gw.base}/metrics").text
        assert re.search(rf"^mcpgw_sessions_open {cap}$", page, re.MULTILINE), page
        assert re.search(r'^mcpgw_sessions_ended_total\{reason="evicted"\} 30$', page, re.MULTILINE), page


def test_stateless_front(script: Path, tmp_path: Path) -> None:
    with gated(script, tmp_path, "--stateless") as gw:
        opened = initialize(gw)
        assert answer(opened)[0] == "application/json" and "mcp-session-id" not in opened.headers
        kind, listed = answer(gw.post({"id": 2, "method": "tools/list"}))
        assert kind == "application/json" and listed["result"]["tools"]
        gw.open()
        _, called = answer(gw.post({"id": 3, "method": "tools/call", "params": {"name": "test_simple_text"}}))
        assert called["result"]["content"][0]["type"] == "text", called


@pytest.mark.parametrize("flags", [["--eager-core"], []], ids=["eager", "lazy"])
def test_a_gateway_without_the_sdk_says_so(script: Path, tmp_path: Path, flags: list[str]) -> None:
    """A missing SDK stops the gateway at start with what to install, instead of leaving a front that waits forever.

    Lazily too: it is found at start (start.py), not when the first request needs the core.
    """
    hooks = tmp_path / "nosdk"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoSdk:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'mcp':\n"
        "            raise ImportError('No module named mcp (test)')\n"
        "sys.meta_path.insert(0, _NoSdk())\n"
    )
    port = peers.free_port()
    proc = subprocess.run(
        [sys.executable, str(script), "--port", str(port), "--transport", "http", *flags],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(hooks)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "needs Python packages" in proc.stderr and ": mcp." in proc.stderr, proc.stderr
    assert "-m pip install -r" in proc.stderr
    assert "Traceback" not in proc.stderr  # only with --log-level debug
