"""Rug-pull protection in a running gateway, against a backend that changes while it runs.

The backend (tests/servers/drift_server.py, a real stdio MCP server on the SDK)
switches tool set when its state file changes and announces it with
`notifications/tools/list_changed`, or is killed and comes back changed. The
gateway must re-verify its pins each time: `strict` hides and refuses the
changed and new tools, `warn` exposes them and logs the drift codes, `off`
passes them through quietly; the unchanged tool answers throughout.

The gateway runs as it starts by default: the front serves the SDK client (its GET
stream held open) until the backend's first `list_changed` brings in the core, whose
announcement must then reach that stream (`notified`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests import peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DRIFT_SERVER = Path(__file__).resolve().parent / "servers" / "drift_server.py"
BASE_TOOLS = {"drift__add", "drift__echo", "drift__stable"}


@dataclass
class Rig:
    """A gateway built against the drift server in `base` mode, then served."""

    root: Path
    url: str
    log: Path
    proc: subprocess.Popen[bytes]
    changes: list[str] = field(default_factory=list)

    def set_mode(self, mode: str) -> None:
        (self.root / "state").write_text(mode)

    def kill_backend(self) -> None:
        """SIGKILL the backend child; the gateway must notice and restart it."""
        pid = int((self.root / "pid").read_text())
        os.kill(pid, signal.SIGKILL)

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:
            return dict(json.load(response))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _serve(tmp: Path, pin: str) -> Iterator[Rig]:
    (tmp / "state").write_text("base")
    config = {
        "drift": {
            "command": "python",
            "args": [str(DRIFT_SERVER)],
            "env": {"DRIFT_STATE": str(tmp / "state"), "DRIFT_PIDFILE": str(tmp / "pid")},
            "pin": pin,
        },
        "gateway": {"name": f"pins-{pin}"},
    }
    peers.build_gateway(tmp, config)
    port = peers.free_port()
    log = tmp / "gateway.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(tmp / "dist" / "gateway.py"), "--port", str(port), "--log-level", "info"],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:
        peers.wait_for_port("127.0.0.1", port, 30)
        yield Rig(tmp, f"http://127.0.0.1:{port}", log, proc)
    finally:
        peers.kill_process_group(proc)


@pytest.fixture(params=["strict", "warn", "off"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    yield from _serve(tmp_path, request.param)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _tools(client: Client) -> dict[str, types.Tool]:
    return {t.name: t for t in (await client.list_tools()).tools}


async def _text(client: Client, name: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(name, args)
    assert not result.is_error, result
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def _refused(client: Client, name: str, args: dict[str, Any]) -> str:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(name, args)
    return caught.value.error.message


async def _until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.1)


async def _after_list_changed(rig: Rig, client: Client, policy: str) -> None:
    """The backend rewrites itself in place and says so (list_changed)."""
    rig.set_mode("changed")
    await _until(lambda: _drifted(rig), "re-verification after list_changed")
    tools = await _tools(client)
    assert await _text(client, "drift__stable", {"text": "still"}) == "stable:still"
    if policy == "strict":
        assert set(tools) == {"drift__stable"}
        why = await _refused(client, "drift__echo", {"text": "hi"})
        assert "TOOL_DESCRIPTION_CHANGED" in why and "mcpgw build" in why and "changed" in why
        why = await _refused(client, "drift__add", {"a": 1, "c": 2})
        assert "PARAM_REMOVED (b)" in why and "PARAM_REQUIRED_ADDED (c)" in why
        assert "TOOL_ADDED" in await _refused(client, "drift__exfiltrate", {"text": "x"})
        held = rig.health()["backends"]["drift"]["pin"]["held"]
        assert set(held) == {"drift__add", "drift__echo", "drift__exfiltrate"}
    else:
        assert set(tools) == BASE_TOOLS | {"drift__exfiltrate"}
        assert "<IMPORTANT>" in (tools["drift__echo"].description or "")
        assert await _text(client, "drift__add", {"a": 1, "c": 2}) == "add:3"
        assert await _text(client, "drift__exfiltrate", {"text": "x"}) == "exfiltrate:x"
        assert rig.health()["backends"]["drift"]["pin"]["held"] == {}


async def _after_restarts(rig: Rig, client: Client, policy: str) -> None:
    """The backend dies and returns as reviewed (tools reappear), then dies and returns changed, silently."""
    rig.set_mode("base")
    rig.kill_backend()
    await _until(lambda: _tool_set(client, BASE_TOOLS), "tools back after restart")
    assert await _text(client, "drift__echo", {"text": "back"}) == "echo:back"

    restarts = rig.health()["backends"]["drift"]["restarts"]
    rig.set_mode("desc")
    rig.kill_backend()
    _wait(lambda: rig.health()["backends"]["drift"]["restarts"] > restarts, "second restart")
    await _until(lambda: _drifted(rig), "re-verification after reconnect")
    tools = await _tools(client)
    if policy == "strict":
        assert set(tools) == {"drift__add", "drift__stable"}
        assert "TOOL_DESCRIPTION_CHANGED" in await _refused(client, "drift__echo", {"text": "x"})
    else:
        assert set(tools) == BASE_TOOLS
    assert await _text(client, "drift__stable", {"text": "end"}) == "stable:end"


def test_pins_follow_the_policy_through_list_changed_and_restarts(rig: Rig) -> None:
    policy = rig.health()["backends"]["drift"]["pin"]["policy"]
    notified: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            notified.append("tools")

    async def main() -> None:
        async with Client(f"{rig.url}/mcp", mode="legacy", message_handler=on_message) as client:
            _wait(lambda: rig.health()["backends"]["drift"]["pin"]["status"] == "verified", "first verification")
            assert set(await _tools(client)) == BASE_TOOLS
            assert await _text(client, "drift__echo", {"text": "hi"}) == "echo:hi"
            await _after_list_changed(rig, client, policy)
            assert notified, "clients must hear tools/list_changed when their list changes"
            await _after_restarts(rig, client, policy)

    anyio.run(main)
    log = rig.log_text()
    if policy == "off":
        assert "TOOL_DESCRIPTION_CHANGED" not in log, "pin off must stay quiet above debug"
    else:
        assert "TOOL_DESCRIPTION_CHANGED" in log
        assert ("held back" in log) == (policy == "strict")
    assert rig.proc.poll() is None, "the gateway must keep running"


async def _drifted(rig: Rig) -> bool:
    return bool(await anyio.to_thread.run_sync(lambda: rig.health()["backends"]["drift"]["pin"]["status"] == "drift"))


async def _tool_set(client: Client, expected: set[str]) -> bool:
    return set(await _tools(client)) == expected


def test_calls_refused_by_a_strict_pin_are_counted_in_metrics(tmp_path: Path) -> None:
    """A held tool never reaches the backend: not a forwarded request, but a refusal with its own counter."""

    def metrics(rig: Rig) -> dict[str, str]:
        with urllib.request.urlopen(f"{rig.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))

    async def main(rig: Rig) -> None:
        async with Client(f"{rig.url}/mcp", mode="legacy") as client:
            _wait(lambda: rig.health()["backends"]["drift"]["pin"]["status"] == "verified", "first verification")
            assert await _text(client, "drift__echo", {"text": "before"}) == "echo:before"
            rig.set_mode("changed")
            await _until(lambda: _drifted(rig), "re-verification after list_changed")
            for _ in range(2):
                assert "TOOL_DESCRIPTION_CHANGED" in await _refused(client, "drift__echo", {"text": "x"})
            assert "TOOL_ADDED" in await _refused(client, "drift__exfiltrate", {"text": "x"})
            assert "unknown tool" in await _refused(client, "drift__nope", {})

    with contextlib.contextmanager(_serve)(tmp_path, "strict") as rig:
        anyio.run(main, rig)
        lines = metrics(rig)
    held = 'mcpgw_pin_refusals_total{backend="drift",kind="tool",name="%s"}'
    assert lines[held % "drift__echo"] == "2"
    assert lines[held % "drift__exfiltrate"] == "1"
    assert not any("drift__nope" in key for key in lines), "an unknown name is not a pin refusal"
    echo = 'mcpgw_requests_total{backend="drift",method="tools/call",tool="echo"}'
    assert lines[echo] == "1", "refused calls were never forwarded: only the call before the drift counts"
