# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""`--lazy-core`: the front starts the stdio backends and serves tool calls itself until the core is needed.

Why: the `mcp` SDK is most of a gateway's memory (a bare `import mcp.client.session`
is about 63 MiB, bench/README.md), and a gateway that only lists and calls tools
needs none of it. With `--lazy-core` (every backend stdio with a shared session)
the front starts each backend, does the MCP handshake and the pin check on the
pipe's lane, and forwards `tools/call` through it, with the backend's limits,
timeouts and call counters; a log entry the backend sends during a call goes to
that call (`EarlyBackends._screen`).

The core loads only when something needs it: a method or route the front does
not serve, a client that declared sampling, elicitation or roots, a backend that
sends anything but answers and log entries (a request of its own, a list change),
one that fails to start, exits, drifts from its pins or is saturated. The core
then takes over the running processes as they are (`Takeover`): the SDK session
adopts the handshake the front made, the pipe's held lines go to it first, and
the counters carry on. Calls in flight at that moment finish on the lane.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pydantic_core

from mcpgw_runtime.envsubst import redact, secret_values
from mcpgw_runtime.forwarding import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    REQUEST_TIMEOUT,
    Limiter,
    Refused,
    connection_lost,
    health_entry,
    live_verdicts,
    no_result,
    shutting_down,
    timed_out,
    timeout_for,
)
from mcpgw_runtime.metrics import CallStats
from mcpgw_runtime.observe import ObservedState
from mcpgw_runtime.pins import KINDS, Verdict, pinned_items, status
from mcpgw_runtime.pipes import LANE_FIRST_ID, Pipe, PipeClosed, answer_tail, resolve
from mcpgw_runtime.spec import JSON, BackendSpec, GatewaySpec

log = logging.getLogger("mcpgw")

HANDSHAKE_VERSION = "2025-11-25"
"""The version the SDK's client asks for in `initialize` (`LATEST_HANDSHAKE_VERSION`; a test keeps them equal)."""

CLIENT_CAPABILITIES: JSON = {"elicitation": {"form": {}, "url": {}}, "roots": {"listChanged": True}, "sampling": {}}
"""What the core's client advertises to a backend (backends.open_backend; a test keeps them equal)."""

WINDOWS_ENV = (
    "APPDATA", "HOMEDRIVE", "HOMEPATH", "LOCALAPPDATA", "PATH", "PATHEXT", "PROCESSOR_ARCHITECTURE",
    "SYSTEMDRIVE", "SYSTEMROOT", "TEMP", "USERNAME", "USERPROFILE",
)  # fmt: skip
POSIX_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")
INHERITED_ENV = WINDOWS_ENV if sys.platform == "win32" else POSIX_ENV
"""The SDK's `DEFAULT_INHERITED_ENV_VARS`: all a backend (or a local server) inherits besides its own `env`."""

RESERVED_META_PREFIX = "io.modelcontextprotocol/"
"""Envelope keys of the upstream connection; they describe that hop, not the backend's."""

LIST_CHANGED = {"notifications/tools/list_changed": "tool", "notifications/prompts/list_changed": "prompt"}
"""What a backend says when its tools or prompts change, and the pinned kind it concerns."""

PROGRESS_TOKENS = itertools.count(LANE_FIRST_ID * 2).__next__
"""Progress tokens the front sends backends in place of its clients' own: unique in the gateway, so two
clients' tokens never collide on a backend, and never a request id of the core's dispatcher (which
uses its own request ids as tokens and counts up from 0) nor of a lane."""


@dataclass(slots=True)
class Answer:
    """A backend's result to a forwarded request: the object, and the bytes after its id as they came."""

    result: JSON
    tail: memoryview | bytes


def _answer(method: str, reply: JSON, line: bytes, secrets: Mapping[str, str]) -> Answer:
    """A backend's answer; `Refused` with its (redacted) error, as the core relays it."""
    error = reply.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        message = redact(str(error.get("message", "")), secrets)
        raise Refused(code if type(code) is int else INTERNAL_ERROR, message, error.get("data"))
    result = reply.get("result")
    if not isinstance(result, dict):
        raise no_result(method)
    tail = answer_tail(line, reply["id"])
    return Answer(result, tail if tail is not None else b',"result":' + pydantic_core.to_json(result) + b"}")


def _start_failure(exc: Exception, spec: BackendSpec, pipe: Pipe | None) -> str:
    """Why a backend did not start, in the core's words for the same cases (backends.open_backend)."""
    if pipe is None and isinstance(exc, OSError):
        return f"cannot start {spec.command!r}: {exc}"
    if isinstance(exc, TimeoutError):
        return f"no answer to initialize within {spec.startup_timeout:g}s"
    if isinstance(exc, PipeClosed):
        return "initialize failed: Connection closed"
    return f"{type(exc).__name__}: {exc}"


def strip_meta(params: Mapping[str, Any]) -> dict[str, Any]:
    """Copy params, keeping only `_meta` entries that belong to the request itself."""
    out = dict(params)
    meta = out.get("_meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if not k.startswith(RESERVED_META_PREFIX)}
        if kept:
            out["_meta"] = kept
        else:
            del out["_meta"]
    return out


def default_environment() -> dict[str, str]:
    """The environment a stdio backend inherits, as the SDK's `get_default_environment` builds it."""
    return {k: v for k in INHERITED_ENV if (v := os.environ.get(k)) is not None and not v.startswith("()")}


def command_line(resolved_command: list[str], env: Mapping[str, str]) -> list[str]:
    """The command with its program found on the backend's PATH (or the gateway's)."""
    exe = shutil.which(resolved_command[0], path=env.get("PATH") or os.environ.get("PATH"))
    return [exe or resolved_command[0], *resolved_command[1:]]


class Channel(Protocol):
    """Where a log entry or progress the backend sends during a forwarded request goes (jsonrpc_http.Reply)."""

    async def notify(self, method: str, params: Any) -> None: ...


class StartFailed(Exception):
    """A backend answered its handshake or its lists with something else than results."""


@dataclass(slots=True)
class Takeover:
    """A running backend the core takes over from the front."""

    pipe: Pipe | None
    """None: the front has no running process to give (it exited, or was still starting)."""
    init: JSON | None
    """The backend's `initialize` result, for the SDK session to adopt."""
    stats: CallStats
    restarts: int = 0
    limiter: Limiter | None = None
    """The backend's concurrency cap and queue, carried on so the counts in flight stay true."""


class EarlyBackend:
    """One backend as the front runs it (its state changes reach the console like the core's)."""

    state = ObservedState()

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.error: str | None = None
        self.pipe: Pipe | None = None
        self.init: JSON | None = None
        self.verdicts: dict[str, Verdict] | None = None
        self.stats = CallStats()
        self.limiter = Limiter(spec.name, spec.max_concurrency, spec.max_queue)
        """The backend's concurrency cap and queue; the core's Backend adopts it at handover."""
        self.calls: list[Channel | None] = []
        """The requests the front has forwarded and not yet seen answered (None: of no client)."""
        self.forwarded = False
        self.changed: set[str] = set()
        """Kinds (tool, prompt) the backend said changed and that are not re-verified yet."""
        self.reverify: asyncio.Task[None] | None = None
        """A request has been forwarded: the core's relay, not the session's callbacks, answers the backend."""
        self.progress: dict[int, tuple[Channel, str | int]] = {}
        """Progress token sent to the backend → the request's channel and the client's own token."""
        self.handed = False
        self.secrets = secret_values(spec.texts())
        """Expanded `${VAR}` values of this backend's spec, kept out of every error and log line."""
        self.ready = asyncio.Event()
        """Set once the backend is ready or has failed."""
        self.state = "starting"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pin(self) -> JSON:
        return status(self.spec.pin, self.verdicts)

    @property
    def server(self) -> str | None:
        info = (self.init or {}).get("serverInfo")
        name = info.get("name") if isinstance(info, dict) else None
        return name if isinstance(name, str) else None

    def health(self) -> JSON:
        """This backend in `/healthz`, the shape of `Backend.health()`."""
        pid = self.pipe.pid if self.pipe is not None and self.state == "ready" else None
        return health_entry(self.spec, state=self.state, error=self.error, pin=self.pin, pid=pid, limiter=self.limiter)


class EarlyBackends:
    """The backends as the front runs them; `need_core(reason)` is how they ask for the core."""

    def __init__(self, spec: GatewaySpec, base_dir: Path, need_core: Callable[[str], None]) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self.need_core = need_core
        self.backends = {b.name: EarlyBackend(b) for b in spec.backends}
        self._pinned = {
            b.name: {
                "tool": pinned_items(b.name, spec.tools, spec.tool_routes, spec.tool_pins),
                "prompt": pinned_items(b.name, spec.prompts, spec.prompt_routes, spec.prompt_pins),
            }
            for b in spec.backends
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._stops: dict[Pipe, asyncio.Future[None]] = {}
        """Every pipe the front is stopping; shutdown waits for them all, whoever started the stop."""
        self.stopping = False
        """Set at gateway shutdown: calls fail with a shutdown error, as the core's do."""

    @staticmethod
    def unsupported(spec: GatewaySpec) -> str | None:
        """Why this gateway cannot run its backends in the front, or None when it can."""
        if sys.platform == "win32":
            return "Windows (the core starts stdio backends in Job Objects there)"
        for b in spec.backends:
            if b.type != "stdio" or b.session != "shared":
                return f"backend {b.name!r} is {b.type} with session {b.session!r} (only shared stdio backends)"
        return None

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._run(b)) for b in self.backends.values()]

    async def _run(self, backend: EarlyBackend) -> None:
        spec = backend.spec
        try:
            resolved = resolve(spec, self.base_dir)
            assert resolved.command is not None
            env = default_environment() | resolved.env
            pipe = await Pipe.spawn(command_line(resolved.command, env), resolved.cwd, env, sys.stderr)
            backend.pipe = pipe
            pipe.screen = lambda line, value: self._screen(backend, value)
            pipe.on_held = lambda: self.need_core(f"backend {spec.name!r} sent a message only the core can take")
            async with asyncio.timeout(spec.startup_timeout):
                await self._handshake(backend, pipe)
        except Exception as exc:  # noqa: BLE001 -- the core retries it with backoff and reports it
            backend.error = redact(f"backend {spec.name!r}: {_start_failure(exc, spec, backend.pipe)}", backend.secrets)
            backend.state = "failed"
            log.error("%s", backend.error)
            backend.ready.set()
            self.need_core(f"backend {spec.name!r} failed to start")
            return
        if any(v.changes or v.held for v in (backend.verdicts or {}).values()):
            backend.ready.set()
            self.need_core(f"backend {spec.name!r} differs from its pins")
            return
        backend.state = "ready"
        backend.ready.set()
        log.info("backend %s ready (%s), served by the front", spec.name, backend.server)
        await pipe.closed.wait()
        if not backend.handed and not self.stopping:
            backend.state = "restarting"
            log.warning("backend %s: connection closed", spec.name)
            self.need_core(f"backend {spec.name!r} exited")

    async def _screen(self, backend: EarlyBackend, value: Any) -> bool:
        """Progress and log entries, to the request they belong to, as the core's relay would deliver them.

        Progress names its request by the token the front sent (`PROGRESS_TOKENS`); it goes to
        that request's stream with the client's own token, in the shape the SDK sends
        (`report_progress`). Progress for no request in flight is dropped, as the SDK does.

        A log entry goes to the one request in flight. With none or several in flight it has
        no known origin: the core would broadcast it to the clients listening for logs outside
        a request, and before the core there are none (GET streams are the core's); among
        several callers handing it to the wrong one would leak it. So it stays in the gateway's
        own log.

        A request of the backend's own while none of the front's is in flight is answered as
        the core's relay answers it (`_unasked`). Anything else waits for the core.
        """
        if type(value) is not dict:
            return False
        method, params = value.get("method"), value.get("params")
        if "id" in value:
            return isinstance(method, str) and not backend.calls and self._unasked(backend, value["id"], method)
        if method == "notifications/progress":
            await self._progress(backend, params)
            return True
        if method in LIST_CHANGED:
            backend.changed.add(LIST_CHANGED[method])
            if backend.reverify is None or backend.reverify.done():
                backend.reverify = asyncio.ensure_future(self._reverify(backend))
            return True
        if method != "notifications/message":
            return False
        channel = backend.calls[0] if len(backend.calls) == 1 else None
        if channel is not None:
            await channel.notify("notifications/message", params)
        else:
            log.debug("backend %s: log entry of unknown origin not relayed: %s", backend.spec.name, params)
        return True

    @staticmethod
    async def _progress(backend: EarlyBackend, params: Any) -> None:
        token = params.get("progressToken") if type(params) is dict else None
        caller = backend.progress.get(token) if type(token) is int else None
        progress = params.get("progress") if type(params) is dict else None
        if caller is None or not isinstance(progress, int | float) or isinstance(progress, bool):
            log.debug("backend %s: progress of no request in flight dropped: %s", backend.spec.name, params)
            return
        assert type(params) is dict
        relayed: JSON = {"progressToken": caller[1], "progress": progress}
        relayed.update({k: params[k] for k in ("total", "message") if params.get(k) is not None})
        await caller[0].notify("notifications/progress", relayed)

    async def _reverify(self, backend: EarlyBackend) -> None:
        """A backend said its tools or prompts changed: check them against the pins again, as the core does.

        Unchanged (the usual case: a server announcing what it had all along), nothing is visible
        to clients, as with the core. Drifted, or not listable, the core takes over: it checks
        the pins itself on taking the backend and applies the policy.
        """
        spec, pipe = backend.spec, backend.pipe
        if pipe is None:
            return
        capabilities = (backend.init or {}).get("capabilities", {})
        offers = lambda capability: capabilities.get(capability) is not None  # noqa: E731
        fetch = self._fetch(pipe, spec.timeout)
        while backend.changed and not backend.handed:
            kinds, backend.changed = set(backend.changed), set()
            log.info("backend %s: %s list changed; re-verifying pins", spec.name, "/".join(sorted(kinds)))
            try:
                verdicts = await live_verdicts(
                    spec, kinds, offers, fetch, self._pinned[spec.name], self.spec.separator, StartFailed
                )
            except (StartFailed, TimeoutError, PipeClosed) as exc:
                self.need_core(f"backend {spec.name!r} cannot be re-verified: {redact(str(exc), backend.secrets)}")
                return
            backend.verdicts = {**(backend.verdicts or {}), **verdicts}
            if any(v.changes or v.held for v in verdicts.values()):
                self.need_core(f"backend {spec.name!r} differs from its pins")
                return

    @staticmethod
    def _unasked(backend: EarlyBackend, rid: object, method: str) -> bool:
        """Answer a backend's request that no client's request caused, as the core's dispatcher would.

        `ping` gets its empty result. A request for a client (sampling, elicitation, roots) gets the
        core's error: before the first forwarded request the SDK session's own callback answers
        (backends._not_relayed), after it the relay (relay.BackendRelay.on_request), which cannot
        tell the client. The answer is written at once, not awaited: this runs in the pipe's reader.
        """
        pipe = backend.pipe
        if pipe is None or type(rid) not in (int, str):
            return False
        answer: JSON = {"jsonrpc": "2.0", "id": rid}
        if method == "ping":
            answer["result"] = {}
        elif not backend.forwarded:
            answer["error"] = {"code": INVALID_REQUEST, "message": "mcpgw: no client to relay this request to"}
        else:
            why = f"mcpgw cannot tell which client {method} is for: no client request is in flight on it"
            answer["error"] = {"code": INVALID_REQUEST, "message": why}
        pipe.write_now(pydantic_core.to_json(answer) + b"\n")
        return True

    async def _handshake(self, backend: EarlyBackend, pipe: Pipe) -> None:
        spec = backend.spec
        params = {
            "capabilities": CLIENT_CAPABILITIES,
            "clientInfo": {"name": "mcpgw", "version": self.spec.generator},
            "protocolVersion": HANDSHAKE_VERSION,
        }
        reply, _ = await pipe.request("initialize", params, spec.startup_timeout)
        init = reply.get("result")
        if not isinstance(init, dict) or not isinstance(init.get("capabilities"), dict):
            raise StartFailed(f"initialize failed: {reply.get('error') or 'no result'}")
        backend.init = init
        await pipe.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        capabilities = init["capabilities"]
        fetch = self._fetch(pipe, spec.startup_timeout)  # still starting: not the calls' `timeout`
        pinned, separator = self._pinned[spec.name], self.spec.separator
        offers = lambda capability: capabilities.get(capability) is not None  # noqa: E731
        backend.verdicts = await live_verdicts(spec, KINDS, offers, fetch, pinned, separator, StartFailed)

    @staticmethod
    def _fetch(pipe: Pipe, timeout: float) -> Callable[[str, Mapping[str, Any] | None], Awaitable[JSON]]:
        async def fetch(method: str, params: Mapping[str, Any] | None) -> JSON:
            reply, _ = await pipe.request(method, params, timeout)
            page = reply.get("result")
            if not isinstance(page, dict):
                raise StartFailed(f"{method} failed: {reply.get('error')}")
            return page

        return fetch

    async def request(
        self, name: str, method: str, params: Mapping[str, Any] | None, channel: Channel | None, tool: str | None = None
    ) -> Answer | None:
        """Forward one request to backend `name`, as the core's `Backend.request` does; None: the core must.

        Bounded by the backend's `Limiter` (queued, or refused when its queue is full) and by
        `timeout_for(tool)`; counted in its CallStats per method (and tool); a backend error,
        a timeout or a lost connection is `Refused` in the core's words. A `_meta.progressToken`
        is replaced by one of `PROGRESS_TOKENS` and the backend's progress goes to `channel`.
        """
        backend = self.backends[name]
        if not await self._serving(backend):
            return None
        pipe = backend.pipe
        assert pipe is not None
        backend.forwarded = True
        timeout = timeout_for(backend.spec, tool)
        series = backend.stats.get(method, tool)
        started = time.perf_counter()
        token: int | None = None
        try:
            await backend.limiter.acquire(timeout)
            try:
                if channel is not None and params is not None:
                    params, token = self._own_token(backend, params, channel)
                backend.calls.append(channel)
                try:
                    reply, line = await pipe.request(method, params, timeout)
                finally:
                    backend.calls.remove(channel)
            except TimeoutError:
                raise timed_out(name, timeout) from None
            except PipeClosed:
                raise connection_lost(name, stopping=self.stopping) from None
            finally:
                backend.limiter.release()
                if token is not None:
                    del backend.progress[token]
            answer = _answer(method, reply, line, backend.secrets)
        except Refused as refused:
            series.observe(time.perf_counter() - started)
            series.errors += 1
            if refused.code == REQUEST_TIMEOUT:
                series.timeouts += 1
            raise
        series.observe(time.perf_counter() - started)
        if answer.result.get("isError") is True:
            series.tool_errors += 1
        return answer

    @staticmethod
    def _own_token(
        backend: EarlyBackend, params: Mapping[str, Any], channel: Channel
    ) -> tuple[Mapping[str, Any], int | None]:
        """The params with the client's progress token replaced by a gateway-unique one (registered)."""
        meta = params.get("_meta")
        theirs = meta.get("progressToken") if isinstance(meta, dict) else None
        if not isinstance(theirs, str | int) or isinstance(theirs, bool):
            return params, None
        assert isinstance(meta, dict)
        token = PROGRESS_TOKENS()
        backend.progress[token] = (channel, theirs)
        return {**params, "_meta": {**meta, "progressToken": token}}, token

    async def _serving(self, backend: EarlyBackend) -> bool:
        """Whether the front forwards to this backend now (waiting while it starts); False: the core must."""
        spec = backend.spec
        if backend.state == "starting":
            try:
                async with asyncio.timeout(spec.startup_timeout):
                    await backend.ready.wait()
            except TimeoutError:
                return False
        if self.stopping:
            raise shutting_down(spec.name)
        return backend.state == "ready" and not backend.handed and backend.pipe is not None

    def all_ready(self) -> bool:
        """Every backend started and matches its pins: the embedded tables are exactly what is offered."""
        return all(b.state == "ready" for b in self.backends.values())

    def health(self) -> JSON:
        backends = {name: b.health() for name, b in sorted(self.backends.items())}
        ready = all(b["state"] == "ready" for b in backends.values())
        return {"status": "ok" if ready else "degraded", "backends": backends}

    def handover(self) -> dict[str, Takeover]:
        """Every running backend, for the core; the front forwards no new call from here on."""
        taken: dict[str, Takeover] = {}
        for task in self._tasks:
            task.cancel()
        for name, backend in self.backends.items():
            backend.handed = True
            pipe = backend.pipe
            if pipe is not None and backend.state == "ready" and not pipe.closed.is_set():
                taken[name] = Takeover(pipe, backend.init, backend.stats, limiter=backend.limiter)
                continue
            if pipe is not None:  # exited, failed or still starting: the core starts its own
                self._stop_pipe(pipe)
            restarts = 0 if backend.state in ("starting", "ready") else 1
            taken[name] = Takeover(None, None, backend.stats, restarts, backend.limiter)
        return taken

    def shut_down(self, *, handed: bool = False) -> None:
        """SIGINT/SIGTERM before the core runs: no new calls; the processes stop now, in parallel
        with uvicorn's drain, so calls in flight fail at once ("gateway is shutting down").

        `handed`: the processes already handed to the core too, when that core will never run
        (the signal came while it loaded); nobody else would fail their calls in flight.
        """
        for backend in self.backends.values():
            if backend.pipe is not None and (handed or not backend.handed):
                backend.pipe.abandon()
        self._stop_running(handed=handed)

    async def stop(self) -> None:
        """At shutdown: stop every process the front still has, and wait for every stop begun before.

        A pipe handed to a core that never ran (SIGTERM while it loaded) is among those
        begun before: nobody else would stop it.
        """
        self._stop_running()
        await asyncio.gather(*self._stops.values(), return_exceptions=True)

    def _stop_running(self, *, handed: bool = False) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        for backend in self.backends.values():
            if backend.pipe is not None and (handed or not backend.handed):
                self._stop_pipe(backend.pipe)

    def _stop_pipe(self, pipe: Pipe) -> None:
        if pipe not in self._stops:
            self._stops[pipe] = asyncio.ensure_future(pipe.stop())
