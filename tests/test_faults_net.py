"""Network backends under faults: real gateway, real SDK clients, real HTTP servers on 127.0.0.1.

The backend is tests/servers/net_server.py (the SDK's Streamable HTTP or legacy
SSE server). It drops its connection mid-stream (its `drop` tool SIGKILLs it
while the call's response stream is open), is killed while idle and restarted,
is slow to listen, or never listens. A stdio backend (`ok`) must keep answering
through all of it. Durations appear only as hang guards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
from mcp import Client

from tests import peers
from tests.peers import ServedGateway, call, with_client
from tests.test_faults import FAULT_SERVER

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

NET_SERVER = Path(__file__).resolve().parent / "servers" / "net_server.py"
PATHS = {"http": "/mcp", "sse": "/sse"}
NetTransport = Literal["http", "sse"]
NEVER_STARTUP_TIMEOUT = 4


@contextlib.contextmanager
def net_server(transport: NetTransport, port: int, pidfile: Path, **env: str) -> Iterator[None]:
    """net_server.py listening on `port` until the block ends (or it drops itself); `env` adds to its environment."""
    command = [sys.executable, str(NET_SERVER), "--transport", transport, "--port", str(port)]
    with peers.run_process(command, port, env={"NET_PIDFILE": str(pidfile), **env}):
        yield


def _ok_backend() -> dict[str, Any]:
    return {"command": "python", "args": [str(FAULT_SERVER)]}


def _named(text: str, backend: str) -> bool:
    return text.startswith("error ") and f"backend {backend!r}" in text


async def _until_answers(c: Client, name: str, expected: str, timeout: float = 30.0) -> list[str]:
    """Call until the tool answers `expected`; every failure on the way, for the caller to judge."""
    failures: list[str] = []
    with anyio.fail_after(timeout):
        while (text := (await call(c, name, {"text": expected}))[0]) != expected:
            failures.append(text)
            await anyio.sleep(0.2)
    return failures


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_a_backend_dropping_mid_stream_fails_fast_and_is_reconnected_when_back(
    tmp_path: Path, transport: NetTransport
) -> None:
    port = peers.free_port()
    config = {
        "net": {"type": transport, "url": f"http://127.0.0.1:{port}{PATHS[transport]}", "startup_timeout": 5},
        "ok": _ok_backend(),
        "gateway": {"name": f"net-{transport}"},
    }
    pidfile = tmp_path / "net.pid"
    gw: ServedGateway | None = None
    try:
        with net_server(transport, port, pidfile):
            gw = peers.serve_gateway(peers.build_gateway(tmp_path, config), tmp_path, ready=("net", "ok"))
            first = gw.pid("net")

            async def drop(c: Client) -> tuple[list[str], str, str]:
                out: list[str] = []
                with anyio.fail_after(10):  # hang guard: both calls must end once the stream is cut
                    async with anyio.create_task_group() as tg:

                        async def one(name: str, args: dict[str, Any]) -> None:
                            out.append((await call(c, name, args))[0])

                        tg.start_soon(one, "net__sleep", {"seconds": 60})
                        await anyio.sleep(0.3)
                        tg.start_soon(one, "net__drop", {})
                down = (await call(c, "net__echo", {"text": "x"}))[0]  # waits at most its startup_timeout (5 s)
                return out, down, (await call(c, "ok__echo", {"text": "fine"}))[0]

            cut, down, ok = with_client(gw, drop)
            assert len(cut) == 2 and all(_named(text, "net") for text in cut), cut
            assert _named(down, "net"), down
            assert ok == "fine"
            assert not peers.alive(first)

        with net_server(transport, port, pidfile):  # the same address again, a new process
            failures = with_client(gw, lambda c: _until_answers(c, "net__echo", "back"))
            assert all(_named(text, "net") for text in failures), failures
            assert gw.pid("net") != first
            assert gw.state("net") == "ready"
            assert gw.health()["backends"]["net"]["restarts"] >= 1
    finally:
        if gw is not None:
            peers.kill_process_group(gw.proc)


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_a_backend_restarted_between_calls_gets_a_new_session(tmp_path: Path, transport: NetTransport) -> None:
    """Killed while idle and back at once on the same address: the old session is gone, the gateway starts another."""
    port = peers.free_port()
    config = {"net": {"type": transport, "url": f"http://127.0.0.1:{port}{PATHS[transport]}", "startup_timeout": 5}}
    pidfile = tmp_path / "net.pid"
    gw: ServedGateway | None = None
    try:
        with net_server(transport, port, pidfile):
            gateway = peers.build_gateway(tmp_path, {**config, "gateway": {"name": "net-restart"}})
            gw = peers.serve_gateway(gateway, tmp_path, ready=("net",))
            first = gw.pid("net")
            assert with_client(gw, lambda c: call(c, "net__echo", {"text": "one"}))[0] == "one"
            os.kill(first, signal.SIGKILL)
        with net_server(transport, port, pidfile):
            failures = with_client(gw, lambda c: _until_answers(c, "net__echo", "two"))
            assert all(_named(text, "net") for text in failures), failures
            assert len(failures) <= 1, f"one call may meet the forgotten session, then it reconnects: {failures}"
            assert with_client(gw, lambda c: call(c, "net__pid"))[0] != str(first)
    finally:
        if gw is not None:
            peers.kill_process_group(gw.proc)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((peers.LOCALHOST, port), timeout=0.5):
        return True
    return False


def _local_sse(name: str, root: Path, **extra: Any) -> dict[str, Any]:
    """An SSE backend whose server the gateway starts itself; it binds once `root/<name>.go` exists."""
    port = "${%s_PORT}" % name.upper()  # noqa: UP031 (a literal ${VAR} for the gateway to expand)
    gate = "${%s_GATE:-}" % name.upper()  # noqa: UP031
    return {
        "type": "sse",
        "url": f"http://127.0.0.1:{port}/sse",
        "command": "python",
        "args": [str(NET_SERVER), "--transport", "sse", "--port", port, "--listen-after", gate],
        "env": {"NET_PIDFILE": str(root / f"{name}.pid")},
        **extra,
    }


def test_a_local_sse_server_slow_to_listen_is_waited_for_and_one_that_never_listens_fails_in_time(
    tmp_path: Path,
) -> None:
    config = {
        "late": _local_sse("late", tmp_path),
        "never": _local_sse("never", tmp_path, startup_timeout=NEVER_STARTUP_TIMEOUT),
        "ok": _ok_backend(),
        "gateway": {"name": "net-local"},
    }
    probe_ports = {"LATE_PORT": str(peers.free_port()), "NEVER_PORT": str(peers.free_port())}
    gateway = peers.build_gateway(tmp_path, config, env=probe_ports)  # no gates: both listen for the probe
    late_port, never_port = peers.free_port(), peers.free_port()
    env = {
        "LATE_PORT": str(late_port),
        "LATE_GATE": str(tmp_path / "late.go"),
        "NEVER_PORT": str(never_port),
        "NEVER_GATE": str(tmp_path / "never.go"),  # never created
    }
    gw = peers.serve_gateway(gateway, tmp_path, env=env, ready=("ok",))
    try:
        gw.wait((tmp_path / "late.pid").exists, "the late server's process started")

        async def body(c: Client) -> dict[str, str]:
            out: dict[str, str] = {}

            async def one(name: str) -> None:
                out[name], took = await call(c, f"{name}__echo", {"text": name})
                out[f"{name} took"] = f"{took:.1f}"

            with anyio.fail_after(30):  # hang guard
                async with anyio.create_task_group() as tg:
                    tg.start_soon(one, "late")
                    tg.start_soon(one, "never")
                    await anyio.sleep(1)  # the late call is in flight, waiting for a server that does not listen
                    out["late state before"] = gw.state("late")
                    out["late listening before"] = str(_listening(late_port))
                    out["ok meanwhile"] = (await call(c, "ok__echo", {"text": "ok"}))[0]
                    (tmp_path / "late.go").touch()
            return out

        seen = with_client(gw, body)
        assert seen["late state before"] == "starting" and seen["late listening before"] == "False", seen
        assert seen["late"] == "late", "the call waited for the server to listen, then got its answer"
        assert seen["ok meanwhile"] == "ok"
        assert _named(seen["never"], "never") and f"nothing listening at 127.0.0.1:{never_port}" in seen["never"], seen
        assert float(seen["never took"]) < NEVER_STARTUP_TIMEOUT + 3, "the call waited its startup_timeout, no longer"
        assert gw.state("late") == "ready"
        health = gw.health()["backends"]["never"]
        assert health["state"] == "failed" and "nothing listening" in health["error"], health
    finally:
        peers.kill_process_group(gw.proc)
