"""A backend's `startup_timeout` bounds its start, its `timeout` only the calls made after it.

The backend is tests/servers/slow_start_server.py (the mcp SDK's server over stdio,
Streamable HTTP or legacy SSE), which holds every answer to `initialize` and
`tools/list` for the seconds written in a file: longer than its `timeout` (1 s), far
shorter than its `startup_timeout` (10 s). Each path that connects to a backend must
wait for it: the build's probe, `mcpgw check`, the lazy front, the core
(`--eager-core`), a client's own connection (`session: per-client`), and the core's SSE
and HTTP transports. A call made once it is up still gets the 1 s `timeout`.

A backend the gateway does not start (a bare `url`) whose port refuses connections fails
the build in a few seconds, naming the backend and the refusal; a wait long enough to
notice is printed, saying what it waits for, though stderr is no terminal.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from mcp import Client

from tests import peers
from tests.peers import ServedGateway, call, with_client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SLOW_START = Path(__file__).resolve().parent / "servers" / "slow_start_server.py"
TIMEOUT = 1
STARTUP_TIMEOUT = 10
DELAY = 2.0
"""How long the backend holds `initialize` and `tools/list`: more than TIMEOUT, less than STARTUP_TIMEOUT."""
PATHS = {"http": "/mcp", "sse": "/sse"}


def slow_stdio(delay_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": [str(SLOW_START), str(delay_file)],
        "timeout": TIMEOUT,
        "startup_timeout": STARTUP_TIMEOUT,
        "prefix": "",
        **extra,
    }


def delay(delay_file: Path, seconds: float) -> Path:
    delay_file.write_text(str(seconds))
    return delay_file


@contextlib.contextmanager
def served(gateway: Path, root: Path, *flags: str) -> Iterator[ServedGateway]:
    """`gateway` running with `flags` on a free port (its debug log in `root`/logs) until the block ends."""
    port = peers.free_port()
    log = root / f"gateway-{port}.log"
    with log.open("wb") as sink:
        command = [sys.executable, str(gateway), "--port", str(port), "--log-level", "debug", "--log-dir", "logs"]
        command += flags
        proc = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)
    try:
        peers.wait_for_port(peers.LOCALHOST, port, 30, process=proc)
        yield ServedGateway(root, proc, port, log)
    finally:
        peers.kill_process_group(proc)


def log_text(gw: ServedGateway) -> str:
    """What the gateway logged (its log files; stderr has only the state lines when it is no terminal)."""
    return "".join(p.read_text() for p in sorted((gw.root / "logs").glob("*.log")))


def ready(gw: ServedGateway, name: str = "slow") -> dict[str, Any]:
    """The backend's health once it is ready, its pins verified."""
    gw.wait(lambda: gw.state(name) == "ready", f"backend {name} ready", timeout=30)
    backend: dict[str, Any] = gw.health()["backends"][name]
    assert backend["pin"]["status"] == "verified", backend
    return backend


async def echo_then_sleep(c: Client) -> tuple[str, str, float]:
    """An echo, then a call that outlasts the 1 s `timeout`: the start's bound is not the calls'."""
    echoed, _ = await call(c, "echo", {"text": "up"})
    slept, took = await call(c, "sleep", {"seconds": 3})
    return echoed, slept, took


def assert_calls_keep_their_timeout(gw: ServedGateway) -> None:
    echoed, slept, took = with_client(gw, echo_then_sleep)
    assert echoed == "up"
    assert slept == f"error -32001: backend 'slow' did not answer within {TIMEOUT}s", slept
    assert took < 2.5, took


def test_the_build_probe_waits_startup_timeout_for_initialize_and_lists(tmp_path: Path) -> None:
    config = {"slow": slow_stdio(delay(tmp_path / "delay", DELAY))}
    started = time.monotonic()
    proc = peers.run_build(tmp_path, config)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started >= 2 * DELAY  # it did wait: for initialize, then for tools/list
    assert "probe slow: ok: 2 tools, 0 prompts" in proc.stderr, proc.stderr


def test_check_waits_startup_timeout_for_initialize_and_lists(tmp_path: Path) -> None:
    config = {"slow": slow_stdio(delay(tmp_path / "delay", 0))}
    peers.build_gateway(tmp_path, config)
    delay(tmp_path / "delay", DELAY)
    proc = subprocess.run(
        [sys.executable, "-m", "mcpgw", "check", "config.json", "--against", "dist"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stdout == "no drift: every backend matches dist/snapshot.json\n"


def test_the_lazy_front_waits_startup_timeout_and_serves_the_backend_itself(tmp_path: Path) -> None:
    gateway = peers.build_gateway(tmp_path, {"slow": slow_stdio(delay(tmp_path / "delay", 0))})
    delay(tmp_path / "delay", DELAY)
    with served(gateway, tmp_path) as gw:
        ready(gw)
        assert_calls_keep_their_timeout(gw)
        written = log_text(gw)
    assert "backend slow ready (slow-start), served by the front" in written, written
    assert "loading the core" not in written, written


def test_the_eager_core_waits_startup_timeout_for_initialize_and_lists(tmp_path: Path) -> None:
    gateway = peers.build_gateway(tmp_path, {"slow": slow_stdio(delay(tmp_path / "delay", 0))})
    delay(tmp_path / "delay", DELAY)
    with served(gateway, tmp_path, "--eager-core") as gw:
        backend = ready(gw)
        assert backend["restarts"] == 0, backend
        assert_calls_keep_their_timeout(gw)


def test_a_per_client_connection_waits_startup_timeout_for_initialize_and_lists(tmp_path: Path) -> None:
    config = {"slow": slow_stdio(delay(tmp_path / "delay", 0), session="per-client")}
    gateway = peers.build_gateway(tmp_path, config)
    delay(tmp_path / "delay", DELAY)
    with served(gateway, tmp_path) as gw:
        shared = ready(gw)

        async def own_session(c: Client) -> tuple[str, str, float, dict[str, Any]]:
            echoed, slept, took = await echo_then_sleep(c)  # the first call opens this client's connection
            return echoed, slept, took, gw.health()["backends"]["slow"]["client_sessions"]

        echoed, slept, took, sessions = with_client(gw, own_session)
    assert echoed == "up"
    assert slept == f"error -32001: backend 'slow' did not answer within {TIMEOUT}s", slept
    assert took < 2.5, took
    assert sessions["open"] == 1 and sessions["pids"] != [shared["pid"]], sessions
    assert "cannot verify pins" not in log_text(gw)


@pytest.mark.parametrize("transport", ["sse", "http"])
def test_an_sse_or_http_backend_gets_startup_timeout_to_answer_initialize(
    tmp_path: Path, transport: Literal["sse", "http"]
) -> None:
    port = peers.free_port()
    delay_file = delay(tmp_path / "delay", 0)
    command = [sys.executable, str(SLOW_START), str(delay_file), "--transport", transport, "--port", str(port)]
    backend = {
        "type": transport,
        "url": f"http://127.0.0.1:{port}{PATHS[transport]}",
        "timeout": TIMEOUT,
        "startup_timeout": STARTUP_TIMEOUT,
        "prefix": "",
    }
    with peers.run_process(command, port):
        gateway = peers.build_gateway(tmp_path, {"slow": backend})
        delay(delay_file, DELAY)  # listening all along: only the answers are slow
        with served(gateway, tmp_path) as gw:
            ready(gw)
            assert_calls_keep_their_timeout(gw)


@pytest.mark.parametrize("path", ["/mcp", "/sse"])
def test_a_url_backend_refusing_connections_fails_the_build_fast(tmp_path: Path, path: str) -> None:
    port = peers.free_port()  # nothing listens there
    config = {"remote": {"url": f"http://127.0.0.1:{port}{path}", "startup_timeout": 30}}
    started = time.monotonic()
    proc = peers.run_build(tmp_path, config)
    took = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    assert f"error: backend 'remote': connection refused at 127.0.0.1:{port}" in proc.stderr, proc.stderr
    assert took < 10, f"a refused connection took {took:.1f}s to fail the build"
    assert not (tmp_path / "dist").exists()


def test_the_gateway_finds_a_refusing_url_backend_failed_in_seconds_not_its_startup_timeout(tmp_path: Path) -> None:
    port = peers.free_port()
    command = [sys.executable, str(SLOW_START), str(delay(tmp_path / "delay", 0)), "--transport", "http"]
    backend = {"url": f"http://127.0.0.1:{port}/mcp", "startup_timeout": 30, "prefix": ""}
    with peers.run_process([*command, "--port", str(port)], port):
        gateway = peers.build_gateway(tmp_path, {"remote": backend})
    with served(gateway, tmp_path) as gw:  # the server is gone: its port refuses
        started = time.monotonic()
        gw.wait(lambda: gw.health()["backends"]["remote"]["error"] is not None, "the first attempt's error", 30)
        took = time.monotonic() - started
        health = gw.health()["backends"]["remote"]
    assert health["state"] == "failed", health
    assert health["error"].startswith(f"backend 'remote': connection refused at 127.0.0.1:{port}"), health
    assert took < 10, f"the first attempt took {took:.1f}s to fail"


def test_a_long_wait_in_the_probe_says_what_it_waits_for_without_a_terminal(tmp_path: Path) -> None:
    """Both backends wait past probe.NOTICE_AFTER (3 s): one to listen, one to answer initialize."""
    port = peers.free_port()
    late = {
        "type": "http",
        "command": sys.executable,
        "args": [str(SLOW_START), str(delay(tmp_path / "fast", 0)), "--transport", "http", "--port", str(port)],
        "url": f"http://127.0.0.1:{port}/mcp",
        "startup_timeout": STARTUP_TIMEOUT,
    }
    late["args"] += ["--listen-after", "5"]
    config = {"late": late, "slow": slow_stdio(delay(tmp_path / "slow", 4))}
    proc = peers.run_build(tmp_path, config)  # stderr is a pipe: no live table, plain lines
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    url = f"http://127.0.0.1:{port}/mcp"
    waited = f"probe late: waiting for backend 'late' ({url}) to accept connections, up to {STARTUP_TIMEOUT}s"
    assert waited in lines, proc.stderr
    assert f"probe slow: waiting for backend 'slow' to answer initialize, up to {STARTUP_TIMEOUT}s" in lines
    assert f"probe slow: waiting for backend 'slow' to answer tools/list, up to {STARTUP_TIMEOUT}s" in lines
    assert lines.index(waited) < lines.index("probe late: ok: 2 tools, 0 prompts"), proc.stderr
