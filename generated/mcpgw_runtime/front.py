# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The gateway's first second, and with `--lazy-core` its whole life: answer without the SDK.

Why: importing the `mcp` package is about 0.9 s of a gateway's 1.05 s start
(bench/README.md) and most of its memory, and most requests need none of it. The
front binds the port at once, with nothing heavier than uvicorn and pydantic_core,
and answers what needs no SDK:

    initialize, notifications/initialized, GET and DELETE of its sessions   early_sessions.py
    ping, tools/list, prompts/list, resources/templates/list               the embedded tables
    /healthz                                                              front_backends.py's backends
    tools/call, prompts/get, resources/read, resources/list,               relays.py, forwarding
      completion/complete, notifications/cancelled, logging/setLevel,       on the backends' pipes;
      resources/subscribe and unsubscribe (`--lazy-core`)                   the GET streams carry
                                                                             logs and resource updates

Anything else (another method, a client that declared sampling, elicitation or
roots, a backend that needs the core) loads the core (the SDK) in a worker thread
(`need_core`, logged "loading the core: <reason>"); a request that needs it waits
for it, and is then served exactly as if the core had been there from the start.
The sessions the front opened are handed to the core once it is up
(`EarlySessions.hand_over`); from then on the front only passes requests through.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import pydantic_core

from mcpgw_runtime.early_sessions import (
    CLIENT_REQUEST_CAPABILITIES,
    HANDSHAKE_BYTES,
    HANDSHAKE_VERSIONS,
    SESSION_NOT_FOUND,
    VERSION_HEADER,
    Core,
    EarlySession,
    EarlySessions,
    initialize_result,
)
from mcpgw_runtime.forwarding import BACKEND_UNAVAILABLE, health_entry
from mcpgw_runtime.front_backends import FrontBackends
from mcpgw_runtime.guard import Guard, refuse
from mcpgw_runtime.jsonrpc_http import (
    SESSION_HEADER,
    AsgiApp,
    AsgiReceive,
    AsgiScope,
    AsgiSend,
    Reply,
    disconnected,
    error_answer,
    id_key,
    is_request_id,
    parse_json,
    read_body,
    replay_body,
    request_id,
    respond,
    result_body,
)
from mcpgw_runtime.metrics import SERVED_WITHOUT_SDK
from mcpgw_runtime.profiles import DEFAULT, PROFILE, Profiles, path_profile, table_lists
from mcpgw_runtime.profiles import health as profiles_health
from mcpgw_runtime.relays import RELAYED, Relays
from mcpgw_runtime.session_table import SessionTable
from mcpgw_runtime.spec import JSON, GatewaySpec

__all__ = [
    "CLIENT_REQUEST_CAPABILITIES",
    "HANDSHAKE_BYTES",
    "HANDSHAKE_VERSIONS",
    "SESSION_HEADER",
    "SESSION_NOT_FOUND",
    "VERSION_HEADER",
    "Core",
    "EarlySession",
    "Reply",
    "disconnected",
    "id_key",
    "initialize_result",
    "is_request_id",
    "parse_json",
    "read_body",
    "replay_body",
]
"""What the rest of the runtime (cli, http, fastpath) and the tests take from here: the front's names for them."""

log = logging.getLogger("mcpgw")

EARLY_METHODS = frozenset({"ping", "tools/list", "prompts/list", "resources/templates/list"})


def table_answers(spec: GatewaySpec, profiles: Profiles) -> dict[str, dict[str, bytes]]:
    """The results the embedded tables give, per profile, encoded once: what the core answers while no pin
    has drifted."""
    return table_lists(spec, profiles, pydantic_core.to_json)


def with_profiles(spec: GatewaySpec, health: JSON) -> JSON:
    """`/healthz` with its `profiles` entry, for a gateway that has named profiles."""
    return {**health, "profiles": profiles_health(spec)} if spec.profiles else health


def starting_health(spec: GatewaySpec) -> JSON:
    """What `/healthz` says before the core is up: what the core's would say before any backend ran.

    The same shape as `Gateway.health()` (a unit test keeps the two equal), so a probe
    reads the same fields whichever half answers.
    """
    backends: dict[str, JSON] = {}
    for b in sorted(spec.backends, key=lambda b: b.name):
        backends[b.name] = health_entry(b)
        if b.session == "per-client":
            backends[b.name]["client_sessions"] = {"open": 0, "pids": []}
    return {"status": "degraded" if backends else "ok", "backends": backends}


class Front:
    """The ASGI app uvicorn runs: the early answers until the core is ready, the core's app after."""

    def __init__(
        self,
        spec: GatewaySpec,
        guard: Guard,
        load: Callable[[], Core],
        *,
        http: bool,
        stateless: bool,
        load_in_thread: Callable[[], object] | None = None,
        lazy_base_dir: Path | None = None,
    ) -> None:
        self.spec = spec
        self.guard = guard
        self.http = http
        self.stateless = stateless
        self.core: Core | None = None
        self.exit: Callable[[], None] = lambda: os.kill(os.getpid(), signal.SIGTERM)
        """How the front stops the server when the core cannot load (`serve_http` sets uvicorn's own)."""
        self.failed: str | None = None
        """Why the core could not load (the gateway then stops, exit status 1)."""
        self._load = load
        self._import = load_in_thread
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._closing = asyncio.Event()
        """Set on SIGINT/SIGTERM: the GET streams the front holds end at once."""
        self._boot: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        in_flight: dict[tuple[bytes, object], asyncio.Future[Any]] = {}
        self.sessions = EarlySessions(spec, stateless, in_flight, self._ready, self._closing, lambda: self.core)
        self.profiles = Profiles(spec)
        """What the request's profile lists and may call (profiles.py)."""
        self.backends = (
            FrontBackends(spec, lazy_base_dir, self.need_core, self.sessions) if lazy_base_dir is not None else None
        )
        """`--lazy-core`: the backends the front runs and calls until the core takes them over (front_backends.py)."""
        self.relays = (
            Relays(spec, self.backends, self.sessions, in_flight, self.profiles) if self.backends is not None else None
        )
        """`--lazy-core`: the requests the front relays to those backends (relays.py)."""
        if self.relays is not None:
            backends = self.backends
            assert backends is not None
            self.relays.settled = lambda: self._boot is None and backends.all_ready()
        self.early = self.sessions.open
        """Sessions the front opened that the core has not adopted yet."""
        self.table: SessionTable | None = None
        """Every open Streamable HTTP session, the front's and the core's: cap and idle expiry (session_table.py)."""
        if http and not stateless:
            self.table = SessionTable(
                spec.max_sessions,
                spec.session_idle_timeout,
                allows=guard.allows,
                max_body=spec.max_body_bytes,
                max_per_caller=spec.max_sessions_per_caller,
            )
            self.table.ender = self.end_session
        self._expiry: asyncio.Task[None] | None = None
        self._lists = table_answers(spec, self.profiles)
        self._tables: dict[str, JSON] = {
            "tools/list": {"tools": list(spec.tools)},
            "prompts/list": {"prompts": list(spec.prompts)},
        }
        """The embedded lists, what a policy's per-caller answers are made from (`_allowed`)."""
        self._policy_lists: dict[tuple[str, str, object], bytes] = {}

    async def __call__(self, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend) -> None:
        core = self.core
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.spec.profiles and scope["type"] == "http":
            profile = path_profile(scope["path"], "/mcp", self.spec.profiles)
            PROFILE.set(profile or DEFAULT)  # this request's own task: nothing else sees it
            if profile is not None and profile != DEFAULT:  # served as /mcp, in the profile's view
                scope = {**scope, "path": "/mcp", "raw_path": b"/mcp"}
        if self.table is not None and scope["type"] == "http" and scope["path"] == "/mcp":
            await self.table.serve(scope, receive, send, self._route)
        elif core is not None and not self.early:
            await core.app(scope, receive, send)
        else:
            await self._early_request(scope, receive, send)

    async def _route(self, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend) -> None:
        """A `/mcp` request the session table let through: to the core, or the early answers."""
        core = self.core
        if core is not None and not self.early:
            await core.app(scope, receive, send)
        else:
            await self._early_request(scope, receive, send)

    def end_session(self, sid: bytes) -> None:
        """The session table evicted or expired a session: end it in whichever half holds it."""
        session = self.early.get(sid)
        if session is not None:  # its held stream ends; an adoption under way ends it in the core when done
            self.sessions.end(sid, session)
        if self.core is not None:
            self.core.end_session(sid)

    def stop_backends(self) -> None:
        """From the signal handler: the core fails in-flight calls and stops its backends.

        A core still loading stops them as soon as it is built.
        """
        self._stopping = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        if self.core is not None:
            self.core.stop_backends()
        elif self.backends is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.backends.shut_down)

    # -- lifespan ---------------------------------------------------------------

    async def _lifespan(self, receive: AsgiReceive, send: AsgiSend) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                if self.table is not None:
                    self._expiry = asyncio.ensure_future(self.table.expire_forever())
                if self.backends is not None:
                    missing = _missing_core()
                    if missing is not None:  # said now, not when the first request needs the core
                        self._fail("cannot load the gateway core", missing)
                        await send({"type": "lifespan.startup.complete"})
                        continue
                    self.backends.start()
                else:
                    self.need_core("")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._stop.set()
                if self._expiry is not None:
                    self._expiry.cancel()
                if self._boot is not None:
                    await self._boot
                if self.backends is not None:
                    await self.backends.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def need_core(self, reason: str) -> None:
        """Start loading the core, once (with `--lazy-core`, the first time something needs it)."""
        if self._boot is not None or self._stop.is_set():
            return
        if reason:
            log.info("loading the core: %s", reason)
        self._boot = asyncio.ensure_future(self._run_core())

    async def _run_core(self) -> None:
        """Load the core (imports in a worker thread), run it until shutdown, adopt the early sessions."""
        PROFILE.set(DEFAULT)  # what runs under this task (the backends, the sessions' adoption) is no request's
        try:
            if self._import is not None:
                await asyncio.to_thread(self._import)
            core = self._load()
            for version in HANDSHAKE_VERSIONS:  # what the front answered must be what the SDK answers
                if core.initialize_result(version) != initialize_result(self.spec, version):
                    log.error("the front's initialize answer differs from the SDK's at %s; mcpgw bug", version)
        except Exception as exc:  # noqa: BLE001 -- whatever stops the core stops the gateway, said plainly
            self._fail("cannot load the gateway core", exc)
            return
        if self._stopping or self._stop.is_set():  # stopped while loading: start no backends now
            if self.backends is not None:  # ... and stop those handed to this core, which will never run
                self.backends.shut_down(handed=True)
            self._ready.set()
            return
        try:
            async with core.run():
                self.core = core
                self._ready.set()
                adoptions = await self.sessions.hand_over(core)
                core.start_backends()
                await self._stop.wait()
                for adoption in adoptions:
                    adoption.cancel()
        except Exception as exc:  # noqa: BLE001 -- the same once the core runs
            self._fail("the gateway core failed", exc)

    def _fail(self, what: str, exc: Exception) -> None:
        """The core cannot load or run: say why (a traceback only at debug) and stop the server."""
        self.failed = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
        log.critical("%s: %s; stopping", what, self.failed)
        log.debug("the core failed", exc_info=exc)
        self.core = None
        self._ready.set()
        self.exit()

    # -- requests before the core ---------------------------------------------------

    async def _early_request(self, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend) -> None:
        if scope["type"] != "http":  # websocket: nothing here serves one; the core refuses it
            await self._ready.wait()
            if self.core is not None:
                await self.core.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        refusal = self.guard.refusal(headers)
        if refusal is not None:
            await refuse(scope, send, refusal)
            return
        if self.core is None and scope["path"] == "/healthz" and scope["method"] in ("GET", "HEAD"):
            state = self.backends.health() if self.backends is not None else starting_health(self.spec)
            health = json.dumps(with_profiles(self.spec, state), sort_keys=True).encode()
            await respond(send, 200, health if scope["method"] == "GET" else b"", b"application/json")
            return
        reason = f"{scope['method']} {scope['path']}"
        on_mcp = self.core is None and self.http and scope["path"] == "/mcp"
        if on_mcp and not self.stateless and await self.sessions.outside_posts(scope, headers, receive, send):
            return
        body: bytes | None = None
        if on_mcp and scope["method"] == "POST":
            body, complete = await read_body(receive, self.spec.max_body_bytes)
            if complete and await self._answer(headers, list(scope["headers"]), body, receive, send):
                SERVED_WITHOUT_SDK.count += 1
                return
            receive = replay_body(body, receive)
            reason = "a request the front does not serve"
        if not self._stopping:  # no core is loaded for a gateway on its way out
            self.need_core(reason)
            await self._ready.wait()
        core = self.core
        if core is None:  # the core failed to load, or the process is stopping
            await self._without_core(body, headers.get(SESSION_HEADER), send)
            return
        sid = headers.get(SESSION_HEADER)
        if sid is not None and sid in self.early:
            await self.sessions.adopt(core, sid)
        await core.app(scope, receive, send)

    async def _without_core(self, body: bytes | None, sid: bytes | None, send: AsgiSend) -> None:
        rid = request_id(body)
        if self._stopping and rid is not None:  # as the core answers a call it cannot take any more
            error = {"code": BACKEND_UNAVAILABLE, "message": "gateway is shutting down"}
            await respond(send, 200, error_answer(rid, error), b"application/json", session=sid)
            return
        await respond(send, 503, b"gateway is stopping", b"text/plain; charset=utf-8")

    async def _answer(
        self,
        headers: Mapping[bytes, bytes],
        raw: list[tuple[bytes, bytes]],
        body: bytes,
        receive: AsgiReceive,
        send: AsgiSend,
    ) -> bool:
        """Answer a request the tables can answer; False to leave it for the core."""
        message = parse_json(body)
        accept = headers.get(b"accept", b"")
        plain = (
            isinstance(message, dict)
            and message.get("jsonrpc") == "2.0"
            and b"application/json" in accept
            and b"text/event-stream" in accept
            and headers.get(b"content-type", b"").startswith(b"application/json")
        )
        if not plain:
            return False
        sid = headers.get(SESSION_HEADER)
        if message.get("method") == "initialize":
            return sid is None and await self.sessions.initialize(message, raw, body, send)
        session = self.early.get(sid) if sid is not None else None
        known = session is not None or (self.stateless and sid is None)
        version = headers.get(VERSION_HEADER)
        if known and (version is None or version in HANDSHAKE_BYTES):
            return await self._in_session(message, session, sid, receive, send)
        return False

    async def _in_session(
        self,
        message: dict[str, Any],
        session: EarlySession | None,
        sid: bytes | None,
        receive: AsgiReceive,
        send: AsgiSend,
    ) -> bool:
        method, rid, params = message.get("method"), message.get("id"), message.get("params")
        if self.relays is not None and (session is None or not session.asks):
            if method in RELAYED and is_request_id(rid):
                return await self.relays.answer(str(method), params, rid, sid, receive, send)
            if method == "notifications/cancelled" and "id" not in message and isinstance(params, dict):
                # with no core loading, nothing but the front's own requests can be in flight
                if self.relays.cancel(sid, params.get("requestId")) or self._boot is None:
                    await respond(send, 202, b"", None, session=sid)
                    return True
        if method == "notifications/initialized" and "id" not in message:
            if session is not None:
                session.initialized = True
            await respond(send, 202, b"", None, session=sid)
            return True
        if method in ("tools/list", "prompts/list") and self.backends is not None and self.backends.drifted():
            return False  # the tables are stale: the core lists what its pin policy publishes
        if method in EARLY_METHODS and is_request_id(rid) and without_progress(message.get("params")):
            policy = self.profiles.policy
            answer = self._lists[PROFILE.get()][str(method)] if policy is None else self._allowed(str(method))
            await respond(send, 200, result_body(rid, answer), b"application/json", session=sid)
            return True
        return False

    def _allowed(self, method: str) -> bytes:
        """A table answer as the request's caller may see it (policy.py), encoded once per (profile, method,
        permission set): callers the same rules match share it."""
        policy = self.profiles.policy
        assert policy is not None
        key = (PROFILE.get(), method, policy.permissions())
        answer = self._policy_lists.get(key)
        if answer is None:
            if method == "resources/templates/list":
                result: JSON = {"resourceTemplates": self.profiles.templates(self.spec.resource_templates)}
            elif method in self._tables:
                result = self.profiles.listing(method, self._tables[method])
            else:
                result = {}
            answer = self._policy_lists[key] = pydantic_core.to_json(result)
        return answer


def without_progress(params: object) -> bool:
    if params is None:
        return True
    if not isinstance(params, dict):
        return False
    meta = params.get("_meta")
    return not (isinstance(meta, dict) and "progressToken" in meta)


HEAVY_PACKAGES: tuple[str, ...] = ("mcp", "mcp_types", "starlette", "httpx2", "anyio", "pydantic")
"""Top-level packages the front must not import (the embedder refuses them in its modules): they are
what the start would wait for. The core needs each; loading it on demand, the front checks at start
that they are installed, without importing them."""


def _missing_core() -> ImportError | None:
    for name in HEAVY_PACKAGES:
        try:
            if importlib.util.find_spec(name) is None:
                return ImportError(f"No module named {name}")
        except ImportError as exc:
            return exc
    return None


SHUTDOWN_GRACE = 1
"""Seconds uvicorn waits for open connections after SIGINT/SIGTERM before cancelling them."""


def serve_http(front: Front, *, host: str, port: int, log_level: str, app: AsgiApp | None = None) -> None:
    """Run uvicorn; on SIGINT/SIGTERM stop the backends at once, in parallel with uvicorn's drain.

    Stopping a backend fails its in-flight calls with an MCP error ("gateway is
    shutting down") and stops its process group (stdin closed, SIGTERM, SIGKILL
    after `STOP_GRACE`), so the whole shutdown stays well under 5 seconds.

    Each connection runs uvicorn's HTTP protocol with the spec's caps on request heads,
    slow clients and open connections (httplimits.py), fitted to the open-file limit.
    `app` wraps the front when there is a token to check (auth.AuthGate).
    """
    import uvicorn

    from mcpgw_runtime.hotpath import hot_protocol_class
    from mcpgw_runtime.httplimits import HttpLimits, fit_open_files

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            log.info("signal %d: shutting down; failing in-flight calls and stopping backends", sig)
            front.stop_backends()

    limits = fit_open_files(HttpLimits.of(front.spec))
    config = uvicorn.Config(
        app or front,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        proxy_headers=False,  # nothing here reads the client address; it cost 8% of a call's CPU
        http=hot_protocol_class(front, app, limits),  # the plain relayed call below uvicorn (hotpath.py)
        h11_max_incomplete_event_size=limits.max_header_bytes,  # h11's own 400 never comes before our 431
    )
    server = _Server(config)
    front.exit = lambda: setattr(server, "should_exit", True)
    server.run()
