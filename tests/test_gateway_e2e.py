"""End to end: build a gateway in front of real servers nobody here wrote, serve it, drive it.

Backends: mcp-server-time (PyPI, stdio), @modelcontextprotocol/server-everything
(npm) over stdio, over Streamable HTTP and as a locally launched legacy SSE
server, and servers/bash_server.py. Clients: the `mcp` SDK's own, over `/mcp`
(handshake and 2026-07-28), `/sse` and stdio. Every result is compared with the
same call made directly to the backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client

from tests import peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parent.parent
FEATURES_URI = "demo://resource/static/document/features.md"
CONVERT = {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}


def _config(tmp: Path, everything_http: str, sse_port: int) -> Path:
    node, entry = peers.everything_command("stdio")
    time_cmd, time_args = peers.time_server_command()
    # Resources of the extra everything instances are excluded: the same URI from two backends is a build error.
    no_resources = {"exclude": ["*"]}
    config = {
        "$schema": str(REPO / "schemas" / "config.schema.json"),
        "mcpServers": {
            "time": {"command": time_cmd, "args": time_args},
            "everything": {"command": node, "args": entry},
            "evhttp": {"url": everything_http, "resources": no_resources},
            "evsse": {
                "type": "sse",
                "command": node,
                "args": [entry[0], "sse"],
                "env": {"PORT": str(sse_port)},
                "url": f"http://127.0.0.1:{sse_port}/sse",
                "resources": no_resources,
                "tools": {"include": ["echo", "get-sum"]},
                "prompts": {"exclude": ["*"]},
            },
            "bash": {"command": "python", "args": [str(REPO / "servers" / "bash_server.py")]},
        },
        "gateway": {"name": "e2e"},
    }
    path = tmp / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A gateway built (with a real probe) into a temp folder; the HTTP everything stays up meanwhile."""
    tmp = tmp_path_factory.mktemp("gw")
    with peers.run_everything_http("streamableHttp") as url:
        config = _config(tmp, url, peers.free_port())
        proc = subprocess.run(
            [sys.executable, "-m", "mcpgw", "build", str(config), "-o", str(tmp / "dist")],
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        yield tmp / "dist"


@pytest.fixture(scope="module")
def served(built: Path) -> Iterator[str]:
    """The built gateway serving /mcp and /sse on a free loopback port, with only its own files."""
    port = peers.free_port()
    proc = subprocess.Popen(
        [sys.executable, str(built / "gateway.py"), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        peers.wait_for_port("127.0.0.1", port, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        peers.kill_process_group(proc)


def _run(client_factory: Callable[[], Client], check: Callable[[Client], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with client_factory() as client:
            return await check(client)

    return anyio.run(main)


def _dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"meta", "result_type"})


async def _exercise(client: Client) -> dict[str, Any]:
    """One call of each kind on each backend; the answers, for comparison with direct calls."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    prompts = {p.name for p in (await client.list_prompts()).prompts}
    out: dict[str, Any] = {"tools": set(tools), "prompts": prompts, "version": client.protocol_version}
    out["echo"] = _dump(await client.call_tool("everything__echo", {"message": "via gateway"}))
    out["http_echo"] = _dump(await client.call_tool("evhttp__echo", {"message": "via gateway"}))
    out["sse_sum"] = _dump(await client.call_tool("evsse__get-sum", {"a": 2, "b": 40}))
    out["structured"] = _dump(await client.call_tool("everything__get-structured-content", {"location": "New York"}))
    out["convert"] = _dump(await client.call_tool("time__convert_time", CONVERT))
    out["bash"] = _dump(await client.call_tool("bash__bash", {"command": "echo from-bash; exit 3"}))
    out["resource"] = _dump(await client.read_resource(FEATURES_URI))
    out["prompt"] = _dump(await client.get_prompt("everything__args-prompt", {"city": "Lisbon", "state": "Lisboa"}))
    out["templates"] = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    out["resources"] = await _all_resources(client)
    return out


async def _all_resources(client: Client) -> list[str]:
    """Every resource URI, following nextCursor to the end (the gateway pages across backends)."""
    uris: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        page = await client.list_resources(cursor=cursor)
        uris += [str(r.uri) for r in page.resources]
        cursor = page.next_cursor
        if not cursor:
            return uris
    raise AssertionError("resources/list never ended")


def _direct(params: StdioServerParameters, check: Callable[[Client], Awaitable[Any]]) -> Any:
    return _run(lambda: Client(params, mode="legacy"), check)


@pytest.fixture(scope="module")
def direct() -> dict[str, Any]:
    """The same calls made straight to each backend, no gateway."""
    everything = peers.stdio_params(peers.everything_command("stdio"))
    time_server = peers.stdio_params(peers.time_server_command())
    bash = StdioServerParameters(command=sys.executable, args=[str(REPO / "servers" / "bash_server.py")])

    async def ev(c: Client) -> dict[str, Any]:
        return {
            "echo": _dump(await c.call_tool("echo", {"message": "via gateway"})),
            "sum": _dump(await c.call_tool("get-sum", {"a": 2, "b": 40})),
            "structured": _dump(await c.call_tool("get-structured-content", {"location": "New York"})),
            "resource": _dump(await c.read_resource(FEATURES_URI)),
            "prompt": _dump(await c.get_prompt("args-prompt", {"city": "Lisbon", "state": "Lisboa"})),
            "tools": {t.name for t in (await c.list_tools()).tools},
            "resources": await _all_resources(c),
        }

    async def tm(c: Client) -> Any:
        return _dump(await c.call_tool("convert_time", CONVERT))

    async def sh(c: Client) -> Any:
        return _dump(await c.call_tool("bash", {"command": "echo from-bash; exit 3"}))

    return {**_direct(everything, ev), "convert": _direct(time_server, tm), "bash": _direct(bash, sh)}


def _assert_same(seen: dict[str, Any], direct: dict[str, Any]) -> None:
    assert {f"everything__{t}" for t in direct["tools"]} <= seen["tools"]
    assert {"time__convert_time", "time__get_current_time", "bash__bash", "evsse__echo"} <= seen["tools"]
    assert "evsse__get-tiny-image" not in seen["tools"], "include filter ignored"
    assert "everything__args-prompt" in seen["prompts"] and not any(p.startswith("evsse__") for p in seen["prompts"])
    assert seen["echo"] == direct["echo"]
    assert seen["http_echo"] == direct["echo"]
    assert seen["sse_sum"] == direct["sum"]
    assert seen["structured"] == direct["structured"]
    assert seen["structured"]["structuredContent"], "structuredContent must pass through"
    assert seen["convert"] == direct["convert"]
    assert seen["bash"] == direct["bash"]
    assert seen["bash"]["isError"] is True and seen["bash"]["structuredContent"]["exit_code"] == 3
    assert seen["resource"] == direct["resource"]
    assert seen["prompt"] == direct["prompt"]
    assert "demo://resource/dynamic/text/{resourceId}" in seen["templates"]
    # Only the stdio everything offers resources (the others exclude them), every page of it.
    assert seen["resources"] == direct["resources"] and FEATURES_URI in seen["resources"]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_streamable_http(served: str, direct: dict[str, Any], mode: str) -> None:
    """`/mcp` with the handshake (2025-11-25) and with the SDK's default negotiation (2026-07-28)."""
    seen = _run(lambda: Client(f"{served}/mcp", mode=mode), _exercise)
    _assert_same(seen, direct)
    assert seen["version"] == ("2025-11-25" if mode == "legacy" else "2026-07-28")


def test_stateless_http(built: Path, direct: dict[str, Any]) -> None:
    """`--stateless`, for replicas behind a load balancer: both protocol eras still work."""
    port = peers.free_port()
    proc = subprocess.Popen(
        [sys.executable, str(built / "gateway.py"), "--port", str(port), "--stateless", "--transport", "http"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        peers.wait_for_port("127.0.0.1", port, 30)
        for mode in ("legacy", "auto"):
            _assert_same(_run(lambda m=mode: Client(f"http://127.0.0.1:{port}/mcp", mode=m), _exercise), direct)
    finally:
        peers.kill_process_group(proc)


def test_legacy_sse(served: str, direct: dict[str, Any]) -> None:
    seen = _run(lambda: Client(sse_client(f"{served}/sse"), mode="legacy"), _exercise)
    _assert_same(seen, direct)


def test_stdio(built: Path, direct: dict[str, Any]) -> None:
    """`--transport stdio`, as Claude Desktop spawns it."""
    params = StdioServerParameters(command=sys.executable, args=[str(built / "gateway.py"), "--transport", "stdio"])
    seen = _run(lambda: Client(params, mode="legacy"), _exercise)
    _assert_same(seen, direct)


def test_resource_read_of_unknown_uri_is_an_mcp_error(served: str) -> None:
    async def check(client: Client) -> str:
        try:
            await client.read_resource("nope://missing")
        except Exception as exc:  # the SDK raises MCPError
            return str(exc)
        return ""

    message = _run(lambda: Client(f"{served}/mcp", mode="legacy"), check)
    assert "no backend offers resource 'nope://missing'" in message


def test_gateway_runs_without_the_compiler(built: Path, tmp_path: Path) -> None:
    """gateway.py imports nothing of the compiler, and its runtime is the copy beside it.

    With `mcpgw`, an installed `mcpgw_runtime`, jinja2 and typer made unimportable, --help still
    works: the script's own folder, where `mcpgw build` vendored the runtime, comes first.
    """
    blocker = tmp_path / "block"
    blocker.mkdir()
    for name in ("mcpgw", "mcpgw_runtime", "jinja2", "typer"):
        (blocker / name).mkdir()
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} must not be imported')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    proc = subprocess.run(
        [sys.executable, str(built / "gateway.py"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--transport" in proc.stdout
    source = (built / "gateway.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in imports if line.split()[1].split(".")[0] in ("mcpgw", "jinja2", "typer")]
    assert (built / "mcpgw_runtime" / "start.py").is_file()
