"""A stdio MCP server that misbehaves on demand, for the fault-injection tests.

`FAULT_MODE` (environment) picks how it starts:
- `ok`: serves normally;
- `exit`: prints to stderr and exits with code 3 before serving;
- `stubborn`: ignores SIGTERM, keeps running after stdin closes, and starts a
  grandchild in its process group that ignores SIGTERM too (its pid goes to
  `FAULT_PIDFILE` + ".child"): only SIGKILL of the whole group stops them.

Tools: `echo(text)`, `sleep(seconds)`, `hang()` (never answers), `flood(lines)`
(writes that many non-JSON lines to stdout, then answers), `pid()`, `env()`
(the environment the process was started with, as JSON).
The server's pid is written to `FAULT_PIDFILE` when set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

TOOLS = [
    types.Tool(name="echo", description="Echo text.", input_schema={"type": "object", "properties": {"text": {}}}),
    types.Tool(name="sleep", description="Sleep.", input_schema={"type": "object", "properties": {"seconds": {}}}),
    types.Tool(name="hang", description="Never answer.", input_schema={"type": "object"}),
    types.Tool(name="flood", description="Garbage on stdout.", input_schema={"type": "object"}),
    types.Tool(name="pid", description="The server's pid.", input_schema={"type": "object"}),
    types.Tool(name="env", description="The environment at start.", input_schema={"type": "object"}),
]


def start_environment() -> str:
    """The environment as the process was started with it (JSON), before Python adds to it.

    `/proc/self/environ` where there is one: Python itself may set variables
    (`LC_CTYPE` when it coerces a C locale), which the parent never passed.
    """
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return json.dumps(dict(os.environ), sort_keys=True)
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return json.dumps({name: value for name, _, value in pairs}, sort_keys=True)


def _text(value: object) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=str(value))])


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    if params.name == "echo":
        return _text(args.get("text", ""))
    if params.name == "sleep":
        await anyio.sleep(float(args.get("seconds", 1)))
        return _text("slept")
    if params.name == "hang":
        await anyio.sleep_forever()
    if params.name == "flood":
        junk = b"this is not JSON-RPC {{{ \x00 garbage\n" * 100
        for _ in range(int(args.get("lines", 1000)) // 100):
            os.write(1, junk)
        return _text("flooded")
    if params.name == "env":
        return _text(start_environment())
    return _text(os.getpid())


async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


def main() -> None:
    mode = os.environ.get("FAULT_MODE", "ok")
    if mode == "exit":
        print("fault_server: exit mode, exiting", file=sys.stderr)
        raise SystemExit(3)
    pidfile = os.environ.get("FAULT_PIDFILE")
    if pidfile:
        Path(pidfile).write_text(str(os.getpid()))
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
        child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        if pidfile:
            Path(pidfile + ".child").write_text(str(child.pid))
    server = Server("fault", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)

    async def serve() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(serve)
    if mode == "stubborn":
        time.sleep(600)  # stdin closed: a well-behaved server exits here; this one does not


if __name__ == "__main__":
    main()
