"""Scale-out (issue 6): two `--stateless` gateway replicas behind a real nginx, round robin on loopback.

nginx is the distro's package extracted under `.cache/bench/nginx` (`.ci/run` fetches it and exports
`MCPGW_NGINX`; locally `python bench/run.py --ensure-nginx`). Without it the tests skip, but fail under
CI=true. The SDK's own client and the benchmark's load generator talk to nginx; every call must succeed,
both replicas must serve some, and nginx must not change what the gateway lists. No timing is asserted:
the figures belong to `python bench/run.py --scale-out`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests import peers

sys.path.insert(0, str(peers.REPO_ROOT / "bench"))

from mcpbench import nginx as bench_nginx
from mcpbench.clients import Endpoint, call_tool, open_session
from mcpbench.report import scale_out_section
from mcpbench.scaleout import ScalePlan, replica_calls, summarize
from mcpbench.targets import build_gateways

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPLICAS = 2
ECHO = "echo__echo"


@dataclass(frozen=True, slots=True)
class Fleet:
    url: str  # nginx's /mcp
    replica_ports: list[int]

    def replica_url(self, index: int) -> str:
        return f"http://{peers.LOCALHOST}:{self.replica_ports[index]}/mcp"

    def calls_per_replica(self) -> list[int]:
        return [anyio.run(replica_calls, port) for port in self.replica_ports]


def nginx_binary() -> Path:
    binary = bench_nginx.find_nginx()
    if binary is None:
        peers.missing_peer(f"no nginx: set {bench_nginx.ENV_VAR} or run `python bench/run.py --ensure-nginx`")
    return binary


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    binary = nginx_binary()
    root = tmp_path_factory.mktemp("scaleout")
    gateway = build_gateways(root / "build", counts=(1,))[1]
    with contextlib.ExitStack() as stack:
        ports = []
        for index in range(REPLICAS):
            port = peers.free_port()
            command = [sys.executable, str(gateway), "--port", str(port), "--stateless", "--transport", "http"]
            command += ["--log-level", "warning", "--log-dir", str(root / f"logs-{index}")]
            stack.enter_context(peers.run_process(command, port, timeout=60))
            ports.append(port)
        port = peers.free_port()
        proxy = stack.enter_context(bench_nginx.running_nginx(binary, root / "nginx", port, ports))
        try:
            peers.wait_for_port(peers.LOCALHOST, port, 30, process=proxy.popen)
        except (peers.PeerExitedError, TimeoutError) as exc:
            raise RuntimeError(f"nginx did not start:\n{proxy.log_tail()}") from exc
        yield Fleet(f"http://{peers.LOCALHOST}:{port}/mcp", ports)


def test_nginx_config_is_round_robin_with_keepalive_and_no_buffering() -> None:
    conf = bench_nginx.render_config(8080, [9001, 9002])
    assert "server 127.0.0.1:9001" in conf and "server 127.0.0.1:9002" in conf
    assert "least_conn" not in conf and "ip_hash" not in conf and "hash " not in conf  # the default: round robin
    for directive in ("keepalive 32;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";'):
        assert directive in conf
    assert "proxy_buffering off;" in conf and "listen 127.0.0.1:8080;" in conf
    assert "user root;" not in conf and "user root;" in bench_nginx.render_config(1, [2], as_root=True)


def _setup_run(calls: int, failures: int, rps: float, split: list[int]) -> dict[str, Any]:
    cpu = {"gateways": 0.3, "backends": 0.5, "nginx": 0.05, "load generator": 0.15, "machine": 1.9}
    return {"calls": calls, "failures": failures, "throughput_rps": rps, "p50_ms": 20.0, "replica_calls": split} | {
        "cpu_cores": cpu,
        "errors": ["HttpError: HTTP 502"] * failures,
    }


def test_scale_out_summary_checks_and_report() -> None:
    run = {
        "direct-1": _setup_run(1000, 0, 250.0, [1000]),
        "nginx-1": _setup_run(900, 0, 200.0, [900]),
        "nginx-2": _setup_run(1200, 0, 300.0, [600, 600]),
    }
    data = summarize([run, run], ScalePlan(), nginx="nginx/1.22.1")
    assert data["setups"]["nginx-2"]["calls"] == 2400 and data["setups"]["nginx-2"]["replica_calls"] == [1200, 1200]
    assert data["scaling_2_vs_1"] == 1.5
    assert [c["passed"] for c in data["checks"]] == [True, True, True]
    text = scale_out_section(data)
    assert "| 2 replicas behind nginx (round robin) | 2,400 | 0 | 300 | 1.50x |" in text
    assert "0 of 6,200 failed" in text and "50.0% / 50.0%" in text

    lopsided = dict(run, **{"nginx-2": _setup_run(1000, 3, 190.0, [900, 97])})
    checks = summarize([lopsided], ScalePlan(), nginx="nginx")["checks"]
    assert [c["passed"] for c in checks] == [False, False, False]


async def _tools(url: str, mode: Any) -> list[dict[str, Any]]:
    async with Client(url, mode=mode) as client:
        return [t.model_dump(mode="json") for t in (await client.list_tools()).tools]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_tools_list_through_nginx_matches_each_replica(fleet: Fleet, mode: Any) -> None:
    through_nginx = anyio.run(_tools, fleet.url, mode)
    assert [t["name"] for t in through_nginx] == ["echo__big", "echo__echo"]
    for index in range(REPLICAS):
        assert anyio.run(_tools, fleet.replica_url(index), mode) == through_nginx


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_sdk_client_calls_through_nginx_all_succeed_on_both_replicas(fleet: Fleet, mode: Any) -> None:
    calls = 20

    async def run() -> list[str]:
        texts = []
        async with Client(fleet.url, mode=mode) as client:
            for index in range(calls):
                result = await client.call_tool(ECHO, {"text": f"call {index}"})
                assert not result.is_error, result
                texts.append(str(result.structured_content))
        return texts

    before = fleet.calls_per_replica()
    texts = anyio.run(run)
    served = [after - b for after, b in zip(fleet.calls_per_replica(), before, strict=True)]
    assert texts == [str({"result": f"call {index}"}) for index in range(calls)]
    assert sum(served) == calls, served
    assert all(count > 0 for count in served), f"round robin should reach every replica: {served}"


def test_load_generator_sessions_through_nginx_all_succeed_on_both_replicas(fleet: Fleet) -> None:
    sessions, calls = 4, 15

    async def session(index: int, results: list[str]) -> None:
        async with open_session(Endpoint("http", url=fleet.url)) as opened:
            for call in range(calls):
                result = await call_tool(opened, ECHO, {"text": f"{index}.{call}"})
                results.append(result["structuredContent"]["result"])

    async def run() -> list[str]:
        results: list[str] = []
        async with anyio.create_task_group() as tg:
            for index in range(sessions):
                tg.start_soon(session, index, results)
        return results

    before = fleet.calls_per_replica()
    results = anyio.run(run)
    served = [after - b for after, b in zip(fleet.calls_per_replica(), before, strict=True)]
    assert sorted(results) == sorted(f"{i}.{c}" for i in range(sessions) for c in range(calls))
    assert sum(served) == sessions * calls, served
    assert all(count > 0 for count in served), f"round robin should reach every replica: {served}"
