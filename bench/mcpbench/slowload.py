"""64 sessions over 5 backends, 2 of them slow: do slow backends raise the fast ones' p99?

Why: a gateway multiplexes many clients over a few backends, and one slow backend must not queue
the calls to the others behind its own (one shared lock, one reader, one event loop starved by a
backlog). Measured on the 5-backend build: 64 raw-client sessions, session i bound to backend
`b{i % 5 + 1}`. In the "alone" scenario only the sessions of b1-b3 call `echo`, back to back; in
the "mixed" one the sessions of b4 and b5 also call `slow` (an answer after 100 ms) back to back.
The figures are the p99 of the b1-b3 calls in each: the same fast load, with and without slow
traffic beside it. The two scenarios alternate twice, so a drift of the machine falls on both.
"""

from __future__ import annotations

import contextlib
import time

import anyio

from mcpbench.clients import Session, call_tool, list_tools, open_session
from mcpbench.measure import ECHO_ARGS, Figures, Plan
from mcpbench.stats import percentile
from mcpbench.targets import FIVE_BACKENDS, Running

SLOW_BACKENDS = FIVE_BACKENDS[3:]


def backend_tool(names: list[str], backend: str, tool: str) -> str:
    """The gateway's name for `tool` of `backend` (prefixed with the backend's name) (pure)."""
    for name in names:
        if name.startswith(backend) and name.endswith(tool) and len(name) > len(backend) + len(tool):
            return name
    raise LookupError(f"no tool {tool!r} of backend {backend!r} among {len(names)} tools")


async def _round(calls: list[tuple[Session, str, dict[str, object], bool]], seconds: float) -> list[float]:
    """Every session calls its tool back to back for `seconds`; the latencies of the fast calls."""
    fast: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(session: Session, tool: str, args: dict[str, object], measured: bool) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await call_tool(session, tool, args)
            if measured:
                fast.append(time.perf_counter() - t0)

    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(worker, *call)
    return fast


async def slow_backends(running: Running, plan: Plan) -> Figures:
    """p99 of the fast backends' calls with 64 sessions: alone, and with 2 of 5 backends slow."""
    endpoint = running.endpoints[0]
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(open_session(endpoint)) for _ in range(plan.slow_sessions)]
        names = [str(t.get("name")) for t in await list_tools(sessions[0])]
        fast_calls: list[tuple[Session, str, dict[str, object], bool]] = []
        slow_calls: list[tuple[Session, str, dict[str, object], bool]] = []
        for index, session in enumerate(sessions):
            backend = FIVE_BACKENDS[index % len(FIVE_BACKENDS)]
            await call_tool(session, backend_tool(names, backend, "echo"), ECHO_ARGS)  # every backend connected
            if backend in SLOW_BACKENDS:
                slow_calls.append((session, backend_tool(names, backend, "slow"), {"ms": plan.slow_ms}, False))
            else:
                fast_calls.append((session, backend_tool(names, backend, "echo"), dict(ECHO_ARGS), True))
        alone: list[float] = []
        mixed: list[float] = []
        for _ in range(2):
            alone += await _round(fast_calls, plan.slow_seconds / 2)
            mixed += await _round(fast_calls + slow_calls, plan.slow_seconds / 2)
    return {"p99_64_fast_ms": percentile(alone, 99) * 1e3, "p99_64_mixed_ms": percentile(mixed, 99) * 1e3}
