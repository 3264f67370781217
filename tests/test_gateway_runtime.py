"""The generated gateway as a process: a dead backend, the HTTP guard, bind defaults, health.

Built frozen from the repo's own snapshot with the `time` backend pointed at a
command that does not exist, so one backend is dead from the start while
`bash` (servers/bash_server.py) is real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests import peers

REPO = Path(__file__).resolve().parent.parent
TOKEN = "test-token-123"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("rt")
    config = json.loads((REPO / "config.json").read_text())
    del config["$schema"]
    config["bash"]["args"] = [str(REPO / "servers" / "bash_server.py")]
    config["time"] = {"command": "no-such-time-server", "startup_timeout": 2}
    (work / "config.json").write_text(json.dumps(config))
    (work / "dist").mkdir()
    shutil.copy(REPO / "generated" / "snapshot.json", work / "dist")
    proc = subprocess.run(
        [sys.executable, "-m", "mcpgw", "build", "config.json", "-o", "dist", "--frozen"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return work / "dist" / "gateway.py"


def _serve(gateway: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = peers.free_port()
    proc = subprocess.Popen(
        [sys.executable, str(gateway), "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    peers.wait_for_port("127.0.0.1", port, 30)
    return proc, port


@pytest.fixture(scope="module")
def served(gateway: Path) -> Iterator[int]:
    proc, port = _serve(gateway, env={"MCPGW_TOKEN": TOKEN})
    try:
        yield port
    finally:
        peers.kill_process_group(proc)


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": TOKEN}, 401),
        ({**AUTH, "Host": "evil.example"}, 421),
        ({**AUTH, "Origin": "http://evil.example"}, 403),
        ({**AUTH, "Origin": "http://localhost:3000"}, 200),
        (AUTH, 200),
    ],
)
def test_guard_on_healthz(served: int, headers: dict[str, str], status: int) -> None:
    assert _get(served, "/healthz", headers)[0] == status


def test_guard_covers_mcp_and_sse(served: int) -> None:
    assert _get(served, "/mcp", {})[0] == 401
    assert _get(served, "/sse", {})[0] == 401
    assert _get(served, "/sse", {**AUTH, "Host": "rebind.example:80"})[0] == 421


def test_dead_backend_gives_an_mcp_error_and_the_rest_keep_serving(served: int) -> None:
    url = f"http://127.0.0.1:{served}/mcp"

    async def check() -> tuple[str, str, float]:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async with (
            httpx2.AsyncClient(headers=AUTH) as http,
            Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
        ):
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"bash__bash", "time__get_current_time"} <= names, "tools/list comes from the table"
            started = time.monotonic()
            try:
                await client.call_tool("time__get_current_time", {"timezone": "UTC"})
            except MCPError as exc:
                failed = exc.error.message
            else:
                failed = ""
            elapsed = time.monotonic() - started
            ok = await client.call_tool("bash__bash", {"command": "echo still-here"})
            assert ok.structured_content is not None
            return failed, str(ok.structured_content["stdout"]), elapsed

    failed, stdout, elapsed = anyio.run(check)
    assert "backend 'time' is not available" in failed
    assert "no-such-time-server" in failed
    assert elapsed < 10, "a dead backend must fail fast, within its startup_timeout"
    assert stdout == "still-here\n"
    status, body = _get(served, "/healthz", AUTH)
    health = json.loads(body)
    assert status == 200 and health["status"] == "degraded"
    assert health["backends"]["bash"]["state"] == "ready"
    assert health["backends"]["time"]["state"] in {"failed", "restarting"}


def test_refuses_to_bind_off_loopback_without_a_token(gateway: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MCPGW_TOKEN"}
    proc = subprocess.run(
        [sys.executable, str(gateway), "--host", "0.0.0.0", "--port", str(peers.free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "refusing to bind 0.0.0.0 without authentication" in proc.stderr


def _listen_addresses(port: int) -> set[str]:
    """Hex local addresses of sockets listening on `port`, from /proc (0100007F is 127.0.0.1)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, local_port = fields[1].split(":")
            if int(local_port, 16) == port and fields[3] == "0A":
                found.add(address)
    return found


def test_loopback_is_the_default_bind(gateway: Path) -> None:
    """No --host: the listening socket is on 127.0.0.1 only, with no token needed there."""
    proc, port = _serve(gateway)
    try:
        assert _get(port, "/healthz", {})[0] == 200
        assert _listen_addresses(port) == {"0100007F"}, "must listen on 127.0.0.1 only"
    finally:
        peers.kill_process_group(proc)


def test_allow_host_and_allow_origin_flags_extend_the_config_lists(gateway: Path) -> None:
    """One built image behind several names: the names are given at run time, nothing else is let in."""
    proc, port = _serve(
        gateway, "--allow-host", "mcpgw.internal", "--allow-origin", "https://app.example", env={"MCPGW_TOKEN": TOKEN}
    )
    try:
        assert _get(port, "/healthz", {**AUTH, "Host": "mcpgw.internal"})[0] == 200
        assert _get(port, "/healthz", {**AUTH, "Host": "mcpgw.internal:9000"})[0] == 200
        assert _get(port, "/healthz", {**AUTH, "Host": "other.internal"})[0] == 421
        assert _get(port, "/healthz", {**AUTH, "Origin": "https://app.example"})[0] == 200
        assert _get(port, "/healthz", {**AUTH, "Origin": "https://evil.example"})[0] == 403
    finally:
        peers.kill_process_group(proc)
