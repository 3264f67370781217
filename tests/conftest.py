"""Shared fixtures: real MCP peers to talk to (see tests/peers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mcp import StdioServerParameters

from tests.peers import everything_command, run_everything_http, stdio_params, time_server_command


@pytest.fixture
def everything_stdio() -> StdioServerParameters:
    """SDK stdio parameters that launch server-everything."""
    return stdio_params(everything_command("stdio"))


@pytest.fixture
def everything_http() -> Iterator[str]:
    """URL of a fresh server-everything Streamable HTTP endpoint (``http://127.0.0.1:PORT/mcp``)."""
    with run_everything_http("streamableHttp") as url:
        yield url


@pytest.fixture
def everything_sse() -> Iterator[str]:
    """URL of a fresh server-everything legacy SSE endpoint (``http://127.0.0.1:PORT/sse``)."""
    with run_everything_http("sse") as url:
        yield url


@pytest.fixture
def time_server_stdio() -> StdioServerParameters:
    """SDK stdio parameters that launch the PyPI reference server mcp-server-time."""
    return stdio_params(time_server_command())
