"""Policy and limits end to end: two OAuth callers with different scopes, a static token and the local user, against
a gateway built over server-everything and mcp-server-time, asked with the `mcp` SDK client.

The callers' tokens are client-credentials tokens from a real OpenID provider (node-oidc-provider, the fixture
of tests/test_oauth.py): "tools" (scopes mcp:tools mcp:read) and "reader" (mcp:read). Each sees its own
tools/list, prompts and resources; a denied call gets -32010 naming the rule and never reaches its backend; a
rate limit refuses with -32011 and a retry hint while another caller's bucket is untouched; a result over its
cap is truncated with a marker, or refused with -32012; a session opened by one caller is unknown to another.
Both halves of the gateway answer: the SDK-free front (the default with stdio backends) and the SDK core
(`--eager-core`), each one gateway for the module.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
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
    with_client,
)
from tests.test_oauth import Provider, rsa_key

pytestmark = pytest.mark.e2e

T = TypeVar("T")
STATIC = "static-policy-probe"
READER_TOOLS = ["everything__echo", "everything__get-sum", "time__get_current_time"]
FEATURES = "demo://resource/static/document/features.md"


def _config(issuer: str) -> dict[str, Any]:
    everything, everything_args = everything_command("stdio")
    time_server, time_args = time_server_command()
    return {
        "mcpServers": {
            # get-env answers with the backend's environment; the padding keeps it over its
            # 256-byte cap however small the environment the tests run in.
            "everything": {"command": everything, "args": everything_args, "env": {"MCPGW_TEST_PADDING": "p" * 512}},
            "time": {"command": time_server, "args": time_args},
        },
        "gateway": {
            "auth": {"issuer": issuer},
            "policy": {
                "rules": [
                    {
                        "name": "no-env-for-the-reader",
                        "deny": {"tools": ["everything__get-env"]},
                        "callers": {"client_id": ["reader"]},
                    },
                    {
                        "name": "writers",
                        "allow": {"tools": ["*"], "prompts": ["*"], "resources": ["*"]},
                        "callers": {"scopes": ["mcp:tools"]},
                    },
                    {
                        "name": "readers",
                        "allow": {
                            "tools": [*READER_TOOLS, "everything__get-env"],
                            "prompts": ["everything__simple-prompt"],
                            "resources": ["demo://resource/static/document/f*"],
                        },
                        "callers": {"scopes": ["mcp:read"]},
                    },
                    {"name": "monitor", "allow": {"tools": ["time__get_current_time"]}, "callers": {"static": True}},
                    {"name": "local", "allow": {"tools": ["time__*"]}, "callers": {"local": True}},
                ]
            },
            "limits": {
                "rate": [{"name": "sums", "tools": ["everything__get-sum"], "per": "caller", "rate": 0.01, "burst": 2}],
                "max_result_bytes": [
                    {"tools": ["everything__echo"], "bytes": 1000},
                    {"tools": ["everything__get-env"], "bytes": 256, "action": "refuse"},
                ],
            },
        },
    }


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    p = Provider(tmp_path_factory.mktemp("policy-provider"), [rsa_key("k1")])
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Path:
    built = build_gateway(tmp_path_factory.mktemp("policy"), _config(provider.issuer))
    text = built.read_text()
    assert "POLICY = PolicySpec(" in text and "LIMITS = LimitsSpec(" in text
    return built


@pytest.fixture(scope="module", params=["front", "core"])
def served(
    request: pytest.FixtureRequest, gateway: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    """The gateway served lazily (the front answers) and with --eager-core (the SDK core answers)."""
    args = ["--eager-core"] if request.param == "core" else []
    root = tmp_path_factory.mktemp(f"policy-{request.param}")
    gw = serve_gateway(
        gateway,
        root,
        env={"MCPGW_TOKEN": STATIC},
        headers={"Authorization": f"Bearer {STATIC}"},
        ready=("everything", "time"),
        args=args,
    )
    try:
        yield gw
    finally:
        kill_process_group(gw.proc)


def _as(gw: ServedGateway, token: str) -> ServedGateway:
    return dataclasses.replace(gw, headers={"Authorization": f"Bearer {token}"})


def _tokens(gw: ServedGateway, provider: Provider) -> tuple[str, str]:
    resource = gw.url + "/mcp"
    return provider.token("tools", resource, "mcp:tools mcp:read"), provider.token("reader", resource, "mcp:read")


def _run(gw: ServedGateway, token: str, body: Callable[[Client], Awaitable[T]]) -> T:
    return with_client(_as(gw, token), body)


async def _error(call: Awaitable[object]) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await call
    return caught.value


def _text(result: Any) -> str:
    return str(result.content[0].text)


def test_two_callers_see_different_lists(served: ServedGateway, provider: Provider) -> None:
    tools, reader = _tokens(served, provider)

    async def surface(c: Client) -> tuple[list[str], list[str], list[str], list[str]]:
        listed = sorted(t.name for t in (await c.list_tools()).tools)
        prompts = sorted(p.name for p in (await c.list_prompts()).prompts)
        resources = sorted(str(r.uri) for r in (await c.list_resources()).resources)
        templates = sorted(t.uri_template for t in (await c.list_resource_templates()).resource_templates)
        return listed, prompts, resources, templates

    listed, prompts, resources, templates = _run(served, tools, surface)
    assert len(listed) == 19 and "everything__get-env" in listed and len(prompts) == 4
    assert len(templates) == 2 and len(resources) > 1 and FEATURES in resources
    listed, prompts, resources, templates = _run(served, reader, surface)
    assert listed == READER_TOOLS
    assert prompts == ["everything__simple-prompt"]
    assert resources == [FEATURES]
    assert templates == []


def test_a_denied_call_names_its_rule_and_allowed_ones_go_through(served: ServedGateway, provider: Provider) -> None:
    tools, reader = _tokens(served, provider)

    async def as_reader(c: Client) -> None:
        assert "UTC" in _text(await c.call_tool("time__get_current_time", {"timezone": "UTC"}))
        denied = await _error(c.call_tool("everything__get-env", {}))
        assert denied.error.code == -32010
        assert denied.error.message == "denied by policy rule 'no-env-for-the-reader': tool 'everything__get-env'"
        assert denied.error.data == {"rule": "no-env-for-the-reader", "kind": "tool", "name": "everything__get-env"}
        default = await _error(c.call_tool("time__convert_time", {}))
        assert default.error.code == -32010
        assert default.error.message == "denied by policy: no rule allows tool 'time__convert_time' to this caller"
        assert (await _error(c.call_tool("nowhere__tool", {}))).error.message == "unknown tool: 'nowhere__tool'"
        prompt = await _error(c.get_prompt("everything__args-prompt", {"city": "x"}))
        assert prompt.error.code == -32010 and prompt.error.data["kind"] == "prompt"
        read = await _error(c.read_resource("demo://resource/dynamic/text/1"))
        assert read.error.code == -32010 and read.error.data["kind"] == "resource"
        assert getattr((await c.read_resource(FEATURES)).contents[0], "text", "")

    _run(served, reader, as_reader)

    async def as_tools(c: Client) -> None:
        result = await c.call_tool("everything__get-sum", {"a": 2, "b": 3})
        assert "5" in _text(result)
        assert (await c.read_resource("demo://resource/dynamic/text/1")).contents

    _run(served, tools, as_tools)

    async def as_monitor(c: Client) -> None:
        assert [t.name for t in (await c.list_tools()).tools] == ["time__get_current_time"]

    _run(served, STATIC, as_monitor)


def test_rate_limits_are_per_caller_and_say_when_to_retry(served: ServedGateway, provider: Provider) -> None:
    tools, reader = _tokens(served, provider)

    async def three_sums(c: Client) -> MCPError:
        for _ in range(2):
            assert "3" in _text(await c.call_tool("everything__get-sum", {"a": 1, "b": 2}))
        return await _error(c.call_tool("everything__get-sum", {"a": 1, "b": 2}))

    limited = _run(served, reader, three_sums)
    assert limited.error.code == -32011
    assert limited.error.message.startswith("rate limit 'sums' reached for tool 'everything__get-sum'")
    data = limited.error.data
    assert data["rule"] == "sums" and data["tool"] == "everything__get-sum" and 0 < data["retryAfter"] <= 100

    async def one_sum(c: Client) -> str:
        return _text(await c.call_tool("everything__get-sum", {"a": 1, "b": 2}))

    assert "3" in _run(served, tools, one_sum)  # "tools" called it once in the previous test: one token left


def test_results_over_their_cap_are_truncated_or_refused(served: ServedGateway, provider: Provider) -> None:
    tools, _ = _tokens(served, provider)

    async def calls(c: Client) -> tuple[str, MCPError]:
        echoed = _text(await c.call_tool("everything__echo", {"message": "x" * 3000}))
        return echoed, await _error(c.call_tool("everything__get-env", {}))

    echoed, refused = _run(served, tools, calls)
    assert echoed.startswith("Echo: xxx") and re.search(
        r"\n\[… truncated by mcpgw: [0-9,]+ bytes over the 1,000-byte cap\]$", echoed
    )
    assert len(echoed) < 1000
    assert refused.error.code == -32012 and refused.error.data["cap"] == 256
    assert "over its 256-byte cap" in refused.error.message


def test_a_session_is_unknown_to_another_caller(served: ServedGateway, provider: Provider) -> None:
    tools, reader = _tokens(served, provider)
    init, posted, listing = RAW_INITIALIZE, RAW_POST_HEADERS, RAW_TOOLS_LIST
    with httpx2.Client(base_url=served.url, headers=posted, timeout=30) as http:
        opened = http.post("/mcp", json=init, headers={"authorization": f"Bearer {tools}"})
        assert opened.status_code == 200
        sid = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        own = http.post("/mcp", json=listing, headers={**sid, "authorization": f"Bearer {tools}"})
        assert own.status_code == 200 and "everything__get-env" in own.text
        for other in (reader, STATIC):
            stolen = http.post("/mcp", json=listing, headers={**sid, "authorization": f"Bearer {other}"})
            assert stolen.status_code == 404, stolen.text
            assert stolen.json()["error"]["message"] == "Session not found"


def test_a_legacy_sse_session_is_unknown_to_another_caller(served: ServedGateway, provider: Provider) -> None:
    """Loads the core (legacy SSE is the SDK's): after this, the "front" gateway's requests go to the core."""
    tools, reader = _tokens(served, provider)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with (
        httpx2.Client(base_url=served.url, timeout=30) as http,
        http.stream("GET", "/sse", headers={"authorization": f"Bearer {tools}"}) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()  # kept: a generator dropped closes the stream with it
        endpoint = next(line for line in lines if line.startswith("data: "))[len("data: ") :]
        assert http.post(endpoint, json=ping, headers={"authorization": f"Bearer {tools}"}).status_code == 202
        stolen = http.post(endpoint, json=ping, headers={"authorization": f"Bearer {reader}"})
        assert stolen.status_code == 404
        assert http.post(endpoint, json=ping, headers={"authorization": f"Bearer {tools}"}).status_code == 202


def test_denials_and_limits_are_counted_and_denied_calls_never_reach_a_backend(served: ServedGateway) -> None:
    status, page = served.get("/metrics")
    assert status == 200
    lines = page.splitlines()
    assert 'mcpgw_policy_denied_total{rule="no-env-for-the-reader",kind="tool"} 1' in lines
    assert 'mcpgw_policy_denied_total{rule="(default)",kind="tool"} 1' in lines
    assert 'mcpgw_policy_denied_total{rule="(default)",kind="resource"} 1' in lines
    assert 'mcpgw_rate_limited_total{rule="sums",tool="everything__get-sum"} 1' in lines
    assert 'mcpgw_results_capped_total{tool="everything__echo",action="truncate"} 1' in lines
    assert 'mcpgw_results_capped_total{tool="everything__get-env",action="refuse"} 1' in lines
    assert 'tool="convert_time"' not in page  # denied to the reader, called by no one else: never forwarded
    sums = [line for line in lines if line.startswith('mcpgw_requests_total{backend="everything",method="tools/call"')]
    assert [line for line in sums if 'tool="get-sum"' in line] == [
        'mcpgw_requests_total{backend="everything",method="tools/call",tool="get-sum"} 4'
    ]  # 2 + 1 + 1 forwarded; the limited one was not
    assert "Bearer" not in page and not re.search(r"eyJ[A-Za-z0-9_-]{10,}", page)


def test_under_stdio_the_caller_is_the_local_user(gateway: Path) -> None:
    async def main() -> None:
        params = StdioServerParameters(command=sys.executable, args=[str(gateway), "--transport", "stdio"])
        async with Client(stdio_client(params), mode="legacy") as client:
            assert [t.name for t in (await client.list_tools()).tools] == [
                "time__convert_time",
                "time__get_current_time",
            ]
            denied = await _error(client.call_tool("everything__echo", {"message": "x"}))
            assert denied.error.code == -32010 and "no rule allows tool 'everything__echo'" in denied.error.message
            assert "UTC" in _text(await client.call_tool("time__get_current_time", {"timezone": "UTC"}))

    anyio.run(main)


def test_the_build_writes_each_rules_names(gateway: Path) -> None:
    text = gateway.read_text()
    readers = text[text.index('name="readers"') : text.index('name="monitor"')]
    assert '"everything__get-env",' in readers and '"everything__get-sum",' in readers
    assert 'resources=("demo://resource/static/document/f*",)' in readers
