"""Scale-out: `--stateless` gateway replicas behind nginx, driven by the load generator.

Two replicas of the 1-backend gateway (`--stateless --transport http`, each with its own stdio backend)
on free loopback ports, and two nginx instances from `mcpbench.nginx`: one with replica 1 as its only
upstream, one round-robin over both. Each run drives the same load (8 sessions calling echo back to
back) through three setups, in this order:

* `direct-1`: replica 1 directly, no nginx (the reference without the extra hop);
* `nginx-1`:  nginx → replica 1;
* `nginx-2`:  nginx → replicas 1 and 2, round robin.

Per setup: the calls made and failed (a failure is counted, never raised), throughput, p50, the calls
each replica counted in its `/metrics` (`mcpgw_requests_total`, so the split shows the round robin),
and the CPU each kind of process used during the load (gateways, their backends, nginx, the load
generator itself) and the whole machine used (every process, other users' too), in cores busy: on a
2-core machine that is what bounds the scaling.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from mcpbench import procfs
from mcpbench.clients import Endpoint, Session, call_tool, list_tools, open_session
from mcpbench.http11 import HttpConnection
from mcpbench.nginx import ensure_nginx, nginx_version, running_nginx
from mcpbench.peers import REPO_ROOT
from mcpbench.procs import LOCALHOST, ServerProcess, free_port, started, wait_listening
from mcpbench.stats import median_or_none, percentile
from mcpbench.targets import WORK_DIR

ECHO_ARGS = {"text": "hello"}
MAX_ERRORS_KEPT = 5
SETUPS: tuple[tuple[str, str, int, bool], ...] = (
    ("direct-1", "1 replica, direct (no nginx)", 1, False),
    ("nginx-1", "1 replica behind nginx", 1, True),
    ("nginx-2", "2 replicas behind nginx (round robin)", 2, True),
)
"""key, label, replicas, through nginx."""


@dataclass(frozen=True, slots=True)
class ScalePlan:
    sessions: int = 8
    seconds: float = 4.0
    startup_timeout: float = 60.0

    @classmethod
    def quick(cls) -> ScalePlan:
        return cls(seconds=1.5)


@dataclass(slots=True)
class Load:
    """What one setup's load did."""

    calls: int = 0
    failures: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def replica_calls(port: int) -> int:
    """The `tools/call` requests a replica has counted (`mcpgw_requests_total` in its /metrics)."""
    conn = HttpConnection(LOCALHOST, port)
    try:
        response = await conn.request("GET", "/metrics", {})
    finally:
        await conn.aclose()
    total = 0
    for line in response.body.decode().splitlines():
        if line.startswith("mcpgw_requests_total{") and 'method="tools/call"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def wait_ready(server: ServerProcess, port: int, timeout: float) -> None:
    """Until the replica listens and its /healthz says every backend is up."""
    await wait_listening(server, port, timeout)
    deadline = time.perf_counter() + timeout
    while True:
        conn = HttpConnection(LOCALHOST, port)
        try:
            response = await conn.request("GET", "/healthz", {})
        finally:
            await conn.aclose()
        if response.status == 200 and json.loads(response.body).get("status") == "ok":
            return
        if time.perf_counter() > deadline or server.exited() is not None:
            raise RuntimeError(f"replica on {port} not ready: {response.body[:300]!r}\n{server.log_tail()}")
        await anyio.sleep(0.05)


async def drive(url: str, sessions: int, seconds: float, mark: Callable[[], Awaitable[object]] | None = None) -> Load:
    """`sessions` sessions calling echo back to back for `seconds`; failures are counted, not raised.

    Each session is opened and makes one warm-up call first; `mark` runs just before the timed load.
    """
    load = Load()
    endpoint = Endpoint("http", url=url)
    async with contextlib.AsyncExitStack() as stack:
        opened: list[Session] = [await stack.enter_async_context(open_session(endpoint)) for _ in range(sessions)]
        names = [str(t.get("name")) for t in await list_tools(opened[0])]
        echo = next(n for n in names if n.endswith("echo"))
        for session in opened:
            await call_tool(session, echo, ECHO_ARGS)
        if mark is not None:
            await mark()
        t0 = time.perf_counter()
        deadline = t0 + seconds

        async def worker(session: Session) -> None:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                try:
                    await call_tool(session, echo, ECHO_ARGS)
                except Exception as exc:  # a load generator counts every kind of failure
                    load.failures += 1
                    if len(load.errors) < MAX_ERRORS_KEPT:
                        load.errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    load.latencies.append(time.perf_counter() - t)
                load.calls += 1

        async with anyio.create_task_group() as tg:
            for session in opened:
                tg.start_soon(worker, session)
        load.elapsed = time.perf_counter() - t0
    return load


@dataclass(slots=True)
class Fleet:
    """The running processes: the replicas (gateway process, port) and nginx by its number of upstreams."""

    replicas: list[tuple[ServerProcess, int]]
    nginx: dict[int, tuple[ServerProcess, int]]  # upstream count → (nginx, port)


def _cpu(fleet: Fleet) -> dict[str, float]:
    gateways = sum(procfs.cpu_seconds(s.pid) for s, _ in fleet.replicas)
    trees = sum(procfs.tree_cpu_seconds(s.pid) for s, _ in fleet.replicas)
    nginx = sum(procfs.tree_cpu_seconds(s.pid) for s, _ in fleet.nginx.values())
    return {
        "gateways": gateways,
        "backends": trees - gateways,
        "nginx": nginx,
        "load generator": time.process_time(),
        "machine": procfs.machine_busy_seconds(),
    }


async def measure_setup(fleet: Fleet, key: str, replicas: int, via_nginx: bool, plan: ScalePlan) -> dict[str, Any]:
    port = fleet.nginx[replicas][1] if via_nginx else fleet.replicas[0][1]
    ports = [p for _, p in fleet.replicas[:replicas]]
    before: list[int] = []
    cpu0: dict[str, float] = {}

    async def mark() -> None:
        before.extend([await replica_calls(p) for p in ports])
        cpu0.update(_cpu(fleet))

    load = await drive(f"http://{LOCALHOST}:{port}/mcp", plan.sessions, plan.seconds, mark)
    cpu1 = _cpu(fleet)
    counted = [await replica_calls(p) - b for p, b in zip(ports, before, strict=True)]
    cores = {k: (cpu1[k] - cpu0[k]) / load.elapsed for k in cpu0}
    return {
        "setup": key,
        "calls": load.calls,
        "failures": load.failures,
        "throughput_rps": (load.calls - load.failures) / load.elapsed,
        "p50_ms": percentile(load.latencies, 50) * 1e3 if load.latencies else None,
        "replica_calls": counted,
        "cpu_cores": cores,
        "errors": load.errors,
    }


async def _run(gateway: Path, runs: int, plan: ScalePlan, log: Callable[[str], None]) -> dict[str, Any]:
    logs = WORK_DIR / "logs"
    binary = ensure_nginx()
    with contextlib.ExitStack() as stack:
        replicas: list[tuple[ServerProcess, int]] = []
        for index in (1, 2):
            port = free_port()
            command = [sys.executable, str(gateway), "--port", str(port), "--stateless", "--transport", "http"]
            command += ["--log-level", "warning", "--log-dir", str(logs / f"replica-{index}")]
            server = stack.enter_context(started(command, logs / f"scale-replica-{index}.log"))
            replicas.append((server, port))
        nginx: dict[int, tuple[ServerProcess, int]] = {}
        for count in (1, 2):
            port = free_port()
            upstreams = [p for _, p in replicas[:count]]
            proxy = stack.enter_context(running_nginx(binary, WORK_DIR / f"nginx-{count}", port, upstreams))
            nginx[count] = (proxy, port)
        for server, port in replicas:
            await wait_ready(server, port, plan.startup_timeout)
        for server, port in nginx.values():
            await wait_listening(server, port, plan.startup_timeout)
        fleet = Fleet(replicas, nginx)
        per_run: list[dict[str, dict[str, Any]]] = []
        for index in range(runs):
            results: dict[str, dict[str, Any]] = {}
            for key, label, count, via_nginx in SETUPS:
                results[key] = await measure_setup(fleet, key, count, via_nginx, plan)
                r = results[key]
                log(
                    f"  scale-out run {index + 1}/{runs} {label}: {r['calls']} calls, {r['failures']} failed, "
                    f"{r['throughput_rps']:.0f} calls/s, per replica {r['replica_calls']}"
                )
            per_run.append(results)
    return summarize(per_run, plan, nginx=f"{nginx_version(binary)} ({_shown(binary)})")


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO_ROOT))
    return str(path)


def summarize(per_run: Sequence[dict[str, dict[str, Any]]], plan: ScalePlan, *, nginx: str) -> dict[str, Any]:
    """Totals (calls, failures, per-replica calls) over the runs and medians of the rates (pure)."""
    setups: dict[str, dict[str, Any]] = {}
    for key, label, count, via_nginx in SETUPS:
        rows = [run[key] for run in per_run if key in run]
        kinds = sorted({k for r in rows for k in r["cpu_cores"]})
        setups[key] = {
            "label": label,
            "replicas": count,
            "via_nginx": via_nginx,
            "calls": sum(r["calls"] for r in rows),
            "failures": sum(r["failures"] for r in rows),
            "throughput_rps": median_or_none([r["throughput_rps"] for r in rows]),
            "p50_ms": median_or_none([r["p50_ms"] for r in rows]),
            "replica_calls": [sum(r["replica_calls"][i] for r in rows) for i in range(count)],
            "cpu_cores": {k: median_or_none([r["cpu_cores"].get(k) for r in rows]) for k in kinds},
            "errors": [e for r in rows for e in r["errors"]][:MAX_ERRORS_KEPT],
        }
    one, two = setups["nginx-1"]["throughput_rps"], setups["nginx-2"]["throughput_rps"]
    scaling = two / one if one and two else None
    return {
        "plan": {"sessions": plan.sessions, "seconds": plan.seconds, "runs": len(per_run)},
        "nginx": nginx,
        "cores": os.cpu_count(),
        "setups": setups,
        "scaling_2_vs_1": scaling,
        "checks": checks(setups, scaling),
        "runs": list(per_run),
    }


ROUND_ROBIN_SHARE = (0.4, 0.6)


def checks(setups: dict[str, dict[str, Any]], scaling: float | None) -> list[dict[str, Any]]:
    """The scale-out claims, each passed or not (pure)."""
    calls = sum(s["calls"] for s in setups.values())
    failures = sum(s["failures"] for s in setups.values())
    split = setups["nginx-2"]["replica_calls"]
    shares = [c / sum(split) for c in split] if sum(split) else []
    low, high = ROUND_ROBIN_SHARE
    return [
        {
            "check": "every call succeeds (all setups)",
            "measured": f"{failures} of {calls:,} failed",
            "passed": calls > 0 and failures == 0,
        },
        {
            "check": f"round robin: each of 2 replicas serves {low:.0%}-{high:.0%} of the calls",
            "measured": " / ".join(f"{s:.1%}" for s in shares) or "no calls",
            "passed": len(shares) == 2 and all(low <= s <= high for s in shares),
        },
        {
            "check": "throughput rises with the 2nd replica (behind nginx)",
            "measured": "—" if scaling is None else f"{scaling:.2f}x",
            "passed": scaling is not None and scaling > 1.0,
        },
    ]


def run_scale_out(gateway: Path, runs: int, plan: ScalePlan, log: Callable[[str], None]) -> dict[str, Any]:
    """The whole phase: start the fleet, measure every setup `runs` times, stop everything."""
    return anyio.run(_run, gateway, runs, plan, log)
