# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""`--lazy-core`: the front starts the stdio backends and keeps them until the core is needed.

Why: the `mcp` SDK is most of a gateway's memory (a bare `import mcp.client.session`
is about 63 MiB, bench/README.md), and a gateway whose clients only relay requests
needs none of it. With `--lazy-core` (every backend stdio with a shared session)
the front starts each backend, does the MCP handshake and the pin check on the
pipe's lane (again whenever the backend says its tools or prompts changed), and
reports it in `/healthz`. The requests themselves are forwarded by
stdio_forwarding.py and chosen by relays.py; what a backend sends outside any
request (log entries, resource updates) goes to the sessions' GET streams
(`Listeners`: early_sessions.py).

The core loads only when something needs it: a method or route the front does
not serve, a client that declared sampling, elicitation or roots, a backend that
sends what only the core can take (a request of its own during a call,
`resources/list_changed`), one that fails to start, exits or drifts from its pins.
The core then takes over the running processes as they are (`Takeover`): the SDK
session adopts the handshake the front made, the pipe's held lines go to it
first, and the counters and the limiter carry on. Requests in flight at that
moment finish on the lane.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcpgw_runtime.envsubst import redact, secret_values
from mcpgw_runtime.forwarding import (
    Limiter,
    health_entry,
    live_verdicts,
)
from mcpgw_runtime.metrics import CallStats
from mcpgw_runtime.observe import ObservedState
from mcpgw_runtime.pins import KINDS, Verdict, pinned_items, status
from mcpgw_runtime.pipes import Pipe, PipeClosed, resolve
from mcpgw_runtime.spec import JSON, BackendSpec, GatewaySpec
from mcpgw_runtime.stdio_forwarding import Channel, Forwarder, Listeners

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
    forwarded: bool = False
    """The front forwarded requests to it: what it sends goes to the core's relay from the first line,
    as after the core's own first request (the sessions' log levels and subscriptions are the hub's)."""


class FrontBackend:
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
        """A request has been forwarded: the core's relay, not the session's callbacks, answers the backend."""
        self.changed: set[str] = set()
        """Kinds (tool, prompt) the backend said changed and that are not re-verified yet."""
        self.reverify: asyncio.Task[None] | None = None
        self.drifted = False
        """Its live lists differ from the pins: the embedded tables no longer say what it offers."""
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


class FrontBackends:
    """The backends as the front runs them; `need_core(reason)` is how they ask for the core."""

    def __init__(
        self, spec: GatewaySpec, base_dir: Path, need_core: Callable[[str], None], listeners: Listeners
    ) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self.need_core = need_core
        self.listeners = listeners
        """The sessions that hear what the backends send outside any request (the front's, until the core)."""
        self.backends = {b.name: FrontBackend(b) for b in spec.backends}
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
        self.forwarder = Forwarder(self)
        """Requests to these backends, and what comes back for them (stdio_forwarding.py)."""

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

    async def _run(self, backend: FrontBackend) -> None:
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
            backend.drifted = True
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

    async def _screen(self, backend: FrontBackend, value: Any) -> bool:
        """A line from the backend while the front has it: list changes re-verify the pins, the rest is
        the forwarder's (`Forwarder.deliver`); False: it waits for the core."""
        method = value.get("method") if type(value) is dict else None
        if method in LIST_CHANGED and "id" not in value:
            backend.changed.add(LIST_CHANGED[method])
            if backend.reverify is None or backend.reverify.done():
                backend.reverify = asyncio.ensure_future(self._reverify(backend))
            return True
        return await self.forwarder.deliver(backend, value)

    async def _reverify(self, backend: FrontBackend) -> None:
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
            if any(v.changes or v.held for v in verdicts.values()):
                backend.drifted = True  # the core's verdict is published, not this one: it applies the policy
                self.need_core(f"backend {spec.name!r} differs from its pins")
                return
            backend.verdicts = {**(backend.verdicts or {}), **verdicts}

    async def _handshake(self, backend: FrontBackend, pipe: Pipe) -> None:
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

    def drifted(self) -> bool:
        """Some backend differs from its pins: its lists and calls are the core's to answer."""
        return any(b.drifted for b in self.backends.values())

    def all_ready(self) -> bool:
        """Every backend started and matches its pins: the embedded tables are exactly what is offered."""
        return all(b.state == "ready" and not b.drifted for b in self.backends.values())

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
                taken[name] = Takeover(
                    pipe, backend.init, backend.stats, limiter=backend.limiter, forwarded=backend.forwarded
                )
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
