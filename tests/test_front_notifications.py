"""Log levels and resource subscriptions without the SDK, and carried into it when it loads.

A gateway over @modelcontextprotocol/server-everything (stdio, shared session: the front
runs it) and three raw-HTTP sessions, each with its GET stream open: `a` sets level
`debug`, `b` level `warning`, `c` none. `a` and `c` subscribe to one resource, and
server-everything is told to log at a random level and to announce an update of every
subscribed resource, each every 5 s, outside any request. Then:

* on the GET streams, `a` hears every log entry, `b` exactly those at `warning` or above,
  `c` none (no level set: as with the core); `resources/updated` reaches `a` and `c`, never `b`;
* `c` unsubscribing leaves the backend subscribed (`a` still is): the backend is not asked
  (its "Received Unsubscribe" log entry would ride the answer) and `a`'s updates go on;
* no "loading the core" in the log, VmRSS within `MAX_RSS_KIB`;
* `GET /metrics` loads the core, which adopts the sessions: the same entries and updates
  keep reaching the same streams, none twice; `a` unsubscribing (the last) now reaches the
  backend, and its updates stop.

The same scenario against the gateway started with `--eager-core` must hold the same way,
with the same answers and notifications of the same shape, framed alike on the streams.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcpgw_runtime import early_sessions, relay
from mcpgw_runtime.stdio_forwarding import origin

from tests import peers
from tests.test_front_relays import MAX_RSS_KIB, Session, log_text, rss_kib, running, wait_ready

pytestmark = [pytest.mark.timeout(300)]

VERSION = "2025-11-25"
URI = "demo://resource/static/document/architecture.md"
LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
PACE = 5.0
"""server-everything's interval between simulated log entries, and between resource updates."""
PHASE = 2 * PACE + 1.5
"""Long enough for at least two of each."""


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, entry = peers.everything_command("stdio")
    return peers.build_gateway(tmp_path_factory.mktemp("notify"), {"everything": {"command": node, "args": entry}})


class Stream:
    """A session's GET stream, read in the background: every event as (arrival, fields, message)."""

    def __init__(self, base: str, sid: str) -> None:
        self.events: list[tuple[float, list[str], dict[str, Any]]] = []
        self.status: int | None = None
        opened = threading.Event()
        headers = {"accept": "text/event-stream", "mcp-session-id": sid, "mcp-protocol-version": VERSION}

        def read() -> None:
            with httpx2.Client(timeout=None) as http, http.stream("GET", f"{base}/mcp", headers=headers) as response:
                self.status = response.status_code
                opened.set()
                buffer = b""
                for chunk in response.iter_bytes():
                    buffer += chunk
                    while b"\r\n\r\n" in buffer:
                        raw, buffer = buffer.split(b"\r\n\r\n", 1)
                        self._event(raw.decode())

        threading.Thread(target=read, daemon=True).start()
        assert opened.wait(10) and self.status == 200, self.status

    def _event(self, raw: str) -> None:
        lines = [line for line in raw.split("\r\n") if not line.startswith(":")]  # comments: keep-alive pings
        if lines:
            fields = [line.split(":", 1)[0] for line in lines]
            data = "".join(line[len("data: ") :] for line in lines if line.startswith("data: "))
            self.events.append((time.monotonic(), fields, json.loads(data)))

    def of(self, method: str, since: float = 0.0, until: float = float("inf")) -> list[tuple[float, dict[str, Any]]]:
        return [
            (t, m.get("params", {})) for t, _, m in list(self.events) if m["method"] == method and since <= t < until
        ]


def open_session(base: str) -> tuple[Session, Stream]:
    s = Session(base, VERSION)
    client = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    s.post({"id": 1, "method": "initialize", "params": client})
    s.post({"method": "notifications/initialized"})
    assert s.sid is not None
    return s, Stream(base, s.sid)


def shape(messages: list[dict[str, Any]]) -> list[Any]:
    """Answers with server-everything's random log entries reduced to their keys."""
    out: list[Any] = []
    for m in messages:
        if m.get("method") == "notifications/message":
            out.append(("log", sorted(m["params"])))
        else:
            out.append(m)
    return out


def at_or_above(level: str) -> Any:
    return lambda entry: LEVELS.index(entry["level"]) >= LEVELS.index(level)


def spaced(times: list[float]) -> bool:
    """Arrivals at server-everything's pace: nothing delivered twice (a copy would come within milliseconds)."""
    return all(b - a > PACE / 2 for a, b in itertools.pairwise(times))


def scenario(base: str, logs: Path, pid: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    (a, a_stream), (b, b_stream), (c, c_stream) = (open_session(base) for _ in range(3))
    ids = iter(range(2, 1000))

    def ask(s: Session, method: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return s.post({"id": next(ids), "method": method, "params": params})

    seen["levels"] = [ask(a, "logging/setLevel", {"level": "debug"}), ask(b, "logging/setLevel", {"level": "warning"})]
    seen["subscribe"] = [ask(a, "resources/subscribe", {"uri": URI}), ask(c, "resources/subscribe", {"uri": URI})]
    updates = ask(a, "tools/call", {"name": "everything__toggle-subscriber-updates", "arguments": {}})
    logging = ask(c, "tools/call", {"name": "everything__toggle-simulated-logging", "arguments": {}})
    seen["toggles"] = [updates, logging]
    time.sleep(1)
    seen["c_unsubscribe"] = ask(c, "resources/unsubscribe", {"uri": URI})
    c_left = time.monotonic()
    time.sleep(PHASE)
    seen["rss"] = rss_kib(pid)
    seen["before_core"] = log_text(logs)
    assert httpx2.get(f"{base}/metrics", timeout=60).status_code == 200
    core_up = time.monotonic()
    time.sleep(PHASE)
    seen["a_unsubscribe"] = ask(a, "resources/unsubscribe", {"uri": URI})
    a_left = time.monotonic()
    time.sleep(PACE + 1.5)
    count = len(a_stream.of("notifications/message"))  # snapshot just after an entry, far from the next
    deadline = time.monotonic() + 2 * PACE
    while len(a_stream.of("notifications/message")) == count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)
    seen["log"] = log_text(logs)
    seen["streams"] = {"a": list(a_stream.events), "b": list(b_stream.events), "c": list(c_stream.events)}
    seen["times"] = {"c_left": c_left, "core_up": core_up, "a_left": a_left}
    seen["a"], seen["b"], seen["c"] = a_stream, b_stream, c_stream
    return seen


def check(seen: dict[str, Any]) -> None:
    """What every gateway must do, lazy or eager."""
    a, b, c = seen["a"], seen["b"], seen["c"]
    t = seen["times"]
    assert seen["levels"] == [[{"jsonrpc": "2.0", "id": 2, "result": {}}], [{"jsonrpc": "2.0", "id": 3, "result": {}}]]
    for answer in seen["subscribe"]:  # the backend logs (info) during its subscribe: on the request's stream
        assert answer[-1]["result"] == {} and "Received Subscribe" in answer[0]["params"]["data"], answer
    assert [m.get("result") for m in seen["c_unsubscribe"]] == [{}], "the backend was unsubscribed while a was not"
    data = [m["params"]["data"] for m in seen["a_unsubscribe"] if m.get("method") == "notifications/message"]
    assert any("Received Unsubscribe" in d for d in data), seen["a_unsubscribe"]  # the last one: the backend's turn
    assert seen["a_unsubscribe"][-1]["result"] == {}

    entries = [p for _, p in a.of("notifications/message")]
    assert [p for _, p in b.of("notifications/message")] == list(filter(at_or_above("warning"), entries))
    assert c.of("notifications/message") == [], "no level set: no log entry outside a request"
    assert len(a.of("notifications/message", until=t["core_up"])) >= 2
    assert len(a.of("notifications/message", since=t["core_up"] + 1)) >= 2, "a's level was lost at the handover"
    late = list(filter(at_or_above("warning"), [p for _, p in a.of("notifications/message", since=t["core_up"] + 1)]))
    assert [p for _, p in b.of("notifications/message", since=t["core_up"] + 1)] == late
    assert spaced([when for when, _ in a.of("notifications/message")])

    assert b.of("notifications/resources/updated") == [], "b never subscribed"
    assert c.of("notifications/resources/updated", until=t["c_left"]), "c was subscribed at first"
    assert c.of("notifications/resources/updated", since=t["c_left"]) == []
    updated = a.of("notifications/resources/updated")
    assert {p["uri"] for _, p in updated} == {URI}
    assert len(a.of("notifications/resources/updated", since=t["c_left"], until=t["core_up"])) >= 2
    assert len(a.of("notifications/resources/updated", since=t["core_up"] + 1, until=t["a_left"])) >= 2
    assert a.of("notifications/resources/updated", since=t["a_left"]) == []
    assert spaced([when for when, _ in updated])
    for stream in (a, b, c):  # framed as the SDK's transport frames them: no event ids without an event store
        assert {tuple(fields) for _, fields, _ in stream.events} <= {("event", "data")}


@pytest.fixture
def gateway(script: Path, tmp_path: Path) -> Iterator[Any]:
    def run(*flags: str) -> Any:
        logs = tmp_path / ("logs" + "".join(flags).replace("-", "_"))
        port = peers.free_port()
        command = [sys.executable, str(script), "--port", str(port), "--transport", "http", "--log-dir", str(logs)]
        return running([*command, *flags], port), f"http://127.0.0.1:{port}", logs

    yield run


@pytest.mark.e2e
def test_levels_and_subscriptions_without_the_sdk_then_carried_into_it(gateway: Any) -> None:
    running_gateway, base, logs = gateway()
    with running_gateway as process:
        wait_ready(base)
        lazy = scenario(base, logs, process.pid)
    assert "loading the core" not in lazy["before_core"], lazy["before_core"]
    assert lazy["rss"] <= MAX_RSS_KIB, f"VmRSS {lazy['rss'] / 1024:.1f} MiB"
    assert "loading the core: GET /metrics" in lazy["log"]
    assert "could not hand it to the core" not in lazy["log"], lazy["log"]
    check(lazy)

    running_gateway, base, logs = gateway("--eager-core")
    with running_gateway as process:
        wait_ready(base)
        eager = scenario(base, logs, process.pid)
    check(eager)
    for key in ("levels", "subscribe", "toggles", "c_unsubscribe", "a_unsubscribe"):
        mine, theirs = lazy[key], eager[key]
        if key == "a_unsubscribe":  # a periodic log entry may fall into either request
            mine, theirs = ([m for m in x if "Received" in str(m) or "result" in m] for x in (mine, theirs))
        assert shape_all(mine) == shape_all(theirs), key
    for name in ("a", "b", "c"):
        mine, theirs = (kinds(seen["streams"][name]) for seen in (lazy, eager))
        assert all(mine[m] == theirs[m] for m in mine.keys() & theirs.keys()), (name, mine, theirs)
    assert kinds(lazy["streams"]["a"]).keys() == {"notifications/message", "notifications/resources/updated"}


def kinds(events: list[tuple[float, list[str], dict[str, Any]]]) -> dict[str, set[tuple[str, ...]]]:
    """Each method on a stream, and the params' keys it came with."""
    out: dict[str, set[tuple[str, ...]]] = {}
    for _, _, message in events:
        out.setdefault(message["method"], set()).add(tuple(sorted(message["params"])))
    return out


def shape_all(value: Any) -> Any:
    if isinstance(value, list) and value and isinstance(value[0], list):
        return [shape(v) for v in value]
    return shape(value)


def test_the_fronts_levels_are_the_hubs() -> None:
    assert early_sessions.LOG_LEVELS == relay.LOG_LEVELS


class _Connection:
    """Stands in for an upstream connection in the hub (it only needs identity, weakly held)."""

    session_id = None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["level", "subscribe", "unsubscribe"]),
            st.integers(0, 3),
            st.sampled_from([*LEVELS, "x://1", "x://2"]),
        ),
        max_size=25,
    )
)
def test_the_fronts_sessions_decide_as_the_core_hub(steps: list[tuple[str, int, str]]) -> None:
    """Levels and subscriptions kept with the front's sessions give the answers `UpstreamHub` gives the core."""
    hub = relay.UpstreamHub()
    connections = [_Connection() for _ in range(4)]
    sessions = early_sessions.EarlySessions(
        cast(Any, None), False, {}, *(asyncio.Event() for _ in range(2)), lambda: None
    )
    front = [early_sessions.EarlySession(b"", [], VERSION, listening=True) for _ in range(4)]
    sessions.open.update({b"%d" % i: s for i, s in enumerate(front)})
    for op, who, arg in steps:
        if op == "level" and arg in LEVELS:
            assert sessions.set_level(front[who], arg) == hub.set_level(cast(Any, connections[who]), arg)
        elif op == "subscribe":
            front[who].subscriptions.add(arg)
            hub.subscribe(cast(Any, connections[who]), arg)
        elif op == "unsubscribe":
            assert sessions.unsubscribe(front[who], arg) == hub.unsubscribe(cast(Any, connections[who]), arg)
    for level in [*LEVELS, "bogus"]:
        for session in front:
            session.outbox.clear()
        sessions.log_entry({"level": level, "data": "d"})
        heard = {i for i, session in enumerate(front) if session.outbox}
        assert heard == {connections.index(c) for c in hub.log_listeners(level)}, level
    for uri in ("x://1", "x://2"):
        for session in front:
            session.outbox.clear()
        sessions.resource_updated({"uri": uri})
        assert {i for i, session in enumerate(front) if session.outbox} == {
            connections.index(c) for c in hub.subscribers(uri)
        }
        framed = b'{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"%s"}}' % uri.encode()
        for session in front:  # as the SDK's transport frames a notification
            assert list(session.outbox) in ([], [b"event: message\r\ndata: " + framed + b"\r\n\r\n"])


def test_a_session_without_a_held_stream_gets_nothing_outside_a_request() -> None:
    sessions = early_sessions.EarlySessions(
        cast(Any, None), False, {}, *(asyncio.Event() for _ in range(2)), lambda: None
    )
    held, unheld = (early_sessions.EarlySession(b"", [], VERSION, listening=on) for on in (True, False))
    sessions.open.update({b"1": held, b"2": unheld})
    for session in (held, unheld):
        sessions.set_level(session, "debug")
        session.subscriptions.add("x://1")
    sessions.log_entry({"level": "info", "data": "d"})
    sessions.resource_updated({"uri": "x://1"})
    assert len(held.outbox) == 2 and not unheld.outbox


def test_log_entries_of_a_request_follow_the_core_origin_rule() -> None:
    """During requests: the latest when all are one session's; none with another client's (or no client's) in flight."""

    class Channel:
        def __init__(self, session: bytes) -> None:
            self.session = session

    one, other, sessionless = Channel(b"1"), Channel(b"2"), Channel(b"")
    assert origin([]) is None and origin([None]) is None
    assert origin([one]) is one and origin([sessionless]) is sessionless
    two = Channel(b"1")
    assert origin(cast(Any, [one, two])) is two
    assert origin(cast(Any, [one, other])) is None and origin(cast(Any, [None, one])) is None
    assert origin(cast(Any, [sessionless, Channel(b"")])) is None
    assert early_sessions.wants_log("info", None) and not early_sessions.wants_log("bogus", None)
    assert early_sessions.wants_log("error", "warning") and not early_sessions.wants_log("info", "warning")
