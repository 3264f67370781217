"""The forwarding layer on its own: codes, texts, timeouts, the limiter, health entries, the pin check."""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_types as types
import pytest
from mcpgw_runtime import forwarding
from mcpgw_runtime.forwarding import Limiter, Refused, health_entry, live_verdicts, timeout_for
from mcpgw_runtime.pins import pinned_items
from mcpgw_runtime.spec import JSON, BackendSpec, Target


def test_codes_are_the_sdks() -> None:
    for name in (
        "CONNECTION_CLOSED",
        "REQUEST_TIMEOUT",
        "INVALID_REQUEST",
        "METHOD_NOT_FOUND",
        "INVALID_PARAMS",
        "INTERNAL_ERROR",
    ):
        assert getattr(forwarding, name) == getattr(types, name), name


def test_timeout_for_a_tool_is_its_own_else_the_backends() -> None:
    spec = BackendSpec(name="b", type="stdio", timeout=60, tool_timeouts={"slow": 300})
    assert timeout_for(spec, "slow") == 300
    assert timeout_for(spec, "quick") == 60
    assert timeout_for(spec, None) == 60


def test_refusal_texts_name_the_backend() -> None:
    assert forwarding.timed_out("b", 1.5).error == {"code": -32001, "message": "backend 'b' did not answer within 1.5s"}
    assert "shutting down" in forwarding.connection_lost("b", stopping=True).message
    assert forwarding.connection_lost("b", stopping=False).message == "backend 'b' closed the connection"
    assert forwarding.unavailable("b", "failed", "boom").message == "backend 'b' is not available (failed): boom"
    assert forwarding.unknown("tool", "x").error == {"code": -32602, "message": "unknown tool: 'x'"}
    assert Refused(1, "m", {"k": 1}).error == {"code": 1, "message": "m", "data": {"k": 1}}


def test_limiter_queues_in_order_then_rejects_and_hands_slots_over() -> None:
    async def main() -> None:
        limiter = Limiter("b", limit=1, queue_limit=2)
        order: list[int] = []

        async def user(i: int) -> None:
            await limiter.acquire(5)
            order.append(i)
            await asyncio.sleep(0.01)
            limiter.release()

        users = []
        for i in range(3):
            users.append(asyncio.ensure_future(user(i)))
            await asyncio.sleep(0)
        with pytest.raises(Refused) as refused:
            await limiter.acquire(5)
        await asyncio.gather(*users)
        assert refused.value.code == forwarding.BACKEND_BUSY and "backend 'b' is saturated" in refused.value.message
        assert order == [0, 1, 2] and limiter.active == 0 and limiter.queued == 0 and limiter.rejected == 1

    asyncio.run(main())


def test_limiter_queue_wait_is_bounded_and_cancellation_frees_the_slot() -> None:
    async def main() -> None:
        limiter = Limiter("b", limit=1, queue_limit=5)
        await limiter.acquire(1)
        with pytest.raises(Refused, match=r"no free slot within 0\.05s"):
            await limiter.acquire(0.05)
        waiting = asyncio.ensure_future(limiter.acquire(10))
        await asyncio.sleep(0.01)
        assert limiter.queued == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert limiter.queued == 0
        limiter.release()
        assert limiter.active == 0

    asyncio.run(main())


def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    async def main() -> None:
        limiter = Limiter("b", limit=1, queue_limit=5)
        await limiter.acquire(1)
        first = asyncio.ensure_future(limiter.acquire(10))
        second = asyncio.ensure_future(limiter.acquire(10))
        await asyncio.sleep(0)
        limiter.release()  # hands the slot to `first` ...
        first.cancel()  # ... which is cancelled before it runs: `second` must get it
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, 1)
        assert limiter.active == 1 and limiter.queued == 0

    asyncio.run(main())


def test_health_entry_defaults_are_a_backend_not_yet_started() -> None:
    spec = BackendSpec(name="b", type="http", pin="warn")
    assert health_entry(spec) == {
        "state": "starting",
        "error": None,
        "restarts": 0,
        "transport": "http",
        "pin": {"policy": "warn", "status": "pending", "held": {}, "changes": []},
        "pid": None,
        "in_flight": 0,
        "queued": 0,
    }


def test_live_verdicts_pages_through_offered_kinds_only() -> None:
    spec = BackendSpec(name="b", type="stdio")
    tool: JSON = {"name": "t", "inputSchema": {"type": "object"}}
    pinned = {
        "tool": pinned_items("b", ({**tool, "name": "b__t"},), {"b__t": Target("b", "t")}, {"b__t": _digest(tool)}),
        "prompt": {},
    }
    asked: list[tuple[str, Any]] = []

    async def fetch(method: str, params: Any) -> JSON:
        asked.append((method, params))
        if params is None:
            return {"tools": [], "nextCursor": "2"}
        return {"tools": [tool]}

    async def main() -> dict[str, Any]:
        return await live_verdicts(spec, ["tool", "prompt"], lambda cap: cap == "tools", fetch, pinned, "__", OSError)

    verdicts = asyncio.run(main())
    assert asked == [("tools/list", None), ("tools/list", {"cursor": "2"})]
    assert not verdicts["tool"].changes and not verdicts["tool"].held and "b__t" in verdicts["tool"].expose
    assert not verdicts["prompt"].expose


def _digest(item: JSON) -> str:
    import hashlib
    import json

    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
