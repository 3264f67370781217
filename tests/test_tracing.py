"""OpenTelemetry tracing end to end: a generated gateway exports its spans over OTLP/HTTP to a receiver here.

The receiver: neither Debian nor npm offers a real OTLP receiver that is quick to install
(the OpenTelemetry Collector is a Go binary outside the registries), so the test runs a small
HTTP server that takes OTLP/HTTP protobuf at `/v1/traces` and decodes it with the official
protobuf definitions (`opentelemetry-proto` from PyPI: `ExportTraceServiceRequest`).

The backends: tests/servers/trace_server.py on the `mcp` SDK, once over stdio and once over
Streamable HTTP (started by the gateway), whose tool answers with the `_meta` and the HTTP
`traceparent` it received. The client: the SDK's own, over `/mcp`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.peers import LOCALHOST, REPO_ROOT, build_gateway, free_port, kill_process_group, serve_gateway, wait_for_port

pytestmark = pytest.mark.e2e

SERVERS = Path(__file__).parent / "servers"
SERVER_KIND, CLIENT_KIND = 2, 3
"""`Span.SpanKind` values in OTLP."""
STATUS_ERROR = 2
HEADER_TRACE = "0af7651916cd43dd8448eb211c80319c"
HEADER_PARENT = "b7ad6b7169203331"
META_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
META_PARENT = "00f067aa0ba902b7"


@dataclass
class Span:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, Any]
    status: int
    service: str


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


class Receiver:
    """OTLP/HTTP protobuf at `/v1/traces`, decoded with opentelemetry-proto; every span received, in order."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.take(request, self.path, self.headers.get("content-type", ""))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.server.server_address[1]}"

    def take(self, request: ExportTraceServiceRequest, path: str, content_type: str) -> None:
        assert path == "/v1/traces" and content_type == "application/x-protobuf", (path, content_type)
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for s in scope_spans.spans:
                        self.spans.append(
                            Span(
                                s.name,
                                s.kind,
                                s.trace_id.hex(),
                                s.span_id.hex(),
                                s.parent_span_id.hex(),
                                {a.key: _value(a.value) for a in s.attributes},
                                s.status.code,
                                str(resource.get("service.name")),
                            )
                        )

    def named(self, name: str, kind: int) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.name == name and s.kind == kind]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def _config(backends: tuple[str, ...], endpoint: str) -> dict[str, Any]:
    servers: dict[str, Any] = {"pipe": {"command": sys.executable, "args": ["trace_server.py"]}}
    if "web" in backends:
        port = free_port()
        servers["web"] = {
            "type": "http",
            "command": sys.executable,
            "args": ["trace_server.py", "--transport", "http", "--port", str(port)],
            "url": f"http://{LOCALHOST}:{port}/mcp",
        }
    tracing = {"endpoint": endpoint, "service_name": "mcpgw-under-test"}
    return {"mcpServers": servers, "gateway": {"name": "traced", "tracing": tracing}}


def _wait(predicate: Any, what: str) -> None:
    """Poll until `predicate()` (the batch processor exports every 50 ms here); no timing is asserted."""

    async def poll() -> None:
        with anyio.fail_after(20):
            while not predicate():
                await anyio.sleep(0.05)

    try:
        anyio.run(poll)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.mark.parametrize(
    "backends",
    [("pipe",), ("pipe", "web")],
    ids=["front", "core"],  # a stdio backend alone: the front relays; an HTTP one loads the core (its fast path)
)
def test_spans_parents_attributes_and_traceparent_to_backends(
    tmp_path: Path, receiver: Receiver, backends: tuple[str, ...]
) -> None:
    """A server span per client request, a client span per backend call under it; the trace context of the
    HTTP header, then of `_meta` (which wins), continued; the backend call's own context in `_meta` to every
    backend and as the header to the HTTP one."""
    shutil.copy(SERVERS / "trace_server.py", tmp_path / "trace_server.py")
    gateway = build_gateway(tmp_path, _config(backends, receiver.url))
    gw = serve_gateway(gateway, tmp_path, env={"OTEL_BSP_SCHEDULE_DELAY": "50"}, ready=backends)
    tools = tuple(f"{b}__context" for b in backends)
    header = f"00-{HEADER_TRACE}-{HEADER_PARENT}-01"
    meta = {"traceparent": f"00-{META_TRACE}-{META_PARENT}-01", "tracestate": "vendor=1"}

    async def session() -> dict[str, Any]:
        http = httpx2.AsyncClient(timeout=60, headers={"traceparent": header})
        async with http, Client(streamable_http_client(f"{gw.url}/mcp", http_client=http), mode="legacy") as c:
            seen = {}
            for tool in tools:
                seen[tool] = json.loads((await c.call_tool(tool, {})).content[0].text)  # type: ignore[union-attr]
                seen[tool + " meta"] = json.loads(
                    (await c.call_tool(tool, {}, meta=meta)).content[0].text  # type: ignore[arg-type,union-attr]
                )
            with pytest.raises(MCPError):
                await c.call_tool("pipe__missing", {})
            return seen

    try:
        seen = anyio.run(session)
        _wait(lambda: len(receiver.named("tools/call context", CLIENT_KIND)) == 2 * len(tools), "the backend spans")
        _wait(lambda: len(receiver.named("tools/call pipe__missing", SERVER_KIND)) == 1, "the refused call's span")
    finally:
        kill_process_group(gw.proc)

    children = {s.span_id: s for s in receiver.named("tools/call context", CLIENT_KIND)}
    for tool in tools:
        servers = receiver.named(f"tools/call {tool}", SERVER_KIND)
        assert len(servers) == 2, servers
        for span, trace_id, parent in (
            (servers[0], HEADER_TRACE, HEADER_PARENT),
            (servers[1], META_TRACE, META_PARENT),
        ):
            assert (span.trace_id, span.parent) == (trace_id, parent), span
            assert span.service == "mcpgw-under-test"
            assert span.attributes["mcp.method.name"] == "tools/call"
            assert span.attributes["gen_ai.tool.name"] == tool
            assert span.attributes["gen_ai.operation.name"] == "execute_tool"
            assert span.attributes["network.transport"] == "tcp"
            assert span.attributes["jsonrpc.request.id"].isdigit()
            assert span.attributes["mcp.session.id"]
            assert span.attributes["mcpgw.outcome"] == "ok" and span.status != STATUS_ERROR
            (child,) = [c for c in children.values() if c.parent == span.span_id]
            assert child.trace_id == trace_id
            assert child.attributes["gen_ai.tool.name"] == "context"  # the backend's own name
            assert child.attributes["mcpgw.backend"] == tool.split("__")[0]
            # what the backend received: the child span's context, in _meta (and as the HTTP header)
            received = seen[tool if trace_id == HEADER_TRACE else tool + " meta"]
            expected = f"00-{trace_id}-{child.span_id}-01"
            assert received["meta"]["traceparent"] == expected, received
            if tool == "web__context":
                assert received["traceparent"] == expected, received
            else:
                assert received["traceparent"] is None  # stdio: no headers
        assert seen[tool + " meta"]["meta"].get("tracestate") == "vendor=1"

    (refused,) = receiver.named("tools/call pipe__missing", SERVER_KIND)
    assert refused.attributes["error.type"] == "-32602" and refused.attributes["mcpgw.outcome"] == "error"
    assert refused.status == STATUS_ERROR
    assert not [c for c in receiver.spans if c.parent == refused.span_id]  # never forwarded


def _imported_modules(tmp_path: Path, config: dict[str, Any], *flags: str) -> set[str]:
    """The modules a gateway imported by the time it answered a tool call (python -X importtime)."""
    gateway = build_gateway(tmp_path, config)
    port = free_port()
    log = tmp_path / f"importtime-{port}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", str(gateway), "--port", str(port), "--log-dir", str(tmp_path), *flags],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            start_new_session=True,
        )
    try:
        wait_for_port(LOCALHOST, port, 30, process=proc)

        async def one_call() -> None:
            async with Client(streamable_http_client(f"http://{LOCALHOST}:{port}/mcp"), mode="legacy") as c:
                await c.call_tool("pipe__context", {})

        anyio.run(one_call)
    finally:
        kill_process_group(proc)
    lines = log.read_text(errors="replace").splitlines()
    return {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:") and "|" in line}


def test_tracing_is_not_imported_unless_configured(tmp_path: Path, receiver: Receiver) -> None:
    """A gateway without tracing (and without OTEL_* variables) never imports the OpenTelemetry SDK or exporter,
    nor this runtime's tracing module; with the front alone (the default with stdio backends) not even the API.
    One with `gateway.tracing` imports them, and its requirements.txt lists them (pyproject's `otel` extra)."""
    shutil.copy(SERVERS / "trace_server.py", tmp_path / "trace_server.py")
    plain = {"mcpServers": {"pipe": {"command": sys.executable, "args": ["trace_server.py"]}}}
    lazy = _imported_modules(tmp_path, plain)
    assert "mcpgw_runtime.exchange" in lazy  # the hooks are there, inert
    assert not {m for m in lazy if m.startswith(("opentelemetry", "mcpgw_runtime.tracing", "mcpgw_runtime.audit"))}
    eager = _imported_modules(tmp_path, plain, "--eager-core")
    assert "mcp" in eager and "opentelemetry.trace" in eager  # the SDK's own (no-op) instrumentation
    assert not {
        m for m in eager if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter", "mcpgw_runtime.tracing"))
    }
    traced = {**plain, "gateway": {"tracing": {"endpoint": receiver.url}}}
    assert {"opentelemetry.sdk.trace", "mcpgw_runtime.tracing"} <= _imported_modules(tmp_path, traced)
    extra = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["otel"]
    requirements = (tmp_path / "dist" / "requirements.txt").read_text().splitlines()
    assert set(extra) <= set(requirements), "a gateway with gateway.tracing lists the otel extra's pins"
