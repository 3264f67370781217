"""Hostile numbers of sessions: the session table (session_table.py) and the per-client cap (sessions.py).

A client can make a gateway hold a session with one `initialize`, and with a `session: per-client`
backend start a backend process with one call more. These tests flood real built gateways (small
caps, so a flood is a few dozen requests) and check what the caps promise:

* per-client processes: never more than `max_client_sessions` run (counted from /proc, processes
  still stopping included); past the cap the least recently used idle one is stopped for a new
  client; with every one in a call, a new client's call gets an error naming the backend and the
  cap; idle ones are stopped after `client_idle_timeout`;
* sessions: past `max_sessions` a new client's initialize evicts the least recently used idle
  session, and a well-behaved client still initializes, lists and calls while bare initializes
  flood in; with every session in a call a new one gets HTTP 503 with Retry-After; the core
  takes the front's sessions over and keeps the cap; idle sessions expire after
  `session_idle_timeout`; everything returns to where it started.

The first tests drive `SessionTable` alone, against a stand-in for the half that answers.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcpgw_runtime.auth import Caller
from mcpgw_runtime.caller import CALLER, identity
from mcpgw_runtime.early_sessions import HANDSHAKE_VERSIONS
from mcpgw_runtime.httplimits import COUNTS
from mcpgw_runtime.session_table import RETRY_AFTER, SessionTable

from tests import peers

FAULT = Path(__file__).parent / "servers" / "fault_server.py"
VERSION = "2025-11-25"
POSTED = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "flood", "version": "0"}}
pytestmark = pytest.mark.hostile

INIT_BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}).encode()


# ---------------------------------------------------------------- the table alone


class Half:
    """Stands in for the half that answers: an initialize gets a new session id; a request of a session
    is held while its id is in `hold`; `ended` records what the table ended."""

    def __init__(self) -> None:
        self.opened = 0
        self.hold: dict[bytes, asyncio.Event] = {}
        self.ended: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        sent = dict(scope["headers"])
        sid = sent.get(b"mcp-session-id")
        headers = []
        if sent.get(b"authorization", b"Bearer t") != b"Bearer t":  # as the guard would
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if sid is None:
            self.opened += 1
            headers.append((b"mcp-session-id", b"s%d" % self.opened))
        elif sid in self.hold:
            await self.hold[sid].wait()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})


def _scope(method: str, sid: bytes | None = None, **headers: bytes) -> dict[str, Any]:
    sent = [(b"host", b"127.0.0.1:9000"), *((k.replace("_", "-").encode(), v) for k, v in headers.items())]
    if sid is not None:
        sent += [(b"mcp-session-id", sid), (b"mcp-protocol-version", VERSION.encode())]
    return {"type": "http", "method": method, "path": "/mcp", "headers": sent}


class Driver:
    def __init__(self, cap: int, idle: float = 60.0, allows: Callable[[Any], bool] = lambda headers: True) -> None:
        self.now = 0.0
        self.half = Half()
        self.table = SessionTable(cap, idle, allows=allows, max_body=1 << 20, clock=lambda: self.now)
        self.table.ender = self.half.ended.append

    async def request(self, method: str, sid: bytes | None = None, **headers: bytes) -> tuple[int, dict[bytes, bytes]]:
        sent: list[dict[str, Any]] = []
        body = [{"type": "http.request", "body": INIT_BODY if sid is None else b"{}", "more_body": False}]

        async def receive() -> dict[str, Any]:
            return body.pop() if body else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.table.serve(_scope(method, sid, **headers), receive, send, self.half)
        return sent[0]["status"], dict(sent[0]["headers"])

    async def open(self) -> bytes:
        self.now += 1
        status, headers = await self.request("POST")
        assert status == 200
        return headers[b"mcp-session-id"]

    async def use(self, sid: bytes) -> int:
        self.now += 1
        return (await self.request("POST", sid))[0]


def test_a_full_table_evicts_the_least_recently_used_idle_session_bare_ones_first() -> None:
    async def main() -> None:
        d = Driver(8)
        kept = [await d.open() for _ in range(4)]
        for sid in kept:  # in use since they opened; kept[0] again last, so kept[1] is the least recent
            await d.use(sid)
        await d.use(kept[0])
        bare = [await d.open() for _ in range(4)]  # the table is full
        await d.open()
        assert d.half.ended == [bare[0]] and len(d.table) == 8 and d.table.evicted == 1
        # bare initializes only evict each other, however many: the sessions in use stay
        for _ in range(20):
            await d.open()
        assert set(d.half.ended).isdisjoint(kept) and len(d.table) == 8
        # a flood that uses its sessions too ends up evicting in plain LRU order
        for _ in range(6):
            await d.use(await d.open())
        assert kept[1] in d.half.ended and kept[2] in d.half.ended and kept[0] not in d.half.ended
        assert len(d.table) == 8

    asyncio.run(main())


def test_a_session_in_a_call_is_never_evicted_and_a_held_stream_goes_last() -> None:
    async def main() -> None:
        d = Driver(2)
        busy, listening = await d.open(), await d.open()
        d.half.hold[busy] = asyncio.Event()
        d.half.hold[listening] = asyncio.Event()
        call = asyncio.ensure_future(d.request("POST", busy))
        stream = asyncio.ensure_future(d.request("GET", listening))
        await asyncio.sleep(0)
        newcomer = await d.open()  # the stream's session goes: the call's never does
        assert d.half.ended == [listening]
        d.half.hold[newcomer] = asyncio.Event()
        second = asyncio.ensure_future(d.request("POST", newcomer))
        await asyncio.sleep(0)
        status, headers = await d.request("POST")  # every session is in a call
        assert status == 503 and headers[b"retry-after"] == b"%d" % RETRY_AFTER
        assert d.table.rejected == 1 and len(d.table) == 2
        d.half.hold[busy].set()
        await call
        assert await d.open() and d.half.ended[-1] == busy  # free again: admitted
        for event in d.half.hold.values():
            event.set()
        await asyncio.gather(stream, second)

    asyncio.run(main())


def test_idle_sessions_expire_a_held_stream_does_not_and_delete_forgets() -> None:
    async def main() -> None:
        d = Driver(10, idle=30)
        idle, listening, deleted = await d.open(), await d.open(), await d.open()  # at 1, 2, 3
        d.now = 10
        d.half.hold[listening] = asyncio.Event()
        stream = asyncio.ensure_future(d.request("GET", listening))
        await asyncio.sleep(0)
        assert (await d.request("DELETE", deleted))[0] == 200
        d.now = 30
        assert d.table.expire() == 0
        d.now = 32
        assert d.table.expire() == 1 and d.half.ended == [idle] and d.table.expired == 1
        assert listening in d.table and deleted not in d.table
        d.half.hold[listening].set()
        await stream
        d.now += 31
        assert d.table.expire() == 1 and len(d.table) == 0

    asyncio.run(main())


def test_what_the_guard_refuses_or_opens_no_session_never_evicts() -> None:
    async def main() -> None:
        d = Driver(1, allows=lambda headers: headers.get(b"authorization") == b"Bearer t")
        kept = await d.open()
        refused = await d.request("POST", None, authorization=b"Bearer wrong")  # refused there, not here
        assert refused[0] == 401
        modern = await d.request("POST", None, mcp_protocol_version=b"2026-07-28")  # no session in that era
        assert modern[0] == 200 and d.half.ended == [] and kept in d.table
        assert set(HANDSHAKE_VERSIONS) == {v.decode() for v in _handshake_bytes()}

    asyncio.run(main())


def test_an_initialize_whose_body_is_still_coming_holds_no_place() -> None:
    async def main() -> None:
        d = Driver(1)
        arrived = asyncio.Event()

        async def slow_receive() -> dict[str, Any]:
            await arrived.wait()  # a body sent a byte at a time, until body_timeout
            return {"type": "http.request", "body": INIT_BODY, "more_body": False}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        slow = asyncio.ensure_future(d.table.serve(_scope("POST"), slow_receive, send, d.half))
        await asyncio.sleep(0)
        assert d.table.opening == 0
        kept = await d.open()  # the place is free for a client whose body is in
        assert kept in d.table
        arrived.set()
        await slow  # in full now, it is an initialize like any other: the idle one makes room
        assert sent[0]["status"] == 200 and d.half.ended == [kept]

    asyncio.run(main())


def test_an_oauth_caller_past_its_cap_ends_its_own_sessions_never_anothers() -> None:
    async def main() -> None:
        d = Driver(10)
        d.table.max_per_caller = 2
        alice, bob = Caller("oauth", "alice"), Caller("oauth", "bob")
        CALLER.set(bob)
        kept = await d.open()
        CALLER.set(alice)
        first, second = await d.open(), await d.open()
        third = await d.open()  # her third: her least recently used idle session goes, not bob's
        assert d.half.ended == [first] and kept in d.table and d.table.per_caller[identity(alice)] == 2
        for sid in (second, third):
            d.half.hold[sid] = asyncio.Event()
        calls = [asyncio.ensure_future(d.request("POST", sid)) for sid in (second, third)]
        await asyncio.sleep(0)
        status, headers = await d.request("POST")  # both of hers in a call: refused, room in the table or not
        assert status == 503 and headers[b"retry-after"] == b"%d" % RETRY_AFTER and d.table.rejected == 1
        CALLER.set(bob)
        assert await d.open() and d.table.per_caller[identity(bob)] == 2
        CALLER.set(Caller("static", "static-token"))  # the static token is everyone's: not counted per caller
        for _ in range(3):
            await d.open()
        assert len(d.table.per_caller) == 2
        for event in d.half.hold.values():
            event.set()
        await asyncio.gather(*calls)
        CALLER.set(None)

    asyncio.run(main())


def test_legacy_sse_streams_count_as_sessions_never_evicted() -> None:
    async def main() -> None:
        d = Driver(3)
        COUNTS.sse_streams += 2  # two /sse streams open (http.py counts them)
        try:
            assert len(d.table) == 2
            first = await d.open()
            second = await d.open()  # full: the idle Streamable HTTP session goes, the streams' never
            assert d.half.ended == [first] and len(d.table) == 3
            d.half.hold[second] = asyncio.Event()
            call = asyncio.ensure_future(d.request("POST", second))
            await asyncio.sleep(0)
            status, headers = await d.request("POST")  # one session in a call, two streams: no room
            assert status == 503 and headers[b"retry-after"] == b"%d" % RETRY_AFTER
            d.half.hold[second].set()
            await call
        finally:
            COUNTS.sse_streams -= 2
        assert len(d.table) == 1

    asyncio.run(main())


def _handshake_bytes() -> frozenset[bytes]:
    from mcpgw_runtime.session_table import HANDSHAKE_BYTES

    return HANDSHAKE_BYTES


# ---------------------------------------------------------------- real gateways


def answer(response: httpx2.Response) -> dict[str, Any]:
    """The one JSON-RPC answer of a response (plain JSON or an SSE stream)."""
    assert response.status_code == 200, (response.status_code, response.text)
    if response.headers["content-type"].startswith("application/json"):
        result: dict[str, Any] = response.json()
        return result
    messages = [json.loads(m) for m in re.findall(r"^data: (.+)$", response.text, re.MULTILINE)]
    answers = [m for m in messages if "id" in m and "method" not in m]
    assert len(answers) == 1, messages
    return answers[0]


class Raw:
    """Raw JSON-RPC over HTTP, as a flood would send it."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/mcp"
        self.http = httpx2.AsyncClient(timeout=60)

    async def post(self, body: dict[str, Any], sid: str | None = None) -> httpx2.Response:
        headers = dict(POSTED)
        if sid is not None:
            headers |= {"mcp-session-id": sid, "mcp-protocol-version": VERSION}
        return await self.http.post(self.url, content=json.dumps({"jsonrpc": "2.0", **body}), headers=headers)

    async def initialize(self) -> httpx2.Response:
        return await self.http.post(self.url, content=INIT_BODY, headers=POSTED)

    async def open(self) -> str:
        opened = await self.initialize()
        assert opened.status_code == 200, (opened.status_code, opened.text)
        sid = opened.headers["mcp-session-id"]
        assert (await self.post({"method": "notifications/initialized"}, sid)).status_code == 202
        return str(sid)

    async def call(self, sid: str, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        params = {"name": tool, "arguments": arguments or {}}
        return answer(await self.post({"id": 2, "method": "tools/call", "params": params}, sid))

    async def pid(self, sid: str) -> int:
        called = await self.call(sid, "pc__pid")
        assert "result" in called, called
        return int(called["result"]["content"][0]["text"])

    async def status(self, sid: str) -> int:
        return (await self.post({"id": 3, "method": "tools/list"}, sid)).status_code


@contextmanager
def most_processes(pid: int) -> Iterator[list[int]]:
    """The most processes below `pid` seen at once while the block runs (sampled every 20 ms)."""
    seen = [len(peers.descendants(pid))]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            seen[0] = max(seen[0], len(peers.descendants(pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        done.set()
        sampler.join()


def metric(gw: peers.ServedGateway, name: str) -> float:
    status, page = gw.get("/metrics")
    assert status == 200, page
    found = re.search(rf"^{re.escape(name)} (\S+)$", page, re.MULTILINE)
    assert found is not None, f"{name} not on /metrics:\n{page}"
    return float(found.group(1))


def run(url: str, body: Callable[[Raw], Awaitable[None]]) -> None:
    """`body` on a fresh HTTP client (one per event loop)."""

    async def main() -> None:
        raw = Raw(url)
        try:
            await body(raw)
        finally:
            await raw.http.aclose()

    asyncio.run(main())


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_per_client_processes_are_capped_evicted_refused_and_expired(tmp_path: Path) -> None:
    cap, idle = 3, 8
    backend = {"command": sys.executable, "args": [str(FAULT)], "session": "per-client"}
    config = {"pc": {**backend, "max_client_sessions": cap, "client_idle_timeout": idle}}
    gateway = peers.build_gateway(tmp_path, config)
    gw = peers.serve_gateway(gateway, tmp_path, ready=["pc"], args=["--transport", "http"])
    try:
        baseline = peers.descendants(gw.proc.pid)  # the backend's shared connection

        async def lru_and_busy(raw: Raw) -> None:
            s0, s1, s2, s3, s4 = [await raw.open() for _ in range(5)]
            p0, p1, p2 = [await raw.pid(s) for s in (s0, s1, s2)]
            assert len({p0, p1, p2}) == 3
            assert await raw.pid(s0) == p0  # s1 is now the least recently used
            p3 = await raw.pid(s3)  # the cap is reached: s1's process makes room
            gw.wait(lambda: not peers.alive(p1), "the least recently used idle process stopped")
            assert all(peers.alive(p) for p in (p0, p2, p3)) and p3 not in (p0, p1, p2)
            # every process in a call: a new client is refused, naming the backend and the cap
            slow = [asyncio.ensure_future(raw.call(s, "pc__sleep", {"seconds": 3})) for s in (s0, s2, s3)]
            await asyncio.sleep(1.0)
            refused = await raw.call(s4, "pc__pid")
            error = refused.get("error") or {}
            assert error.get("code") == -32003, refused
            assert "'pc'" in error["message"] and f"all {cap}" in error["message"], error
            assert "max_client_sessions" in error["message"], error
            assert all("result" in r for r in await asyncio.gather(*slow))

        async def flood(raw: Raw) -> None:
            outcomes: list[str] = []

            async def one() -> None:
                sid = await raw.open()
                called = await raw.call(sid, "pc__pid")
                outcomes.append("pid" if "result" in called else str(called["error"]["code"]))

            for _ in range(4):
                await asyncio.gather(*(one() for _ in range(6)))
            assert set(outcomes) <= {"pid", "-32003"} and "pid" in outcomes, outcomes

        with most_processes(gw.proc.pid) as most:
            run(gw.url, lru_and_busy)
            run(gw.url, flood)
        assert most[0] <= len(baseline) + cap, f"{most[0]} processes ran at once; cap {cap} + {len(baseline)} shared"
        assert metric(gw, 'mcpgw_client_processes_closed_total{backend="pc",reason="evicted"}') >= 1
        assert metric(gw, 'mcpgw_client_processes_refused_total{backend="pc"}') >= 1
        # idle ones are stopped after client_idle_timeout: back to the shared connection alone
        gw.wait(lambda: peers.descendants(gw.proc.pid) == baseline, "idle per-client processes stopped", idle + 15)
        assert gw.health()["backends"]["pc"]["client_sessions"] == {"open": 0, "pids": []}
        assert metric(gw, 'mcpgw_client_processes{backend="pc"}') == 0
        assert metric(gw, 'mcpgw_client_processes_closed_total{backend="pc",reason="expired"}') >= 1
    finally:
        peers.kill_process_group(gw.proc)


async def _flood_before_the_core(raw: Raw, cap: int) -> str:
    """The front serves all of this (lazy core); the session the last step leaves open."""
    flooded = [await raw.open() for _ in range(3 * cap)]
    assert await raw.status(flooded[0]) == 404, "the least recently used session was not evicted"
    assert await raw.status(flooded[-1]) == 200

    # a well-behaved client's whole exchange, while bare initializes flood in
    stop = asyncio.Event()
    floods = 0

    async def flood() -> None:
        nonlocal floods
        while not stop.is_set():
            assert (await raw.initialize()).status_code == 200
            floods += 1

    flooders = [asyncio.ensure_future(flood()) for _ in range(2)]
    started = time.monotonic()
    try:
        sid = await raw.open()
        assert "tools" in answer(await raw.post({"id": 2, "method": "tools/list"}, sid))["result"]
        echoed = await raw.call(sid, "fx__echo", {"text": "still here"})
        assert echoed["result"]["content"][0]["text"] == "still here", echoed
    finally:
        stop.set()
        await asyncio.gather(*flooders)
    assert time.monotonic() - started < 20
    assert floods > 0

    # every session in a call: a new one gets 503 and Retry-After; once one ends, room again
    busy = [await raw.open() for _ in range(cap)]
    calls = [asyncio.ensure_future(raw.call(s, "fx__sleep", {"seconds": 3})) for s in busy]
    await asyncio.sleep(1.0)
    refused = await raw.initialize()
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == str(RETRY_AFTER)
    assert "Too many open sessions" in refused.json()["error"]["message"]
    assert all("result" in c for c in await asyncio.gather(*calls))
    kept = await raw.open()
    assert await raw.status(kept) == 200
    return kept


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_a_session_flood_evicts_idle_sessions_refuses_when_all_are_busy_and_expires(tmp_path: Path) -> None:
    cap, idle = 16, 3
    config = {
        "fx": {"command": sys.executable, "args": [str(FAULT)]},
        "gateway": {"max_sessions": cap, "session_idle_timeout": idle},
    }
    gateway = peers.build_gateway(tmp_path, config)
    gw = peers.serve_gateway(gateway, tmp_path, ready=["fx"], args=["--transport", "http"])
    try:
        baseline = peers.descendants(gw.proc.pid)
        kept: list[str] = []

        async def before_the_core(raw: Raw) -> None:
            kept.append(await _flood_before_the_core(raw, cap))

        run(gw.url, before_the_core)
        # /metrics loads the core: it takes the front's sessions over, under the same cap
        assert metric(gw, "mcpgw_sessions_rejected_total") >= 1
        assert metric(gw, 'mcpgw_sessions_ended_total{reason="evicted"}') >= 2 * cap
        assert metric(gw, "mcpgw_sessions_open") <= cap

        async def after_the_core(raw: Raw) -> None:
            assert await raw.status(kept[0]) == 200, "the core did not take the front's session over"
            flooded = [await raw.open() for _ in range(2 * cap)]
            assert await raw.status(flooded[0]) == 404
            assert await raw.status(flooded[-1]) == 200
            assert await raw.status(kept[0]) == 404  # evicted by the flood through the SDK too

        run(gw.url, after_the_core)
        assert metric(gw, "mcpgw_sessions_open") <= cap
        # idle sessions expire after session_idle_timeout: none left, nothing more running
        gw.wait(lambda: metric(gw, "mcpgw_sessions_open") == 0, "idle sessions expired", idle + 15)
        assert metric(gw, 'mcpgw_sessions_ended_total{reason="expired"}') >= 1
        assert peers.descendants(gw.proc.pid) == baseline
    finally:
        peers.kill_process_group(gw.proc)
