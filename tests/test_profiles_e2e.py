"""Profiles end to end: a gateway built over server-everything and mcp-server-time, asked with the `mcp` SDK client.

Each profile is served at /mcp/<name> and /sse/<name> (and with --profile under stdio): its tools/list is its
own, a call outside it is an unknown tool, a session opened on one profile's path is unknown on another's, and
a search profile is searched then called through its two tools. Both halves of the gateway answer: the
SDK-free front (the default with stdio backends) and the SDK core (`--eager-core`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.peers import (
    RAW_INITIALIZE,
    RAW_POST_HEADERS,
    RAW_TOOLS_LIST,
    ServedGateway,
    build_gateway,
    everything_command,
    kill_process_group,
    serve_gateway,
    time_server_command,
)

READONLY = ["everything__echo", "everything__get-sum", "time__convert_time", "time__get_current_time"]


def _config() -> dict[str, Any]:
    everything, everything_args = everything_command("stdio")
    time_server, time_args = time_server_command()
    return {
        "mcpServers": {
            "everything": {"command": everything, "args": everything_args},
            "time": {"command": time_server, "args": time_args},
        },
        "gateway": {
            "profiles": {
                "readonly": {
                    "description": "read-only tools",
                    "tools": {
                        "include": ["everything__echo", "everything__get-sum", "time__*"],
                        "annotations": {"readOnlyHint": True},
                    },
                    "prompts": {"include": ["everything__simple-prompt"]},
                    "resources": {"include": ["demo://resource/static/document/features.md"]},
                },
                "time": {"backends": ["time"]},
                "search": {"mode": "search", "always": ["time__get_current_time"]},
            }
        },
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gateway(tmp_path_factory.mktemp("profiles"), _config())


@pytest.fixture(params=["front", "core"])
def served(request: pytest.FixtureRequest, gateway: Path, tmp_path: Path) -> Iterator[ServedGateway]:
    """The gateway served lazily (the front answers) and with --eager-core (the SDK core answers)."""
    args = ["--eager-core"] if request.param == "core" else []
    gw = serve_gateway(gateway, tmp_path, ready=("everything", "time"), args=args)
    try:
        yield gw
    finally:
        kill_process_group(gw.proc)


def _http(gw: ServedGateway, path: str) -> tuple[httpx2.AsyncClient, Client]:
    http = httpx2.AsyncClient(timeout=60)
    return http, Client(streamable_http_client(gw.url + path, http_client=http), mode="legacy")


async def _error(client: Client, name: str, arguments: dict[str, Any]) -> str:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(name, arguments)
    return caught.value.error.message


def _text(result: Any) -> str:
    return str(result.content[0].text)


def test_a_profile_lists_and_calls_only_its_own(served: ServedGateway) -> None:
    async def main() -> None:
        http, client = _http(served, "/mcp/readonly")
        async with http, client:
            assert [t.name for t in (await client.list_tools()).tools] == READONLY
            assert "Echo: hi" in _text(await client.call_tool("everything__echo", {"message": "hi"}))
            assert await _error(client, "everything__get-env", {}) == "unknown tool: 'everything__get-env'"
            assert [p.name for p in (await client.list_prompts()).prompts] == ["everything__simple-prompt"]
            with pytest.raises(MCPError, match="unknown prompt"):
                await client.get_prompt("everything__args-prompt", {"city": "x"})
            uris = [str(r.uri) for r in (await client.list_resources()).resources]
            assert uris == ["demo://resource/static/document/features.md"]
            assert (await client.list_resource_templates()).resource_templates == []
            with pytest.raises(MCPError, match="no backend offers resource"):
                await client.read_resource("demo://resource/static/document/architecture.md")
        http, client = _http(served, "/mcp/time")
        async with http, client:
            assert [t.name for t in (await client.list_tools()).tools] == [
                "time__convert_time",
                "time__get_current_time",
            ]
            assert await _error(client, "everything__echo", {"message": "x"}) == "unknown tool: 'everything__echo'"
            assert (await client.list_resources()).resources == []
        http, client = _http(served, "/mcp")
        async with http, client:
            assert len((await client.list_tools()).tools) == 19  # the default profile: everything
            assert "HOME" in _text(await client.call_tool("everything__get-env", {}))

    anyio.run(main)


def test_search_then_call_through_the_search_profile(served: ServedGateway) -> None:
    async def main() -> None:
        http, client = _http(served, "/mcp/search")
        async with http, client:
            listed = [t.name for t in (await client.list_tools()).tools]
            assert listed == ["search_tools", "call_tool", "time__get_current_time"]
            found = await client.call_tool("search_tools", {"query": "add two numbers", "limit": 3})
            names = [t["name"] for t in (found.structured_content or {})["tools"]]
            assert names[0] == "everything__get-sum", names
            result = await client.call_tool("call_tool", {"name": names[0], "arguments": {"a": 2, "b": 3}})
            assert "5" in _text(result) and not result.is_error
            assert "UTC" in _text(await client.call_tool("time__get_current_time", {"timezone": "UTC"}))
            unknown = await _error(client, "call_tool", {"name": "nowhere__tool", "arguments": {}})
            assert unknown == "unknown tool: 'nowhere__tool'"
            assert "`name` must be" in await _error(client, "call_tool", {"arguments": {}})
        http, client = _http(served, "/mcp/readonly")
        async with http, client:  # only a search profile has them
            assert await _error(client, "search_tools", {"query": "x"}) == "unknown tool: 'search_tools'"

    anyio.run(main)


def test_a_session_is_unknown_on_another_profiles_path(served: ServedGateway) -> None:
    init, headers, listing = RAW_INITIALIZE, RAW_POST_HEADERS, RAW_TOOLS_LIST
    with httpx2.Client(base_url=served.url, headers=headers, timeout=30) as http:
        opened = http.post("/mcp/readonly", json=init)
        assert opened.status_code == 200
        sid = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        own = http.post("/mcp/readonly", json=listing, headers=sid)
        assert own.status_code == 200
        for path in ("/mcp/time", "/mcp"):
            other = http.post(path, json=listing, headers=sid)
            assert other.status_code == 404, (path, other.text)
            assert other.json()["error"]["message"] == "Session not found"
        assert http.post("/mcp/nosuch", json=init).status_code == 404


def test_sse_profiles(served: ServedGateway) -> None:
    async def main() -> None:
        async with Client(sse_client(served.url + "/sse/readonly"), mode="legacy") as client:
            assert [t.name for t in (await client.list_tools()).tools] == READONLY
            assert await _error(client, "everything__get-env", {}) == "unknown tool: 'everything__get-env'"
        async with Client(sse_client(served.url + "/sse/search"), mode="legacy") as client:
            found = await client.call_tool("search_tools", {"query": "current time in a timezone"})
            assert "time__get_current_time" in [t["name"] for t in (found.structured_content or {})["tools"]]

    anyio.run(main)


def test_health_and_metrics_know_the_profiles(served: ServedGateway) -> None:
    profiles = served.health()["profiles"]
    assert profiles["readonly"] == {
        "mode": "all",
        "paths": ["/mcp/readonly", "/sse/readonly"],
        "prompts": 1,
        "tools": 4,
    }
    assert profiles["search"]["mode"] == "search" and profiles["default"]["tools"] == 19

    async def main() -> None:
        http, client = _http(served, "/mcp/time")
        async with http, client:
            await client.call_tool("time__get_current_time", {"timezone": "UTC"})

    anyio.run(main)
    status, page = served.get("/metrics")
    assert status == 200
    wanted = 'mcpgw_requests_total{backend="time",method="tools/call",tool="get_current_time",profile="time"} 1'
    assert wanted in page.splitlines(), page


def test_stdio_profile(gateway: Path) -> None:
    async def main() -> None:
        params = StdioServerParameters(
            command=sys.executable, args=[str(gateway), "--transport", "stdio", "--profile", "time"]
        )
        async with Client(stdio_client(params), mode="legacy") as client:
            assert [t.name for t in (await client.list_tools()).tools] == [
                "time__convert_time",
                "time__get_current_time",
            ]
            assert await _error(client, "everything__echo", {"message": "x"}) == "unknown tool: 'everything__echo'"
            assert "UTC" in _text(await client.call_tool("time__get_current_time", {"timezone": "UTC"}))

    anyio.run(main)


def test_stdio_unknown_profile_is_a_usage_error(gateway: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(gateway), "--transport", "stdio", "--profile", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "no profile 'nope'; this gateway's profiles: readonly, search, time" in proc.stderr
    http = subprocess.run(
        [sys.executable, str(gateway), "--profile", "time"], capture_output=True, text=True, timeout=60, check=False
    )
    assert http.returncode == 2 and "--profile applies to --transport stdio" in http.stderr


def test_the_build_writes_the_profiles_tables(gateway: Path) -> None:
    text = gateway.read_text()
    assert "PROFILES: dict[str, ProfileSpec] = {" in text and "profiles=PROFILES," in text
    assert '"time": ProfileSpec(\n        tools=(\n            "time__convert_time",\n' in text
    assert json.loads((gateway.parent / "snapshot.json").read_text())["backends"].keys() == {"everything", "time"}
