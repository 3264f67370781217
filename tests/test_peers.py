"""Baseline: the real peers work when the SDK client talks to them directly, with no gateway between.

The gateway tests compare against what these show.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.types import CallToolResult, TextContent, TextResourceContents

from tests import peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

EVERYTHING_TOOLS = {"echo", "get-sum", "get-tiny-image", "get-structured-content", "get-resource-reference"}
EVERYTHING_PROMPTS = {"simple-prompt", "args-prompt", "completable-prompt", "resource-prompt"}
FEATURES_URI = "demo://resource/static/document/features.md"


def run(check: Callable[[Client], Awaitable[None]], client: Client) -> None:
    """Run ``check`` against ``client`` (entered) on an anyio event loop, from a sync test."""

    async def main() -> None:
        async with client:
            await check(client)

    anyio.run(main)


def texts(result: CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, TextContent)]


async def exercise_everything(client: Client) -> None:
    """List tools, call echo, read a resource and get prompts: the same checks on every transport."""
    assert client.server_info is not None
    assert client.server_info.name == "mcp-servers/everything"

    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= EVERYTHING_TOOLS
    assert "message" in tools["echo"].input_schema["properties"]

    echoed = await client.call_tool("echo", {"message": "hello from mcpgw"})
    assert not echoed.is_error
    assert texts(echoed) == ["Echo: hello from mcpgw"]

    total = await client.call_tool("get-sum", {"a": 2, "b": 40})
    assert not total.is_error
    assert "42" in " ".join(texts(total))

    uris = {str(resource.uri) for resource in (await client.list_resources()).resources}
    assert FEATURES_URI in uris
    read = await client.read_resource(FEATURES_URI)
    assert len(read.contents) == 1
    document = read.contents[0]
    assert isinstance(document, TextResourceContents)
    assert str(document.uri) == FEATURES_URI
    assert document.mime_type == "text/markdown"
    assert document.text.startswith("# Everything Server")
    assert "`echo`" in document.text

    prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
    assert prompts >= EVERYTHING_PROMPTS
    simple = await client.get_prompt("simple-prompt")
    assert [(m.role, m.content) for m in simple.messages] == [
        ("user", TextContent(type="text", text="This is a simple prompt without arguments."))
    ]
    with_args = await client.get_prompt("args-prompt", {"city": "Lisbon", "state": "Lisboa"})
    assert len(with_args.messages) == 1
    content = with_args.messages[0].content
    assert isinstance(content, TextContent)
    assert content.text == "What's weather in Lisbon, Lisboa?"


def test_everything_stdio(everything_stdio: StdioServerParameters) -> None:
    run(exercise_everything, Client(everything_stdio, mode="legacy"))


def test_everything_streamable_http(everything_http: str) -> None:
    assert everything_http.endswith("/mcp")
    run(exercise_everything, Client(everything_http, mode="legacy"))


def test_everything_sse(everything_sse: str) -> None:
    assert everything_sse.endswith("/sse")
    run(exercise_everything, Client(sse_client(everything_sse), mode="legacy"))


def test_time_server_stdio(time_server_stdio: StdioServerParameters) -> None:
    async def check(client: Client) -> None:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == {"get_current_time", "convert_time"}

        result = await client.call_tool("get_current_time", {"timezone": "UTC"})
        assert not result.is_error
        [text] = texts(result)
        payload = json.loads(text)
        assert payload["timezone"] == "UTC"
        assert result.structured_content == payload
        reported = datetime.fromisoformat(payload["datetime"])
        assert reported.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - reported) < timedelta(minutes=5)

    run(check, Client(time_server_stdio, mode="legacy"))


def test_run_everything_http_kills_the_server() -> None:
    with peers.run_everything_http("streamableHttp") as url:
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        socket.create_connection((peers.LOCALHOST, port), timeout=5).close()
    with pytest.raises(OSError):
        socket.create_connection((peers.LOCALHOST, port), timeout=5).close()


def test_wait_for_port_times_out_on_a_closed_port() -> None:
    port = peers.free_port()
    with pytest.raises(TimeoutError):
        peers.wait_for_port(peers.LOCALHOST, port, timeout=0.3)


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_missing_everything_skips_locally_but_fails_in_ci(
    ci: str, outcome: type[BaseException], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCPGW_NPM_PREFIX", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"\.ci/run"):
        peers.everything_command()
