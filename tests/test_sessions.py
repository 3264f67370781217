"""`session: per-client` (sessions.py) against `shared`, with real processes.

One gateway fronts tests/servers/asking_server.py twice over stdio, `pc` with `session: per-client`
and `sh` with the default shared session, and once over Streamable HTTP (a local server the
gateway starts) as `ph`, per-client. The server's `count` tool increments a counter of its
backend session (its process over stdio, its HTTP session over HTTP), `pid` names the process.
Real SDK clients on their own sessions (Streamable HTTP and legacy SSE) then show:

* each session has its own `pc` process (own counter, own pid), while `sh` is one for all; over
  HTTP each session has its own HTTP session with the one local server process;
* a backend's sampling request goes to exactly the session whose backend process asked, even with
  both clients' calls in flight at once (a shared session refuses to guess there, test_relay.py);
* when a client's session ends, its `pc` process is stopped; a 2026-07-28 client (no session)
  uses the backend's shared connection;
* at gateway shutdown, per-client processes of sessions still open are stopped too;
* a per-client connection is pin-checked on its own: one started after the backend drifted refuses
  the drifted tool (pin `strict`), while the shared, verified connection still serves it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError

from tests import peers
from tests.test_rounds import wait_until_ready

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ASKING = Path(__file__).parent / "servers" / "asking_server.py"


def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("sessions")
    command = {"type": "stdio", "command": "python", "args": [str(ASKING)]}
    port = peers.free_port()
    http = {
        "type": "http",
        "command": "python",
        "args": [str(ASKING), "http", str(port)],
        "url": f"http://127.0.0.1:{port}/mcp",
        "session": "per-client",
        "resources": {"exclude": ["*"]},  # one owner per resource URI
    }
    shared = {**command, "resources": {"exclude": ["*"]}}
    return peers.build_gateway(work, {"pc": {**command, "session": "per-client"}, "sh": shared, "ph": http})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gateway_py = build(tmp_path_factory)
    port = peers.free_port()
    with peers.run_process([sys.executable, str(gateway_py), "--port", str(port)], port):
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url)
        yield url


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
        result: dict[str, Any] = json.load(response)
        return result


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def sampler(answer: str) -> Callable[..., Any]:
    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        await anyio.sleep(0.5)  # keep both clients' calls in flight at once
        return types.CreateMessageResult(role="assistant", content=types.TextContent(text=answer), model="m")

    return sample


async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "n"})


def test_each_session_has_its_own_backend_and_it_stops_with_the_session(gateway: str) -> None:
    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with (
            Client(f"{gateway}/mcp", mode="legacy", sampling_callback=sampler("A"), elicitation_callback=elicit) as a,
            Client(sse_client(f"{gateway}/sse"), mode="legacy", sampling_callback=sampler("B")) as b,
        ):
            calls = [("pc", a), ("pc", b), ("pc", a), ("pc", a), ("sh", a), ("sh", b), ("sh", a)]
            calls += [("ph", a), ("ph", b), ("ph", b)]
            seen["counts"] = [text(await client.call_tool(f"{backend}__count", {})) for backend, client in calls]
            seen["http pids"] = {text(await client.call_tool("ph__pid", {})) for client in (a, b)}
            seen["pids"] = {
                "a": text(await a.call_tool("pc__pid", {})),
                "b": text(await b.call_tool("pc__pid", {})),
                "shared": text(await a.call_tool("sh__pid", {})),
            }
            seen["open"] = health(gateway)["backends"]["pc"]["client_sessions"]
            answers: dict[str, str] = {}

            async def ask(name: str, client: Client) -> None:
                answers[name] = text(await client.call_tool("pc__two_at_once", {}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, "a", a)
                tg.start_soon(ask, "b", b)
            seen["answers"] = answers
        return seen

    seen = anyio.run(main)
    # pc: a counts 1, b counts 1 on its own process, a goes on at 2, 3; sh: one counter for both;
    # ph: one HTTP session each, on one server process (the one the gateway started).
    assert seen["counts"] == ["1", "1", "2", "3", "1", "2", "3", "1", "1", "2"]
    assert seen["http pids"] == {str(health(gateway)["backends"]["ph"]["pid"])}
    pids = {k: int(v) for k, v in seen["pids"].items()}
    assert len(set(pids.values())) == 3, pids
    assert seen["open"]["open"] == 2 and sorted(seen["open"]["pids"]) == sorted([pids["a"], pids["b"]])
    assert seen["answers"] == {"a": "left=A; right=A", "b": "left=B; right=B"}
    assert not wait_gone([pids["a"], pids["b"]]), "a session ended but its backend process lives on"
    assert alive(pids["shared"])
    assert health(gateway)["backends"]["pc"]["client_sessions"] == {"open": 0, "pids": []}


def test_a_client_without_a_session_uses_the_shared_connection(gateway: str) -> None:
    async def main() -> tuple[int, int]:
        async with Client(f"{gateway}/mcp", mode="2026-07-28") as modern:
            first = int(text(await modern.call_tool("pc__pid", {})))
            again = int(text(await modern.call_tool("pc__pid", {})))
            assert first == again
        return first, health(gateway)["backends"]["pc"]["pid"]

    used, shared = anyio.run(main)
    assert used == shared
    assert health(gateway)["backends"]["pc"]["client_sessions"]["open"] == 0


def _post(url: str, body: dict[str, Any], session: str | None) -> tuple[str | None, dict[str, Any] | None]:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if session is not None:
        headers |= {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read().decode()
        sid = response.headers.get("mcp-session-id") or session
    lines = [line[5:].strip() for line in raw.splitlines() if line.startswith("data:")] or [raw]
    messages = [json.loads(line) for line in lines if line.strip()]
    return sid, next((m for m in messages if "id" in m), None)


def test_shutdown_stops_the_processes_of_sessions_still_open(tmp_path_factory: pytest.TempPathFactory) -> None:
    gateway_py = build(tmp_path_factory)
    port = peers.free_port()
    with peers.run_process([sys.executable, str(gateway_py), "--port", str(port)], port):
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url)
        init = {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        }
        sid, _ = _post(f"{url}/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}, None)
        assert sid is not None
        _post(f"{url}/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "pc__pid", "arguments": {}}}
        _, answer = _post(f"{url}/mcp", call, sid)
        assert answer is not None, answer
        pid = int(answer["result"]["content"][0]["text"])
        assert alive(pid) and health(url)["backends"]["pc"]["client_sessions"]["pids"] == [pid]
    assert not wait_gone([pid]), "the gateway stopped but a per-client backend process lives on"


def test_a_per_client_connection_is_pin_checked_on_its_own(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Started after the backend's definition drifted: this session's calls get the pin error."""
    work = tmp_path_factory.mktemp("sessions-pins")
    flag = work / "drift-now"
    config = {
        "pd": {
            "type": "stdio",
            "command": "python",
            "args": [str(ASKING)],
            "env": {"ASKING_DRIFT_FLAG": str(flag)},
            "session": "per-client",
        }
    }
    gateway_py = peers.build_gateway(work, config)
    port = peers.free_port()
    with peers.run_process([sys.executable, str(gateway_py), "--port", str(port)], port):
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url)  # the shared connection started before the drift: verified
        flag.write_text("now")  # every backend process started from here on is rug-pulled

        async def main() -> tuple[str, str]:
            async with Client(f"{url}/mcp", mode="legacy") as client:
                with pytest.raises(MCPError) as held:
                    await client.call_tool("pd__count", {})
                assert held.value.error.code == types.INVALID_PARAMS
            async with Client(f"{url}/mcp", mode="2026-07-28") as modern:  # no session: the shared one
                shared = text(await modern.call_tool("pd__count", {}))
            return held.value.error.message, shared

        message, shared = anyio.run(main)
        assert "changed on backend 'pd' since the snapshot was reviewed" in message, message
        assert "TOOL_DESCRIPTION_CHANGED" in message and "pin 'strict'" in message, message
        assert shared == "1"
        assert health(url)["backends"]["pd"]["pin"]["status"] == "verified"
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        refusals = [line for line in metrics.splitlines() if line.startswith("mcpgw_pin_refusals_total{")]
        assert refusals == ['mcpgw_pin_refusals_total{backend="pd",kind="tool",name="pd__count"} 1'], refusals


def test_a_client_connection_that_fails_to_open_backs_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A per-client backend that cannot start is not respawned on every request of that client."""
    work = tmp_path_factory.mktemp("sessions-backoff")
    flag, spawns = work / "fail-now", work / "spawns.log"
    env = {"ASKING_FAIL_FLAG": str(flag), "ASKING_SPAWN_LOG": str(spawns)}
    config = {"pf": {"type": "stdio", "command": "python", "args": [str(ASKING)], "env": env, "session": "per-client"}}
    gateway_py = peers.build_gateway(work, config)
    port = peers.free_port()
    with peers.run_process([sys.executable, str(gateway_py), "--port", str(port)], port):
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url)  # the shared connection's process started before the flag
        before = len(spawns.read_text().split())  # the build's probe and the shared connection
        flag.write_text("now")

        async def main() -> tuple[list[str], int, str]:
            async with Client(f"{url}/mcp", mode="legacy") as client:
                failures = []
                for _ in range(3):
                    with pytest.raises(MCPError) as failed:
                        await client.call_tool("pf__count", {})
                    failures.append(failed.value.error.message)
                started_while_failing = len(spawns.read_text().split())
                flag.unlink()
                deadline = time.monotonic() + 15
                while True:  # once the backoff has passed, the next request opens the connection
                    try:
                        result = await client.call_tool("pf__count", {})
                        break
                    except MCPError as exc:
                        assert "next attempt in" in exc.error.message, exc.error.message
                        assert time.monotonic() < deadline, "the connection was never tried again"
                        await anyio.sleep(0.1)
                return failures, started_while_failing, text(result)

        failures, started, counted = anyio.run(main)
        assert all("backend 'pf' (this client's own session)" in f for f in failures), failures
        assert "next attempt in" not in failures[0] and all("next attempt in" in f for f in failures[1:]), failures
        assert started - before == 1, "one attempt for the client's three requests, not one per request"
        assert counted == "1"
