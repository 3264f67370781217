"""The measurements of one target in one run; every figure is a plain float (or None: not measured).

CPU and RSS are read from /proc for the measured process only: the gateway or proxy itself
(never its backends), or the server process for a direct connection. Figures taken with the
`mcp` SDK's own client carry the suffix `_sdk` (`keyed`); the others are the raw client's.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp.shared.exceptions import MCPError

from mcpbench import procfs
from mcpbench.clients import DRIVERS, Driver, Endpoint, Session, StdioSession, call_tool, list_tools, open_session
from mcpbench.http11 import HttpError
from mcpbench.procs import LOCALHOST, ServerProcess
from mcpbench.stats import percentile
from mcpbench.targets import TOOLS_PER_BACKEND, Running, Target, launch
from mcpbench.wire import JSON, RpcError

Figures = dict[str, float | None]
_T = TypeVar("_T")
ECHO_ARGS = {"text": "hello"}


@dataclass(frozen=True, slots=True)
class Plan:
    """How much of each measurement one run does."""

    calls: int = 2000  # the process clock ticks every 10 ms: 2,000 calls of 0.5 ms span 100 ticks (±1%)
    warmup: int = 100
    big_calls: int = 40
    sessions: int = 8
    load_seconds: float = 4.0
    list_calls: int = 30
    list_budget: float = 8.0  # seconds; a peer that respawns backends per listing takes seconds per call
    startup_timeout: float = 60.0
    drivers: tuple[Driver, ...] = DRIVERS
    sdk_calls: int = 600  # the SDK client's sequential echo calls (side by side): it costs 2-3 ms a call itself
    sdk_load_seconds: float = 3.0
    slow_sessions: int = 64
    slow_ms: int = 100
    slow_seconds: float = 4.0  # per scenario, taken in two alternating halves
    sequential_only: bool = False  # only the side-by-side phase (`--sequential`)

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            calls=60,
            warmup=10,
            big_calls=8,
            load_seconds=1.0,
            list_calls=5,
            list_budget=2.0,
            sdk_calls=30,
            sdk_load_seconds=0.5,
            slow_seconds=1.0,
        )


def keyed(figure: str, driver: Driver) -> str:
    """The figure's key for a driver: the raw client's figures keep their names, the SDK's get `_sdk`."""
    return figure if driver == "raw" else f"{figure}_sdk"


def tool_named(names: list[str], suffix: str) -> str:
    for name in names:
        if name == suffix or name.endswith(("_" + suffix, "-" + suffix, "." + suffix)):
            return name
    raise LookupError(f"no tool named like {suffix!r} among {names[:10]}")


def measured_pid(running: Running, session: Session) -> int | None:
    if running.server is not None:
        return running.server.pid
    if isinstance(session, StdioSession):
        return session.process.pid
    pid = getattr(session, "pid", None)  # the SDK driver's stdio server
    return pid if isinstance(pid, int) else None


async def timed(n: int, call: Callable[[], Awaitable[object]], budget: float = math.inf) -> list[float]:
    """Latency of `n` sequential calls; stops early once `budget` seconds are spent."""
    samples: list[float] = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget:
            break
    return samples


def _caller(session: Session, echo: str) -> Callable[[], Awaitable[JSON]]:
    return lambda: call_tool(session, echo, ECHO_ARGS)


def _lister(sessions: list[Session]) -> Callable[[], Awaitable[list[list[str]]]]:
    return lambda: _list_all(sessions)


async def _load(
    endpoint: Endpoint, echo: str, plan: Plan, pid: int | None, driver: Driver = "raw"
) -> tuple[float, float, float | None]:
    """8 sessions calling echo back to back: (calls/s, p50 seconds, CPU seconds per call of `pid`)."""
    latencies: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(open_session(endpoint, driver)) for _ in range(plan.sessions)]
        for session in sessions:
            if driver == "sdk":  # the SDK client checks structured results against the listed output schemas
                await list_tools(session)
            await call_tool(session, echo, ECHO_ARGS)
        cpu0 = procfs.cpu_seconds(pid) if pid else None
        t0 = time.perf_counter()
        deadline = t0 + (plan.load_seconds if driver == "raw" else plan.sdk_load_seconds)

        async def worker(session: Session) -> None:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                await call_tool(session, echo, ECHO_ARGS)
                latencies.append(time.perf_counter() - t)

        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(worker, session)
        elapsed = time.perf_counter() - t0
        cpu = (procfs.cpu_seconds(pid) - cpu0) / len(latencies) if pid and cpu0 is not None else None
    return len(latencies) / elapsed, percentile(latencies, 50), cpu


async def one_backend(running: Running, plan: Plan) -> Figures:
    """The 8-session load (throughput, p50 and CPU under load) and RSS, with each driver in turn (the
    raw client first, so its RSS is the gateway's before the SDK client ever came); the sequential
    figures are taken with every target running side by side (`sidebyside.py`)."""
    endpoint = running.endpoints[0]
    figures: Figures = {}
    for driver in plan.drivers:
        async with open_session(endpoint, driver) as session:
            names = [str(t.get("name")) for t in await list_tools(session)]
            echo = tool_named(names, "echo")
            await timed(plan.warmup, _caller(session, echo))
            pid = measured_pid(running, session)
            if endpoint.kind != "stdio":  # a stdio "session" is a process: 8 sessions are 8 servers, not one under load
                rps, p50, cpu = await _load(endpoint, echo, plan, pid, driver)
                figures[keyed("throughput_rps", driver)] = rps
                figures[keyed("load_p50_ms", driver)] = p50 * 1e3
                figures[keyed("cpu_us_per_call_load", driver)] = cpu * 1e6 if cpu is not None else None
            if pid:
                figures[keyed("rss1_mib", driver)] = procfs.rss_mib(pid)
    return figures


async def _list_all(sessions: list[Session]) -> list[list[str]]:
    """The tool names of every session, listed all at once."""
    names: list[list[str]] = [[] for _ in sessions]

    async def one(index: int) -> None:
        names[index] = [str(t.get("name")) for t in await list_tools(sessions[index])]

    async with anyio.create_task_group() as tg:
        for index in range(len(sessions)):
            tg.start_soon(one, index)
    return names


async def every_method(session: Session, names: list[str]) -> None:
    """What a working session does besides calling: every list, a call with a progress token on each
    backend's echo, every resource read, every prompt got, a log level. A method the target does not
    serve is skipped: this only loads it."""
    steps: list[tuple[str, JSON | None]] = [
        ("tools/call", {"name": name, "arguments": ECHO_ARGS, "_meta": {"progressToken": "bench"}})
        for name in names
        if name == "echo" or name.endswith("echo")
    ]
    steps += [("prompts/list", None), ("resources/list", None), ("resources/templates/list", None)]
    steps += [("logging/setLevel", {"level": "warning"})]
    for method, params in steps:
        with contextlib.suppress(RpcError, HttpError):
            result = await session.call(method, params)
            if method == "resources/list":
                for resource in result.get("resources") or []:
                    await session.call("resources/read", {"uri": resource["uri"]})
            elif method == "prompts/list":
                for prompt in result.get("prompts") or []:
                    await session.call("prompts/get", {"name": prompt["name"], "arguments": {"name": "bench"}})


async def five_backends(running: Running, plan: Plan) -> Figures:
    """tools/list over 5 backends x 40 tools (all endpoints at once when the target does not aggregate), RSS
    after a session that used every method; then the same listing with the SDK client, and RSS again."""
    figures: Figures = {}
    for driver in plan.drivers:
        async with contextlib.AsyncExitStack() as stack:
            sessions = [await stack.enter_async_context(open_session(e, driver)) for e in running.endpoints]
            listed = await _list_all(sessions)
            total = sum(map(len, listed))
            if total != 5 * TOOLS_PER_BACKEND[5]:
                raise RuntimeError(f"{running.target.key}: listed {total} tools over 5 backends")
            samples = await timed(plan.list_calls, _lister(sessions), plan.list_budget)
            for session, names in zip(sessions, listed, strict=True):  # every backend used before RSS is read
                if driver != "raw":
                    break  # the raw pass used every backend of this process already (FastMCP: seconds a call)
                if running.target.role == "gateway":  # a peer may respawn its backends per request
                    await every_method(session, names)
                for name in names:
                    if name == "echo" or name.endswith("echo"):
                        await call_tool(session, name, ECHO_ARGS)
            figures[keyed("list5_ms", driver)] = percentile(samples, 50) * 1e3
            if running.server is not None:
                figures[keyed("rss5_mib", driver)] = procfs.rss_mib(running.server.pid)
    return figures


_NOT_YET = (
    OSError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    HttpError,
    RpcError,
    httpx2.HTTPError,  # the SDK client's
    MCPError,
    ExceptionGroup,  # the SDK client's task groups
    ValueError,
)
"""What a target still starting may answer: the attempt is repeated."""


async def _poll(deadline: float, server: ServerProcess | None, attempt: Callable[[], Awaitable[_T]]) -> _T:
    """Retry `attempt` every 10 ms until it succeeds, the process exits, or the deadline passes."""
    while True:
        try:
            return await attempt()
        except _NOT_YET as exc:
            if server is not None and server.exited() is not None:
                raise RuntimeError(f"exited during start:\n{server.log_tail()}") from exc
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no success before the deadline: {exc}") from exc
            await anyio.sleep(0.01)


async def cold_start(
    target: Target, backends: int, gateways: dict[int, Path], plan: Plan, driver: Driver = "raw"
) -> Figures:
    """Seconds from spawning the target to its first successful tools/list (and, with 1 backend, tools/call)."""
    t0 = time.perf_counter()
    async with launch(target, backends, gateways, wait=False) as running, contextlib.AsyncExitStack() as stack:
        if running.server is not None:
            t0 = running.server.started
        deadline = t0 + plan.startup_timeout

        async def listed() -> tuple[list[Session], list[str]]:
            opened: list[Session] = []
            async with contextlib.AsyncExitStack() as attempt:
                for endpoint in running.endpoints:
                    if driver == "sdk" and endpoint.kind != "stdio":  # a refused connection, not a stuck SDK session
                        parts = urlsplit(endpoint.url)
                        await (await anyio.connect_tcp(parts.hostname or LOCALHOST, parts.port or 80)).aclose()
                    opened.append(await attempt.enter_async_context(open_session(endpoint, driver)))
                names = await _list_all(opened)
                if sum(map(len, names)) != TOOLS_PER_BACKEND[backends] * backends:
                    raise ValueError("incomplete tools/list")
                stack.push_async_exit(attempt.pop_all())
            return opened, names[0]

        sessions, names = await _poll(deadline, running.server, listed)
        figures: Figures = {keyed(f"cold{backends}_s", driver): time.perf_counter() - t0}
        if backends == 1:
            echo = tool_named(names, "echo")
            await _poll(deadline, running.server, lambda: call_tool(sessions[0], echo, ECHO_ARGS))
            figures[keyed("first_call_s", driver)] = time.perf_counter() - t0
        return figures
