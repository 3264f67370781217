"""Units of the runtime's concurrency cap (limits.py) and Prometheus exposition (metrics.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcpgw_runtime.limits import BACKEND_BUSY, Limiter
from mcpgw_runtime.metrics import CallStats, render_metrics


def test_limiter_queues_in_order_then_rejects_and_hands_slots_over() -> None:
    async def main() -> None:
        limiter = Limiter("b", limit=1, queue_limit=2)
        order: list[int] = []

        async def user(i: int) -> None:
            await limiter.acquire(5)
            order.append(i)
            await anyio.sleep(0.01)
            limiter.release()

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(user, i)
                await anyio.sleep(0)
            await anyio.sleep(0)
            with pytest.raises(MCPError) as refused:
                await limiter.acquire(5)
        assert refused.value.error.code == BACKEND_BUSY and "backend 'b' is saturated" in refused.value.error.message
        assert order == [0, 1, 2] and limiter.active == 0 and limiter.queued == 0 and limiter.rejected == 1

    anyio.run(main)


def test_limiter_queue_wait_is_bounded_and_cancellation_frees_the_slot() -> None:
    async def main() -> None:
        limiter = Limiter("b", limit=1, queue_limit=5)
        await limiter.acquire(1)
        with pytest.raises(MCPError, match=r"no free slot within 0\.05s"):
            await limiter.acquire(0.05)
        with anyio.move_on_after(0.05):
            await limiter.acquire(10)
        assert limiter.queued == 0
        limiter.release()
        assert limiter.active == 0

    anyio.run(main)


@dataclass
class _B:
    name: str
    state: str = "ready"
    restarts: int = 2
    stats: CallStats = field(default_factory=CallStats)
    in_flight: int = 0
    queued: int = 0
    rejected: int = 0


def test_exposition_format() -> None:
    backend = _B('we"ird')
    series = backend.stats.get("tools/call", "echo")
    series.observe(0.003)
    series.observe(99)
    series.errors += 1
    text = render_metrics(
        [backend], {"tool": {"we__x": ('we"ird', "held")}, "prompt": {}}, {('we"ird', "tool", "we__x"): 3}
    )
    labels = 'backend="we\\"ird",method="tools/call",tool="echo"'
    assert f"mcpgw_requests_total{{{labels}}} 2\n" in text
    assert f'mcpgw_request_duration_seconds_bucket{{{labels},le="0.0025"}} 0\n' in text
    assert f'mcpgw_request_duration_seconds_bucket{{{labels},le="0.005"}} 1\n' in text
    assert f'mcpgw_request_duration_seconds_bucket{{{labels},le="+Inf"}} 2\n' in text
    assert f"mcpgw_request_errors_total{{{labels}}} 1\n" in text
    assert 'mcpgw_backend_state{backend="we\\"ird",state="ready"} 1\n' in text
    assert 'mcpgw_pin_held{backend="we\\"ird",kind="tool"} 1\n' in text
    assert 'mcpgw_pin_held_item{backend="we\\"ird",kind="tool",name="we__x"} 1\n' in text
    assert 'mcpgw_pin_refusals_total{backend="we\\"ird",kind="tool",name="we__x"} 3\n' in text
    for line in text.splitlines():
        assert line.startswith("# ") or line.rsplit(" ", 1)[1].replace(".", "").replace("e", "").isdigit(), line
