"""Locate and launch real MCP peers that nobody in this project wrote.

* ``@modelcontextprotocol/server-everything`` (npm, installed by ``.ci/run`` into ``.cache/npm``):
  stdio, Streamable HTTP (``/mcp``) and legacy HTTP+SSE (``/sse``). The HTTP transports are picked by
  the first argument (``streamableHttp`` / ``sse``) and listen on the ``PORT`` environment variable.
* ``mcp-server-time`` (PyPI reference server, a test extra): stdio.

A missing peer skips the test locally, but fails it when ``CI=true``: CI must never pass by skipping.
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
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal, NoReturn

import pytest
from mcp import StdioServerParameters

REPO_ROOT = Path(__file__).resolve().parent.parent
EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything"
LOCALHOST = "127.0.0.1"

EverythingTransport = Literal["stdio", "streamableHttp", "sse"]
HttpTransport = Literal["streamableHttp", "sse"]
HTTP_PATHS: dict[HttpTransport, str] = {"streamableHttp": "/mcp", "sse": "/sse"}

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


def build_gateway(work: Path, config: dict[str, object], *, env: dict[str, str] | None = None) -> Path:
    """Write ``config`` to ``work/config.json``, run a real ``mcpgw build`` (with its probe); the gateway's path."""
    (work / "config.json").write_text(json.dumps(config, indent=2))
    proc = subprocess.run(
        [sys.executable, "-m", "mcpgw", "build", "config.json", "-o", "dist"],
        cwd=work,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return work / "dist" / "gateway.py"
