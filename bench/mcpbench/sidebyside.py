"""Sequential figures of every target side by side: all running at once, measured in alternating turns.

Why: on a shared virtual machine the speed of the whole machine drifts by a third within minutes
(the 2026-11-30 runs: direct stdio's echo p50 went 1.34 → 1.17 ms between two runs a minute
apart). A target measured minutes after another meets a different machine, and the ratio of the
two (what the targets judge) carries that drift. Here each target answers a short block of calls in
turn, round after round, so every target sees the same machine, and slow spells fall on all alike.

Measured this way: echo p50 and p99 and CPU per call (sequential), and the 256 KB result p50, with
each driver (the raw client and the `mcp` SDK's own client, each a lane of its own in the rotation;
the SDK client makes fewer calls per turn, `Plan.sdk_calls` in all); and from them the hop, each
target's echo p50 less direct stdio's with the same client in the same run.
The 8-session load, RSS, listing and cold starts stay per target (`measure.py`): they need the
machine to themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from mcpbench import procfs
from mcpbench.clients import Driver, Session, call_tool, list_tools, open_session
from mcpbench.figures import DIRECT_REFERENCE
from mcpbench.measure import ECHO_ARGS, Figures, Plan, keyed, measured_pid, timed, tool_named
from mcpbench.stats import percentile
from mcpbench.targets import Target, launch

_K = TypeVar("_K")

ECHO_BLOCK = 100
"""Echo calls per target per turn: a few hundred ms, short next to the machine's drift."""
BIG_BLOCK = 4


@dataclass(slots=True)
class _Lane:
    """One target's open session and what was measured on it so far."""

    session: Session
    echo: str
    big: str
    pid: int | None
    driver: Driver = "raw"
    echo_samples: list[float] = field(default_factory=list)
    big_samples: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0


def turns(keys: Sequence[_K], rounds: int) -> list[list[_K]]:
    """The order of each round: rotated by one every round, so no target always goes first (pure)."""
    return [[*keys[r % len(keys) :], *keys[: r % len(keys)]] for r in range(rounds)] if keys else []


def figures_of(lane: _Lane, calls: int) -> Figures:
    """The side-by-side figures of one target and driver from its samples (pure)."""
    return {
        keyed("echo_p50_ms", lane.driver): percentile(lane.echo_samples, 50) * 1e3,
        keyed("echo_p99_ms", lane.driver): percentile(lane.echo_samples, 99) * 1e3,
        keyed("big_p50_ms", lane.driver): percentile(lane.big_samples, 50) * 1e3 if lane.big_samples else None,
        keyed("cpu_us_per_call", lane.driver): lane.cpu_seconds / calls * 1e6 if lane.pid else None,
    }


def with_hops(table: dict[str, Figures]) -> dict[str, Figures]:
    """Each target's echo p50 less direct stdio's, per driver, added to its figures (pure)."""
    direct = table.get(DIRECT_REFERENCE, {})
    for figures in table.values():
        for driver in ("raw", "sdk"):
            value, floor = figures.get(keyed("echo_p50_ms", driver)), direct.get(keyed("echo_p50_ms", driver))
            if value is not None and floor is not None:
                figures[keyed("echo_hop_ms", driver)] = value - floor
    return table


async def side_by_side(
    targets: Sequence[Target], gateways: dict[int, Path], plan: Plan, errors: list[str]
) -> dict[str, Figures]:
    """Launch every target with 1 backend, then take their sequential figures in alternating turns."""
    lanes: dict[tuple[str, Driver], _Lane] = {}
    async with contextlib.AsyncExitStack() as stack:
        for target in targets:
            try:
                running = await stack.enter_async_context(launch(target, 1, gateways, timeout=plan.startup_timeout))
            except Exception as exc:  # that target's figures stay empty; the others go on
                errors.append(f"{target.key} side by side: {type(exc).__name__}: {exc}")
                continue
            for driver in plan.drivers:
                try:
                    session = await stack.enter_async_context(open_session(running.endpoints[0], driver))
                    names = [str(t.get("name")) for t in await list_tools(session)]
                    echo, big = tool_named(names, "echo"), tool_named(names, "big")
                    lane = _Lane(session, echo, big, measured_pid(running, session), driver)
                    await timed(plan.warmup, _echo(lane))
                    await call_tool(session, big, {})
                except Exception as exc:  # that lane's figures stay empty; the others go on
                    errors.append(f"{target.key} side by side ({driver} client): {type(exc).__name__}: {exc}")
                    continue
                lanes[target.key, driver] = lane
        keys = list(lanes)
        rounds = max(1, plan.calls // ECHO_BLOCK)
        blocks = {"raw": min(ECHO_BLOCK, plan.calls), "sdk": max(1, plan.sdk_calls // rounds)}
        for order in turns(keys, rounds):
            for key in order:
                lane = lanes[key]
                cpu0 = procfs.cpu_seconds(lane.pid) if lane.pid else 0.0
                lane.echo_samples += await timed(blocks[lane.driver], _echo(lane))
                if lane.pid:
                    lane.cpu_seconds += procfs.cpu_seconds(lane.pid) - cpu0
        for order in turns(keys, max(1, plan.big_calls // BIG_BLOCK)):
            for key in order:
                lane = lanes[key]
                lane.big_samples += await timed(min(BIG_BLOCK, plan.big_calls), _big(lane))
    table: dict[str, Figures] = {}
    for (target_key, _), lane in lanes.items():
        table.setdefault(target_key, {}).update(figures_of(lane, len(lane.echo_samples)))
    return with_hops(table)


def _echo(lane: _Lane) -> Callable[[], Awaitable[object]]:
    return lambda: call_tool(lane.session, lane.echo, ECHO_ARGS)


def _big(lane: _Lane) -> Callable[[], Awaitable[object]]:
    return lambda: call_tool(lane.session, lane.big, {})
