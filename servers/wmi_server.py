"""A small MCP server with one tool, ``query_wmi``, that reads Windows Management Instrumentation.

The query is built, never pasted: ``SELECT <properties> FROM <wmi_class> [WHERE <filter>]`` where the
class and property names must be plain identifiers (``Win32_Process``, ``ProcessId``) and the filter is
a mapping of property -> value, each becoming ``Name = 'value'`` (strings quoted with WQL's backslash
escapes, numbers and booleans as literals, null as ``IS NULL``), joined with ``AND``. Anything else is
refused before WMI sees it, so no user text ever becomes WQL syntax.

Needs Windows and the ``wmi`` package (``pip install 'mcpgw[windows]'``, a no-op elsewhere). Anywhere
else, or without the package, the server still starts and lists ``query_wmi``; every call answers
"query_wmi is not available on this platform" (an ``isError`` result). Queries run in a worker thread
(COM initialised there), time out after ``--timeout`` seconds and return at most ``--max-rows`` rows.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import anyio
from _command import IS_WINDOWS, LogLevel, add_server_arguments, error_result, serve, setup_logging
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

DESCRIPTION = (
    "Query Windows Management Instrumentation: SELECT <properties> FROM <wmi_class> [WHERE <filter>], built"
    " from the arguments (class and property names must be identifiers such as Win32_Process or ProcessId;"
    " filter maps property names to the values they must equal, all ANDed; null means IS NULL). Windows only."
)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
NAMESPACE = re.compile(r"[A-Za-z0-9_]+(\\[A-Za-z0-9_]+)*")
FilterValue = str | int | float | bool | None


class WmiOutput(TypedDict):
    """Structured result of one WMI query."""

    wmi_class: str
    query: str  # the WQL that was run
    rows: list[dict[str, Any]]
    count: int  # rows returned (at most --max-rows)
    truncated: bool  # more rows matched than --max-rows


def identifier(what: str, value: str) -> str:
    """``value`` if it is a plain identifier, else ValueError naming ``what``."""
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(f"{what} must be an identifier (letters, digits, _; not starting with a digit), got {value!r}")
    return value


def wql_literal(value: FilterValue) -> str:
    """A filter value as a WQL literal (strings in single quotes, ``\\`` and ``'`` escaped)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"filter values must be finite numbers, got {value!r}")
        return repr(value)
    if isinstance(value, str):
        if any(ord(char) < 0x20 for char in value):
            raise ValueError("filter strings cannot contain control characters (newlines, tabs...)")
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise ValueError(f"filter values must be strings, numbers, booleans or null, got {type(value).__name__}")


def build_query(
    wmi_class: str, properties: Sequence[str] | None = None, where: Mapping[str, FilterValue] | None = None
) -> str:
    """The WQL for the structured arguments; ValueError for anything that is not a name or a plain value."""
    selected = ", ".join(identifier("property", p) for p in properties) if properties else "*"
    query = f"SELECT {selected} FROM {identifier('wmi_class', wmi_class)}"
    conditions = [
        f"{identifier('filter property', name)} IS NULL"
        if value is None
        else f"{identifier('filter property', name)} = {wql_literal(value)}"
        for name, value in (where or {}).items()
    ]
    if conditions:
        query += " WHERE " + " AND ".join(conditions)
    return query


def json_value(value: Any) -> Any:
    """A WMI property value as JSON (COM arrays become lists; anything else exotic becomes text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return str(value)


def run_query(
    module: Any, namespace: str, wmi_class: str, query: str, properties: Sequence[str] | None, max_rows: int
) -> WmiOutput:
    """Run ``query`` with the ``wmi`` package ``module`` (blocking; call it from a worker thread)."""
    com: Any = importlib.import_module("pythoncom") if IS_WINDOWS else None
    if com is not None:
        com.CoInitialize()
    try:
        results = module.WMI(namespace=namespace).query(query)
        rows: list[dict[str, Any]] = []
        for item in results[: max_rows + 1]:
            names = list(properties) if properties else sorted(getattr(item, "properties", {}))
            rows.append({name: json_value(getattr(item, name, None)) for name in names})
    finally:
        if com is not None:
            com.CoUninitialize()
    return WmiOutput(
        wmi_class=wmi_class,
        query=query,
        rows=rows[:max_rows],
        count=min(len(rows), max_rows),
        truncated=len(rows) > max_rows,
    )


@dataclass(frozen=True)
class WmiSettings:
    module: Any  # the imported `wmi` package, or None when it cannot be used here
    unavailable: str | None
    namespace: str
    timeout: float
    max_rows: int


def load_wmi(windows: bool = IS_WINDOWS) -> tuple[Any, str | None]:
    """The ``wmi`` package, or None and why not."""
    if not windows:
        return None, (f"query_wmi is not available on this platform ({sys.platform}): WMI exists only on Windows")
    try:
        return importlib.import_module("wmi"), None
    except ImportError as exc:
        return None, (
            f"query_wmi is not available on this platform: the `wmi` package is not installed ({exc});"
            " pip install 'mcpgw[windows]' or pip install wmi"
        )


async def query_tool(
    settings: WmiSettings, wmi_class: str, properties: list[str] | None, where: dict[str, FilterValue] | None
) -> CallToolResult:
    if settings.unavailable is not None:
        return error_result(settings.unavailable)
    try:
        query = build_query(wmi_class, properties, where)
    except ValueError as exc:
        return error_result(f"refused: {exc}; nothing was queried")
    output: WmiOutput | None = None
    try:
        with anyio.move_on_after(settings.timeout):
            output = await anyio.to_thread.run_sync(
                run_query,
                settings.module,
                settings.namespace,
                wmi_class,
                query,
                properties,
                settings.max_rows,
                abandon_on_cancel=True,
            )
    except Exception as exc:  # COM errors (x_wmi, pywintypes.com_error) carry WMI's own message
        return error_result(f"WMI query failed: {query}\n{type(exc).__name__}: {exc}")
    if output is None:
        return error_result(f"WMI query timed out after {settings.timeout:g}s: {query}")
    text = f"{query}\n{output['count']} row(s){' (truncated)' if output['truncated'] else ''}\n"
    text += json.dumps(output["rows"], indent=1, ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=dict(output))


def build_server(settings: WmiSettings, log_level: LogLevel = "WARNING") -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("wmi", log_level=log_level)

    @server.tool(
        name="query_wmi",
        title="Query WMI (Windows)",
        description=DESCRIPTION,
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def query_wmi(
        wmi_class: Annotated[str, Field(description="The WMI class, e.g. Win32_OperatingSystem.")],
        properties: Annotated[
            list[str] | None, Field(description="Properties to return (default: all of them).")
        ] = None,
        filter: Annotated[
            dict[str, FilterValue] | None,
            Field(description='Property -> value each row must equal, ANDed, e.g. {"Name": "explorer.exe"}.'),
        ] = None,
    ) -> Annotated[CallToolResult, WmiOutput]:
        return await query_tool(settings, wmi_class, properties, filter)

    return server


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="MCP server with one tool that queries WMI (Windows).")
    add_server_arguments(parser)
    parser.add_argument("--namespace", default="root\\cimv2", help="WMI namespace (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a query is given up")
    parser.add_argument("--max-rows", type=int, default=1000, help="rows returned at most per query")
    args = parser.parse_args(argv)
    if not NAMESPACE.fullmatch(args.namespace):
        parser.error(f"--namespace must look like root\\cimv2, got {args.namespace!r}")
    if args.timeout <= 0 or args.max_rows <= 0:
        parser.error("--timeout and --max-rows must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logger = setup_logging("wmi_server", args.log_level)
    module, unavailable = load_wmi()
    if unavailable:
        logger.warning(unavailable)
    settings = WmiSettings(module, unavailable, args.namespace, args.timeout, args.max_rows)
    serve(build_server(settings, args.log_level), args)


if __name__ == "__main__":
    main()
