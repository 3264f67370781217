# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Connections to backends through the SDK: spawn or dial, handshake, forward raw JSON-RPC.

The compiler's probe and the gateway share `open_backend`, so a build proves
the exact connection path that production will use. Requests are forwarded as
raw dicts through the dispatcher: the gateway never re-validates what a
backend answers, it only routes it. Supervision (reconnecting, limits,
counters) is backends.py's.
"""

from __future__ import annotations

import contextlib
import logging
import math
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import anyio
import anyio.abc
import anyio.lowlevel
import httpx2
import mcp_types as types
from mcp.client.session import ClientSession, MessageHandlerFnT
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import CallOptions, DispatchContext, OnNotify, OnNotifyIntercept, OnRequest
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

from mcpgw_runtime.exchange import OUTGOING
from mcpgw_runtime.front_backends import Takeover, command_line, default_environment
from mcpgw_runtime.pipes import Resolved, all_pages, resolve, stop_process_group
from mcpgw_runtime.relay import BackendRelay
from mcpgw_runtime.spec import JSON, BackendSpec
from mcpgw_runtime.stdio_lane import StdioLane, posix_stdio

log = logging.getLogger("mcpgw")

LIST_CHANGED: dict[type[Any], str] = {
    types.ToolListChangedNotification: "tool",
    types.PromptListChangedNotification: "prompt",
}


class BackendError(Exception):
    """A backend could not be started, reached or initialized; the message names it."""


async def _not_relayed(context: Any, params: Any = None) -> types.ErrorData:
    """Only reached without a relay (the compiler's probe): there is no client to ask."""
    return types.ErrorData(code=types.INVALID_REQUEST, message="mcpgw: no client to relay this request to")


class WatchedDispatcher(JSONRPCDispatcher[Any]):
    """A dispatcher that tells its supervisor when the connection ends, and feeds the relay.

    With a `relay` attached, the backend's requests to the client (all but ping) go to the
    relay as raw dicts instead of the session's callbacks, and every notification is offered
    to the relay before the session sees it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = anyio.Event()
        self.relay: BackendRelay | None = None

    async def run(
        self,
        on_request: OnRequest,
        on_notify: OnNotify,
        on_notify_intercept: OnNotifyIntercept | None = None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async def request(dctx: DispatchContext[Any], method: str, params: Mapping[str, Any] | None) -> JSON:
            if self.relay is not None and method != "ping":
                return await self.relay.on_request(method, params)
            return await on_request(dctx, method, params)

        async def notify(dctx: DispatchContext[Any], method: str, params: Mapping[str, Any] | None) -> None:
            if self.relay is not None:
                await self.relay.on_notify(method, params)
            await on_notify(dctx, method, params)

        try:
            await super().run(request, notify, on_notify_intercept, task_status=task_status)
        finally:
            self.closed.set()


def _wants_progress(params: Mapping[str, Any] | None) -> bool:
    meta = params.get("_meta") if params else None
    return isinstance(meta, Mapping) and "progressToken" in meta


@dataclass(slots=True)
class Connection:
    """One live, initialized session with a backend."""

    session: ClientSession
    dispatcher: WatchedDispatcher
    init: types.InitializeResult
    headers: dict[str, str]
    lane: StdioLane | None = None

    def __post_init__(self) -> None:
        if self.lane is not None:
            self.lane.dispatcher = self.dispatcher

    async def request(self, method: str, params: Mapping[str, Any] | None, timeout: float) -> JSON:
        relay = self.dispatcher.relay
        lane = self.lane
        if lane is not None and not _wants_progress(params):
            if relay is None:
                return await lane.request(method, params, timeout)
            with relay.forwarding(params, {}):  # the origin is still known to the backend's own requests
                return await lane.request(method, params, timeout)
        traced = OUTGOING.get()  # tracing: the call's traceparent, as a header too (exchange.py)
        headers = self.headers if traced is None else {**self.headers, **traced}
        opts: CallOptions = {"timeout": timeout, "headers": headers}
        if relay is None:
            return await self.dispatcher.send_raw_request(method, params, opts)
        with relay.forwarding(params, opts):
            return await self.dispatcher.send_raw_request(method, params, opts)

    async def pages(self, method: str, key: str, timeout: float) -> list[JSON]:
        """Every item of a paginated list, following `nextCursor` to the end."""
        return await all_pages(lambda params: self.request(method, params, timeout), method, key, BackendError)


@contextlib.asynccontextmanager
async def _local_process(command: list[str], resolved: Resolved, errlog: TextIO) -> AsyncIterator[anyio.abc.Process]:
    """Start the local server behind an SSE/HTTP backend; always stop its whole group."""
    env = default_environment() | resolved.env
    process = await anyio.open_process(
        command,
        cwd=resolved.cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=errlog,
        stderr=errlog,
        start_new_session=sys.platform != "win32",
    )
    try:
        yield process
    finally:
        with anyio.CancelScope(shield=True):
            await stop_process_group(process)


REFUSED_GRACE = 2.0
"""Seconds a server the gateway does not start may refuse connections before the attempt fails.

Such a refusal is an answer, not a wait: nothing of ours is about to listen there. A
few quick retries ride out a server restarting; beyond that the probe fails at once
and the gateway's own backoff retries (instead of spending all of `startup_timeout`).
"""


def _refused(exc: OSError) -> bool:
    """Whether every address of a failed `connect_tcp` refused the connection."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, BaseExceptionGroup):
        return all(isinstance(e, ConnectionRefusedError) for e in cause.exceptions)
    return isinstance(cause, ConnectionRefusedError)


async def wait_until_listening(
    url: str, deadline: float, process: anyio.abc.Process | None, name: str, *, local: bool | None = None
) -> None:
    """Poll the URL's port until it accepts a connection; no fixed sleep.

    `process`: the local server the gateway started for this connection, which may take a
    while to bind. `local` (default: whether there is a `process`): the backend's server is
    one the gateway starts. Unless it is, a port that refuses connections fails after
    `REFUSED_GRACE`; anything else (a host that does not answer) is waited for until
    `deadline`, each attempt bounded by it too.
    """
    if local is None:
        local = process is not None
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    delay = 0.02
    refused_since: float | None = None
    while True:
        if process is not None and process.returncode is not None:
            raise BackendError(f"backend {name!r}: local server exited with code {process.returncode} before listening")
        stream = None
        with anyio.move_on_after(max(deadline - anyio.current_time(), 0.1)):
            try:
                stream = await anyio.connect_tcp(host, port)
            except OSError as exc:
                now = anyio.current_time()
                if not local and _refused(exc):
                    refused_since = now if refused_since is None else refused_since
                    if now - refused_since >= REFUSED_GRACE:
                        raise BackendError(
                            f"backend {name!r}: connection refused at {host}:{port} (nothing is listening there)"
                        ) from None
                else:
                    refused_since = None
        if stream is not None:
            await stream.aclose()
            return
        if anyio.current_time() >= deadline:
            raise BackendError(f"backend {name!r}: nothing listening at {host}:{port}") from None
        await anyio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _forgotten_session_hook(dispatcher: WatchedDispatcher, name: str) -> Callable[[httpx2.Response], Awaitable[None]]:
    """An httpx response hook: HTTP 404 to a request carrying our session id means the server forgot it.

    The server restarted (or expired the session); the spec's remedy is a new session. So the
    connection counts as closed: its calls fail naming the backend and `Backend.run` reconnects.
    """

    async def hook(response: httpx2.Response) -> None:
        known = "mcp-session-id" in response.request.headers
        if response.status_code == 404 and known and not dispatcher.closed.is_set():
            log.warning("backend %s: the server no longer knows this session (HTTP 404); reconnecting", name)
            dispatcher.closed.set()

    return hook


HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
"""The SDK transports' own defaults: a response stream may stay open for minutes between events.

Calls are bounded by the backend's `timeout` in the dispatcher, not here.
"""


def backend_http_client(headers: Mapping[str, str]) -> httpx2.AsyncClient:
    """The HTTP client of a Streamable HTTP backend; the gateway adds a hook to it (`_forgotten_session_hook`)."""
    return httpx2.AsyncClient(headers=dict(headers), timeout=HTTP_TIMEOUT)


async def _stdio_streams(
    stack: contextlib.AsyncExitStack,
    spec: BackendSpec,
    resolved: Resolved,
    err: TextIO,
    pids: list[int] | None,
    running: Takeover | None,
) -> tuple[tuple[Any, Any], StdioLane | None]:
    assert resolved.command is not None
    command = command_line(resolved.command, resolved.env)
    try:
        if sys.platform == "win32":  # the SDK's transport puts the child in a Job Object there
            params = StdioServerParameters(command=command[0], args=command[1:], env=resolved.env, cwd=resolved.cwd)
            return await stack.enter_async_context(stdio_client(params, errlog=err)), None
        pipe = running.pipe if running is not None else None
        return await stack.enter_async_context(posix_stdio(command, resolved, err, pids, pipe))
    except OSError as exc:
        raise BackendError(f"backend {spec.name!r}: cannot start {spec.command!r}: {exc}") from exc


@contextlib.asynccontextmanager
async def open_backend(
    spec: BackendSpec,
    base_dir: Path,
    *,
    client_version: str = "0",
    errlog: TextIO | None = None,
    message_handler: MessageHandlerFnT | None = None,
    pids: list[int] | None = None,
    running: Takeover | None = None,
    relay: BackendRelay | None = None,
    waiting: Callable[[str], None] | None = None,
    launch: bool = True,
) -> AsyncIterator[Connection]:
    """Connect to one backend and complete the initialize handshake within `startup_timeout`.

    `startup_timeout` alone bounds the handshake, not the backend's `timeout`: a server
    may take longer to start than any one of its calls should (a Python interpreter, a
    package fetched on first run), and a handshake cut short only restarts that wait.
    The pid of a process it starts (stdio child, local server) is appended to `pids`.
    `running`: a stdio backend the front started and initialized, taken over as it is.
    `relay`: attached before the first line is read (a taken-over backend the front forwarded
    requests to: what it sends outside a request, held lines included, is relayed to the clients).
    `launch=False`: the local server of an SSE/HTTP backend (`command`) is not started here:
    the one another connection started is dialled, and waited for as it starts.
    `waiting` is told what the connection waits for at each step, in words for a user
    (the secrets of the spec still in them), so a long wait can be explained.
    """
    resolved = resolve(spec, base_dir)
    err = errlog if errlog is not None else sys.stderr
    deadline = anyio.current_time() + spec.startup_timeout
    if waiting is None:
        waiting = _not_told
    lane: StdioLane | None = None
    async with contextlib.AsyncExitStack() as stack:
        if spec.type == "stdio":
            streams, lane = await _stdio_streams(stack, spec, resolved, err, pids, running)
        else:
            assert resolved.url is not None
            process = None
            if resolved.command is not None and launch:
                process = await stack.enter_async_context(_local_process(resolved.command, resolved, err))
                if pids is not None:
                    pids.append(process.pid)
            waiting(
                f"waiting for backend {spec.name!r} ({resolved.url}) to accept connections, "
                f"up to {spec.startup_timeout:g}s"
            )
            await wait_until_listening(resolved.url, deadline, process, spec.name, local=resolved.command is not None)
            if spec.type == "sse":
                streams = await stack.enter_async_context(
                    sse_client(resolved.url, headers=resolved.headers, sse_read_timeout=math.inf)
                )
            else:
                http = await stack.enter_async_context(backend_http_client(resolved.headers))
                streams = await stack.enter_async_context(streamable_http_client(resolved.url, http_client=http))
        dispatcher = WatchedDispatcher(*streams)
        dispatcher.relay = relay
        if spec.type == "http":  # a session the server has forgotten (it restarted) ends this connection
            http.event_hooks["response"].append(_forgotten_session_hook(dispatcher, spec.name))
        session = await stack.enter_async_context(
            ClientSession(
                dispatcher=dispatcher,
                client_info=types.Implementation(name="mcpgw", version=client_version),
                # Only `initialize` goes through the session's own requests (every later one
                # passes its own timeout, Connection.request): the handshake's bound.
                read_timeout_seconds=spec.startup_timeout,
                message_handler=message_handler,
                # Advertised so backends ask; the relay answers them from the client that caused them.
                sampling_callback=_not_relayed,
                elicitation_callback=_not_relayed,
                list_roots_callback=_not_relayed,
            )
        )
        if running is not None and running.init is not None:  # the front made the handshake: adopt it
            init = types.InitializeResult.model_validate(running.init)
            session.adopt(init)
            yield Connection(session, dispatcher, init, {"mcp-protocol-version": init.protocol_version}, lane)
            return
        waiting(f"waiting for backend {spec.name!r} to answer initialize, up to {spec.startup_timeout:g}s")
        with anyio.move_on_after(max(deadline - anyio.current_time(), 0.1)) as scope:
            try:
                init = await session.initialize()
            except MCPError as exc:
                raise BackendError(f"backend {spec.name!r}: initialize failed: {exc}") from exc
        if scope.cancelled_caught:
            raise BackendError(f"backend {spec.name!r}: no answer to initialize within {spec.startup_timeout:g}s")
        yield Connection(session, dispatcher, init, {"mcp-protocol-version": init.protocol_version}, lane)


def _not_told(what: str) -> None:
    """The default `waiting` of `open_backend`: nobody asked."""
