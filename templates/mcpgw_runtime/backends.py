"""Connections to backends: spawn or dial, handshake, supervise, forward raw JSON-RPC.

The compiler's probe and the gateway share `open_backend`, so a build proves
the exact connection path that production will use. Requests are forwarded as
raw dicts through the dispatcher: the gateway never re-validates what a
backend answers, it only routes it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import anyio
import anyio.abc
import mcp_types as types
from mcp.client.session import ClientSession, IncomingMessage, MessageHandlerFnT
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.dispatcher import CallOptions, DispatchContext, OnNotify, OnNotifyIntercept, OnRequest
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

from mcpgw_runtime.envsubst import expand
from mcpgw_runtime.observe import ObservedState
from mcpgw_runtime.relay import BackendRelay
from mcpgw_runtime.spec import JSON, BackendSpec

log = logging.getLogger("mcpgw")

BACKEND_UNAVAILABLE = -32002
"""JSON-RPC error code for "the backend behind this name is not serving"."""

MAX_PAGES = 1000
"""A cursor that never ends is a broken backend, not a reason to hang."""

LIST_CHANGED: dict[type[Any], str] = {
    types.ToolListChangedNotification: "tool",
    types.PromptListChangedNotification: "prompt",
}

PYTHON_ALIASES = frozenset({"python", "python3"})
"""`"command": "python"` means the interpreter that runs the gateway (spec section 2)."""


class BackendError(Exception):
    """A backend could not be started, reached or initialized; the message names it."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A backend spec with `${VAR}` expanded and paths resolved, ready to launch."""

    command: list[str] | None
    env: dict[str, str]
    cwd: str
    url: str | None
    headers: dict[str, str]


def resolve(spec: BackendSpec, base_dir: Path, environ: Mapping[str, str] | None = None) -> Resolved:
    """Expand references and resolve `cwd` against the config's folder."""
    where = f"backend {spec.name!r}"

    def x(text: str) -> str:
        return expand(text, where, environ)

    command: list[str] | None = None
    if spec.command is not None:
        exe = x(spec.command)
        if exe in PYTHON_ALIASES:
            exe = sys.executable
        command = [exe, *(x(a) for a in spec.args)]
    cwd = base_dir if spec.cwd is None else base_dir / x(spec.cwd)
    return Resolved(
        command=command,
        env={k: x(v) for k, v in spec.env.items()},
        cwd=str(cwd),
        url=x(spec.url) if spec.url is not None else None,
        headers={k: x(v) for k, v in spec.headers.items()},
    )


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


@dataclass(slots=True)
class Connection:
    """One live, initialized session with a backend."""

    session: ClientSession
    dispatcher: _WatchedDispatcher
    init: types.InitializeResult
    headers: dict[str, str]

    async def request(self, method: str, params: Mapping[str, Any] | None, timeout: float) -> JSON:
        opts: CallOptions = {"timeout": timeout, "headers": self.headers}
        relay = self.dispatcher.relay
        if relay is None:
            return await self.dispatcher.send_raw_request(method, params, opts)
        with relay.forwarding(params, opts):
            return await self.dispatcher.send_raw_request(method, params, opts)

    async def pages(self, method: str, key: str, timeout: float) -> list[JSON]:
        """Every item of a paginated list, following `nextCursor` to the end."""
        items: list[JSON] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await self.request(method, {"cursor": cursor} if cursor else None, timeout)
            items += [i for i in page.get(key) or [] if isinstance(i, dict)]
            cursor = page.get("nextCursor")
            if not cursor:
                return items
        raise BackendError(f"{method} still returned a nextCursor after {MAX_PAGES} pages")


@contextlib.asynccontextmanager
async def _local_process(command: list[str], resolved: Resolved, errlog: TextIO) -> AsyncIterator[anyio.abc.Process]:
    """Start the local server behind an SSE/HTTP backend; always stop its whole group."""
    env = get_default_environment() | resolved.env
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


async def stop_process_group(process: anyio.abc.Process, grace: float = 2.0) -> None:
    """SIGTERM the process group, then SIGKILL it after `grace` seconds."""
    if process.returncode is not None:
        return
    _signal_group(process.pid, signal.SIGTERM)
    with anyio.move_on_after(grace):
        await process.wait()
        return
    _signal_group(process.pid, signal.SIGKILL)
    with anyio.move_on_after(grace):
        await process.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if sys.platform == "win32":
            os.kill(pid, sig)
        else:
            os.killpg(pid, sig)


async def wait_until_listening(url: str, deadline: float, process: anyio.abc.Process | None, name: str) -> None:
    """Poll the URL's port until it accepts a connection; no fixed sleep."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    delay = 0.02
    while True:
        if process is not None and process.returncode is not None:
            raise BackendError(f"backend {name!r}: local server exited with code {process.returncode} before listening")
        try:
            stream = await anyio.connect_tcp(host, port)
        except OSError:
            if anyio.current_time() >= deadline:
                raise BackendError(f"backend {name!r}: nothing listening at {host}:{port}") from None
            await anyio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        else:
            await stream.aclose()
            return


@contextlib.asynccontextmanager
async def open_backend(
    spec: BackendSpec,
    base_dir: Path,
    *,
    client_version: str = "0",
    errlog: TextIO | None = None,
    message_handler: MessageHandlerFnT | None = None,
) -> AsyncIterator[Connection]:
    """Connect to one backend and complete the initialize handshake within `startup_timeout`."""
    resolved = resolve(spec, base_dir)
    err = errlog if errlog is not None else sys.stderr
    deadline = anyio.current_time() + spec.startup_timeout
    async with contextlib.AsyncExitStack() as stack:
        if spec.type == "stdio":
            assert resolved.command is not None
            exe = shutil.which(resolved.command[0], path=(resolved.env.get("PATH") or os.environ.get("PATH")))
            params = StdioServerParameters(
                command=exe or resolved.command[0], args=resolved.command[1:], env=resolved.env, cwd=resolved.cwd
            )
            try:
                streams = await stack.enter_async_context(stdio_client(params, errlog=err))
            except OSError as exc:
                raise BackendError(f"backend {spec.name!r}: cannot start {resolved.command[0]!r}: {exc}") from exc
        else:
            assert resolved.url is not None
            process = None
            if resolved.command is not None:
                process = await stack.enter_async_context(_local_process(resolved.command, resolved, err))
            await wait_until_listening(resolved.url, deadline, process, spec.name)
            if spec.type == "sse":
                streams = await stack.enter_async_context(
                    sse_client(resolved.url, headers=resolved.headers, sse_read_timeout=math.inf)
                )
            else:
                http = await stack.enter_async_context(create_mcp_http_client(headers=resolved.headers))
                streams = await stack.enter_async_context(streamable_http_client(resolved.url, http_client=http))
        dispatcher = _WatchedDispatcher(*streams)
        session = await stack.enter_async_context(
            ClientSession(
                dispatcher=dispatcher,
                client_info=types.Implementation(name="mcpgw", version=client_version),
                read_timeout_seconds=spec.timeout,
                message_handler=message_handler,
                # Advertised so backends ask; the relay answers them from the client that caused them.
                sampling_callback=_not_relayed,
                elicitation_callback=_not_relayed,
                list_roots_callback=_not_relayed,
            )
        )
        with anyio.move_on_after(max(deadline - anyio.current_time(), 0.1)) as scope:
            try:
                init = await session.initialize()
            except MCPError as exc:
                raise BackendError(f"backend {spec.name!r}: initialize failed: {exc}") from exc
        if scope.cancelled_caught:
            raise BackendError(f"backend {spec.name!r}: no answer to initialize within {spec.startup_timeout:g}s")
        yield Connection(session, dispatcher, init, {"mcp-protocol-version": init.protocol_version})


class Backend:
    """A supervised backend: connects in the background, reconnects with backoff.

    States: starting → ready → (restarting → ready)* ; failed while waiting to retry.
    Callers never hang: `request` waits for readiness up to `startup_timeout`,
    then fails with an MCP error that names the backend. `verify` (the
    gateway's pin check) runs before the backend counts as ready, and again
    whenever it announces that its tools or prompts changed.
    """

    state = ObservedState()  # every change reaches observe.STATE_LISTENERS (the console)

    def __init__(self, spec: BackendSpec, base_dir: Path, client_version: str, max_backoff: float = 30.0) -> None:
        self.spec = spec
        self.client_version = client_version
        self.base_dir = base_dir
        self.max_backoff = max_backoff
        self.state = "starting"
        self.error: str | None = None
        self.restarts = 0
        self.connection: Connection | None = None
        self._ready = anyio.Event()
        self._stop = anyio.Event()
        self.verify: Callable[[Backend, Connection, frozenset[str]], Awaitable[None]] | None = None
        self.pin: JSON = {"policy": spec.pin, "status": "pending", "held": {}, "changes": []}
        self._changed: set[str] = set()
        self._dirty = anyio.Event()
        self.relay = BackendRelay(spec.name)

    @property
    def name(self) -> str:
        return self.spec.name

    async def run(self) -> None:
        """Keep the backend connected until the task is cancelled."""
        backoff = 0.5
        while True:
            try:
                async with open_backend(
                    self.spec, self.base_dir, client_version=self.client_version, message_handler=self._on_message
                ) as conn:
                    if self.verify is not None:
                        await self.verify(self, conn, frozenset(LIST_CHANGED.values()))
                    self.connection, self.state, self.error = conn, "ready", None
                    self._ready.set()
                    backoff = 0.5
                    log.info("backend %s ready (%s)", self.name, conn.init.server_info.name)
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._reverify, conn)
                        await conn.dispatcher.closed.wait()
                        tg.cancel_scope.cancel()
                    log.warning("backend %s: connection closed", self.name)
            except (BackendError, MCPError, OSError) as exc:
                self.error = str(exc)
                log.error("%s", exc)
            except Exception as exc:  # a transport bug must not take the gateway down
                self.error = f"backend {self.name!r}: {type(exc).__name__}: {exc}"
                log.exception("backend %s crashed", self.name)
            self.connection = None
            self._ready = anyio.Event()
            self.state = "failed" if self.state in ("starting", "failed") else "restarting"
            self.restarts += 1
            await anyio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self.max_backoff)

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
                await self.verify(self, conn, kinds)

    async def connected(self) -> Connection:
        """The live connection, waiting up to `startup_timeout` for one."""
        conn = self.connection
        if conn is None:
            with anyio.move_on_after(self.spec.startup_timeout):
                await self._ready.wait()
            conn = self.connection
        if conn is None:
            detail = f": {self.error}" if self.error else ""
            raise MCPError(BACKEND_UNAVAILABLE, f"backend {self.name!r} is not available ({self.state}){detail}")
        conn.dispatcher.relay = self.relay  # from the first forwarded request on, after every reconnect
        return conn

    async def request(self, method: str, params: Mapping[str, Any] | None, tool: str | None = None) -> JSON:
        """Forward one request and return the backend's raw result."""
        conn = await self.connected()
        timeout = self.spec.tool_timeouts.get(tool, self.spec.timeout) if tool else self.spec.timeout
        try:
            return await conn.request(method, params, timeout)
        except MCPError as exc:
            if exc.error.code == types.CONNECTION_CLOSED:
                raise MCPError(BACKEND_UNAVAILABLE, f"backend {self.name!r} closed the connection") from exc
            if exc.error.code == types.REQUEST_TIMEOUT:
                raise MCPError(exc.error.code, f"backend {self.name!r} did not answer within {timeout:g}s") from exc
            raise

    def health(self) -> JSON:
        return {
            "state": self.state,
            "error": self.error,
            "restarts": self.restarts,
            "transport": self.spec.type,
            "pin": self.pin,
        }
