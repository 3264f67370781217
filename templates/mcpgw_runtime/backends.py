# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Connections to backends: spawn or dial, handshake, supervise, forward raw JSON-RPC.

The compiler's probe and the gateway share `open_backend`, so a build proves
the exact connection path that production will use. Requests are forwarded as
raw dicts through the dispatcher: the gateway never re-validates what a
backend answers, it only routes it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import random
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TextIO
from urllib.parse import urlsplit

import anyio
import anyio.abc
import anyio.lowlevel
import httpx2
import mcp_types as types
from mcp.client.session import ClientSession, IncomingMessage, MessageHandlerFnT
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import CallOptions, DispatchContext, OnNotify, OnNotifyIntercept, OnRequest
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.message import SessionMessage

from mcpgw_runtime.envsubst import redact, secret_values
from mcpgw_runtime.limits import Limiter
from mcpgw_runtime.metrics import CallStats
from mcpgw_runtime.observe import ObservedState
from mcpgw_runtime.pipes import Pipe, PipeClosed, Resolved, all_pages, answer_tail, resolve, stop_process_group
from mcpgw_runtime.prestart import Takeover, command_line, default_environment
from mcpgw_runtime.relay import ORIGIN, BackendRelay
from mcpgw_runtime.spec import JSON, BackendSpec

log = logging.getLogger("mcpgw")

BACKEND_UNAVAILABLE = -32002
"""JSON-RPC error code for "the backend behind this name is not serving"."""

LIST_CHANGED: dict[type[Any], str] = {
    types.ToolListChangedNotification: "tool",
    types.PromptListChangedNotification: "prompt",
}


class BackendError(Exception):
    """A backend could not be started, reached or initialized; the message names it."""


async def _not_relayed(context: Any, params: Any = None) -> types.ErrorData:
    """Only reached without a relay (the compiler's probe): there is no client to ask."""
    return types.ErrorData(code=types.INVALID_REQUEST, message="mcpgw: no client to relay this request to")


class _WatchedDispatcher(JSONRPCDispatcher[Any]):
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
    dispatcher: _WatchedDispatcher
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
        opts: CallOptions = {"timeout": timeout, "headers": self.headers}
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


class Wire(dict[str, Any]):
    """A backend's result as a dict that remembers the bytes it came in.

    `tail` is the backend's answer from just after its id to the end:
    `,"result":{...}}`, a view into the line as read, not a copy. The HTTP fast
    path answers with its own head (`{"jsonrpc":"2.0","id":<client's id>`) and
    this tail, so a large result crosses the gateway without being encoded or
    copied again.
    """

    __slots__ = ("tail",)

    def __init__(self, value: dict[str, Any], tail: memoryview) -> None:
        super().__init__(value)
        self.tail = tail


class StdioLane:
    """Requests written straight to a stdio backend's pipe (`Pipe.request`), beside the dispatcher.

    Why: the dispatcher costs a model build and dump, two memory-stream hops and a
    pydantic validation per message (bench/README.md). The lane writes one encoded
    line and the pipe's reader resolves it by id; everything else on the pipe
    (notifications, the backend's own requests, the dispatcher's answers) still
    goes to the dispatcher. Requests that carry a progress token stay on the
    dispatcher, which maps progress to the caller.
    """

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.dispatcher: _WatchedDispatcher | None = None
        """Its relay gets the backend's log entries straight from the reader, in order with the answers."""

    async def request(self, method: str, params: Mapping[str, Any] | None, timeout: float) -> JSON:
        try:
            reply, line = await self.pipe.request(method, params, timeout)
        except PipeClosed:
            raise MCPError(types.CONNECTION_CLOSED, "Connection closed") from None
        except TimeoutError:
            raise MCPError(types.REQUEST_TIMEOUT, f"Timed out after {timeout:g}s") from None
        error = reply.get("error")
        if error is not None:
            raise MCPError.from_error_data(types.ErrorData.model_validate(error))
        result = reply.get("result")
        if not isinstance(result, dict):
            raise MCPError(types.INTERNAL_ERROR, f"backend answered {method} without a result object")
        tail = answer_tail(line, reply["id"])
        return Wire(result, tail) if tail is not None else result

    def relay(self) -> BackendRelay | None:
        return self.dispatcher.relay if self.dispatcher is not None else None


async def _deliver_log(lane: StdioLane, message: JSON) -> None:
    relay = lane.relay()
    if relay is not None:
        try:
            await relay.on_notify("notifications/message", message.get("params"))
        except Exception:  # a client that went away must not stop the backend's reader
            log.debug("backend log entry not delivered", exc_info=True)


@contextlib.asynccontextmanager
async def posix_stdio(
    command: list[str],
    resolved: Resolved,
    errlog: TextIO,
    pids: list[int] | None = None,
    running: Pipe | None = None,
) -> AsyncIterator[tuple[tuple[Any, Any], StdioLane]]:
    """A stdio backend in its own process group (`Pipe`), as the SDK's `stdio_client`, with a tighter stop.

    `running`: a pipe the front started, taken over as it is (no second process).
    When the child dies (or closes stdout) the read stream ends at once, so the
    dispatcher fails every in-flight request with CONNECTION_CLOSED. On exit:
    close stdin, wait `STDIN_GRACE`, then `stop_process_group` (SIGTERM, SIGKILL
    after `STOP_GRACE`): at most about 3.5 s even for a child that ignores SIGTERM.
    A line that is not JSON-RPC reaches the dispatcher as an exception value,
    which it logs and skips; the backend keeps serving. Log entries go to the
    relay from the reader itself, not through the dispatcher, which hands
    notifications to tasks of their own: the entries a backend logs just before
    its answer must reach the client before that answer.
    """
    pipe = running if running is not None else await Pipe.spawn(command, resolved.cwd, _environment(resolved), errlog)
    if pids is not None:
        pids.append(pipe.pid)
    lane = StdioLane(pipe)
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)

    async def sink(line: bytes, value: Any) -> None:
        if isinstance(value, ValueError):
            message: SessionMessage | Exception = value
        elif type(value) is dict and value.get("method") == "notifications/message" and "id" not in value:
            if lane.relay() is not None:
                await _deliver_log(lane, value)
                return
            message = _session_message(value)
        else:
            message = _session_message(value)
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await read_writer.send(message)

    async def end_with_the_pipe() -> None:
        await pipe.closed.wait()
        await read_writer.aclose()

    write_stream = _PipeWriteStream(pipe, read_writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(end_with_the_pipe)
        pipe.attach(sink)
        try:
            yield (read_stream, write_stream), lane
        finally:
            with anyio.CancelScope(shield=True):
                await pipe.stop()
                for stream in (read_stream, read_writer):
                    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await stream.aclose()
            tg.cancel_scope.cancel()


def _environment(resolved: Resolved) -> dict[str, str]:
    return default_environment() | resolved.env


def _session_message(value: Any) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_python(value, by_name=False))
    except ValueError as exc:
        return exc


class _PipeWriteStream:
    """The dispatcher's write stream: each message written to the pipe within its own `send`.

    Why not a writer task behind a memory stream (as the SDK's `stdio_client` has): the
    lane writes to the same pipe directly, so a message handed to a writer task could
    reach the wire after a lane request sent later. That put `tools/list` ahead of
    `notifications/initialized`, and a server that registers tools when it is
    initialized (server-everything) then listed fewer of them. One writer, in call order.
    """

    def __init__(self, pipe: Pipe, read_writer: anyio.abc.ObjectSendStream[SessionMessage | Exception]) -> None:
        self._pipe = pipe
        self._read_writer = read_writer
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        data = item.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
        try:
            await self._pipe.send(data)
        except PipeClosed as exc:
            # The child stopped reading: end the session rather than hang; the dispatcher
            # turns this into CONNECTION_CLOSED for the caller.
            await self._read_writer.aclose()
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        self._closed = True  # the pipe itself is closed by `posix_stdio`, after the dispatcher is done

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


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


def _forgotten_session_hook(dispatcher: _WatchedDispatcher, name: str) -> Callable[[httpx2.Response], Awaitable[None]]:
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
    waiting: Callable[[str], None] | None = None,
    launch: bool = True,
) -> AsyncIterator[Connection]:
    """Connect to one backend and complete the initialize handshake within `startup_timeout`.

    `startup_timeout` alone bounds the handshake, not the backend's `timeout`: a server
    may take longer to start than any one of its calls should (a Python interpreter, a
    package fetched on first run), and a handshake cut short only restarts that wait.
    The pid of a process it starts (stdio child, local server) is appended to `pids`.
    `running`: a stdio backend the front started and initialized, taken over as it is.
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
        dispatcher = _WatchedDispatcher(*streams)
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


FIRST_BACKOFF = 0.5
"""Seconds before the first retry of a connection that failed; doubles per failure up to a limit."""


@dataclass
class Backoff:
    """Exponential backoff with jitter, shared by the backend's connection and its per-client ones."""

    limit: float
    delay: float = FIRST_BACKOFF

    def next_wait(self) -> float:
        """Seconds to wait now (0.5 to 1.5 times the delay, so restarts do not line up); then double."""
        wait = self.delay * (0.5 + random.random())
        self.delay = min(self.delay * 2, self.limit)
        return wait


def describe_failure(raised: BaseException, name: str, secrets: Mapping[str, str]) -> str:
    """Why a connection to backend `name` failed, redacted and naming it; a bug's traceback goes to debug."""
    exc = _leaf(raised)  # task groups in the transport wrap what went wrong
    if isinstance(exc, BackendError | MCPError | OSError):
        message = str(exc)
    else:  # a transport bug must not take the gateway down
        message = f"{type(exc).__name__}: {exc}"
        log.debug("backend %s: %s", name, redact("".join(traceback.format_exception(raised)), secrets))
    if not message.startswith("backend "):
        message = f"backend {name!r}: {message}"
    return redact(message, secrets)


class Backend:
    """A supervised backend: connects in the background, reconnects with backoff.

    States (in `/healthz`, `/metrics` and the console):

        starting ──▶ ready ◀──▶ degraded          connected: calls are forwarded
           │           │           │
           ▼           ▼           ▼
         failed ◀─ restarting ◀────┘              not connected: calls wait up to
           └──────────▶ (retry with backoff)     startup_timeout, then fail

    `degraded` = connected but not fully trusted or not keeping up: its pins
    could not be verified, or its queue is full and calls are being rejected
    (back to `ready` once the queue drains). `failed` = never connected since
    the last start attempt; `restarting` = was connected, connection lost.
    Callers never hang: `request` waits for readiness up to `startup_timeout`,
    then fails with an MCP error that names the backend; in-flight calls fail at
    once when the connection drops. `verify` (the gateway's pin check) runs
    before the backend counts as ready, and again whenever it announces that
    its tools or prompts changed.
    """

    state = ObservedState()  # every change reaches observe.STATE_LISTENERS (the console)

    def __init__(
        self,
        spec: BackendSpec,
        base_dir: Path,
        client_version: str,
        max_backoff: float = 30.0,
        *,
        running: Takeover | None = None,
    ) -> None:
        self.spec = spec
        self.client_version = client_version
        self.base_dir = base_dir
        self.max_backoff = max_backoff
        self.state = "starting"
        self.error: str | None = None
        self.restarts = running.restarts if running is not None else 0
        self.connection: Connection | None = None
        self._ready = anyio.Event()
        self._stop = anyio.Event()
        self.verify: Callable[[Backend, Connection, frozenset[str], float], Awaitable[None]] | None = None
        """The gateway's pin check of a connection: the kinds to list, and how long each list may take."""
        self.pin: JSON = {"policy": spec.pin, "status": "pending", "held": {}, "changes": []}
        self._changed: set[str] = set()
        self._dirty = anyio.Event()
        self.relay = BackendRelay(spec.name)
        self.stats = running.stats if running is not None else CallStats()
        self._running = running if running is not None and running.pipe is not None else None
        """`--lazy-core`: the process the front started, taken over on the first connect."""
        self.limiter = Limiter(spec.name, spec.max_concurrency, spec.max_queue)
        self.pids: list[int] = []
        self.secrets = secret_values(spec.texts())
        """Expanded `${VAR}` values of this backend's spec, kept out of every error and log line."""
        self.stopping = False
        """Set at gateway shutdown: no new calls; in-flight ones fail with a shutdown error."""
        """Processes this backend started (stdio child or local server), newest last."""
        self.per_client: Callable[[str, Mapping[str, Any] | None], Awaitable[Connection | None]] | None = None
        """`session: per-client`: the calling client's own connection (sessions.py); None = this shared one."""

    @property
    def in_flight(self) -> int:
        return self.limiter.active

    @property
    def queued(self) -> int:
        return self.limiter.queued

    @property
    def rejected(self) -> int:
        return self.limiter.rejected

    @property
    def name(self) -> str:
        return self.spec.name

    async def run(self) -> None:
        """Keep the backend connected until the task is cancelled."""
        backoff = Backoff(self.max_backoff)
        while True:
            running, self._running = self._running, None
            try:
                async with open_backend(
                    self.spec,
                    self.base_dir,
                    client_version=self.client_version,
                    message_handler=self._on_message,
                    pids=self.pids,
                    running=running,
                ) as conn:
                    if self.verify is not None:  # still starting: bounded as the handshake was
                        await self.verify(self, conn, frozenset(LIST_CHANGED.values()), self.spec.startup_timeout)
                    self.connection, self.error = conn, None
                    self.state = "degraded" if self.pin.get("status") == "unverified" else "ready"
                    self._ready.set()
                    backoff = Backoff(self.max_backoff)
                    log.info("backend %s ready (%s)", self.name, conn.init.server_info.name)
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._reverify, conn)
                        await conn.dispatcher.closed.wait()
                        tg.cancel_scope.cancel()
                    log.warning("backend %s: connection closed", self.name)
            except Exception as raised:  # noqa: BLE001 -- logged below, redacted; the supervisor must go on
                self.error = describe_failure(raised, self.name, self.secrets)
                log.error("%s", self.error)
            self.connection = None
            self._ready = anyio.Event()
            del self.pids[:-1]
            self.state = "failed" if self.state in ("starting", "failed") else "restarting"
            self.restarts += 1
            await anyio.sleep(backoff.next_wait())

    async def _on_message(self, message: IncomingMessage) -> None:
        """Runs inside the connection's read loop: only note the change, never await the backend here."""
        kind = LIST_CHANGED.get(type(message))
        if kind is not None:
            self._changed.add(kind)
            self._dirty.set()

    async def _reverify(self, conn: Connection) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            kinds, self._changed = frozenset(self._changed), set()
            if self.verify is not None and kinds:
                log.info("backend %s: %s list changed; re-verifying pins", self.name, "/".join(sorted(kinds)))
                await self.verify(self, conn, kinds, self.spec.timeout)
                if self.state in ("ready", "degraded"):
                    self.state = "degraded" if self.pin.get("status") == "unverified" else "ready"

    async def connected(self) -> Connection:
        """The live connection, waiting up to `startup_timeout` for one (not at all while `failed`)."""
        if self.stopping:
            raise MCPError(BACKEND_UNAVAILABLE, f"gateway is shutting down: backend {self.name!r} takes no more calls")
        conn = self.connection
        if conn is None and not (self.state == "failed" and self.error):  # a crash loop answers at once
            with anyio.move_on_after(self.spec.startup_timeout):
                await self._ready.wait()
            conn = self.connection
        if conn is None:
            detail = f": {self.error}" if self.error else ""
            raise MCPError(BACKEND_UNAVAILABLE, f"backend {self.name!r} is not available ({self.state}){detail}")
        conn.dispatcher.relay = self.relay  # from the first forwarded request on, after every reconnect
        return conn

    async def request(self, method: str, params: Mapping[str, Any] | None, tool: str | None = None) -> JSON:
        """Forward one request and return the backend's raw result; counted in `/metrics`."""
        series = self.stats.get(method, tool)
        started = time.perf_counter()
        rid = _next_rid() if log.isEnabledFor(logging.INFO) else 0
        if rid and log.isEnabledFor(logging.DEBUG):
            origin = ORIGIN.get()
            upstream = origin.ctx.request_id if origin is not None else None
            log.debug(
                "rid=%s backend=%s method=%s tool=%s upstream_id=%s params=%s",
                rid, self.name, method, tool or "-", upstream, _truncated(params),
            )  # fmt: skip
        try:
            result = await self._forward(method, params, tool)
        except MCPError as raised:
            exc = raised
            if self.secrets:
                message = redact(raised.error.message, self.secrets)
                if message != raised.error.message:
                    exc = MCPError(raised.error.code, message, raised.error.data)
            elapsed = time.perf_counter() - started
            series.observe(elapsed)
            series.errors += 1
            code = exc.error.code
            if code == types.REQUEST_TIMEOUT:
                series.timeouts += 1
            if rid:
                level = logging.INFO if code in _CLIENT_ERRORS else logging.WARNING
                log.log(
                    level, "rid=%s backend=%s method=%s tool=%s error=%d ms=%.1f msg=%s",
                    rid, self.name, method, tool or "-", code, elapsed * 1000, exc.error.message,
                )  # fmt: skip
            if exc is not raised:
                raise exc from None
            raise
        elapsed = time.perf_counter() - started
        series.observe(elapsed)
        if result.get("isError") is True:
            series.tool_errors += 1
        if rid and log.isEnabledFor(logging.DEBUG):
            log.debug("rid=%s backend=%s ok ms=%.1f", rid, self.name, elapsed * 1000)
        return result

    async def _forward(self, method: str, params: Mapping[str, Any] | None, tool: str | None) -> JSON:
        conn = await self.per_client(method, params) if self.per_client is not None else None
        if conn is None:
            conn = await self.connected()
        timeout = self.spec.tool_timeouts.get(tool, self.spec.timeout) if tool else self.spec.timeout
        limiter = self.limiter
        try:
            await limiter.acquire(timeout)
        except MCPError:
            if limiter.saturated and self.state == "ready":
                self.state = "degraded"
                log.warning("backend %s: queue full, rejecting calls (max_concurrency %d)", self.name, limiter.limit)
            raise
        try:
            return await conn.request(method, params, timeout)
        except MCPError as exc:
            if exc.error.code == types.CONNECTION_CLOSED or conn.dispatcher.closed.is_set():
                if self.stopping:
                    why = f"gateway is shutting down: call to backend {self.name!r} abandoned"
                    raise MCPError(BACKEND_UNAVAILABLE, why) from exc
                raise MCPError(BACKEND_UNAVAILABLE, f"backend {self.name!r} closed the connection") from exc
            if exc.error.code == types.REQUEST_TIMEOUT:
                raise MCPError(exc.error.code, f"backend {self.name!r} did not answer within {timeout:g}s") from exc
            raise
        finally:
            limiter.release()
            if limiter.queued == 0 and self.state == "degraded" and self.pin.get("status") != "unverified":
                self.state = "ready"

    def health(self) -> JSON:
        return {
            "state": self.state,
            "error": self.error,
            "restarts": self.restarts,
            "transport": self.spec.type,
            "pin": self.pin,
            "pid": self.pids[-1] if self.pids and self.connection is not None else None,
            "in_flight": self.limiter.active,
            "queued": self.limiter.queued,
        }


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups, else `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


_CLIENT_ERRORS = frozenset({types.INVALID_PARAMS, types.METHOD_NOT_FOUND, types.INVALID_REQUEST})
_next_rid = itertools.count(1).__next__
"""`rid=N` in log lines: one forwarded request, unique within this gateway process (0: not logging)."""


def _truncated(params: Mapping[str, Any] | None, limit: int = 2000) -> str:
    """Params for a debug line (the only level where tool arguments appear), cut to `limit` characters."""
    text = json.dumps(params, default=str, ensure_ascii=False)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"
