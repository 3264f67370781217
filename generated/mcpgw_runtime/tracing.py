# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""OpenTelemetry spans for the gateway's requests, exported over OTLP/HTTP; imported only when tracing is configured.

Why optional and imported here only: the OpenTelemetry SDK and its exporter are an extra
(`pip install 'mcpgw[otel]'`, or the two lines a gateway's requirements.txt names), and
importing them costs start time and memory a gateway without tracing must not pay. cli.py
imports this module only with `gateway.tracing` in the config or OTEL_EXPORTER_OTLP_ENDPOINT
(or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) in the environment.

The spans follow OpenTelemetry's semantic conventions for MCP (gen-ai/mcp.md):

    SERVER  "{mcp.method.name} {target}"  a client's request (exchange.Exchange): mcp.method.name,
            jsonrpc.request.id, mcp.session.id, network.transport, gen_ai.tool.name and
            gen_ai.operation.name "execute_tool" (tools/call), gen_ai.prompt.name, mcp.resource.uri,
            error.type and rpc.response.status_code on an error ("tool_error" for isError)
      └─ CLIENT "{mcp.method.name} {target}"  the backend call made for it, with the backend's own name
            of the tool or prompt, and mcpgw.backend

The parent of a request's span is the W3C trace context in its `params._meta`
(`traceparent`, `tracestate`), else that of the HTTP request's headers. The backend call's
context goes to the backend in the forwarded `_meta` (every backend) and as HTTP headers
(Streamable HTTP and SSE backends, connect.py), replacing what the client sent.

The gateway's provider is its own, not the process's global one: the `mcp` SDK's own
instrumentation (its server middleware, its client dispatcher) stays a no-op, so every
path of the gateway (the front, the fast path, the SDK) yields the same two spans.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mcpgw_runtime.exchange import OUTGOING, TRACEPARENT
from mcpgw_runtime.exchange import error_code as code_of
from mcpgw_runtime.spec import TracingSpec

if TYPE_CHECKING:
    from mcpgw_runtime.exchange import Exchange

T = TypeVar("T")

log = logging.getLogger("mcpgw")

PROPAGATOR = TraceContextTextMapPropagator()
TRACES_PATH = "/v1/traces"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""The environment variables that turn tracing on without `gateway.tracing`."""


def traces_url(endpoint: str) -> str:
    """The receiver's URL for spans: `endpoint` + `/v1/traces`, as OTEL_EXPORTER_OTLP_ENDPOINT is read."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def _target(method: str, params: Mapping[str, Any] | None, name: str | None) -> dict[str, Any]:
    """The attributes naming what a request is about: the tool, the prompt or the resource."""
    attributes: dict[str, Any] = {}
    if method == "tools/call":
        attributes["gen_ai.operation.name"] = "execute_tool"
        if name is not None:
            attributes["gen_ai.tool.name"] = name
    elif method == "prompts/get" and name is not None:
        attributes["gen_ai.prompt.name"] = name
    uri = params.get("uri") if params is not None else None
    if isinstance(uri, str):
        attributes["mcp.resource.uri"] = uri
    return attributes


def _span_name(method: str, name: str | None) -> str:
    return f"{method} {name}" if name is not None and method in ("tools/call", "prompts/get") else method


class Tracing:
    """The gateway's tracer: spans of client requests and of backend calls (see the module's docstring)."""

    def __init__(self, spec: TracingSpec | None, gateway_name: str) -> None:
        spec = spec or TracingSpec()
        attributes: dict[str, Any] = {}
        if spec.service_name is not None or not os.environ.get("OTEL_SERVICE_NAME"):
            attributes["service.name"] = spec.service_name or gateway_name
        self.provider = TracerProvider(resource=Resource.create(attributes))
        exporter = OTLPSpanExporter(endpoint=traces_url(spec.endpoint)) if spec.endpoint else OTLPSpanExporter()
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("mcpgw")
        self.endpoint = traces_url(spec.endpoint) if spec.endpoint else _from_environment()

    # -- a client's request ----------------------------------------------------------------------

    def server_span(self, seen: Exchange) -> Span:
        attributes: dict[str, Any] = {
            "mcp.method.name": seen.method,
            "jsonrpc.request.id": str(seen.request_id),
            "network.transport": seen.transport,
            **_target(seen.method, seen.params, seen.name),
        }
        if seen.session is not None:
            attributes["mcp.session.id"] = seen.session
        return self.tracer.start_span(
            _span_name(seen.method, seen.name),
            context=_parent(seen.params),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )

    def end_server(self, seen: Exchange, outcome: str, code: int | None, message: str | None) -> str:
        """End a request's span with its outcome; its trace id (hex), for the audit record."""
        span: Span = seen.span
        span.set_attribute("mcpgw.outcome", outcome)
        if code is not None:
            span.set_attributes({"error.type": str(code), "rpc.response.status_code": str(code)})
            span.set_status(StatusCode.ERROR, message)
        elif outcome == "cancelled":
            span.set_attribute("error.type", "cancelled")
            span.set_status(StatusCode.ERROR, "cancelled")
        elif seen.tool_error:
            span.set_attribute("error.type", "tool_error")
            span.set_status(StatusCode.ERROR)
        span.end()
        return f"{span.get_span_context().trace_id:032x}"

    def discard(self, span: Span) -> None:
        """A request the front handed to the core (which traces it where it answers it): its span ends here."""
        span.set_attribute("mcpgw.handed_to_core", True)
        span.end()

    # -- the backend call ------------------------------------------------------------------------

    async def backend_call(
        self,
        seen: Exchange,
        backend: str,
        method: str,
        params: Mapping[str, Any] | None,
        send: Callable[[Mapping[str, Any] | None], Awaitable[T]],
    ) -> T:
        """`send` the params with this call's trace context in `_meta` (and OUTGOING, for HTTP headers), in its span."""
        name = seen.backend_name if method in ("tools/call", "prompts/get") else None
        attributes = {"mcp.method.name": method, "mcpgw.backend": backend, **_target(method, params, name)}
        span = self.tracer.start_span(
            _span_name(method, name),
            context=trace.set_span_in_context(seen.span),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        meta = params.get("_meta") if params is not None else None
        forwarded = {**(params or {}), "_meta": {**(meta if isinstance(meta, dict) else {}), **carrier}}
        token = OUTGOING.set(carrier)
        try:
            with trace.use_span(span, end_on_exit=False):  # the SDK's own (no-op) spans inherit this context
                result = await send(forwarded)
            answered = getattr(result, "result", result)  # the front's `Answer`, or the core's result
            if method == "tools/call" and isinstance(answered, dict) and answered.get("isError") is True:
                span.set_attribute("error.type", "tool_error")
                span.set_status(StatusCode.ERROR)
        except BaseException as exc:
            code = str(code_of(exc)) if isinstance(exc, Exception) else "cancelled"
            span.set_attribute("error.type", code)
            if isinstance(exc, Exception):
                span.set_attribute("rpc.response.status_code", code)
            span.set_status(StatusCode.ERROR, str(getattr(exc, "message", exc)))
            raise
        finally:
            OUTGOING.reset(token)
            span.end()
        return result

    def shutdown(self) -> None:
        """Export the spans still queued (at most a few seconds); called once the gateway stops."""
        self.provider.shutdown()


def _parent(params: Mapping[str, Any]) -> Context | None:
    """The trace context a request continues: its `_meta`'s, else its HTTP headers' (None: a new trace)."""
    meta = params.get("_meta")
    if isinstance(meta, dict) and isinstance(meta.get("traceparent"), str):
        carrier: MutableMapping[str, str] = {"traceparent": meta["traceparent"]}
        if isinstance(meta.get("tracestate"), str):
            carrier["tracestate"] = meta["tracestate"]
        found = _valid(PROPAGATOR.extract(carrier))
        if found is not None:
            return found
    headers = TRACEPARENT.get()
    if headers is None:
        return None
    carrier = {"traceparent": headers[0]}
    if headers[1] is not None:
        carrier["tracestate"] = headers[1]
    return _valid(PROPAGATOR.extract(carrier))


def _valid(context: Context) -> Context | None:
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def _from_environment() -> str:
    traces = os.environ.get(ENDPOINT_VARIABLES[0])
    if traces:
        return traces
    return traces_url(os.environ.get(ENDPOINT_VARIABLES[1]) or "http://localhost:4318")


class TraceHeaders:
    """ASGI: the HTTP request's `traceparent` and `tracestate`, for the spans of what it carries (TRACEPARENT).

    Installed around the gateway's app only with tracing on.
    """

    def __init__(self, app: Callable[[Any, Any, Any], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            traceparent = tracestate = None
            for key, value in scope["headers"]:
                if key == b"traceparent":
                    traceparent = value.decode("latin-1")
                elif key == b"tracestate":
                    tracestate = value.decode("latin-1")
            if traceparent is not None:
                TRACEPARENT.set((traceparent, tracestate))
        await self.app(scope, receive, send)
