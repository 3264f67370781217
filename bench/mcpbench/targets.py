"""What each target is and how it is launched, with 1 backend or 5 backends of 40 tools.

Every target forwards to the same backend, `bench/servers/echo_server.py`, run by the project's
interpreter (mcp 2.3): directly, behind the generated gateway, or behind a peer in its own venv.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mcpbench import peers
from mcpbench.clients import Endpoint
from mcpbench.procs import LOCALHOST, ServerProcess, free_port, started, wait_listening

Role = Literal["direct", "gateway", "peer"]

ECHO_SERVER = peers.BENCH_DIR / "servers" / "echo_server.py"
CONFIGS = peers.BENCH_DIR / "configs"
BUILD_DIR = peers.CACHE_DIR / "build"
WORK_DIR = peers.CACHE_DIR / "work"
FIVE_BACKENDS = tuple(f"b{i}" for i in range(1, 6))
TOOLS_PER_BACKEND = {1: 2, 5: 40, 20: 2}
CONFIG_NAMES = {1: "one", 5: "five", 20: "twenty"}


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    label: str
    role: Role
    venv: str | None = None  # the peer's venv under .cache/bench/venvs
    multi: bool = True  # can serve 5 backends


TARGETS: tuple[Target, ...] = (
    Target("direct-stdio", "direct stdio", "direct"),
    Target("direct-http", "direct SDK HTTP (SSE)", "direct", multi=False),
    Target("direct-http-json", "direct SDK HTTP (JSON)", "direct", multi=False),
    Target("mcpgw-mcp", "mcpgw /mcp", "gateway"),
    Target("mcpgw-sse", "mcpgw /sse", "gateway", multi=False),
    Target("mcpgw-eager", "mcpgw /mcp --eager-core", "gateway"),
    Target("fastmcp", "FastMCP proxy", "peer", venv="fastmcp"),
    Target("mcp-proxy", "mcp-proxy", "peer", venv="mcp-proxy"),
)
BY_KEY = {t.key: t for t in TARGETS}


@dataclass(slots=True)
class Running:
    """A launched target: the endpoints a client opens (one per backend when it does not aggregate)."""

    target: Target
    endpoints: list[Endpoint]
    server: ServerProcess | None = None  # None: the client spawns the server itself (direct stdio)
    notes: list[str] = field(default_factory=list)


def backend_command(tools: int, *extra: str) -> list[str]:
    return [sys.executable, str(ECHO_SERVER), "--tools", str(tools), *extra]


def build_gateways(root: Path = BUILD_DIR, counts: tuple[int, ...] = (1, 5, 20)) -> dict[int, Path]:
    """`mcpgw build` of the 1-, 5- and 20-backend configs into `root`; the path of each gateway.py."""
    built: dict[int, Path] = {}
    for count in counts:
        name = CONFIG_NAMES[count]
        out = root / name
        subprocess.run(
            [sys.executable, "-m", "mcpgw", "build", str(CONFIGS / f"{name}.json"), "-o", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        built[count] = out / "gateway.py"
    return built


def _mcp_servers(backends: int) -> dict[str, dict[str, object]]:
    names = ("echo",) if backends == 1 else FIVE_BACKENDS
    commands = {name: backend_command(TOOLS_PER_BACKEND[backends], "--name", name) for name in names}
    return {name: {"command": command[0], "args": command[1:]} for name, command in commands.items()}


def _write_config(name: str, backends: int) -> Path:
    path = WORK_DIR / f"{name}-{backends}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": _mcp_servers(backends)}, indent=2))
    return path


def _command(target: Target, backends: int, port: int, gateways: dict[int, Path]) -> tuple[list[str], list[str]]:
    """The server command of an HTTP target and the URL paths a client opens on it."""
    tools = TOOLS_PER_BACKEND[backends]
    match target.key:
        case "direct-http":
            return backend_command(tools, "--transport", "http", "--port", str(port)), ["/mcp"]
        case "direct-http-json":
            return backend_command(tools, "--transport", "http-json", "--port", str(port)), ["/mcp"]
        case "mcpgw-mcp" | "mcpgw-sse" | "mcpgw-eager":
            gateway = gateways[backends]
            command = [sys.executable, str(gateway), "--port", str(port), "--log-level", "warning"]
            if target.key == "mcpgw-eager":
                command.append("--eager-core")
            return command, ["/sse" if target.key == "mcpgw-sse" else "/mcp"]
        case "fastmcp":
            script = peers.BENCH_DIR / "peers" / "fastmcp_proxy.py"
            config = _write_config("fastmcp", backends)
            return [str(peers.venv_python("fastmcp")), str(script), str(config), "--port", str(port)], ["/mcp"]
        case "mcp-proxy":
            # mcp-proxy does not aggregate: one endpoint per named server, mounted at .../mcp/.
            base = [str(peers.venv_bin("mcp-proxy", "mcp-proxy")), "--port", str(port), "--host", LOCALHOST]
            if backends == 1:
                return [*base, "--log-level", "WARNING", "--", *backend_command(tools)], ["/mcp/"]
            config = _write_config("mcp-proxy", backends)
            paths = [f"/servers/{name}/mcp/" for name in FIVE_BACKENDS]
            return [*base, "--log-level", "WARNING", "--named-server-config", str(config)], paths
    raise ValueError(f"not an HTTP target: {target.key}")


@contextlib.asynccontextmanager
async def launch(
    target: Target, backends: int, gateways: dict[int, Path], *, wait: bool = True, timeout: float = 60
) -> AsyncIterator[Running]:
    """Start the target (unless the client spawns it) and, with `wait`, until its port accepts."""
    if target.key == "direct-stdio":
        spawn = tuple(backend_command(TOOLS_PER_BACKEND[backends]))
        yield Running(target, [Endpoint("stdio", command=spawn)] * backends)
        return
    port = free_port()
    command, paths = _command(target, backends, port, gateways)
    kind: Literal["http", "sse"] = "sse" if target.key == "mcpgw-sse" else "http"
    log = WORK_DIR / "logs" / f"{target.key}-{backends}.log"
    with started(command, log, cwd=peers.REPO_ROOT) as server:
        if wait:
            await wait_listening(server, port, timeout)
        yield Running(target, [Endpoint(kind, url=f"http://{LOCALHOST}:{port}{p}") for p in paths], server)
