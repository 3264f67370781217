"""Locate and launch real MCP peers that nobody in this project wrote.

* ``@modelcontextprotocol/server-everything`` (npm, installed by ``.ci/run`` into ``.cache/npm``):
  stdio, Streamable HTTP (``/mcp``) and legacy HTTP+SSE (``/sse``). The HTTP transports are picked by
  the first argument (``streamableHttp`` / ``sse``) and listen on the ``PORT`` environment variable.
* ``mcp-server-time`` (PyPI reference server, a test extra): stdio.

A missing peer skips the test locally, but fails it when ``CI=true``: CI must never pass by skipping.

And our own side of those tests: ``build_gateway`` (a real ``mcpgw build``), ``serve_gateway`` (the
generated gateway as a process on a free port), an SDK client to it, and ``/proc`` process helpers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, NoReturn, TypeVar

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

REPO_ROOT = Path(__file__).resolve().parent.parent
EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything"
LOCALHOST = "127.0.0.1"

EverythingTransport = Literal["stdio", "streamableHttp", "sse"]
HttpTransport = Literal["streamableHttp", "sse"]
HTTP_PATHS: dict[HttpTransport, str] = {"streamableHttp": "/mcp", "sse": "/sse"}

# A raw Streamable HTTP exchange, for tests that look at status codes and headers the SDK client hides.
RAW_INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
RAW_POST_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
RAW_TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

_START_ATTEMPTS = 3  # a free port can be taken between free_port() and the server's bind: retry on a fresh one


class PeerExitedError(RuntimeError):
    """A peer process exited while we waited for it to accept connections."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_peer(reason: str) -> NoReturn:
    """Skip the test (developer machine) or fail it (CI) because a peer is not installed."""
    message = f"{reason}; run `bash .ci/run` once to install the test peers"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def npm_prefix() -> Path:
    """The npm prefix the peers are installed into (``MCPGW_NPM_PREFIX``, default ``<repo>/.cache/npm``)."""
    configured = os.environ.get("MCPGW_NPM_PREFIX")
    return Path(configured) if configured else REPO_ROOT / ".cache" / "npm"


def node_binary() -> str:
    """A node new enough for the peers: ``MCPGW_NODE`` if set, else ``node`` on PATH."""
    configured = os.environ.get("MCPGW_NODE")
    if configured:
        if not os.access(configured, os.X_OK):
            missing_peer(f"MCPGW_NODE={configured} is not an executable")
        return configured
    found = shutil.which("node")
    if found is None:
        missing_peer("no `node` on PATH and MCPGW_NODE is not set")
    return found


def everything_entry() -> Path:
    """The installed server-everything entry script (its package.json ``bin``)."""
    package_dir = npm_prefix() / "node_modules" / EVERYTHING_PACKAGE
    try:
        manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        missing_peer(f"{EVERYTHING_PACKAGE} is not installed under {npm_prefix()}")
    bin_field = manifest.get("bin")
    relative = next(iter(bin_field.values())) if isinstance(bin_field, dict) else bin_field
    entry = package_dir / str(relative)
    if not relative or not entry.is_file():
        missing_peer(f"{EVERYTHING_PACKAGE} under {npm_prefix()} has no entry script")
    return entry


def everything_command(transport: EverythingTransport = "stdio") -> tuple[str, list[str]]:
    """``(command, args)`` that runs server-everything with the given transport."""
    return node_binary(), [str(everything_entry()), transport]


def time_server_command() -> tuple[str, list[str]]:
    """``(command, args)`` that runs the PyPI reference server ``mcp-server-time`` over stdio."""
    script = Path(sys.executable).parent / "mcp-server-time"
    if script.is_file() and os.access(script, os.X_OK):
        return str(script), []
    if importlib.util.find_spec("mcp_server_time") is not None:
        return sys.executable, ["-m", "mcp_server_time"]
    missing_peer("mcp-server-time is not installed in this environment")


def stdio_params(command: tuple[str, list[str]]) -> StdioServerParameters:
    """SDK stdio parameters for a ``(command, args)`` pair."""
    executable, args = command
    return StdioServerParameters(command=executable, args=args)


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    host: str, port: int, timeout: float = 30.0, *, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until ``host:port`` accepts a TCP connection.

    Raises ``TimeoutError`` after ``timeout`` seconds, or ``PeerExitedError`` as soon as ``process``
    (the server expected to listen there) has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise PeerExitedError(f"process {process.pid} exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout}s") from None
            time.sleep(0.05)


def kill_process_group(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group led by ``process`` (started with ``start_new_session``), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def _log_tail(log: IO[bytes], limit: int = 4000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:]


@contextlib.contextmanager
def run_everything_http(transport: HttpTransport, *, timeout: float = 30.0) -> Iterator[str]:
    """Run server-everything over Streamable HTTP or legacy SSE on a free 127.0.0.1 port; yield its URL.

    The URL is the MCP endpoint (``.../mcp``) or the SSE endpoint (``.../sse``). The server's whole
    process group is killed on exit, whatever happens in the body.
    """
    command, args = everything_command(transport)
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = free_port()
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                [command, *args],
                env={**os.environ, "PORT": str(port)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                try:
                    wait_for_port(LOCALHOST, port, timeout, process=process)
                except PeerExitedError as exc:
                    if attempt < _START_ATTEMPTS:
                        continue
                    raise RuntimeError(f"server-everything ({transport}) did not start:\n{_log_tail(log)}") from exc
                except TimeoutError as exc:
                    raise RuntimeError(f"server-everything ({transport}) did not listen:\n{_log_tail(log)}") from exc
                yield f"http://{LOCALHOST}:{port}{HTTP_PATHS[transport]}"
                return
            finally:
                kill_process_group(process)
    raise AssertionError("unreachable")  # pragma: no cover


# ---- Node 22 tools: the official conformance suite and the MCP Inspector CLI ----------------------

CONFORMANCE_PACKAGE = "@modelcontextprotocol/conformance"
INSPECTOR_PACKAGE = "@modelcontextprotocol/inspector"


def npm22_prefix() -> Path:
    """The npm prefix of the Node 22 tools (``MCPGW_NPM22_PREFIX``, default ``<repo>/.cache/npm22``)."""
    configured = os.environ.get("MCPGW_NPM22_PREFIX")
    return Path(configured) if configured else REPO_ROOT / ".cache" / "npm22"


def node22_binary() -> str:
    """A Node >= 22: ``MCPGW_NODE22``, else the one ``.ci/run`` installs into ``.cache/node22``, else ``node``."""
    candidates = [os.environ.get("MCPGW_NODE22", "")]
    candidates += [
        str(p) for p in sorted((REPO_ROOT / ".cache" / "node22" / "node_modules").glob("node-linux-*/bin/node"))
    ]
    candidates.append(shutil.which("node") or "")
    for candidate in filter(None, candidates):
        if not os.access(candidate, os.X_OK):
            continue
        probe = subprocess.run(
            [candidate, "-p", "process.versions.node.split('.')[0]"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip().isdigit() and int(probe.stdout) >= 22:
            return candidate
    missing_peer("no Node >= 22 (set MCPGW_NODE22)")


def npm22_bin(package: str, name: str) -> Path:
    """The entry script ``name`` of ``package`` (its package.json ``bin``) under the Node 22 prefix."""
    package_dir = npm22_prefix() / "node_modules" / package
    try:
        manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        missing_peer(f"{package} is not installed under {npm22_prefix()}")
    bin_field = manifest.get("bin")
    relative = bin_field.get(name) if isinstance(bin_field, dict) else bin_field
    entry = package_dir / str(relative)
    if not relative or not entry.is_file():
        missing_peer(f"{package} under {npm22_prefix()} has no {name!r} entry script")
    return entry


def conformance_command() -> list[str]:
    """The command that runs ``@modelcontextprotocol/conformance`` on Node 22."""
    return [node22_binary(), str(npm22_bin(CONFORMANCE_PACKAGE, "conformance"))]


def inspector_command() -> list[str]:
    """The command that runs ``@modelcontextprotocol/inspector`` on Node 22 (add ``--cli`` for CLI mode)."""
    return [node22_binary(), str(npm22_bin(INSPECTOR_PACKAGE, "mcp-inspector"))]


@contextlib.contextmanager
def run_process(
    command: list[str], port: int, *, timeout: float = 30.0, env: dict[str, str] | None = None
) -> Iterator[None]:
    """Run a server process in its own group until ``port`` accepts connections; kill the group on exit."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            try:
                wait_for_port(LOCALHOST, port, timeout, process=process)
            except (PeerExitedError, TimeoutError) as exc:
                raise RuntimeError(f"{command} did not listen on {port}:\n{_log_tail(log)}") from exc
            yield
        finally:
            kill_process_group(process)


def run_build(
    work: Path, config: Mapping[str, object], *, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Write ``config`` to ``work/config.json`` and run a real ``mcpgw build`` (with its probe) into ``work/dist``."""
    (work / "config.json").write_text(json.dumps(config, indent=2))
    return subprocess.run(
        [sys.executable, "-m", "mcpgw", "build", "config.json", "-o", "dist"],
        cwd=work,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def build_gateway(work: Path, config: Mapping[str, object], *, env: dict[str, str] | None = None) -> Path:
    """``run_build`` that must succeed; the gateway's path."""
    proc = run_build(work, config, env=env)
    assert proc.returncode == 0, proc.stderr
    return work / "dist" / "gateway.py"


# ---- A generated gateway served by a real process, and the MCP client that talks to it ------------

T = TypeVar("T")


@dataclass
class ServedGateway:
    """A running ``gateway.py`` on 127.0.0.1. Backends write their pid to ``root/<name>.pid`` by convention."""

    root: Path
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    """The gateway's stderr (at ``--log-level debug``)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Sent on every request (the bearer token, when the gateway has one)."""

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, headers=self.headers if headers is None else headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def health(self) -> dict[str, Any]:
        return dict(json.loads(self.get("/healthz")[1]))

    def state(self, backend: str) -> str:
        return str(self.health()["backends"][backend]["state"])

    def pid(self, backend: str) -> int:
        return int((self.root / f"{backend}.pid").read_text())

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; log:\n{self.log.read_text(errors='replace')[-3000:]}")


def serve_gateway(
    gateway: Path,
    root: Path,
    *,
    env: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    ready: Sequence[str] = (),
    args: Sequence[str] = (),
) -> ServedGateway:
    """Run ``gateway`` on a free port (debug logs into ``root``), wait until it listens and ``ready`` are ready.

    ``args`` are more command-line flags for the gateway.
    """
    port = free_port()
    log = root / f"gateway-{port}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(gateway), "--port", str(port), "--log-level", "debug", "--log-dir", str(root), *args],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        wait_for_port(LOCALHOST, port, 30, process=proc)
        gw = ServedGateway(root, proc, port, log, dict(headers or {}))
        gw.wait(lambda: all(gw.state(b) == "ready" for b in ready), f"backends {list(ready)} ready", 40)
    except BaseException:
        kill_process_group(proc)
        raise
    return gw


def gateway_client(gw: ServedGateway) -> tuple[httpx2.AsyncClient, Client]:
    """A real SDK client over Streamable HTTP (handshake era) and the HTTP client it owns; enter both."""
    http = httpx2.AsyncClient(headers=gw.headers, timeout=60)
    return http, Client(streamable_http_client(f"{gw.url}/mcp", http_client=http), mode="legacy")


async def call(c: Client, name: str, args: dict[str, Any] | None = None) -> tuple[str, float]:
    """The result's first text, or ``error <code>: <message>``; and how long it took."""
    started = time.monotonic()
    try:
        result = await c.call_tool(name, args or {})
    except MCPError as exc:
        return f"error {exc.error.code}: {exc.error.message}", time.monotonic() - started
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    return str(text), time.monotonic() - started


def with_client(gw: ServedGateway, body: Callable[[Client], Awaitable[T]]) -> T:
    """Run ``body`` with a fresh client session to ``gw``."""

    async def main() -> T:
        http, c = gateway_client(gw)
        async with http, c:
            return await body(c)

    return anyio.run(main)


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie is dead, only not yet reaped by whoever adopted it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return " Z" not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:3]
    except OSError:
        return True


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...), from ``/proc``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return sorted(found)
