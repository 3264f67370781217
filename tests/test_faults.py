"""Fault injection against a real gateway process and real stdio backends on 127.0.0.1.

One gateway is built (probing every backend in `ok` mode) and then served with
`${..._MODE}` variables that make some backends misbehave: `dead` exits at
start, `victim` is killed with SIGKILL mid-call, `slow` hangs and has a tight
concurrency cap, `noisy` floods stdout with non-JSON. `ok` must keep answering
through all of it. Every case is bounded in time and asserts what the client saw.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import runpy
import signal
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcpgw_runtime.forwarding import Refused
from mcpgw_runtime.front import Front, initialize_result
from mcpgw_runtime.guard import Guard

from tests import peers
from tests.peers import ServedGateway as Gw
from tests.peers import alive as _alive
from tests.peers import call
from tests.peers import gateway_client as client
from tests.peers import with_client as run

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FAULT_SERVER = Path(__file__).resolve().parent / "servers" / "fault_server.py"
TOKEN = "fault-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _backend(root: Path, name: str, **extra: Any) -> dict[str, Any]:
    mode = "${%s_MODE:-ok}" % name.upper()  # noqa: UP031 (a literal ${VAR} for the gateway to expand)
    env = {"FAULT_MODE": mode, "FAULT_PIDFILE": str(root / f"{name}.pid")}
    return {"command": "python", "args": [str(FAULT_SERVER)], "env": env, **extra}


def build(root: Path) -> Path:
    config = {
        "ok": _backend(root, "ok"),
        "victim": _backend(root, "victim"),
        "dead": _backend(root, "dead", startup_timeout=20),
        "slow": _backend(root, "slow", tool_timeouts={"hang": 1}, max_concurrency=1, max_queue=1),
        "noisy": _backend(root, "noisy"),
        "stubborn": _backend(root, "stubborn"),
        "gateway": {"name": "faults"},
    }
    (root / "config.json").write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", "mcpgw", "build", str(root / "config.json"), "-o", str(root / "dist")],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return root / "dist" / "gateway.py"


def serve(gateway: Path, root: Path, **modes: str) -> Gw:
    env = {"MCPGW_TOKEN": TOKEN, **{f"{k.upper()}_MODE": v for k, v in modes.items()}}
    gw = peers.serve_gateway(gateway, root, env=env, headers=AUTH, ready=("ok", "victim", "slow", "noisy"))
    gw.wait(lambda: gw.health()["backends"]["dead"]["state"] != "starting", "dead tried", 40)
    return gw


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("faults")
    yield build(root), root


@pytest.fixture(scope="module")
def gw(gateway: tuple[Path, Path]) -> Iterator[Gw]:
    served = serve(*gateway, dead="exit")
    try:
        yield served
    finally:
        peers.kill_process_group(served.proc)


def test_kill_9_mid_call_fails_fast_and_the_backend_comes_back(gw: Gw) -> None:
    pid = gw.pid("victim")

    async def body(c: Client) -> tuple[tuple[str, float], tuple[str, float]]:
        async with anyio.create_task_group() as tg:
            results: list[tuple[str, float]] = []

            async def slow_call() -> None:
                results.append(await call(c, "victim__sleep", {"seconds": 30}))

            tg.start_soon(slow_call)
            await anyio.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
        return results[0], await call(c, "ok__echo", {"text": "still here"})

    (victim, took), (ok, _) = run(gw, body)
    assert victim.startswith("error -32002") and "backend 'victim' closed the connection" in victim, victim
    assert took < 3, f"in-flight call to a killed child must fail at once, took {took:.1f}s"
    assert ok == "still here"
    gw.wait(lambda: gw.health()["backends"]["victim"]["state"] == "ready", "victim restarted")
    assert gw.pid("victim") != pid
    assert gw.health()["backends"]["victim"]["restarts"] >= 1
    again, _ = run(gw, lambda c: call(c, "victim__echo", {"text": "back"}))
    assert again == "back"


def test_a_hanging_backend_times_out_while_others_answer(gw: Gw) -> None:
    async def body(c: Client) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = [("", 0.0)] * 2

        async def hang() -> None:
            out[0] = await call(c, "slow__hang")

        async def echo() -> None:
            await anyio.sleep(0.2)
            out[1] = await call(c, "ok__echo", {"text": "fine"})

        async with anyio.create_task_group() as tg:
            tg.start_soon(hang)
            tg.start_soon(echo)
        return out

    (hung, took), (ok, ok_took) = run(gw, body)
    assert hung.startswith("error") and "backend 'slow' did not answer within 1s" in hung, hung
    assert 0.9 < took < 3
    assert ok == "fine" and ok_took < 1


def test_a_backend_that_exits_at_start_gives_a_named_error(gw: Gw) -> None:
    (dead, took), (ok, _) = run(gw, lambda c: _both(c, ("dead__echo", {"text": "x"}), ("ok__echo", {"text": "y"})))
    assert "backend 'dead' is not available" in dead, dead
    assert took < 2, "a backend in a crash loop (state failed) answers at once"
    assert ok == "y"
    assert gw.health()["backends"]["dead"]["state"] in {"failed", "restarting"}


async def _both(c: Client, *calls: tuple[str, dict[str, Any]]) -> list[tuple[str, float]]:
    return [await call(c, name, args) for name, args in calls]


def test_stdout_garbage_is_skipped_and_the_backend_keeps_serving(gw: Gw) -> None:
    flood, after = run(gw, lambda c: _both(c, ("noisy__flood", {"lines": 20000}), ("noisy__echo", {"text": "ok"})))
    assert flood[0] == "flooded" and after[0] == "ok"
    assert gw.health()["backends"]["noisy"]["state"] == "ready"


def test_concurrency_cap_queues_then_rejects_with_a_named_error(gw: Gw) -> None:
    async def body(c: Client) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []

        async def one() -> None:
            out.append(await call(c, "slow__sleep", {"seconds": 0.5}))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one)
        return out

    results = [r for r, _ in run(gw, body)]
    ok = [r for r in results if r == "slept"]
    busy = [r for r in results if r.startswith("error -32003")]
    assert len(ok) == 2 and len(busy) == 3, results  # 1 running + 1 queued; the rest refused at once
    assert all("backend 'slow' is saturated" in r for r in busy)
    metrics = gw.get("/metrics")[1]
    assert 'mcpgw_backend_rejected_total{backend="slow"} ' in metrics
    gw.wait(lambda: gw.health()["backends"]["slow"]["state"] == "ready", "slow back to ready once drained")


def test_concurrent_calls_while_a_backend_is_killed(gw: Gw) -> None:
    gw.wait(lambda: gw.health()["backends"]["victim"]["state"] == "ready", "victim ready")
    pid = gw.pid("victim")

    async def body(c: Client) -> list[tuple[str, str, float]]:
        out: list[tuple[str, str, float]] = []

        async def one(i: int) -> None:
            name = ("ok__sleep", "victim__sleep", "ok__echo")[i % 3]
            text, took = await call(c, name, {"seconds": 0.3, "text": str(i)})
            out.append((name, text, took))

        async with anyio.create_task_group() as tg:
            for i in range(120):
                tg.start_soon(one, i)
            # Kill once the victim holds calls, not after a fixed delay: on a slow host none may
            # have been sent by then, and the kill would hit nothing in flight.
            with anyio.fail_after(10):
                while (await anyio.to_thread.run_sync(gw.health))["backends"]["victim"]["in_flight"] == 0:
                    await anyio.sleep(0.02)
            os.kill(pid, signal.SIGKILL)
        return out

    started = time.monotonic()
    results = run(gw, body)
    assert time.monotonic() - started < 30
    assert len(results) == 120
    for name, text, _ in results:
        if name.startswith("ok__"):
            assert not text.startswith("error"), (name, text)
        else:
            assert text == "slept" or "backend 'victim'" in text, text
    assert any("backend 'victim'" in t for n, t, _ in results if n == "victim__sleep"), "the kill hit in-flight calls"
    gw.wait(lambda: gw.health()["backends"]["victim"]["state"] == "ready", "victim restarted")
    assert run(gw, lambda c: call(c, "victim__echo", {"text": "again"}))[0] == "again"
    health = gw.health()["backends"]
    assert all(health[b]["in_flight"] == 0 and health[b]["queued"] == 0 for b in ("ok", "victim")), health


def test_a_client_disconnecting_mid_call_leaks_nothing(gw: Gw) -> None:
    async def body() -> None:
        http, c = client(gw)
        with anyio.move_on_after(0.5):
            async with http, c:
                await c.call_tool("ok__sleep", {"seconds": 2})

    anyio.run(body)
    assert run(gw, lambda c: call(c, "ok__echo", {"text": "next"}))[0] == "next"
    gw.wait(lambda: gw.health()["backends"]["ok"]["in_flight"] == 0, "the abandoned call's slot freed", 5)


def test_metrics_follow_the_auth_rule_and_count_calls(gw: Gw) -> None:
    assert gw.get("/metrics", {})[0] == 401
    assert gw.get("/metrics", {**AUTH, "Host": "evil.example"})[0] == 421
    assert gw.get("/metrics", {**AUTH, "Origin": "http://evil.example"})[0] == 403
    run(gw, lambda c: _both(c, ("ok__echo", {"text": "m"}), ("slow__hang", {})))
    status, text = gw.get("/metrics")
    assert status == 200
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    ok = 'backend="ok",method="tools/call",tool="echo"'
    assert int(lines[f"mcpgw_requests_total{{{ok}}}"]) >= 1
    assert int(lines[f'mcpgw_request_duration_seconds_bucket{{{ok},le="+Inf"}}']) >= 1
    hang = 'backend="slow",method="tools/call",tool="hang"'
    assert int(lines[f"mcpgw_request_timeouts_total{{{hang}}}"]) >= 1
    assert int(lines[f"mcpgw_request_errors_total{{{hang}}}"]) >= 1
    assert lines['mcpgw_backend_state{backend="dead",state="ready"}'] == "0"
    assert 'mcpgw_backend_restarts_total{backend="dead"}' in lines
    assert "# TYPE mcpgw_request_duration_seconds histogram" in text


def test_request_ids_in_logs_and_arguments_only_at_debug(gw: Gw) -> None:
    run(gw, lambda c: call(c, "ok__echo", {"text": "secret-argument-123"}))
    text = gw.log.read_text(errors="replace")
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ |INFO: |WARNING: |ERROR: )", text)
    leaked = [r for r in records if "secret-argument-123" in r]
    assert leaked and all(r.split(" ", 3)[2] == "DEBUG" for r in leaked), leaked
    rid = re.search(r"rid=(\d+) backend=ok method=tools/call tool=echo upstream_id=\S+ params=.*secret-argument", text)
    assert rid is not None, "the debug line names the request"
    assert f"rid={rid.group(1)} backend=ok ok ms=" in text, "the answer is logged under the same rid"


def test_sigterm_exits_fast_fails_in_flight_calls_and_leaves_no_process(gateway: tuple[Path, Path]) -> None:
    gw = serve(*gateway, dead="exit", stubborn="stubborn")
    try:
        gw.wait(lambda: gw.health()["backends"]["stubborn"]["state"] == "ready", "stubborn ready")
        pids = [gw.pid(b) for b in ("ok", "victim", "slow", "noisy", "stubborn")]
        pids.append(int((gw.root / "stubborn.pid.child").read_text()))
        assert all(_alive(p) for p in pids)

        async def body(c: Client) -> tuple[str, float]:
            async with anyio.create_task_group() as tg:
                out: list[tuple[str, float]] = []

                async def in_flight() -> None:
                    out.append(await call(c, "ok__sleep", {"seconds": 30}))

                tg.start_soon(in_flight)
                await anyio.sleep(0.5)
                gw.proc.send_signal(signal.SIGTERM)
            return out[0]

        started = time.monotonic()
        try:
            seen, took = run(gw, body)
        except Exception as exc:  # the connection may close before an answer: also a clean, fast end
            seen, took = f"connection ended: {type(exc).__name__}", time.monotonic() - started
        assert took < 3, (seen, took)
        assert "shutting down" in seen or seen.startswith("connection ended"), seen
        gw.proc.wait(timeout=5)
        elapsed = time.monotonic() - started
        assert elapsed < 5.5, f"gateway took {elapsed:.1f}s to exit"
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)], "orphans left behind"
    finally:
        peers.kill_process_group(gw.proc)


def _post(gw: Gw, body: bytes, session: str | None) -> tuple[int, dict[str, str], str]:
    headers = {**AUTH, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if session:
        headers |= {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    request = urllib.request.Request(f"{gw.url}/mcp", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def _messages(text: str) -> list[Any]:
    """JSON-RPC messages in a JSON body or in the `data:` lines of an SSE body."""
    if not text.strip():
        return []
    if text.lstrip().startswith(("{", "[")):
        return [json.loads(text)]
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]


def _containers_json_values(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and objects of `inner` (a named function: hypothesis reads its source to check it recurses)."""
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    _containers_json_values,
    max_leaves=12,
)
METHODS = st.sampled_from(
    ["tools/call", "tools/list", "prompts/get", "resources/read", "completion/complete", "ping", "nope/x", ""]
) | st.text(max_size=12)
REQUESTS = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "method": METHODS},
    optional={"id": st.integers() | st.text(max_size=8) | st.none(), "params": JSON_VALUES},
)
BODIES = (
    REQUESTS.map(lambda r: json.dumps(r).encode())
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
)


def test_random_json_rpc_gets_an_error_or_a_result_and_the_gateway_stays_up(gw: Gw) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}},
    }
    status, headers, _ = _post(gw, json.dumps(init).encode(), None)
    assert status == 200
    session = {k.lower(): v for k, v in headers.items()}["mcp-session-id"]
    _post(gw, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(), session)

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=BODIES, with_session=st.booleans())
    def check(body: bytes, with_session: bool) -> None:
        status, _, text = _post(gw, body, session if with_session else None)
        assert status < 500, (status, body, text)
        for message in _messages(text):
            assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", message
            assert ("error" in message) != ("result" in message), message

    check()
    assert gw.get("/healthz")[0] == 200
    assert run(gw, lambda c: call(c, "ok__echo", {"text": "alive"}))[0] == "alive"


def test_sigterm_while_the_core_loads_fails_the_calls_handed_to_it(tmp_path: Path) -> None:
    """SIGTERM after the front handed its backends to the core it is loading, before that core runs.

    The gateway's own embedded `Front`, its lifespan driven by hand, over the fault server: a
    call is in flight on the front's pipe; the core's load takes the backends over and the
    signal arrives before the load returns (the window a flaky run of the SIGTERM test above
    hit). That core never runs, so the front must fail the call at once with the shutdown
    error and stop the process, not leave both to uvicorn's drain timeout.
    """
    config = {"ok": {"command": "python", "args": [str(FAULT_SERVER)], "env": {"FAULT_MODE": "ok"}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    ns = runpy.run_path(str(peers.build_gateway(tmp_path, config)), run_name="gateway_under_test")

    async def body() -> tuple[str, float, int | None]:
        lifespan: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        sent: list[str] = []

        async def send(message: dict[str, str]) -> None:
            sent.append(message["type"])

        def load() -> object:  # what the core's load does first, then the signal
            front.backends.handover()
            front.stop_backends()
            return types.SimpleNamespace(initialize_result=lambda version: initialize_result(ns["SPEC"], version))

        guard = Guard.for_bind("127.0.0.1", 9000, (), (), None)
        front = Front(ns["SPEC"], guard, load, http=True, stateless=False, lazy_base_dir=tmp_path)
        await lifespan.put({"type": "lifespan.startup"})
        running = asyncio.ensure_future(front({"type": "lifespan"}, lifespan.get, send))
        backend = front.backends.backends["ok"]
        await asyncio.wait_for(backend.ready.wait(), 30)
        assert backend.state == "ready", backend.error
        assert front.relays is not None
        reply = types.SimpleNamespace(notify=lambda method, params: asyncio.sleep(0))
        call = asyncio.ensure_future(
            front.relays.serve("tools/call", {"name": "ok__sleep", "arguments": {"seconds": 30}}, reply)
        )
        await asyncio.sleep(0.3)
        started = time.monotonic()
        front.need_core("test")
        try:
            await asyncio.wait_for(call, 5)
            failure = "the call ended without a failure"
        except Refused as failed:
            failure = str(failed.error)
        except TimeoutError:
            failure = "the call was still waiting after 5 s"
        took = time.monotonic() - started
        await lifespan.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(running, 10)
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        return failure, took, backend.pipe.process.returncode

    failure, took, returncode = asyncio.run(body())
    assert "shutting down" in failure, failure
    assert took < 1, took
    assert returncode is not None, "the process handed to the core was stopped"
