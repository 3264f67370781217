"""The benchmark harness (bench/) cannot rot silently: its pure functions, and a tiny smoke of one target.

No timing is asserted here: the numbers belong to `python bench/run.py`, not to the test suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import anyio.abc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from mcpbench import authcost, goals, report, stats, wire
from mcpbench.figures import FIGURES
from mcpbench.http11 import HttpConnection
from mcpbench.measure import Plan, one_backend
from mcpbench.profile import summarize_collapsed, summarize_importtime
from mcpbench.sidebyside import side_by_side, turns, with_hops
from mcpbench.slowload import backend_tool
from mcpbench.targets import BY_KEY, build_gateways, launch


def test_percentile_median_ratio_best() -> None:
    assert stats.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert stats.percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    assert stats.median_or_none([None, 1.0, 3.0]) == 2.0
    assert stats.median_or_none([None]) is None
    assert stats.ratio(3.0, 2.0) == 1.5
    assert stats.ratio(1.0, 0.0) is None and stats.ratio(None, 1.0) is None
    assert stats.best([2.0, None, 1.0], higher_is_better=True) == 2.0
    assert stats.best([2.0, None, 1.0], higher_is_better=False) == 1.0


def test_sse_parsing_and_response_bodies() -> None:
    parser = wire.SseParser()
    assert parser.feed(b"event: endpoint\r\ndata: /messages/?session_id=1\r\n") == []
    events = parser.feed(b"\r\nid: 7\n\n" + b'event: message\ndata: {"id": 1}\n\n')
    assert events == [wire.SseEvent("endpoint", "/messages/?session_id=1"), wire.SseEvent("message", '{"id": 1}')]
    sse_body = b'id: 0\ndata:\n\nevent: message\ndata: {"jsonrpc":"2.0","id":2,"result":{}}\n\n'
    assert wire.messages_in_body("text/event-stream", sse_body) == [{"jsonrpc": "2.0", "id": 2, "result": {}}]
    assert wire.messages_in_body("application/json", b'{"id":3,"result":{}}') == [{"id": 3, "result": {}}]
    assert wire.messages_in_body("application/json", b"") == []
    with pytest.raises(wire.RpcError):
        wire.result_of({"id": 1, "error": {"code": -1, "message": "no"}})
    assert wire.tool_error({"isError": True, "content": [{"type": "text", "text": "bad"}]})


def _table() -> goals.Table:
    gateway = {"cpu_us_per_call": 400.0, "echo_p50_ms": 2.0, "throughput_rps": 300.0, "big_p50_ms": 7.0}
    return {
        "mcpgw-mcp": dict(gateway, rss5_mib=70.0, echo_hop_ms=0.2, p99_64_fast_ms=10.0, p99_64_mixed_ms=11.0),
        "mcpgw-sse": {"cpu_us_per_call": 500.0, "big_p50_ms": 6.0},
        "direct-stdio": {"echo_p50_ms": 1.0, "big_p50_ms": 5.0, "cpu_us_per_call": 1000.0},
        "direct-http-json": {"echo_p50_ms": 2.5},
        "fastmcp": {"throughput_rps": 100.0, "echo_p50_ms": 8.0},
        "mcp-proxy": {"throughput_rps": 250.0, "echo_p50_ms": 4.0},
    }


def test_goals_pass_fail_and_missing() -> None:
    verdicts = {v.goal.text: v for v in goals.judge_all(_table())}
    assert verdicts["gateway CPU per forwarded call ≤ 250 µs, sequential"].passed is False
    assert verdicts["hop over direct stdio, echo p50 (raw client) ≤ 0.25 ms"].passed is True
    assert verdicts["throughput ≥ 3x mcp-proxy (8 sessions)"].passed is False  # 300 < 750
    assert verdicts["RSS ≤ 60 MiB with 5 backends after every method"].passed is False
    big = verdicts["256 KB result ≤ 1.1x direct, in every run"]
    assert big.passed is False and big.limit == pytest.approx(5.5)
    sse = verdicts["/sse: CPU per call ≤ 1.3x /mcp"]  # against the gateway's own /mcp figure
    assert sse.passed is True and sse.measured == 500.0 and sse.limit == pytest.approx(520.0)
    slow = verdicts["64 sessions: 2 slow backends raise the fast ones' p99 ≤ 20%"]  # another figure as reference
    assert slow.passed is True and slow.limit == pytest.approx(12.0)
    assert verdicts["cold start → tools/list ≤ 0.5 s, 1 backend"].passed is None  # not measured
    assert verdicts["auth + policy cost ≤ 50 µs CPU per call"].passed is None
    with_auth: goals.Table = {"mcpgw-mcp": {"auth_cpu_us": 30.0}}
    assert goals.judge(authcost.GOAL, with_auth).passed is True


def test_a_goal_over_every_run_fails_when_one_run_misses() -> None:
    goal = next(g for g in goals.GOALS if g.every_run)
    good: goals.Table = {"mcpgw-mcp": {"big_p50_ms": 5.0}, "direct-stdio": {"big_p50_ms": 5.0}}
    bad: goals.Table = {"mcpgw-mcp": {"big_p50_ms": 6.0}, "direct-stdio": {"big_p50_ms": 5.0}}
    assert goals.judge(goal, good, [good, good]).passed is True
    assert goals.judge(goal, good, [good, bad]).passed is False


def test_report_renders_ratios_and_verdicts() -> None:
    table = _table()
    labels = {key: key for key in table}
    echo = next(f for f in FIGURES if f.key == "echo_p50_ms")
    assert report.ratios(table, echo, "mcpgw-mcp") == (2.0, 0.5)  # direct 1.0 ms, best peer 4.0 ms
    verdicts = goals.judge_all(table)
    text = report.markdown(table, labels, verdicts, {"date": "today", "machine": "m", "runs": 1})
    assert "| echo p50 (ms) |" in text and "2.00x / 0.50x" in text
    assert "| echo p50, SDK client (ms) |" in text  # every SDK-client figure right after the raw client's
    assert "**pass**" in text and "**FAIL**" in text and "n/a" in text
    data = report.as_json(table, [table], labels, verdicts, {"runs": 1}, [])
    assert data["ratios"]["mcpgw-mcp"]["echo_p50_ms"] == {"vs_direct": 2.0, "vs_best_peer": 0.5}
    assert [g["passed"] for g in data["goals"]][3:5] == [True, False]


def test_hops_are_each_targets_echo_p50_less_direct_stdios_with_the_same_client() -> None:
    table: goals.Table = {
        "direct-stdio": {"echo_p50_ms": 1.0, "echo_p50_ms_sdk": 2.0},
        "mcpgw-mcp": {"echo_p50_ms": 1.25, "echo_p50_ms_sdk": 3.0},
    }
    hops = with_hops(table)
    assert hops["mcpgw-mcp"]["echo_hop_ms"] == pytest.approx(0.25)
    assert hops["mcpgw-mcp"]["echo_hop_ms_sdk"] == pytest.approx(1.0)
    assert hops["direct-stdio"]["echo_hop_ms"] == 0.0


def test_slow_load_finds_each_backends_tool_by_its_prefix() -> None:
    names = ["b1__echo", "b1__slow", "b4__echo", "b4__slow"]
    assert backend_tool(names, "b4", "slow") == "b4__slow"
    with pytest.raises(LookupError):
        backend_tool(names, "b2", "echo")


def test_profile_summaries() -> None:
    collapsed = [
        "main (gateway.py:1);select (selectors.py:4) 3",
        "main (gateway.py:1);write (anyio/streams/memory.py:9) 1",
    ]
    summary = summarize_collapsed(collapsed)
    assert "4 samples" in summary and " 75.0%  selectors.py:select" in summary
    assert "100.0%  gateway.py:main" in summary and " 25.0%  anyio" in summary
    importtime = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       100 |       2000 | mcp\n"
        "import time:       500 |        500 |   mcp.types\n"
    )
    assert "2.0 ms  mcp" in summarize_importtime(importtime)
    assert "mcp.types" not in summarize_importtime(importtime)


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_quick_smoke_of_the_gateway_target(tmp_path: Path) -> None:
    """Build the 1-backend bench gateway and take every 1-backend figure once, with tiny counts."""
    gateways = build_gateways(tmp_path, counts=(1,))
    plan = Plan(calls=5, warmup=2, big_calls=2, sessions=2, load_seconds=0.3, list_calls=1, sdk_load_seconds=0.3)

    async def smoke() -> dict[str, float | None]:
        async with launch(BY_KEY["mcpgw-mcp"], 1, gateways) as running:
            return await one_backend(running, plan)

    figures = anyio.run(smoke)
    for key in ("throughput_rps", "rss1_mib", "throughput_rps_sdk", "rss1_mib_sdk"):  # the raw and the SDK client
        value = figures.get(key)
        assert value is not None and value >= 0, key


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_side_by_side_measures_every_target_in_turns(tmp_path: Path) -> None:
    """The gateway and the direct stdio backend, running at once, each get their sequential figures."""
    gateways = build_gateways(tmp_path, counts=(1,))
    plan = Plan(calls=6, warmup=2, big_calls=2, sdk_calls=6)
    errors: list[str] = []
    targets = [BY_KEY["direct-stdio"], BY_KEY["mcpgw-mcp"]]
    table = anyio.run(side_by_side, targets, gateways, plan, errors)
    assert not errors and set(table) == {"direct-stdio", "mcpgw-mcp"}
    for figures in table.values():
        for key in ("cpu_us_per_call", "echo_p50_ms", "echo_p99_ms", "big_p50_ms", "echo_p50_ms_sdk", "big_p50_ms_sdk"):
            value = figures.get(key)
            assert value is not None and value >= 0, key


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_auth_cost_phase_drives_both_gateways_and_checks_the_auth_one(tmp_path: Path) -> None:
    """The plain and the auth + policy + limits gateway, a token from the bench's own issuer, a few turns each."""
    plan = authcost.AuthPlan(rounds=2, block=5, sdk_block=2, warmup=2)
    data = anyio.run(authcost.measure, plan, lambda _: None, tmp_path)
    assert [(lane["gateway"], lane["driver"]) for lane in data["lanes"]] == [
        ("plain", "raw"), ("plain", "sdk"), ("auth", "raw"), ("auth", "sdk"),
    ]  # fmt: skip
    assert all(check["passed"] for check in data["checks"]), data["checks"]
    for key in ("auth_cpu_us", "auth_p50_us", "auth_cpu_us_sdk", "auth_p50_us_sdk"):
        assert data["figures"].get(key) is not None, key
    assert data["issuer_requests"][:2] == ["/.well-known/oauth-authorization-server", "/jwks"]
    text = authcost.auth_cost_section([data])
    assert "| auth + policy cost ≤ 50 µs CPU per call |" in text and "| 1 | auth + policy + limits | raw | 10 |" in text


def test_auth_cost_counts_metric_families() -> None:
    lines = ['mcpgw_auth_accepted_total{kind="oauth"} 12', 'mcpgw_auth_accepted_total{kind="static"} 3']
    assert authcost.metric_total([*lines, "mcpgw_auth_accepted_totals 9"], "mcpgw_auth_accepted_total") == 15


def test_side_by_side_turns_rotate_so_no_target_always_goes_first() -> None:
    assert turns(["a", "b", "c"], 4) == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert turns([], 3) == []


def test_http11_sends_again_on_a_kept_alive_connection_the_server_closed() -> None:
    """uvicorn closes a connection idle for 5 s; the next request goes out on a new one, not as an error."""

    async def main() -> list[int]:
        served: list[int] = []

        async def serve(client: anyio.abc.SocketStream) -> None:
            async with client:
                await client.receive()
                served.append(len(served) + 1)
                await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # then closes, as if idle

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            connection = HttpConnection("127.0.0.1", port)
            statuses = [(await connection.request("POST", "/", {}, b"x")).status for _ in range(2)]
            await connection.aclose()
            tg.cancel_scope.cancel()
        assert served == [1, 2], "the second request must reach the server on a new connection"
        return statuses

    assert anyio.run(main) == [200, 200]


def test_http11_reads_bodies_that_arrive_in_pieces_by_length_and_chunked() -> None:
    """A body split across writes (part of it in the head's packet) is read whole, and a chunked one too."""
    body = bytes(range(256)) * 2048  # 512 KB, every byte value

    async def main() -> list[bytes | bytearray]:
        async def serve(client: anyio.abc.SocketStream) -> None:
            async with client:
                await client.receive()
                await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:1000])
                for start in range(1000, len(body), 100_000):
                    await anyio.sleep(0.01)
                    await client.send(body[start : start + 100_000])
                await client.receive()
                chunked = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in (body[:7], body[7:300_000], body[300_000:]))
                await client.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked[:5])
                await anyio.sleep(0.01)
                await client.send(chunked[5:] + b"0\r\n\r\n")

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            connection = HttpConnection("127.0.0.1", listener.extra(anyio.abc.SocketAttribute.local_port))
            bodies = [(await connection.request("POST", "/", {}, b"x")).body for _ in range(2)]
            await connection.aclose()
            tg.cancel_scope.cancel()
        return bodies

    assert anyio.run(main) == [body, body]


def test_the_hostile_report_reads_its_figures() -> None:
    from mcpbench.hostile import hostile_section
    from mcpbench.hostile_attacks import outcome, status_of
    from mcpbench.http11 import HttpError

    assert status_of(b"HTTP/1.1 408 Request Timeout\r\n") == "HTTP 408" and status_of(b"") == "closed"
    assert outcome(HttpError("HTTP 503: b'busy'")) == "HTTP 503"
    assert outcome(wire.RpcError("JSON-RPC error: {'code': -32003, 'message': 'x'}")) == "-32003"
    phase = {
        "cycles": 10, "failures": 1, "failures_by_kind": {"HTTP 503": 1}, "p50_ms": 12.0, "p95_ms": 1500.0,
        "max_ms": 2000.0, "newcomers": {"HTTP 200": 3, "HTTP 503": 1}, "rss_mib_max": 80.0, "fds_max": 40,
        "children_max": 5, "children_rss_mib_max": 300.0,
        "last": {"rss_mib": 75.0, "fds": 20, "children": 2, "children_rss_mib": 140.0},
    }  # fmt: skip
    attack = {
        "key": "slow-headers", "label": "slow headers", "strength": "3 connections", "note": "", "passed": False,
        "loadavg_during": (1.0, 1.0, 1.0), "cores_busy_during": {"gateway": 0.5}, "attack": {"HTTP 408": 3},
        "before": phase, "during": phase, "after": phase,
        "baseline": {"rss_mib": 70.0, "fds": 19, "children": 2, "children_rss_mib": 136.0},
        "back_to_baseline_s": 0.5, "metrics": ['mcpgw_connections_closed_total{reason="header_timeout"} 3'],
    }  # fmt: skip
    data = {
        "plan": {"before": 3, "during": 20, "settle": 15, "after": 3}, "loadavg_start": (1.0, 1.0, 1.0),
        "loadavg_end": (2.0, 2.0, 2.0), "open_file_limit": 20000, "attacks": [attack],
    }  # fmt: skip
    text = hostile_section(data)
    assert "| slow headers | 12 / 1,500 / 2,000 | 1 of 10 | 1,500 / 1,500 | 70 / 80 / 75 | 19 / 40 / 20 |" in text
    assert "| 3 of 4 | 0.5 s | **FAIL** |" in text and "HTTP 408 3" in text
