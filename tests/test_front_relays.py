"""The SDK-free front serves every pure relay (relays.py), with exactly the core's answers.

A gateway over @modelcontextprotocol/server-everything (stdio, shared session: the front
runs it) is driven through a whole session by raw HTTP: initialize, every list (resources
paged with the gateway's composite cursor), a tool call with a progress token, resource
reads (fixed table and template), prompts, completions, ping, and the errors of unknown
names, URIs and cursors. The same session is run against the same gateway started with
`--eager-core`: every message, progress included, must be equal. The lazy gateway must
never have loaded the core ("loading the core" never in its log) and must stay small
(VmRSS from /proc).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcpgw_runtime.listing import SimpleTemplate

from tests import peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

MAX_RSS_KIB = 60 * 1024
"""The front with its one backend (the SDK alone is about 30 MiB more)."""


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, entry = peers.everything_command("stdio")
    return peers.build_gateway(tmp_path_factory.mktemp("relays"), {"everything": {"command": node, "args": entry}})


class Session:
    """One client session over raw HTTP: every JSON-RPC message of every answer, as received."""

    def __init__(self, base: str, version: str) -> None:
        self.base = base
        self.version = version
        self.http = httpx2.Client(timeout=60)
        self.sid: str | None = None

    def post(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        if self.sid is not None:
            headers |= {"mcp-session-id": self.sid, "mcp-protocol-version": self.version}
        response = self.http.post(f"{self.base}/mcp", content=json.dumps({"jsonrpc": "2.0", **body}), headers=headers)
        if "id" not in body:
            assert response.status_code == 202, response.text
            return []
        assert response.status_code == 200, response.text
        self.sid = response.headers.get("mcp-session-id", self.sid)
        if response.headers["content-type"].startswith("application/json"):
            return [response.json()]
        return [json.loads(m) for m in re.findall(r"^data: (.+)$", response.text, re.MULTILINE)]


def conversation(base: str, version: str) -> list[list[dict[str, Any]]]:
    """The session every gateway is put through; its answers, in order."""
    s = Session(base, version)
    client = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    said = [s.post({"id": 1, "method": "initialize", "params": client})]
    s.post({"method": "notifications/initialized"})
    ask = iter(range(2, 1000))

    def request(method: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"id": next(ask), "method": method}
        if params is not None:
            body["params"] = params
        said.append(s.post(body))
        return said[-1]

    request("tools/list")
    request("prompts/list")
    request("resources/templates/list")
    page = request("resources/list")
    while "nextCursor" in page[-1]["result"]:
        page = request("resources/list", {"cursor": page[-1]["result"]["nextCursor"]})
    request("resources/list", {"cursor": "not a cursor"})
    steps = {"name": "everything__trigger-long-running-operation", "arguments": {"duration": 0.3, "steps": 3}}
    request("tools/call", {**steps, "_meta": {"progressToken": "mine"}})
    request("tools/call", {"name": "everything__echo", "arguments": {"message": "hi"}})
    request("resources/read", {"uri": "demo://resource/static/document/architecture.md"})
    request("resources/read", {"uri": "demo://resource/dynamic/text/7"})
    request("resources/read", {"uri": "nowhere://at/all"})
    request("prompts/get", {"name": "everything__simple-prompt"})
    request("prompts/get", {"name": "everything__args-prompt", "arguments": {"city": "Oslo", "state": "Viken"}})
    request("prompts/get", {"name": "no_such_prompt"})
    department = {"name": "department", "value": "E"}
    request(
        "completion/complete",
        {"ref": {"type": "ref/prompt", "name": "everything__completable-prompt"}, "argument": department},
    )
    template = {"type": "ref/resource", "uri": "demo://resource/dynamic/text/{resourceId}"}
    request("completion/complete", {"ref": template, "argument": {"name": "resourceId", "value": "1"}})
    request("completion/complete", {"ref": {"type": "ref/prompt", "name": "nope"}, "argument": department})
    request("ping")
    return said


def timeless(messages: list[dict[str, Any]]) -> Any:
    """The messages with the clock times server-everything writes into dynamic resources taken out."""
    return json.loads(re.sub(r"\d{1,2}:\d\d:\d\d [AP]M", "<time>", json.dumps(messages)))


def counters(base: str) -> list[str]:
    """The per-request counters of `/metrics` (requests, errors, timeouts, tool errors per method and tool)."""
    families = ("mcpgw_requests_total{", "mcpgw_request_errors_total{", "mcpgw_request_timeouts_total{")
    text = httpx2.get(f"{base}/metrics", timeout=30).text
    return [line for line in text.splitlines() if line.startswith((*families, "mcpgw_tool_errors_total{"))]


def log_text(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.glob("*.log"))


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


@contextmanager
def running(command: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`peers.run_process`, keeping the process (its pid is what is measured)."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        peers.wait_for_port(peers.LOCALHOST, port, 30, process=process)
        yield process
    finally:
        peers.kill_process_group(process)


@pytest.fixture
def gateway(script: Path, tmp_path: Path) -> Iterator[Any]:
    def run(*flags: str) -> Any:
        logs = tmp_path / ("logs" + "".join(flags).replace("-", "_"))
        port = peers.free_port()
        command = [sys.executable, str(script), "--port", str(port), "--transport", "http", "--log-dir", str(logs)]
        return running([*command, *flags], port), f"http://127.0.0.1:{port}", logs

    yield run


def wait_ready(base: str) -> None:
    """Ready, and past server-everything's `roots/list` (350 ms after its handshake).

    Asked while a client's request is in flight, it would go to that client (the core's relay),
    racing the session's answers; asked with none in flight, the gateway answers it itself.
    """
    deadline = time.monotonic() + 60
    while httpx2.get(f"{base}/healthz").json()["status"] != "ok":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1)


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_a_whole_session_never_loads_the_sdk_and_answers_as_the_core(gateway: Any, version: str) -> None:
    running, base, logs = gateway()
    with running as process:
        wait_ready(base)
        lazy = conversation(base, version)
        rss = rss_kib(process.pid)
        written = log_text(logs)
        lazy_counts = counters(base)  # /metrics is the core's: it loads now, and takes the front's counters on
    assert "loading the core" not in written, written
    running, base, _ = gateway("--eager-core")
    with running:
        wait_ready(base)
        eager = conversation(base, version)
        eager_counts = counters(base)
    for mine, theirs in zip(lazy, eager, strict=True):
        assert timeless(mine) == timeless(theirs)
    assert lazy_counts == eager_counts
    assert {'method="prompts/get"', 'method="resources/list"', 'method="completion/complete"'} <= {
        label for line in lazy_counts for label in line.split(",")
    }
    progress = [m for m in lazy if m[0].get("method") == "notifications/progress"]
    assert progress and all(m["params"]["progressToken"] == "mine" for m in progress[0] if "method" in m)
    assert rss <= MAX_RSS_KIB, f"VmRSS {rss / 1024:.1f} MiB"


def test_a_cancelled_request_is_cancelled_at_the_backend_and_answered(gateway: Any) -> None:
    """`notifications/cancelled` of a relayed request cancels it (at the backend too); a late one is a no-op."""
    running, base, logs = gateway("--log-level", "debug")
    with running:
        wait_ready(base)
        s = Session(base, "2025-11-25")
        client = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
        s.post({"id": 1, "method": "initialize", "params": client})
        long = {"name": "everything__trigger-long-running-operation", "arguments": {"duration": 30, "steps": 30}}
        answers: list[list[dict[str, Any]]] = []
        call = threading.Thread(
            target=lambda: answers.append(s.post({"id": 2, "method": "tools/call", "params": long}))
        )
        started = time.monotonic()
        call.start()
        time.sleep(1)
        s.post({"method": "notifications/cancelled", "params": {"requestId": 2, "reason": "enough"}})
        call.join(10)
        took = time.monotonic() - started
        s.post({"method": "notifications/cancelled", "params": {"requestId": 2}})  # late: nothing left to cancel
        written = log_text(logs)
    assert answers and answers[0][-1]["error"]["message"] == "Request cancelled", answers
    assert took < 10
    assert "loading the core" not in written, written


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same backend, one request at a time and one more waiting."""
    node, entry = peers.everything_command("stdio")
    config = {"everything": {"command": node, "args": entry, "max_concurrency": 1, "max_queue": 1}}
    return peers.build_gateway(tmp_path_factory.mktemp("narrow"), config)


def test_the_front_queues_at_max_concurrency_as_the_core_does(narrow: Path, tmp_path: Path) -> None:
    """Three slow calls at once: one runs, one waits for its slot, one is refused (queue full); no core."""
    port = peers.free_port()
    logs = tmp_path / "logs"
    command = [sys.executable, str(narrow), "--port", str(port), "--transport", "http", "--log-dir", str(logs)]
    with running(command, port):
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        s = Session(base, "2025-11-25")
        client = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
        s.post({"id": 1, "method": "initialize", "params": client})
        slow = {"name": "everything__trigger-long-running-operation", "arguments": {"duration": 1, "steps": 1}}
        answers: dict[int, list[dict[str, Any]]] = {}

        def call(rid: int) -> None:
            answers[rid] = s.post({"id": rid, "method": "tools/call", "params": slow})

        started = time.monotonic()
        callers = [threading.Thread(target=call, args=(rid,)) for rid in (2, 3, 4)]
        for caller in callers:
            caller.start()
            time.sleep(0.2)
        queued = httpx2.get(f"{base}/healthz").json()["backends"]["everything"]
        for caller in callers:
            caller.join(30)
        took = time.monotonic() - started
        written = log_text(logs)
    assert (queued["in_flight"], queued["queued"]) == (1, 1), queued
    assert "result" in answers[2][-1] and "result" in answers[3][-1], answers
    refused = answers[4][-1]["error"]
    assert refused["code"] == -32003 and "is saturated" in refused["message"], refused
    assert took >= 2, "the second call waited for the first"
    assert "loading the core" not in written, written


TEMPLATES = (
    "demo://resource/dynamic/text/{resourceId}",
    "file:///{name}.txt",
    "x://{a}/y/{b}",
    "x://{a}-{b}",
    "{scheme}://host/{path}",
    "plain://no/vars",
)


@settings(max_examples=400, deadline=None)
@given(
    template=st.sampled_from(TEMPLATES),
    uri=st.one_of(
        st.text(alphabet="xy:/-.?#&,%2Ftxdemo", max_size=30),
        st.builds(lambda t, v: t.replace("{", "").replace("}", "") + v, st.sampled_from(TEMPLATES), st.text("a/-?#")),
        st.builds(lambda v, w: f"x://{v}/y/{w}", st.text("ab/-?,", max_size=4), st.text("ab/-?,", max_size=4)),
        st.builds(lambda v: f"demo://resource/dynamic/text/{v}", st.text("17/?#&,%", max_size=5)),
    ),
)
def test_the_fronts_template_matching_is_the_sdks(template: str, uri: str) -> None:
    """resources/read routes by template in the front as the core does with the SDK's `UriTemplate`."""
    from mcp.shared.uri_template import UriTemplate

    simple = SimpleTemplate.parse(template)
    assert simple is not None
    assert simple.matches(uri) == (UriTemplate.parse(template).match(uri) is not None)


def test_templates_the_front_cannot_match_are_left_to_the_core() -> None:
    for template in ("x://{+path}", "x://{a}{b}", "x://{/path*}", "x://{?q}", "x://{a:3}", "x://}"):
        assert SimpleTemplate.parse(template) is None, template
