"""A hostile client against a real gateway: bogus ports in Host and Origin, floods of refused requests.

Also the operator's side of the same door: a token with a trailing newline (as a Secret
or a mounted file often has) must still open it, and a blank one must not start a gateway
that looks protected. A flood of refusals must leave a log that stays readable (the first
of each kind at once, then one count per interval) and a count per status in `/metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcpgw_runtime.cli import configured_token
from mcpgw_runtime.guard import Guard, without_port
from mcpgw_runtime.metrics import render_guard_refusals
from mcpgw_runtime.ratelog import RateLog

from tests import peers

pytestmark = pytest.mark.hostile

FAULT_SERVER = Path(__file__).resolve().parent / "servers" / "fault_server.py"
TOKEN = "hygiene-7f3a9c-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 4096
FLOOD = 2000
WINDOW = 10.0
"""ratelog.REFUSAL_LOG_INTERVAL: the summary of a flood's repeats comes this long after its first line."""


# -- Host and Origin: a port must be a port ------------------------------------------------------

BOGUS_AUTHORITIES = [
    "localhost:evil",
    "127.0.0.1:9000x",
    "localhost:",
    "localhost:0",
    "localhost:65536",
    "localhost:+80",
    "localhost: 80",
    "localhost:9000:9000",
    "localhost:" + "9" * 5000,
    "localhost:\u0669\u0660\u0660\u0660",  # Arabic-Indic digits: str.isdigit says yes, no port is that
    "[::1]:",
    "[::1]x",
    "[::1]:evil",
    "[::1]:9000x",
    "[::1",
    "[::1]]:9000",
    "::1:9000",
]


@pytest.mark.parametrize("authority", BOGUS_AUTHORITIES)
def test_a_host_or_origin_whose_port_is_no_port_is_refused(authority: str) -> None:
    guard = Guard.for_bind("127.0.0.1", 9000, ["gw.internal"], ["https://app.example"], None)
    assert not guard.host_ok(authority)
    assert not guard.origin_ok(f"http://{authority}")
    assert not guard.host_ok(authority.replace("localhost", "gw.internal"))
    assert not guard.origin_ok("https://" + authority.replace("localhost", "app.example"))


@pytest.mark.parametrize(
    "authority",
    ["localhost", "localhost:1", "localhost:9000", "localhost:65535", "127.0.0.1:80", "[::1]", "[::1]:9000"],
)
def test_a_real_port_or_none_still_passes(authority: str) -> None:
    guard = Guard.for_bind("127.0.0.1", 9000, ["gw.internal"], ["https://app.example"], None)
    assert guard.host_ok(authority)
    assert guard.origin_ok(f"http://{authority}") and guard.origin_ok(f"https://{authority}")
    assert guard.host_ok("gw.internal:8443") and guard.origin_ok("https://app.example:8443")
    assert without_port("[fe80::1%25eth0]:443") == "[fe80::1%25eth0]"


def test_an_ipv6_bind_address_passes_with_its_port() -> None:
    guard = Guard.for_bind("::1", 9000, [], [], None)
    assert guard.host_ok("[::1]:9000") and guard.origin_ok("http://[::1]:9000")
    bound = Guard.for_bind("fd00::5", 9000, [], [], None)
    assert bound.host_ok("[fd00::5]:9000") and bound.host_ok("[fd00::5]")
    assert not bound.host_ok("[fd00::5]:9000x") and not bound.host_ok("fd00::5:9000")


# -- The configured token ---------------------------------------------------------------------


def test_the_configured_token_loses_its_whitespace_and_a_blank_one_is_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="mcpgw"):
        assert configured_token(None) == (None, None)
        assert configured_token("tok") == ("tok", None)
        assert not caplog.records
        assert configured_token(" tok\r\n") == ("tok", None)
    assert [r.getMessage() for r in caplog.records] == [
        "MCPGW_TOKEN: whitespace around the token (e.g. a trailing newline) ignored"
    ]
    for blank in ("", " ", "\n", "\t\r\n"):
        token, error = configured_token(blank)
        assert token is None and error is not None and "MCPGW_TOKEN is set but empty" in error


# -- The rate-limited log ---------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ratelog_logs_the_first_at_once_and_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    """Without an event loop (no timer) the next event after the interval writes the count."""
    clock = _Clock()
    rate = RateLog(logging.getLogger("mcpgw.test"), 10.0, clock)
    with caplog.at_level(logging.INFO, logger="mcpgw.test"):
        for i in range(500):
            rate.warning("backend x saturated", "refused %d", i)
            rate.warning("HTTP 401", "no token %d", i)
            clock.now += 0.01
        assert [r.getMessage() for r in caplog.records] == ["refused 0", "no token 0"]
        clock.now += 5.1  # 10.1 s after the first
        rate.warning("backend x saturated", "refused %d", 500)
        messages = [r.getMessage() for r in caplog.records[2:]]
        assert messages == ["499 more 'backend x saturated' refusals in the last 10.1s"]
        assert all(r.levelno == logging.WARNING for r in caplog.records)
        caplog.clear()
        rate.flush()
        assert sorted(r.getMessage() for r in caplog.records) == [
            "1 more 'backend x saturated' refusals in the last 0s",
            "499 more 'HTTP 401' refusals in the last 10.1s",
        ]
        caplog.clear()
        clock.now += 11
        rate.warning("HTTP 401", "again")  # quiet for an interval: at once again
        assert [r.getMessage() for r in caplog.records] == ["again"]


def test_ratelog_writes_the_count_when_the_flood_stops(caplog: pytest.LogCaptureFixture) -> None:
    """On an event loop a timer ends the interval: the count appears with no further event."""

    async def flood() -> list[str]:
        rate = RateLog(logging.getLogger("mcpgw.test"), 0.2)
        for i in range(100):
            rate.warning("HTTP 421", "refused %d", i)
        await asyncio.sleep(0.3)
        first = [r.getMessage() for r in caplog.records]
        await asyncio.sleep(0.3)  # an interval with no refusal: nothing more, and the next is logged at once
        rate.warning("HTTP 421", "refused %d", 100)
        return [*first, "--", *(r.getMessage() for r in caplog.records[len(first) :])]

    with caplog.at_level(logging.INFO, logger="mcpgw.test"):
        said = asyncio.run(flood())
    assert said[0] == "refused 0" and re.fullmatch(r"99 more 'HTTP 421' refusals in the last 0\.[23]s", said[1]), said
    assert said[2:] == ["--", "refused 100"], said


def test_the_refusal_counters_are_on_the_page_from_the_start() -> None:
    page = render_guard_refusals()
    assert (
        page.startswith("# HELP mcpgw_guard_refusals_total ") and "# TYPE mcpgw_guard_refusals_total counter\n" in page
    )
    samples = [line.split("{")[1] for line in page.splitlines() if not line.startswith("#")]
    assert [s.split("}")[0] for s in samples] == ['status="401"', 'status="403"', 'status="413"', 'status="421"']
    assert all(s.split()[-1].isdigit() for s in samples)


# -- Real gateways ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One stdio backend that takes one call at a time and queues none."""
    config = {
        "busy": {"command": "python", "args": [str(FAULT_SERVER)], "max_concurrency": 1, "max_queue": 0},
        "gateway": {"name": "hostile", "max_body_bytes": MAX_BODY},
    }
    return peers.build_gateway(tmp_path_factory.mktemp("hostile"), config)


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    logs: Path

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(peers.LOCALHOST, self.port, timeout=30)

    def log_lines(self) -> list[str]:
        """The log files' lines at INFO and above, but uvicorn's access log (one line per request by design)."""
        lines = []
        for path in sorted(self.logs.glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if re.match(r"\d{4}-\d\d-\d\d ", line) and " DEBUG " not in line and " uvicorn.access: " not in line:
                    lines.append(line)
        return lines


@pytest.fixture
def serve(gateway: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def run(*flags: str, token: str | None = TOKEN) -> Served:
        port = peers.free_port()
        logs = tmp_path / f"logs-{port}"
        command = [sys.executable, str(gateway), "--port", str(port), "--transport", "http", "--log-dir", str(logs)]
        env = {k: v for k, v in os.environ.items() if k != "MCPGW_TOKEN"}
        if token is not None:
            env["MCPGW_TOKEN"] = token
        proc = subprocess.Popen(
            [*command, *flags], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        served = Served(proc, port, logs)
        started.append(served)
        peers.wait_for_port(peers.LOCALHOST, port, 30, process=proc)
        deadline = time.monotonic() + 40
        while _health(served)["backends"]["busy"]["state"] != "ready":
            assert time.monotonic() < deadline, "backend never ready"
            time.sleep(0.05)
        return served

    yield run
    for served in started:
        peers.kill_process_group(served.proc)


def _get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def _health(served: Served) -> dict[str, Any]:
    status, body = _get(served.connect(), "/healthz", AUTH)
    assert status == 200, body
    return dict(json.loads(body))


def _metric(served: Served, sample: str) -> int:
    status, body = _get(served.connect(), "/metrics", AUTH)
    assert status == 200, body
    match = re.search(rf"^{re.escape(sample)} (\d+)$", body.decode(), re.MULTILINE)
    assert match, body.decode()
    return int(match.group(1))


def _summaries(lines: list[str], kind: str) -> int:
    """How many repeats the count lines of `kind` account for."""
    pattern = re.compile(rf"(\d+) more '{re.escape(kind)}' refusals in the last [\d.]+s$")
    return sum(int(m.group(1)) for line in lines if (m := pattern.search(line)))


def _wait_for(served: Served, kinds: list[str], timeout: float = WINDOW + 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = served.log_lines()
        if all(_summaries(lines, kind) for kind in kinds) or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_a_token_with_a_trailing_newline_opens_the_door(serve: Any) -> None:
    served = serve(token=TOKEN + "\n")
    assert _get(served.connect(), "/healthz", AUTH)[0] == 200
    assert _get(served.connect(), "/healthz", {"Authorization": "Bearer wrong"})[0] == 401
    written = "\n".join(served.log_lines())
    assert "MCPGW_TOKEN: whitespace around the token (e.g. a trailing newline) ignored" in written, written
    assert TOKEN not in "".join(p.read_text() for p in served.logs.glob("*.log"))


@pytest.mark.parametrize("blank", ["", " \n"])
def test_a_blank_token_does_not_start(gateway: Path, blank: str) -> None:
    env = {**os.environ, "MCPGW_TOKEN": blank}
    proc = subprocess.run(
        [sys.executable, str(gateway), "--port", str(peers.free_port()), "--log-dir", "/dev/null/none"],
        env=env,
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error: MCPGW_TOKEN is set but empty (or only whitespace)" in proc.stderr


GUARD_KINDS = {
    401: "HTTP 401 Missing or invalid bearer token",
    403: "HTTP 403 Invalid Origin header",
    421: "HTTP 421 Invalid Host header",
    413: "HTTP 413 body over max_body_bytes",
}


def test_a_flood_of_refused_requests_is_counted_and_logged_at_a_bounded_rate(serve: Any) -> None:
    """2,000 requests with no or a wrong token, a Host or an Origin with a bogus port, a body too large."""
    served = serve()
    assert _metric(served, 'mcpgw_guard_refusals_total{status="401"}') == 0  # loads the core: it answers 413
    before = len(served.log_lines())
    per_kind = FLOOD // 5
    floods = {
        401: [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"}],
        403: [{**AUTH, "Origin": "http://localhost:9000x"}, {**AUTH, "Origin": "http://127.0.0.1:evil"}],
        421: [{**AUTH, "Host": "localhost:evil"}, {**AUTH, "Host": "127.0.0.1:9000x"}, {**AUTH, "Host": "[::1]:"}],
    }
    conn = served.connect()
    started = time.monotonic()
    for status, variants in floods.items():
        for i in range(per_kind * (2 if status == 401 else 1)):
            assert _get(conn, "/healthz" if i % 2 else "/mcp", variants[i % len(variants)])[0] == status
    big = b"{" + b" " * MAX_BODY + b"}"
    headers = {**AUTH, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    for _ in range(per_kind):
        post = served.connect()
        post.request("POST", "/mcp", body=big, headers=headers)
        response = post.getresponse()
        assert response.status == 413, response.read()
        post.close()
    took = time.monotonic() - started
    flood = served.log_lines()[before:]
    assert len(flood) <= 2 * len(GUARD_KINDS) * (1 + int(took // WINDOW)), "\n".join(flood)
    for status in GUARD_KINDS:
        assert any(f"HTTP {status} (" in line for line in flood), (status, flood)
    assert _metric(served, 'mcpgw_guard_refusals_total{status="401"}') == 2 * per_kind
    assert _metric(served, 'mcpgw_guard_refusals_total{status="403"}') == per_kind
    assert _metric(served, 'mcpgw_guard_refusals_total{status="421"}') == per_kind
    assert _metric(served, 'mcpgw_guard_refusals_total{status="413"}') == per_kind
    lines = _wait_for(served, list(GUARD_KINDS.values()))
    for status, kind in GUARD_KINDS.items():
        flooded = 2 * per_kind if status == 401 else per_kind
        assert 1 + _summaries(lines, kind) == flooded, (kind, lines[before:])
    assert len(lines) - before <= 4 * len(GUARD_KINDS) * (1 + int(took // WINDOW)), "\n".join(lines[before:])
    first = next(line for line in lines[before:] if "HTTP 421 (" in line)
    assert "refused GET '/mcp': HTTP 421 (Invalid Host header)" in first, first


class _Session:
    """A client session over one keep-alive connection: raw JSON-RPC over Streamable HTTP."""

    def __init__(self, served: Served) -> None:
        self.conn = served.connect()
        self.sid: str | None = None
        self.ids = iter(range(1, 1_000_000))

    def post(self, method: str, params: dict[str, Any] | None = None, *, notify: bool = False) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        if not notify:
            message["id"] = next(self.ids)
        headers = {**AUTH, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.sid is not None:
            headers |= {"Mcp-Session-Id": self.sid, "Mcp-Protocol-Version": "2025-06-18"}
        self.conn.request("POST", "/mcp", body=json.dumps(message), headers=headers)
        response = self.conn.getresponse()
        body = response.read().decode()
        self.sid = response.getheader("mcp-session-id", self.sid)
        if notify:
            assert response.status == 202, body
            return {}
        assert response.status == 200, body
        if response.getheader("content-type", "").startswith("application/json"):
            return dict(json.loads(body))
        return dict(json.loads(re.findall(r"^data: (.+)$", body, re.MULTILINE)[-1]))

    def open(self) -> _Session:
        client = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
        assert "result" in self.post("initialize", client)
        self.post("notifications/initialized", notify=True)
        return self


@pytest.mark.parametrize("flags", [(), ("--eager-core",)], ids=["front", "core"])
def test_a_saturated_backends_refusals_are_logged_at_a_bounded_rate(serve: Any, flags: tuple[str, ...]) -> None:
    """One call holds the only slot; 2,000 more are refused at once, with a line at first and a count after."""
    served = serve(*flags)
    holder = _Session(served).open()

    def hold() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):  # the gateway is stopped before it answers
            holder.post("tools/call", {"name": "busy__sleep", "arguments": {"seconds": 60}})

    threading.Thread(target=hold, daemon=True).start()
    deadline = time.monotonic() + 20
    while _health(served)["backends"]["busy"]["in_flight"] != 1:
        assert time.monotonic() < deadline, "the holding call never started"
        time.sleep(0.05)
    before = len(served.log_lines())
    client = _Session(served).open()
    started = time.monotonic()
    for _ in range(FLOOD):
        error = client.post("tools/call", {"name": "busy__echo", "arguments": {"text": "x"}})["error"]
        assert error["code"] == -32003 and "backend 'busy' is saturated" in error["message"], error
    took = time.monotonic() - started
    flood = served.log_lines()[before:]
    assert len(flood) <= 3, "\n".join(flood)
    kind = "backend busy saturated"
    lines = _wait_for(served, [kind])
    said = lines[before:]
    assert any("backend busy is saturated: refusing calls (max_concurrency 1, max_queue 0)" in s for s in said), said
    assert 1 + _summaries(lines, kind) == FLOOD, said
    assert len(said) <= 3 + 2 * (1 + int(took // WINDOW)), "\n".join(said)
