"""The conformance fixture: an MCP server that implements what `@modelcontextprotocol/conformance` calls.

The server scenarios of the suite (`conformance list --server`) name the tools, prompts and
resources they call and the exact behaviour they expect; this module implements each of them on
the `mcp` SDK's lowlevel `Server`, so that the suite can be run against it directly and against a
generated gateway fronting it. A few extra tools (`slow_echo`, `notify_changes`, `ask_roots`)
serve the gateway's own concurrency and notification tests.

    python fixture_server.py stdio
    python fixture_server.py http --port 8123     # Streamable HTTP at /mcp (with resumability)
    python fixture_server.py sse --port 8123      # legacy HTTP+SSE at /sse + /messages/

HTTP transports bind 127.0.0.1 and reject foreign Host/Origin headers (the suite checks that too).
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import struct
import sys
import wave
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import anyio
import mcp_types as types
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

Ctx = ServerRequestContext[Any, Any]
JSON = dict[str, Any]

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
TEMPLATE = "test://template/{id}/data"
WATCHED = "test://watched-resource"


def _png_1x1_red() -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    raw = zlib.compress(b"\x00\xff\x00\x00")
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def _wav_silence() -> str:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 80)
    return base64.b64encode(buffer.getvalue()).decode()


PNG = _png_1x1_red()
WAV = _wav_silence()


def _text(text: str) -> JSON:
    return {"type": "text", "text": text}


def _tool(name: str, description: str, properties: JSON | None = None, required: list[str] | None = None) -> JSON:
    schema: JSON = {"type": "object", "properties": properties or {}}
    if required:
        schema["required"] = required
    return {"name": name, "description": description, "inputSchema": schema}


TOOLS: list[JSON] = [
    _tool("test_simple_text", "Returns simple text"),
    _tool("test_image_content", "Returns a 1x1 PNG"),
    _tool("test_audio_content", "Returns a short WAV"),
    _tool("test_embedded_resource", "Returns an embedded text resource"),
    _tool("test_multiple_content_types", "Returns text, image and resource content"),
    _tool("test_tool_with_logging", "Sends three info log messages while running"),
    _tool("test_error_handling", "Always returns isError"),
    _tool("test_tool_with_progress", "Reports progress 0, 50, 100 of 100"),
    _tool("test_sampling", "Asks the client to sample", {"prompt": {"type": "string"}}, ["prompt"]),
    _tool("test_elicitation", "Asks the client for input", {"message": {"type": "string"}}, ["message"]),
    _tool("test_elicitation_sep1034_defaults", "Elicits with defaults for every primitive type"),
    _tool("test_elicitation_sep1330_enums", "Elicits with every enum schema variant"),
    _tool("test_reconnection", "Closes the SSE stream mid-call, then answers"),
    {
        "name": "json_schema_2020_12_tool",
        "description": "Tool with JSON Schema 2020-12 features",
        "inputSchema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {
                "address": {
                    "type": "object",
                    "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
                }
            },
            "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
            "additionalProperties": False,
        },
    },
    {
        **_tool(
            "slow_echo",
            "Echoes `tag` after `steps` progress steps of `delay` seconds each",
            {"tag": {"type": "string"}, "steps": {"type": "integer"}, "delay": {"type": "number"}},
            ["tag"],
        ),
        "title": "Slow echo",
        "annotations": {"readOnlyHint": True, "title": "Slow echo"},
        "outputSchema": {"type": "object", "properties": {"tag": {"type": "string"}, "steps": {"type": "integer"}}},
    },
    _tool("notify_changes", "Sends list_changed notifications and an update of the watched resource"),
    _tool("ask_roots", "Asks the client for its roots"),
    _tool("cancelled_tags", "Tags of the slow_echo calls that were cancelled"),
]

PROMPTS: list[JSON] = [
    {"name": "test_simple_prompt", "description": "A simple prompt without arguments"},
    {
        "name": "test_prompt_with_arguments",
        "description": "A prompt with two required arguments",
        "arguments": [
            {"name": "arg1", "description": "First test argument", "required": True},
            {"name": "arg2", "description": "Second test argument", "required": True},
        ],
    },
    {
        "name": "test_prompt_with_embedded_resource",
        "description": "A prompt embedding a resource",
        "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": True}],
    },
    {"name": "test_prompt_with_image", "description": "A prompt with an image"},
]

RESOURCES: list[JSON] = [
    {
        "uri": "test://static-text",
        "name": "static-text",
        "description": "Static text",
        "mimeType": "text/plain",
    },
    {
        "uri": "test://static-binary",
        "name": "static-binary",
        "description": "Static binary (PNG)",
        "mimeType": "image/png",
    },
    {"uri": WATCHED, "name": "watched-resource", "description": "Subscribable", "mimeType": "text/plain"},
]

RESOURCE_TEMPLATES: list[JSON] = [
    {
        "uriTemplate": TEMPLATE,
        "name": "template-data",
        "description": "Data for an id",
        "mimeType": "application/json",
    }
]

ELICIT_1034: JSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True},
    },
}

ELICIT_1330: JSON = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
}


class Fixture:
    """Per-process state: the log level and the subscribed URIs."""

    def __init__(self) -> None:
        self.min_level = "debug"
        self.subscriptions: set[str] = set()
        self.cancelled: list[str] = []

    # -- helpers -------------------------------------------------------------

    async def log(self, ctx: Ctx, level: str, data: str) -> None:
        if LOG_LEVELS.index(level) < LOG_LEVELS.index(self.min_level):
            return
        await ctx.session.send_notification(
            types.LoggingMessageNotification(
                params=types.LoggingMessageNotificationParams(level=level, data=data, logger="fixture")  # type: ignore[arg-type]
            ),
            related_request_id=ctx.request_id,
        )

    async def ask(self, ctx: Ctx, method: str, params: JSON) -> JSON:
        """A server→client request on this request's channel, raw both ways."""
        outbound = ctx.session._request_outbound  # the SDK's typed helpers would re-shape the schemas
        return await outbound.send_raw_request(method, params)

    # -- tools -----------------------------------------------------------------

    async def call_tool(self, ctx: Ctx, params: types.CallToolRequestParams) -> JSON:
        args = params.arguments or {}
        handler = self.tools.get(params.name)
        if handler is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool: {params.name}")
        return await handler(self, ctx, args)

    async def _simple_text(self, ctx: Ctx, args: JSON) -> JSON:
        return {"content": [_text("This is a simple text response for testing.")]}

    async def _image(self, ctx: Ctx, args: JSON) -> JSON:
        return {"content": [{"type": "image", "data": PNG, "mimeType": "image/png"}]}

    async def _audio(self, ctx: Ctx, args: JSON) -> JSON:
        return {"content": [{"type": "audio", "data": WAV, "mimeType": "audio/wav"}]}

    async def _embedded(self, ctx: Ctx, args: JSON) -> JSON:
        resource = {
            "uri": "test://embedded-resource",
            "mimeType": "text/plain",
            "text": "This is an embedded resource content.",
        }
        return {"content": [{"type": "resource", "resource": resource}]}

    async def _mixed(self, ctx: Ctx, args: JSON) -> JSON:
        resource = {
            "uri": "test://mixed-content-resource",
            "mimeType": "application/json",
            "text": json.dumps({"test": "data", "value": 123}),
        }
        return {
            "content": [
                _text("Multiple content types test:"),
                {"type": "image", "data": PNG, "mimeType": "image/png"},
                {"type": "resource", "resource": resource},
            ]
        }

    async def _logging(self, ctx: Ctx, args: JSON) -> JSON:
        await self.log(ctx, "info", "Tool execution started")
        await anyio.sleep(0.05)
        await self.log(ctx, "info", "Tool processing data")
        await anyio.sleep(0.05)
        await self.log(ctx, "info", "Tool execution completed")
        return {"content": [_text("Tool with logging executed successfully")]}

    async def _error(self, ctx: Ctx, args: JSON) -> JSON:
        return {"isError": True, "content": [_text("This tool intentionally returns an error for testing")]}

    async def _progress(self, ctx: Ctx, args: JSON) -> JSON:
        for step, value in enumerate((0, 50, 100)):
            if step:
                await anyio.sleep(0.05)
            await ctx.session.report_progress(value, 100, f"step {step + 1} of 3")
        return {"content": [_text("Tool with progress executed successfully")]}

    async def _sampling(self, ctx: Ctx, args: JSON) -> JSON:
        request = {
            "messages": [{"role": "user", "content": _text(str(args.get("prompt", "")))}],
            "maxTokens": 100,
        }
        result = await self.ask(ctx, "sampling/createMessage", request)
        content = result.get("content")
        text = content.get("text") if isinstance(content, dict) else json.dumps(content)
        return {"content": [_text(f"LLM response: {text}")]}

    async def _elicit(self, ctx: Ctx, message: str, schema: JSON, prefix: str) -> JSON:
        result = await self.ask(ctx, "elicitation/create", {"message": message, "requestedSchema": schema})
        action, content = result.get("action"), json.dumps(result.get("content"), sort_keys=True)
        return {"content": [_text(f"{prefix}: action={action}, content={content}")]}

    async def _elicitation(self, ctx: Ctx, args: JSON) -> JSON:
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        return await self._elicit(ctx, str(args.get("message", "")), schema, "User response")

    async def _elicit_1034(self, ctx: Ctx, args: JSON) -> JSON:
        return await self._elicit(ctx, "Please review these defaults", ELICIT_1034, "Elicitation completed")

    async def _elicit_1330(self, ctx: Ctx, args: JSON) -> JSON:
        return await self._elicit(ctx, "Please choose", ELICIT_1330, "Elicitation completed")

    async def _reconnection(self, ctx: Ctx, args: JSON) -> JSON:
        await anyio.sleep(0.05)
        if ctx.close_sse_stream is not None:
            await ctx.close_sse_stream()  # the client resumes with Last-Event-ID and gets the answer
        await anyio.sleep(0.3)
        return {"content": [_text("Reconnection test completed")]}

    async def _json_schema(self, ctx: Ctx, args: JSON) -> JSON:
        return {"content": [_text(f"name={args.get('name')}")]}

    async def _slow_echo(self, ctx: Ctx, args: JSON) -> JSON:
        tag = str(args.get("tag", ""))
        steps = int(args.get("steps", 3))
        delay = float(args.get("delay", 0.05))
        try:
            for step in range(steps):
                await anyio.sleep(delay)
                await ctx.session.report_progress(step + 1, steps, f"{tag} {step + 1}/{steps}")
                await self.log(ctx, "info", f"{tag} step {step + 1}")
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(tag)  # the client's cancel reached this backend
            raise
        return {"content": [_text(tag)], "structuredContent": {"tag": tag, "steps": steps}, "_meta": {"echo": tag}}

    async def _notify_changes(self, ctx: Ctx, args: JSON) -> JSON:
        await ctx.session.send_tool_list_changed()
        await ctx.session.send_prompt_list_changed()
        await ctx.session.send_resource_list_changed()
        if WATCHED in self.subscriptions:
            await ctx.session.send_resource_updated(WATCHED)
        return {"content": [_text(f"subscribed={sorted(self.subscriptions)}")]}

    async def _ask_roots(self, ctx: Ctx, args: JSON) -> JSON:
        result = await self.ask(ctx, "roots/list", {})
        return {"content": [_text(json.dumps(result.get("roots", []), sort_keys=True))]}

    async def _cancelled_tags(self, ctx: Ctx, args: JSON) -> JSON:
        return {"content": [_text(json.dumps(self.cancelled))], "structuredContent": {"tags": self.cancelled}}

    tools: ClassVar[dict[str, Callable[[Fixture, Ctx, JSON], Awaitable[JSON]]]] = {
        "test_simple_text": _simple_text,
        "test_image_content": _image,
        "test_audio_content": _audio,
        "test_embedded_resource": _embedded,
        "test_multiple_content_types": _mixed,
        "test_tool_with_logging": _logging,
        "test_error_handling": _error,
        "test_tool_with_progress": _progress,
        "test_sampling": _sampling,
        "test_elicitation": _elicitation,
        "test_elicitation_sep1034_defaults": _elicit_1034,
        "test_elicitation_sep1330_enums": _elicit_1330,
        "test_reconnection": _reconnection,
        "json_schema_2020_12_tool": _json_schema,
        "slow_echo": _slow_echo,
        "notify_changes": _notify_changes,
        "ask_roots": _ask_roots,
        "cancelled_tags": _cancelled_tags,
    }

    # -- prompts ---------------------------------------------------------------

    async def get_prompt(self, ctx: Ctx, params: types.GetPromptRequestParams) -> JSON:
        args = params.arguments or {}
        if params.name == "test_simple_prompt":
            messages = [{"role": "user", "content": _text("This is a simple prompt for testing.")}]
        elif params.name == "test_prompt_with_arguments":
            text = f"Prompt with arguments: arg1='{args.get('arg1')}', arg2='{args.get('arg2')}'"
            messages = [{"role": "user", "content": _text(text)}]
        elif params.name == "test_prompt_with_embedded_resource":
            resource = {
                "uri": args.get("resourceUri", "test://example-resource"),
                "mimeType": "text/plain",
                "text": "Embedded resource content for testing.",
            }
            messages = [
                {"role": "user", "content": {"type": "resource", "resource": resource}},
                {"role": "user", "content": _text("Please process the embedded resource above.")},
            ]
        elif params.name == "test_prompt_with_image":
            messages = [
                {"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
                {"role": "user", "content": _text("Please analyze the image above.")},
            ]
        else:
            raise MCPError(types.INVALID_PARAMS, f"unknown prompt: {params.name}")
        return {"messages": messages}

    # -- resources -------------------------------------------------------------

    async def read_resource(self, ctx: Ctx, params: types.ReadResourceRequestParams) -> JSON:
        uri = str(params.uri)
        if uri == "test://static-text":
            content: JSON = {
                "uri": uri,
                "mimeType": "text/plain",
                "text": "This is the content of the static text resource.",
            }
        elif uri == "test://static-binary":
            content = {"uri": uri, "mimeType": "image/png", "blob": PNG}
        elif uri == WATCHED:
            content = {"uri": uri, "mimeType": "text/plain", "text": "Watched resource content."}
        elif uri.startswith("test://template/") and uri.endswith("/data"):
            ident = uri.removeprefix("test://template/").removesuffix("/data")
            text = json.dumps({"id": ident, "templateTest": True, "data": f"Data for ID: {ident}"})
            content = {"uri": uri, "mimeType": "application/json", "text": text}
        else:
            raise MCPError(-32002, f"Resource not found: {uri}", {"uri": uri})
        return {"contents": [content]}

    async def subscribe(self, ctx: Ctx, params: types.SubscribeRequestParams) -> JSON:
        self.subscriptions.add(str(params.uri))
        return {}

    async def unsubscribe(self, ctx: Ctx, params: types.UnsubscribeRequestParams) -> JSON:
        self.subscriptions.discard(str(params.uri))
        return {}

    # -- utilities ---------------------------------------------------------------

    async def set_level(self, ctx: Ctx, params: types.SetLevelRequestParams) -> JSON:
        self.min_level = params.level
        return {}

    async def complete(self, ctx: Ctx, params: types.CompleteRequestParams) -> JSON:
        prefix = params.argument.value
        words = ["paris", "park", "party", "test-one", "test-two"]
        values = [w for w in words if w.startswith(prefix)]
        return {"completion": {"values": values, "total": len(values), "hasMore": False}}


def build_server() -> Server[Any]:
    fixture = Fixture()

    async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> JSON:
        return {"tools": TOOLS}

    async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> JSON:
        return {"prompts": PROMPTS}

    async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams | None) -> JSON:
        return {"resources": RESOURCES}

    async def list_templates(ctx: Ctx, params: types.PaginatedRequestParams | None) -> JSON:
        return {"resourceTemplates": RESOURCE_TEMPLATES}

    server: Server[Any] = Server(
        "mcpgw-conformance-fixture",
        version="1.0.0",
        on_list_tools=list_tools,  # type: ignore[arg-type]  # raw dicts: the runner validates them on the way out
        on_call_tool=fixture.call_tool,  # type: ignore[arg-type]
        on_list_prompts=list_prompts,  # type: ignore[arg-type]
        on_get_prompt=fixture.get_prompt,  # type: ignore[arg-type]
        on_list_resources=list_resources,  # type: ignore[arg-type]
        on_list_resource_templates=list_templates,  # type: ignore[arg-type]
        on_read_resource=fixture.read_resource,  # type: ignore[arg-type]
        on_subscribe_resource=fixture.subscribe,  # type: ignore[arg-type]
        on_unsubscribe_resource=fixture.unsubscribe,  # type: ignore[arg-type]
        on_completion=fixture.complete,  # type: ignore[arg-type]
    )
    # Registered directly: the constructor keyword warns that logging is deprecated in 2026-07-28.
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, fixture.set_level)
    return server


NOTIFICATIONS = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)


class MemoryEventStore(EventStore):
    """Keeps every event so a client can resume a closed stream with Last-Event-ID."""

    def __init__(self) -> None:
        self._events: list[tuple[EventId, StreamId, types.JSONRPCMessage | None]] = []
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
        event_id = str(next(self._ids))
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        index = next((i for i, (e, _, _) in enumerate(self._events) if e == last_event_id), None)
        if index is None:
            return None
        stream_id = self._events[index][1]
        for event_id, stream, message in self._events[index + 1 :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


def _security(port: int) -> TransportSecuritySettings:
    hosts = [f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{h}" for h in hosts],
    )


def http_app(server: Server[Any], port: int) -> Starlette:
    return server.streamable_http_app(
        event_store=MemoryEventStore(), retry_interval=100, transport_security=_security(port)
    )


def sse_app(server: Server[Any], port: int) -> Starlette:
    transport = SseServerTransport("/messages/", security_settings=_security(port))
    options = server.create_initialization_options(NOTIFICATIONS)

    async def handle_sse(request: Request) -> Response:
        async with transport.connect_sse(request.scope, request.receive, request._send) as (read, write):
            await server.run(read, write, options)
        return Response()

    return Starlette(
        routes=[Route("/sse", handle_sse, methods=["GET"]), Mount("/messages/", app=transport.handle_post_message)]
    )


async def serve_stdio(server: Server[Any]) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options(NOTIFICATIONS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=["stdio", "http", "sse"])
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args(argv)
    server = build_server()
    if args.transport == "stdio":
        anyio.run(serve_stdio, server)
        return 0
    app = http_app(server, args.port) if args.transport == "http" else sse_app(server, args.port)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
