"""Hostile HTTP clients before authentication: the caps of httplimits.py, against a real gateway and in-process.

Each attack is made with raw asyncio sockets against a generated gateway started with
small caps on its command line: a header line that never ends (431, the gateway's RSS
flat), too many header fields (431), headers, a body or nothing at all sent a byte at
a time (408 after the configured time), connections beyond `--max-connections` (503
with Retry-After at once, while a client already connected keeps getting its answers
and a new one gets in once the slow ones are timed out), un-read `/sse` streams beyond
`--max-sse-streams` (503). After each, the gateway's open file descriptors
(/proc/<pid>/fd) return to where they were and `/metrics` counts what was closed.
The in-process tests run the same caps on uvicorn's h11 protocol too, the one a
gateway uses where httptools is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from mcpgw_runtime.httplimits import (
    COUNTS,
    HttpLimits,
    Watch,
    _h11_class,
    _httptools_class,
    render_http_limits,
)

from tests import peers
from tests.peers import LOCALHOST, ServedGateway
from tests.test_faults import FAULT_SERVER

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.hostile,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/<pid>/status and /proc/<pid>/fd"),
]

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_CONNECTIONS = 20
MAX_SSE_STREAMS = 3
FLAGS = [
    "--max-header-bytes", "8192",
    "--max-headers", "20",
    "--header-timeout", str(HEADER_TIMEOUT),
    "--body-timeout", str(BODY_TIMEOUT),
    "--max-connections", str(MAX_CONNECTIONS),
    "--max-sse-streams", str(MAX_SSE_STREAMS),
]  # fmt: skip
LATE = 2.6
"""How late past its timeout a slow client may be closed: two sweeps (at most 0.25 s each here) and slack for a
busy CI box."""

Response = tuple[int, dict[str, str], bytes]
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\n" + b"X-Slow: 1\r\n" * 100
"""A head that takes a slow client minutes to send, a byte every 0.2 s."""


# ---- a generated gateway, started with the caps' flags ---------------------------------------------------


@pytest.fixture(scope="module")
def gateway_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("hostile")
    config = {"ok": {"command": sys.executable, "args": [str(FAULT_SERVER)]}, "gateway": {"name": "hostile"}}
    return peers.build_gateway(work, config)


@contextlib.contextmanager
def served(gateway: Path, root: Path, *flags: str) -> Iterator[ServedGateway]:
    """`gateway` on a free port with `flags` (peers.serve_gateway takes none), until the block ends."""
    port = peers.free_port()
    log = root / f"gateway-{port}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(gateway), "--port", str(port), "--log-dir", str(root), *flags],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:
        peers.wait_for_port(LOCALHOST, port, 30, process=proc)
        gw = ServedGateway(root, proc, port, log)
        gw.wait(lambda: gw.state("ok") == "ready", "backend ok ready", 40)
        yield gw
    finally:
        peers.kill_process_group(proc)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle_fds(pid: int, baseline: int, timeout: float = 15.0) -> int:
    """The gateway's open fds once they are back to `baseline` (or what they are after `timeout`)."""
    deadline = time.monotonic() + timeout
    while (count := open_fds(pid)) > baseline and time.monotonic() < deadline:
        time.sleep(0.2)
    return count


def closed_counts(gw: ServedGateway) -> dict[str, int]:
    status, page = gw.get("/metrics")
    assert status == 200, page
    name = 'mcpgw_connections_closed_total{reason="'
    return {
        line[len(name) :].split('"')[0]: int(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith(name)
    }


# ---- raw HTTP over asyncio streams ---------------------------------------------------------------------


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(LOCALHOST, port)


async def read_response(reader: asyncio.StreamReader, timeout: float = 10.0, *, head_only: bool = False) -> Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    length = int(headers.get("content-length", "0"))
    body = b"" if head_only or not length else await asyncio.wait_for(reader.readexactly(length), timeout)
    return int(lines[0].split()[1]), headers, body


async def at_eof(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """Whether the server closed the connection (EOF or a reset) within `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {LOCALHOST}:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join([*lines, "", ""])).encode() + body


class RawClient:
    """An MCP client over one keep-alive connection, in raw HTTP: initialize, then JSON-RPC posts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sid = ""
        self.next_id = 0

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await connect(self.port)
        try:
            status, headers, _ = await self.post(
                "initialize",
                {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
            )
            assert status == 200, status
            self.sid = headers["mcp-session-id"]
            status, _, _ = await self.post("notifications/initialized", None, notify=True)
            assert status == 202
        except BaseException:
            self.writer.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def post(self, method: str, params: dict[str, Any] | None, *, notify: bool = False) -> Response:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if not notify:
            self.next_id += 1
            message["id"] = self.next_id
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if self.sid:
            headers |= {"Mcp-Session-Id": self.sid, "Mcp-Protocol-Version": "2025-11-25"}
        self.writer.write(request(self.port, "POST", "/mcp", json.dumps(message).encode(), headers))
        await self.writer.drain()
        return await read_response(self.reader)

    async def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        status, _, body = await self.post(method, params)
        assert status == 200, body
        return json.loads(body)["result"]

    async def answers(self) -> None:
        """tools/list and tools/call answered, as a well-behaved client expects them."""
        tools = await self.result("tools/list")
        assert "ok__echo" in [t["name"] for t in tools["tools"]]
        result = await self.result("tools/call", {"name": "ok__echo", "arguments": {"text": "still here"}})
        assert result["content"][0]["text"] == "still here"


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float = 0.1) -> None:
    """Send `data` a byte at a time, until it is all sent or the server closes the connection."""
    with contextlib.suppress(ConnectionError):
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(every)


async def timed_out(port: int, first: bytes, slow: bytes) -> tuple[Response, float]:
    """Send `first` at once and `slow` a byte at a time; the answer and how long it took after `first`."""
    reader, writer = await connect(port)
    writer.write(first)
    started = time.monotonic()
    sender = asyncio.ensure_future(trickle(writer, slow))
    try:
        answer = await read_response(reader, timeout=15)
        took = time.monotonic() - started
        assert await at_eof(reader)
    finally:
        sender.cancel()
        writer.close()
    return answer, took


# ---- the real gateway ----------------------------------------------------------------------------------


def test_a_header_line_that_never_ends_gets_431_and_memory_stays_flat(gateway_file: Path, tmp_path: Path) -> None:
    with served(gateway_file, tmp_path, *FLAGS) as gw:
        pid = gw.proc.pid
        assert gw.get("/healthz")[0] == 200
        fds, before = open_fds(pid), rss_kib(pid)

        async def attack() -> tuple[Response, int]:
            reader, writer = await connect(gw.port)
            writer.write(request(gw.port, "POST", "/mcp")[:-4] + b"\r\nX-Endless: ")
            sent = 0
            answer = asyncio.ensure_future(read_response(reader, timeout=30))
            chunk = b"a" * 65536
            with contextlib.suppress(ConnectionError):
                while sent < 64 * 1024 * 1024 and not answer.done():  # 64 MiB unless the gateway stops it
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
            result = await answer
            assert await at_eof(reader)
            writer.close()
            return result, sent

        (status, headers, body), sent = asyncio.run(attack())
        assert status == 431, body
        assert headers["connection"] == "close"
        assert b"max_header_bytes" in body
        assert sent < 16 * 1024 * 1024, "the gateway kept reading the endless header"
        assert rss_kib(pid) - before < 8 * 1024, "the gateway buffered the endless header"

        async def many_fields() -> Response:
            reader, writer = await connect(gw.port)
            fields = {f"X-Field-{i}": "1" for i in range(30)}
            writer.write(request(gw.port, "GET", "/healthz", headers=fields))
            try:
                return await read_response(reader)
            finally:
                writer.close()

        status, _, body = asyncio.run(many_fields())
        assert status == 431 and b"max_headers" in body
        assert settle_fds(pid, fds) <= fds
        counts = closed_counts(gw)
        assert counts["max_header_bytes"] == 1 and counts["max_headers"] == 1, counts
        assert "closing a client connection: request head over 8192 bytes" in gw.log.read_text()


def test_headers_a_body_or_nothing_sent_a_byte_at_a_time_get_408(gateway_file: Path, tmp_path: Path) -> None:
    with served(gateway_file, tmp_path, *FLAGS) as gw:
        pid = gw.proc.pid
        assert gw.get("/healthz")[0] == 200
        fds = open_fds(pid)
        head = request(gw.port, "GET", "/healthz")
        body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}' * 10
        post = request(gw.port, "POST", "/mcp", body, {"Content-Type": "application/json"})
        post_head = post[: -len(body)]

        async def attacks() -> list[tuple[Response, float]]:
            return list(
                await asyncio.gather(
                    timed_out(gw.port, b"", head),  # the head a byte at a time
                    timed_out(gw.port, b"", b""),  # nothing at all
                    timed_out(gw.port, post_head, body),  # the head at once, the body a byte at a time
                    timed_out(gw.port, head + b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n"),  # a kept-alive request
                )
            )

        slow_head, silent, slow_body, second = asyncio.run(attacks())
        for (status, headers, text), took in (slow_head, silent):
            assert status == 408 and b"header_timeout" in text, text
            assert headers["connection"] == "close"
            assert HEADER_TIMEOUT - 0.05 <= took < HEADER_TIMEOUT + LATE, took
        (status, _, text), took = slow_body
        assert status == 408 and b"body_timeout" in text, text
        assert BODY_TIMEOUT - 0.05 <= took < BODY_TIMEOUT + LATE, took
        (status, _, _), _ = second  # the first request's answer; the second's 408 follows it
        assert status == 200
        assert settle_fds(pid, fds) <= fds
        counts = closed_counts(gw)
        assert counts["header_timeout"] == 3 and counts["body_timeout"] == 1, counts


def test_connections_over_the_cap_get_503_while_clients_get_their_answers(gateway_file: Path, tmp_path: Path) -> None:
    with served(gateway_file, tmp_path, *FLAGS, "--header-timeout", "30") as gw:  # the slow ones stay throughout
        pid = gw.proc.pid

        async def flood() -> tuple[list[Response], float, float, int]:
            async with RawClient(gw.port) as client:  # connected before the flood
                await client.answers()
                fds = open_fds(pid)
                slow = [await connect(gw.port) for _ in range(MAX_CONNECTIONS - 1)]
                trickles = [asyncio.ensure_future(trickle(w, SLOW_HEAD, 0.2)) for _, w in slow]
                await asyncio.sleep(0.2)
                started = time.monotonic()
                refused = []
                for _ in range(10):
                    reader, writer = await connect(gw.port)
                    refused.append(await read_response(reader, timeout=5))
                    assert await at_eof(reader)
                    writer.close()
                refusing = time.monotonic() - started
                started = time.monotonic()
                await client.answers()  # its connection is open: the cap does not touch it
                answering = time.monotonic() - started
                for task in trickles:
                    task.cancel()
                for _, writer in slow:
                    writer.close()
                return refused, refusing, answering, fds

        refused, refusing, answering, fds = asyncio.run(flood())
        assert settle_fds(pid, fds) <= fds
        for status, headers, body in refused:
            assert status == 503 and headers["retry-after"] == "1" and headers["connection"] == "close", body
            assert b"max_connections" in body
        assert refusing < 5, "503s are answered at once"
        assert answering < 5
        assert closed_counts(gw)["max_connections"] == 10


def test_a_new_client_gets_in_once_the_slow_connections_are_timed_out(gateway_file: Path, tmp_path: Path) -> None:
    """Slow clients hold every connection: a newcomer is told 503 + Retry-After, and gets in when it retries."""
    with served(gateway_file, tmp_path, *FLAGS) as gw:
        pid = gw.proc.pid
        assert gw.get("/healthz")[0] == 200
        fds = open_fds(pid)

        async def newcomer() -> tuple[int, float]:
            slow = [await connect(gw.port) for _ in range(MAX_CONNECTIONS)]
            trickles = [asyncio.ensure_future(trickle(w, SLOW_HEAD, 0.2)) for _, w in slow]
            await asyncio.sleep(0.2)
            started = time.monotonic()
            refusals = 0
            try:
                while True:
                    try:
                        async with RawClient(gw.port) as client:
                            await client.answers()
                            return refusals, time.monotonic() - started
                    except (AssertionError, ConnectionError):
                        refusals += 1
                        await asyncio.sleep(1)  # the Retry-After
            finally:
                for task in trickles:
                    task.cancel()
                for _, writer in slow:
                    writer.close()

        refusals, took = asyncio.run(newcomer())
        assert refusals >= 1
        assert took < HEADER_TIMEOUT + LATE + 2, took  # one Retry-After past the slow ones' timeout
        assert settle_fds(pid, fds) <= fds
        counts = closed_counts(gw)
        assert counts["header_timeout"] >= 1 and counts["max_connections"] == refusals, counts


def test_unread_sse_streams_over_the_cap_get_503(gateway_file: Path, tmp_path: Path) -> None:
    with served(gateway_file, tmp_path, *FLAGS) as gw:
        pid = gw.proc.pid
        assert gw.get("/metrics")[0] == 200  # the core (which serves /sse) loaded
        fds = open_fds(pid)
        get_sse = request(gw.port, "GET", "/sse", headers={"Accept": "text/event-stream"})

        async def streams() -> tuple[list[Response], list[Response], Response]:
            held = []
            for _ in range(MAX_SSE_STREAMS):
                reader, writer = await connect(gw.port)
                writer.write(get_sse)
                held.append((reader, writer, await read_response(reader, head_only=True)))
            over = []
            for _ in range(3):
                reader, writer = await connect(gw.port)
                writer.write(get_sse)
                over.append(await read_response(reader))
                assert await at_eof(reader)
                writer.close()
            for _, writer, _ in held:
                writer.close()
            await asyncio.sleep(0.5)
            reader, writer = await connect(gw.port)  # a slot is free again
            writer.write(get_sse)
            again = await read_response(reader, head_only=True)
            writer.close()
            return [r for _, _, r in held], over, again

        held, over, again = asyncio.run(streams())
        assert [status for status, _, _ in held] == [200] * MAX_SSE_STREAMS
        for status, headers, body in over:
            assert status == 503 and headers["retry-after"] == "10" and b"max_sse_streams" in body, body
        assert again[0] == 200
        assert settle_fds(pid, fds) <= fds
        assert closed_counts(gw)["max_sse_streams"] == 3
        gw.wait(lambda: "mcpgw_sse_streams_open 0" in gw.get("/metrics")[1], "the streams' slots released", 10)


def test_the_caps_are_flags_over_the_config(gateway_file: Path) -> None:
    out = subprocess.run([sys.executable, str(gateway_file), "--help"], capture_output=True, text=True, check=True)
    for flag in ("--max-header-bytes", "--max-headers", "--header-timeout", "--body-timeout", "--max-connections"):
        assert flag in out.stdout
    bad = subprocess.run(
        [sys.executable, str(gateway_file), "--max-connections", "0"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and "expected a number above 0" in bad.stderr


# ---- in process, both of uvicorn's HTTP/1.1 protocols ------------------------------------------------------

LIMITS = HttpLimits(max_header_bytes=4096, max_headers=10, header_timeout=0.5, body_timeout=0.5, max_connections=4)


async def _hello(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


@contextlib.asynccontextmanager
async def in_process(kind: str) -> AsyncIterator[int]:
    """uvicorn serving `_hello` on 127.0.0.1 with `LIMITS` on `kind`'s protocol; its port."""
    make = _httptools_class if kind == "httptools" else _h11_class
    config = uvicorn.Config(
        _hello, host=LOCALHOST, port=0, http=make(Watch(LIMITS)), lifespan="off", log_level="critical"
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


@pytest.mark.parametrize("kind", ["httptools", "h11"])
def test_each_protocol_enforces_the_caps(kind: str) -> None:
    before = dict(COUNTS.closed)

    async def run() -> None:
        async with in_process(kind) as port:
            reader, writer = await connect(port)  # a good request, kept alive, with a body in two pieces
            writer.write(request(port, "POST", "/", b"ab")[:-1])
            await asyncio.sleep(0.1)
            writer.write(b"b")
            assert (await read_response(reader))[0] == 200
            writer.write(request(port, "GET", "/") * 2)  # pipelined
            assert [(await read_response(reader))[0] for _ in range(2)] == [200, 200]

            big = request(port, "GET", "/", headers={"X-Big": "a" * 8000})
            endless = request(port, "GET", "/")[:-2] + b"X-Endless: " + b"a" * 100_000
            fields = request(port, "GET", "/", headers={f"X-{i}": "1" for i in range(11)})
            for data, status in ((big, 431), (endless, 431), (fields, 431)):
                r, w = await connect(port)
                w.write(data)
                assert (await read_response(r))[0] == status
                assert await at_eof(r)
                w.close()
            (status, _, _), took = await timed_out(port, b"", request(port, "GET", "/"))
            assert status == 408 and 0.45 <= took < 0.5 + LATE
            (status, _, _), took = await timed_out(port, request(port, "POST", "/", b"x" * 50)[:-50], b"x" * 50)
            assert status == 408 and 0.45 <= took < 0.5 + LATE

            await asyncio.sleep(0.3)  # the refused connections' closes are through
            others = [await connect(port) for _ in range(3)]  # with the first: 4, the cap
            r, w = await connect(port)
            status, headers, _ = await read_response(r)
            assert status == 503 and headers["retry-after"] == "1"
            w.close()
            writer.write(request(port, "GET", "/"))  # the open ones are still served
            assert (await read_response(reader))[0] == 200
            for _, w in others:
                w.close()
            writer.close()

    asyncio.run(run())
    closed = {reason: COUNTS.closed[reason] - before[reason] for reason in before}
    assert closed == {
        "max_header_bytes": 2,
        "max_headers": 1,
        "header_timeout": 1,
        "body_timeout": 1,
        "max_connections": 1,
        "max_sse_streams": 0,
    }
    assert 'mcpgw_connections_closed_total{reason="max_header_bytes"}' in render_http_limits()
