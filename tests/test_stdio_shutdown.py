"""SIGTERM to a gateway that a real client runs as its stdio server, with a call in flight.

The client is the SDK's own stdio client (as Claude Desktop and friends spawn a
gateway); it keeps the pipe open throughout. The backend is stubborn: it ignores
SIGTERM and leaves a grandchild that ignores it too, so only the gateway's
SIGKILL of the whole process group stops them. The gateway must exit within 5 s,
leave no process behind, and end the in-flight call cleanly (an MCP error, or
the pipe closing).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests import peers
from tests.test_faults import FAULT_SERVER

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _gateway_pid(gateway: Path) -> int:
    """The stdio gateway process the client spawned: our child running `gateway`."""
    for pid in peers.descendants(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(gateway).encode() in cmdline:
            return pid
    raise AssertionError(f"no process runs {gateway}")


def test_sigterm_to_a_stdio_gateway_with_a_call_in_flight_exits_fast_and_leaves_no_process(tmp_path: Path) -> None:
    backend = {
        "command": "python",
        "args": [str(FAULT_SERVER)],
        "env": {"FAULT_MODE": "${SLOW_MODE:-ok}", "FAULT_PIDFILE": str(tmp_path / "slow.pid")},
    }
    gateway = peers.build_gateway(tmp_path, {"slow": backend, "gateway": {"name": "stdio-shutdown"}})
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(gateway), "--transport", "stdio", "--log-dir", str(tmp_path)],
        env={**os.environ, "SLOW_MODE": "stubborn"},
    )
    outcome: dict[str, object] = {}

    async def main() -> None:
        async with Client(params, mode="legacy") as client:
            with anyio.fail_after(30):
                await client.call_tool("slow__echo", {"text": "up"})  # waits for the backend to be ready
            pid = _gateway_pid(gateway)
            children = peers.descendants(pid)
            outcome["processes"] = children
            grandchild = int((tmp_path / "slow.pid.child").read_text())
            assert grandchild in children and int((tmp_path / "slow.pid").read_text()) in children

            async def in_flight() -> None:
                try:
                    await client.call_tool("slow__sleep", {"seconds": 60})
                except MCPError as exc:  # the pipe closing ends the call with CONNECTION_CLOSED
                    outcome["call"] = f"error {exc.error.code}: {exc.error.message}"
                else:
                    outcome["call"] = "answered"

            async with anyio.create_task_group() as tg:
                tg.start_soon(in_flight)
                await anyio.sleep(0.5)
                os.kill(pid, signal.SIGTERM)
                signalled = time.monotonic()
                with anyio.fail_after(10):  # hang guard only; the bound asserted is below
                    while peers.alive(pid):
                        await anyio.sleep(0.02)
                outcome["exit after"] = time.monotonic() - signalled
                with anyio.fail_after(5):  # the client hears of it: the call ends, it does not hang
                    while "call" not in outcome:
                        await anyio.sleep(0.02)

    anyio.run(main)
    assert isinstance(outcome["exit after"], float) and outcome["exit after"] < 5, outcome
    assert str(outcome["call"]).startswith("error "), outcome
    processes = outcome["processes"]
    assert isinstance(processes, list) and len(processes) == 2, processes
    left = [p for p in processes if peers.alive(p)]
    assert not left, f"orphans left behind: {left}"
