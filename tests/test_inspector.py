"""The MCP Inspector's CLI (`@modelcontextprotocol/inspector --cli`, Node 22+) drives the gateway.

A gateway built in front of the conformance fixture (tests/conformance/fixture_server.py over
stdio) serves `/mcp` and `/sse`; the Inspector, a client nobody here wrote, lists and calls tools,
reads resources and gets prompts through both, and must see exactly what the fixture serves.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import peers
from tests.conformance import fixture_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

FIXTURE = Path(fixture_server.__file__)


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("inspector")
    config = {"fx": {"type": "stdio", "command": "python", "args": [str(FIXTURE), "stdio"]}}
    peers.build_gateway(work, config)
    port = peers.free_port()
    with peers.run_process([sys.executable, str(work / "dist" / "gateway.py"), "--port", str(port)], port):
        yield f"http://127.0.0.1:{port}"


def inspect(url: str, tmp_path: Path, *args: str, exit_code: int = 0) -> Any:
    """One Inspector CLI call; its JSON output (the CLI exits 5 for a tool result with isError)."""
    env = {**os.environ, "MCP_CATALOG_PATH": str(tmp_path / "catalog.json")}  # never the user's ~/.mcp-inspector
    proc = subprocess.run(
        [*peers.inspector_command(), "--cli", url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == exit_code, f"inspector {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


ENDPOINTS = ["/mcp", "/sse"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_tools_list(gateway_url: str, path: str, tmp_path: Path) -> None:
    tools = {t["name"]: t for t in inspect(gateway_url + path, tmp_path, "--method", "tools/list")["tools"]}
    assert set(tools) == {f"fx__{t['name']}" for t in fixture_server.TOOLS}
    schema = tools["fx__json_schema_2020_12_tool"]["inputSchema"]
    assert schema["$defs"]["address"]["type"] == "object" and schema["additionalProperties"] is False
    slow = tools["fx__slow_echo"]
    assert slow["title"] == "Slow echo" and slow["annotations"]["readOnlyHint"] is True
    assert slow["outputSchema"]["properties"]["tag"] == {"type": "string"}


@pytest.mark.parametrize("path", ENDPOINTS)
def test_tools_call(gateway_url: str, path: str, tmp_path: Path) -> None:
    url = gateway_url + path
    text = inspect(url, tmp_path, "--method", "tools/call", "--tool-name", "fx__test_simple_text")
    assert text["content"] == [{"type": "text", "text": "This is a simple text response for testing."}]
    image = inspect(url, tmp_path, "--method", "tools/call", "--tool-name", "fx__test_image_content")
    assert image["content"] == [{"type": "image", "data": fixture_server.PNG, "mimeType": "image/png"}]
    error = inspect(url, tmp_path, "--method", "tools/call", "--tool-name", "fx__test_error_handling", exit_code=5)
    assert error["isError"] is True
    echo = inspect(url, tmp_path, "--method", "tools/call", "--tool-name", "fx__slow_echo", "--tool-arg", "tag=hi")
    assert echo["structuredContent"] == {"tag": "hi", "steps": 3}
    assert echo["content"] == [{"type": "text", "text": "hi"}]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_resources_read(gateway_url: str, path: str, tmp_path: Path) -> None:
    url = gateway_url + path
    text = inspect(url, tmp_path, "--method", "resources/read", "--uri", "test://static-text")
    assert text["contents"][0]["text"] == "This is the content of the static text resource."
    binary = inspect(url, tmp_path, "--method", "resources/read", "--uri", "test://static-binary")
    assert base64.b64decode(binary["contents"][0]["blob"]).startswith(b"\x89PNG")
    templated = inspect(url, tmp_path, "--method", "resources/read", "--uri", "test://template/42/data")
    assert json.loads(templated["contents"][0]["text"])["id"] == "42"


@pytest.mark.parametrize("path", ENDPOINTS)
def test_prompts_get(gateway_url: str, path: str, tmp_path: Path) -> None:
    url = gateway_url + path
    args = ["--prompt-args", "arg1=hello", "arg2=world"]
    prompt = inspect(url, tmp_path, "--method", "prompts/get", "--prompt-name", "fx__test_prompt_with_arguments", *args)
    assert prompt["messages"][0]["content"]["text"] == "Prompt with arguments: arg1='hello', arg2='world'"
    image = inspect(url, tmp_path, "--method", "prompts/get", "--prompt-name", "fx__test_prompt_with_image")
    assert image["messages"][0]["content"] == {"type": "image", "data": fixture_server.PNG, "mimeType": "image/png"}
