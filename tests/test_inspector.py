"""The MCP Inspector's CLI (`@modelcontextprotocol/inspector --cli`, Node 22+) drives the gateway.

A gateway built in front of the conformance fixture (tests/conformance/fixture_server.py over
stdio) serves `/mcp` and `/sse`; the Inspector, a client nobody here wrote, lists and calls tools,
reads resources and gets prompts through both, and must see exactly what the fixture serves.

The Inspector commands in README.md run here too, as written there (tests/test_readme.py reads
them): over stdio, spawning the gateway, and against the running gateway's URLs; and the web UI,
started with a README snippet, must offer to connect to what the CLI reached.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import peers
from tests import test_readme as readme
from tests.conformance import fixture_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

FIXTURE = Path(fixture_server.__file__)


@pytest.fixture(scope="module")
def gateway_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("inspector")
    config = {"fx": {"type": "stdio", "command": "python", "args": [str(FIXTURE), "stdio"]}}
    return peers.build_gateway(work, config)


@pytest.fixture(scope="module")
def gateway_url(gateway_path: Path) -> Iterator[str]:
    port = peers.free_port()
    with peers.run_process([sys.executable, str(gateway_path), "--port", str(port)], port):
        yield f"http://127.0.0.1:{port}"


def inspect(url: str, tmp_path: Path, *args: str, exit_code: int = 0) -> Any:
    """One Inspector CLI call; its JSON output (the CLI exits 5 for a tool result with isError)."""
    return run_inspector(["--cli", url, *args], tmp_path, exit_code=exit_code)


def run_inspector(argv: list[str], tmp_path: Path, *, exit_code: int = 0) -> Any:
    """The Inspector run with `argv` (a mode flag first); its JSON output."""
    env = {**os.environ, "MCP_CATALOG_PATH": str(tmp_path / "catalog.json")}  # never the user's ~/.mcp-inspector
    proc = subprocess.run(
        [*peers.inspector_command(), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == exit_code, f"inspector {argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
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


# ---- README.md's Inspector snippets -----------------------------------------------------------------

README_SNIPPETS = readme.inspector_snippets()


def _snippet_id(argv: list[str]) -> str:
    return " ".join(argv)


def _localize(argv: list[str], gateway: Path, origin: str) -> list[str]:
    return readme.localize(argv, python=sys.executable, gateway=str(gateway), origin=origin)


@pytest.mark.parametrize("snippet", README_SNIPPETS, ids=_snippet_id)
def test_readme_inspector_snippet(snippet: list[str], gateway_path: Path, gateway_url: str, tmp_path: Path) -> None:
    """Each README Inspector command, in CLI mode (`--cli --method tools/list` in front, as the README says)."""
    listed = run_inspector(_localize(readme.as_cli(snippet), gateway_path, gateway_url), tmp_path)
    assert {t["name"] for t in listed["tools"]} == {f"fx__{t['name']}" for t in fixture_server.TOOLS}


WEB_SNIPPETS = [argv for argv in README_SNIPPETS if argv[:1] != ["--cli"]]


@pytest.mark.parametrize("snippet", WEB_SNIPPETS, ids=_snippet_id)
def test_readme_inspector_web_ui_snippet(snippet: list[str], gateway_path: Path, tmp_path: Path) -> None:
    """The web UI started with a README snippet offers the server the CLI reached (its /api/config)."""
    port, sandbox = peers.free_port(), peers.free_port()
    origin = "http://127.0.0.1:9000"  # the web UI only records the URL; nothing needs to listen there
    env = {
        "CLIENT_PORT": str(port),
        "MCP_SANDBOX_PORT": str(sandbox),
        "MCP_AUTO_OPEN_ENABLED": "false",  # no browser
        "DANGEROUSLY_OMIT_AUTH": "true",  # loopback only, for the duration of the test
        "MCP_INSPECTOR_SECRET_STORE": "memory",
        "MCP_CATALOG_PATH": "",  # a catalog excludes an ad-hoc server
        "HOME": str(tmp_path),
    }
    argv = _localize(snippet, gateway_path, origin)
    with peers.run_process([*peers.inspector_command(), *argv], port, env=env, timeout=60):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/config", timeout=10) as response:
            config = json.loads(response.read())
    command = readme.stdio_command(argv)
    if command is not None:
        assert config["defaultTransport"] == "stdio"
        assert [config["defaultCommand"], *config["defaultArgs"]] == command
    else:
        url = readme.snippet_url(argv)
        assert url is not None and config["defaultServerUrl"] == url
        assert config["defaultTransport"] == ("streamable-http" if url.endswith("/mcp") else "sse")
