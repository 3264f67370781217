"""Hostile clients cannot exhaust the gateway: each attack, and a well-behaved client served throughout.

One generated gateway with small caps (a shared backend `ok` and a `session: per-client` one `pc`,
both the fault server) takes each attack in turn, driven by raw asyncio sockets: a session flood,
a session flood that makes per-client processes, headers and a body sent a byte a second (slowloris),
a header line that never ends, `/sse` streams never read, and a flood of connections calling a tool
back to back. While the attack runs, a well-behaved client opens a session, lists, calls the shared
backend and ends the session, five times, each within `BOUND` seconds (Retry-After honoured; its
connection opened before the attack, as a client's in use is: a slot freed by a slow client
goes to whoever asks first, `docs/operations.md#limits`); the
gateway's RSS, open fds and processes (sampled from /proc) stay within what the caps allow; after
the attack its fds, processes and sessions come back to where they were.

The caps' own answers and counts, in detail, are in the other `test_hostile_*` modules:
`test_hostile_http.py` (431, 408, 503 with Retry-After, per connection, and on uvicorn's two HTTP
protocols), `test_hostile_sessions.py` (the session table's LRU eviction, its 503 when every session
is busy, the core's takeover, idle expiry; per-client processes capped, evicted, refused, expired),
`test_hostile_hygiene.py` (Host/Origin ports, `MCPGW_TOKEN` whitespace, refusals logged at a
bounded rate). All four are marked `hostile`: `pytest -m hostile` runs them; CI runs them with the
rest. The figures at default caps and full strength are the benchmark's (`bench/run.py --hostile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcpgw_runtime.httplimits import LINGER_MAX

from tests import peers
from tests.peers import LOCALHOST, ServedGateway
from tests.test_faults import FAULT_SERVER
from tests.test_hostile_http import open_fds, request, rss_kib, served, settle_fds
from tests.test_hostile_sessions import INIT_BODY, VERSION, Raw, answer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.hostile,
    pytest.mark.timeout(150),
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/<pid>/status and /proc/<pid>/fd"),
]

MAX_CONNECTIONS = 40
MAX_SESSIONS = 32
SESSION_IDLE = 3
MAX_SSE_STREAMS = 4
CLIENT_CAP = 3
CLIENT_IDLE = 3
FLAGS = [
    "--transport", "http,sse",
    "--max-header-bytes", "8192",
    "--max-headers", "20",
    "--header-timeout", "1",
    "--body-timeout", "1",
    "--max-connections", str(MAX_CONNECTIONS),
    "--max-sse-streams", str(MAX_SSE_STREAMS),
]  # fmt: skip
BOUND = 10.0
"""Seconds a well-behaved client's whole exchange may take under attack: generous, for a busy CI box."""
CYCLES = 5
RSS_SLACK_KIB = 96 * 1024
"""The most the gateway's RSS may grow under any attack: sessions and connections at these caps cost far less."""
FD_SLACK = LINGER_MAX + 3 * CLIENT_CAP + 16
"""Beyond `MAX_CONNECTIONS`: refused connections lingering, the per-client processes' pipes, log files."""


# ---- the gateway, its baseline, and what it reached ----------------------------------------------------


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    work = tmp_path_factory.mktemp("hostile-all")
    fault = {"command": sys.executable, "args": [str(FAULT_SERVER)]}
    config = {
        "ok": fault,
        "pc": {
            **fault,
            "session": "per-client",
            "max_client_sessions": CLIENT_CAP,
            "client_idle_timeout": CLIENT_IDLE,
            "client_spawn_rate": 4,
        },
        "gateway": {"name": "hostile", "max_sessions": MAX_SESSIONS, "session_idle_timeout": SESSION_IDLE},
    }
    gateway = peers.build_gateway(work, config)
    with served(gateway, work, *FLAGS) as running:
        running.wait(lambda: running.state("pc") == "ready", "backend pc ready", 40)
        yield running


@dataclass
class Usage:
    rss_kib: int
    fds: int
    processes: int


def usage(pid: int) -> Usage:
    return Usage(rss_kib(pid), open_fds(pid), len(peers.descendants(pid)))


@contextlib.contextmanager
def most_used(pid: int) -> Iterator[Usage]:
    """The most RSS, fds and processes the gateway had at once while the block runs (sampled every 50 ms)."""
    most = usage(pid)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            now = usage(pid)
            most.rss_kib, most.fds = max(most.rss_kib, now.rss_kib), max(most.fds, now.fds)
            most.processes = max(most.processes, now.processes)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield most
    finally:
        done.set()
        sampler.join()


def metric(gw: ServedGateway, name: str) -> float:
    status, page = gw.get("/metrics")
    assert status == 200, page
    found = re.search(rf"^{re.escape(name)} (\S+)$", page, re.MULTILINE)
    assert found is not None, f"{name} not on /metrics"
    return float(found.group(1))


def baseline(gw: ServedGateway) -> Usage:
    """Where the gateway rests: no session open, only the shared backends running, fds settled."""
    pid = gw.proc.pid
    gw.wait(lambda: metric(gw, "mcpgw_sessions_open") == 0, "sessions expired", SESSION_IDLE + 20)
    gw.wait(lambda: len(peers.descendants(pid)) == 2, "only the shared backends running", CLIENT_IDLE + 20)
    settle_fds(pid, 0, timeout=1.5)  # whatever closes still, closes
    return usage(pid)


# ---- the well-behaved client ---------------------------------------------------------------------------


async def well_behaved(raw: Raw) -> None:
    """A whole exchange, as an MCP client makes it: initialize (waiting out a 503's Retry-After), list, call, end."""
    while True:
        opened = await raw.initialize()
        if opened.status_code != 503:
            break
        await asyncio.sleep(float(opened.headers.get("retry-after", "1")))
    assert opened.status_code == 200, (opened.status_code, opened.text)
    sid = opened.headers["mcp-session-id"]
    assert (await raw.post({"method": "notifications/initialized"}, sid)).status_code == 202
    listed = answer(await raw.post({"id": 2, "method": "tools/list"}, sid))
    assert "ok__echo" in [t["name"] for t in listed["result"]["tools"]]
    echoed = await raw.call(sid, "ok__echo", {"text": "still here"})
    assert echoed["result"]["content"][0]["text"] == "still here", echoed
    ended = await raw.http.delete(raw.url, headers={"mcp-session-id": sid, "mcp-protocol-version": VERSION})
    assert ended.status_code == 200, ended.text


Attack = Callable[[int, Counter[str]], Awaitable[object]]


def under_attack(gw: ServedGateway, attack: Attack, *, rss_slack_kib: int = RSS_SLACK_KIB) -> Counter[str]:
    """Run `attack` while the well-behaved client makes `CYCLES` exchanges; check the caps, then the way back."""
    pid = gw.proc.pid
    base = baseline(gw)
    tally: Counter[str] = Counter()
    took: list[float] = []

    async def main() -> None:
        raw = Raw(gw.url)
        running: asyncio.Future[object] | None = None
        try:
            await well_behaved(raw)  # its connection is open before the attack, as a client's in use would be
            running = asyncio.ensure_future(attack(gw.port, tally))
            await asyncio.sleep(1.5)  # the attack in full swing
            for _ in range(CYCLES):
                started = time.monotonic()
                async with asyncio.timeout(BOUND):
                    await well_behaved(raw)
                took.append(time.monotonic() - started)
            assert not running.done(), running.exception()
        finally:
            if running is not None:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            await raw.http.aclose()

    with most_used(pid) as most:
        asyncio.run(main())
    assert len(took) == CYCLES and max(took) < BOUND, took
    assert most.processes <= base.processes + CLIENT_CAP, f"{most.processes} processes; cap {CLIENT_CAP} + shared"
    assert most.fds <= base.fds + MAX_CONNECTIONS + FD_SLACK, f"{most.fds} fds at once, {base.fds} before"
    assert most.rss_kib - base.rss_kib < rss_slack_kib, f"RSS grew by {(most.rss_kib - base.rss_kib) // 1024} MiB"
    # and back: fds, processes, sessions
    assert settle_fds(pid, base.fds) <= base.fds
    gw.wait(lambda: len(peers.descendants(pid)) <= base.processes, "per-client processes stopped", CLIENT_IDLE + 20)
    gw.wait(lambda: metric(gw, "mcpgw_sessions_open") == 0, "the attack's sessions expired", SESSION_IDLE + 20)
    return tally


# ---- raw attackers ---------------------------------------------------------------------------------------


POSTED = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def status_of(reader: asyncio.StreamReader) -> str:
    data = await reader.read(64)
    return f"HTTP {data[9:12].decode()}" if data.startswith(b"HTTP/1.1 ") else "closed"


Exchange = Generator[tuple[bytes, dict[str, str]], dict[str, str], None]
"""What a connection posts: each request's body and headers, sent the answer's status and headers in return."""


async def posting(port: int, tally: Counter[str], exchange: Exchange) -> None:
    """One keep-alive connection posting `exchange`'s requests to `/mcp` as fast as answers come, tallied by status."""
    reader, writer = await asyncio.open_connection(LOCALHOST, port)
    try:
        body, headers = next(exchange)
        while True:
            writer.write(request(port, "POST", "/mcp", body, {**POSTED, **headers}))
            lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            fields[":status"] = lines[0].split()[1]
            tally[fields[":status"]] += 1
            if "content-length" in fields:
                await reader.readexactly(int(fields["content-length"]))
            else:  # chunked (an SSE answer): to its last chunk
                while (size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)) > 0:
                    await reader.readexactly(size + 2)
                await reader.readuntil(b"\r\n")
            try:
                body, headers = exchange.send(fields)
            except StopIteration:
                return
    finally:
        writer.close()


async def again_and_again(port: int, tally: Counter[str], exchange: Callable[[], Exchange]) -> None:
    """`posting` a new `exchange` each time one ends or its connection is lost."""
    while True:
        try:
            await posting(port, tally, exchange())
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, KeyError):
            tally["connection lost"] += 1
            await asyncio.sleep(0.1)


def bare_initializes() -> Exchange:
    while True:
        yield INIT_BODY, {}


def rpc(method: str, params: dict[str, object] | None = None, rid: int | None = 2) -> bytes:
    message: dict[str, object] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if rid is not None:
        message["id"] = rid
    return json.dumps(message).encode()


def calls(tool: str, *, once: bool) -> Callable[[], Exchange]:
    """A session calling `tool`: once (then a new session), or back to back until the session is gone."""

    def exchange() -> Exchange:
        answered = yield INIT_BODY, {}
        session = {"mcp-session-id": answered["mcp-session-id"], "mcp-protocol-version": VERSION}
        yield rpc("notifications/initialized", rid=None), session
        while True:
            answered = yield rpc("tools/call", {"name": tool, "arguments": {"text": "flood"}}), session
            if once or answered[":status"] != "200":
                return

    return exchange


async def session_flood(port: int, tally: Counter[str]) -> None:
    await asyncio.gather(*(again_and_again(port, tally, bare_initializes) for _ in range(4)))


async def per_client_flood(port: int, tally: Counter[str]) -> None:
    await asyncio.gather(*(again_and_again(port, tally, calls("pc__echo", once=True)) for _ in range(8)))


async def connection_flood(port: int, tally: Counter[str]) -> None:
    await asyncio.gather(*(again_and_again(port, tally, calls("ok__echo", once=False)) for _ in range(24)))


async def trickling(port: int, tally: Counter[str], head: bytes, slow: bytes) -> None:
    """`head` at once, `slow` a byte every 0.2 s, on a new connection each time the gateway closes one."""
    while True:
        reader, writer = await asyncio.open_connection(LOCALHOST, port)
        try:
            writer.write(head)
            for index in range(len(slow)):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        tally[await status_of(reader)] += 1
                        break
                writer.write(slow[index : index + 1])
                await writer.drain()
        except ConnectionError:
            tally["reset"] += 1
        finally:
            writer.close()
        await asyncio.sleep(0.2)


async def slow_headers(port: int, tally: Counter[str]) -> None:
    head = f"GET /healthz HTTP/1.1\r\nHost: {LOCALHOST}:{port}\r\n".encode()
    await asyncio.gather(*(trickling(port, tally, head, b"X-Slow: 1\r\n" * 100) for _ in range(MAX_CONNECTIONS)))


async def slow_body(port: int, tally: Counter[str]) -> None:
    body = INIT_BODY.ljust(1000)
    head = request(port, "POST", "/mcp", body, POSTED)[: -len(body)]
    await asyncio.gather(*(trickling(port, tally, head, body) for _ in range(MAX_CONNECTIONS)))


async def endless_header(port: int, tally: Counter[str]) -> None:
    async def sender() -> None:
        while True:
            reader, writer = await asyncio.open_connection(LOCALHOST, port)
            answer = asyncio.ensure_future(status_of(reader))
            try:
                writer.write(f"POST /mcp HTTP/1.1\r\nHost: {LOCALHOST}:{port}\r\nX-Endless: ".encode())
                with contextlib.suppress(ConnectionError):
                    while not answer.done():
                        writer.write(b"a" * 65536)
                        await writer.drain()
                tally[await answer] += 1
            finally:
                answer.cancel()
                writer.close()

    await asyncio.gather(sender(), sender())


async def unread_sse(port: int, tally: Counter[str]) -> None:
    """`GET /sse` on twice `MAX_SSE_STREAMS` raw sockets whose answers are only peeked at, never read."""
    loop = asyncio.get_running_loop()
    get = request(port, "GET", "/sse", headers={"Accept": "text/event-stream"})

    async def holder() -> None:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (LOCALHOST, port))
            await loop.sock_sendall(sock, get)
            while True:
                await asyncio.sleep(0.1)
                with contextlib.suppress(BlockingIOError):
                    first = sock.recv(12, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                    tally[f"HTTP {first[9:12].decode()}" if first else "closed"] += 1
                    break
            await asyncio.Event().wait()  # held, unread, until the attack ends
        finally:
            sock.close()

    await asyncio.gather(*(holder() for _ in range(2 * MAX_SSE_STREAMS)))


# ---- each attack --------------------------------------------------------------------------------------


def test_a_session_flood(gw: ServedGateway) -> None:
    evicted = metric(gw, 'mcpgw_sessions_ended_total{reason="evicted"}')
    tally = under_attack(gw, session_flood)
    assert tally["200"] > MAX_SESSIONS, tally["200"]
    assert metric(gw, 'mcpgw_sessions_ended_total{reason="evicted"}') - evicted >= tally["200"] - MAX_SESSIONS


def test_a_session_flood_that_starts_per_client_processes(gw: ServedGateway) -> None:
    tally = under_attack(gw, per_client_flood)
    assert tally["200"] > 8, tally


def test_headers_sent_a_byte_at_a_time_on_every_connection(gw: ServedGateway) -> None:
    tally = under_attack(gw, slow_headers)
    assert tally["HTTP 408"] >= 1 and tally["HTTP 503"] >= 1, tally


def test_bodies_sent_a_byte_at_a_time_on_every_connection(gw: ServedGateway) -> None:
    """Slow initializes hold connections, never places in the session table: the client's initialize gets in."""
    tally = under_attack(gw, slow_body)
    assert tally["HTTP 408"] >= 1, tally


def test_header_lines_that_never_end(gw: ServedGateway) -> None:
    tally = under_attack(gw, endless_header, rss_slack_kib=16 * 1024)
    assert tally["HTTP 431"] >= 2, tally


def test_sse_streams_never_read_count_as_sessions_and_end_with_their_streams(gw: ServedGateway) -> None:
    async def held_and_counted(port: int, tally: Counter[str]) -> None:
        flood = asyncio.ensure_future(unread_sse(port, tally))
        try:
            while tally["HTTP 200"] + tally["HTTP 503"] < 2 * MAX_SSE_STREAMS:
                await asyncio.sleep(0.1)
            opened = await asyncio.to_thread(metric, gw, "mcpgw_sessions_open")
            tally["sessions open while held"] = int(opened)
            await flood
        finally:
            flood.cancel()

    tally = under_attack(gw, held_and_counted)
    assert tally["HTTP 200"] == MAX_SSE_STREAMS and tally["HTTP 503"] == MAX_SSE_STREAMS, tally
    assert tally["sessions open while held"] >= MAX_SSE_STREAMS, tally
    gw.wait(lambda: metric(gw, "mcpgw_sse_streams_open") == 0, "the streams' sessions ended", 10)


def test_a_flood_of_connections_calling_back_to_back(gw: ServedGateway) -> None:
    tally = under_attack(gw, connection_flood)
    assert tally["200"] > 24, tally
