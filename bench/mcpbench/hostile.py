"""Hostile clients: is a well-behaved client still served, fast, while one attack runs at full strength?

For each attack of `hostile_attacks` a fresh gateway (`bench/configs/hostile.json`: a shared
echo backend and a `session: per-client` one, default caps, started as it ships) goes through
three phases while a well-behaved client repeats initialize + tools/list + tools/call (shared
backend) + DELETE on one keep-alive connection, as MCP clients do, and a newcomer opens a
fresh connection for `/healthz` every second:

* `before`: the well-behaved client alone;
* `during`: the attack running;
* `after`: the attack stopped, once the gateway's fds and processes are back where they were
  (waited for up to `settle` seconds; how long it took is reported).

Figures per phase: the well-behaved cycles (p50/p95/max, failures by kind), the newcomer's
connections admitted, and, sampled every 0.25 s from /proc, the gateway's RSS, open fds and
child processes (with their RSS). The machine is shared with other work: the load average is
noted per attack. The target: the well-behaved p95 under 1 s during every attack, no failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mcpbench import procfs
from mcpbench.hostile_attacks import (
    Attack,
    Strength,
    Tally,
    connection_flood,
    endless_header,
    outcome,
    per_client_flood,
    session_flood,
    slow_body,
    slow_headers,
    unread_sse,
    well_behaved_cycle,
)
from mcpbench.http11 import HttpConnection, HttpError
from mcpbench.peers import BENCH_DIR
from mcpbench.procs import LOCALHOST, free_port, started
from mcpbench.scaleout import wait_ready
from mcpbench.stats import percentile
from mcpbench.targets import BUILD_DIR, WORK_DIR
from mcpbench.wire import RpcError

CONFIG = BENCH_DIR / "configs" / "hostile.json"
EXTRA_FLAGS = "MCPBENCH_GATEWAY_FLAGS"
"""Environment variable: more flags for the gateway (to try other caps), e.g. `--client-spawn-rate 0.5`."""
P95_TARGET = 1.0
SAMPLE_EVERY = 0.25
CYCLE_PAUSE = 0.1
CYCLE_TIMEOUT = 30.0
FD_SLACK = 4
METRIC_FAMILIES = (
    "mcpgw_connections_closed_total",
    "mcpgw_sessions_open",
    "mcpgw_sessions_rejected_total",
    "mcpgw_sessions_ended_total",
    "mcpgw_client_processes",
    "mcpgw_client_processes_closed_total",
    "mcpgw_client_processes_refused_total",
    "mcpgw_backend_rejected_total",
)
"""What `/metrics` shows of the caps at work (lines with a 0 are left out)."""


@dataclass(frozen=True, slots=True)
class HostilePlan:
    before: float = 3.0
    during: float = 20.0
    settle: float = 15.0
    after: float = 3.0
    strength: Strength = field(default_factory=Strength)
    startup_timeout: float = 60.0

    @classmethod
    def quick(cls) -> HostilePlan:
        light = Strength(
            session_flooders=4, per_client_connections=10, slow_connections=100, slow_bodies=100,
            sse_streams=120, flood_connections=60,
        )  # fmt: skip
        return cls(before=1.5, during=5.0, settle=8.0, after=1.5, strength=light)


@dataclass(frozen=True, slots=True)
class AttackSpec:
    key: str
    label: str
    run: Attack
    strength: Callable[[Strength], str]
    note: str = ""


ATTACKS: tuple[AttackSpec, ...] = (
    AttackSpec(
        "session-flood", "session flood (shared backend)", session_flood,
        lambda s: f"bare initializes back to back on {s.session_flooders} connections",
    ),
    AttackSpec(
        "per-client-flood", "session flood, `session: per-client` backend", per_client_flood,
        lambda s: f"{s.per_client_connections} connections: a new session + a call to the per-client backend, "
        "again and again",
        "per-client processes stop after client_idle_timeout (300 s by default), sessions after "
        "session_idle_timeout (900 s), so 'after' is measured with them still up",
    ),
    AttackSpec(
        "slow-headers", "slow headers (slowloris)", slow_headers,
        lambda s: f"{s.slow_connections} connections, a header byte per {s.trickle_every:g} s, reopened when closed",
    ),
    AttackSpec(
        "slow-body", "slow body", slow_body,
        lambda s: f"{s.slow_bodies} connections: a POST /mcp head, then its body a byte per {s.trickle_every:g} s",
    ),
    AttackSpec(
        "endless-header", "endless header line", endless_header,
        lambda s: f"{s.endless_connections} connection(s) sending a header line of up to "
        f"{s.endless_bytes // 2**20} MiB as fast as they can, again and again",
    ),
    AttackSpec(
        "unread-sse", "unread /sse streams", unread_sse,
        lambda s: f"{s.sse_streams} GET /sse whose streams are never read (refused ones retry after 10 s)",
        "the first /sse request loads the SDK core (RSS +35 MiB or so), so 'after' RSS is above 'before'",
    ),
    AttackSpec(
        "connection-flood", "600-connection flood", connection_flood,
        lambda s: f"{s.flood_connections} connections, one session each, calling the shared backend back to back",
    ),
)  # fmt: skip
BY_KEY = {a.key: a for a in ATTACKS}


@dataclass(slots=True)
class Sample:
    rss_mib: float
    fds: int
    children: int
    children_rss_mib: float


@dataclass(slots=True)
class Phase:
    """What one phase saw."""

    latencies: list[float] = field(default_factory=list)
    failures: Tally = field(default_factory=Counter)
    newcomers: Tally = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def most(attr: str) -> float | None:
            return max((getattr(s, attr) for s in self.samples), default=None)

        lat = self.latencies
        return {
            "cycles": len(lat) + sum(self.failures.values()),
            "failures": sum(self.failures.values()),
            "failures_by_kind": dict(self.failures),
            "p50_ms": percentile(lat, 50) * 1e3 if lat else None,
            "p95_ms": percentile(lat, 95) * 1e3 if lat else None,
            "max_ms": max(lat) * 1e3 if lat else None,
            "newcomers": dict(self.newcomers),
            "rss_mib_max": most("rss_mib"),
            "fds_max": most("fds"),
            "children_max": most("children"),
            "children_rss_mib_max": most("children_rss_mib"),
            "last": asdict(self.samples[-1]) if self.samples else None,
        }


def sample(pid: int) -> Sample:
    children = procfs.descendants(pid)
    kids_rss = 0.0
    for child in children:
        with contextlib.suppress(OSError, ValueError):
            kids_rss += procfs.rss_mib(child)
    return Sample(procfs.rss_mib(pid), len(os.listdir(f"/proc/{pid}/fd")), len(children), kids_rss)


class Watch:
    """The well-behaved client, the newcomer and the sampler, recording into the current phase."""

    def __init__(self, port: int, pid: int) -> None:
        self.port = port
        self.pid = pid
        self.phase = Phase()

    async def well_behaved(self) -> None:
        conn = HttpConnection(LOCALHOST, self.port)
        try:
            while True:
                phase = self.phase
                t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(CYCLE_TIMEOUT):
                        await well_behaved_cycle(conn)
                except (OSError, HttpError, RpcError, KeyError, TimeoutError) as exc:
                    phase.failures[outcome(exc)] += 1
                    await conn.aclose()
                else:
                    phase.latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(CYCLE_PAUSE)
        finally:
            await conn.aclose()

    async def newcomer(self) -> None:
        while True:
            phase = self.phase
            conn = HttpConnection(LOCALHOST, self.port)
            try:
                async with asyncio.timeout(5):
                    response = await conn.request("GET", "/healthz", {})
                phase.newcomers[f"HTTP {response.status}"] += 1
            except (OSError, HttpError, TimeoutError) as exc:
                phase.newcomers[type(exc).__name__] += 1
            finally:
                await conn.aclose()
            await asyncio.sleep(1.0)

    async def sampler(self) -> None:
        while True:
            with contextlib.suppress(OSError, ValueError):
                self.phase.samples.append(sample(self.pid))
            await asyncio.sleep(SAMPLE_EVERY)


async def metrics(port: int) -> list[str]:
    """The session, connection and process lines of `/metrics` (read last: it loads the SDK core)."""
    conn = HttpConnection(LOCALHOST, port)
    try:
        response = await conn.request("GET", "/metrics", {})
    finally:
        await conn.aclose()
    return [
        line
        for line in response.body.decode().splitlines()
        if line.split("{", 1)[0].split(" ", 1)[0] in METRIC_FAMILIES and not line.endswith(" 0")
    ]


def _cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far: the gateway, its children, this process (the attack and the clients), the machine."""
    own = procfs.cpu_seconds(pid)
    return {
        "gateway": own,
        "backends": procfs.tree_cpu_seconds(pid) - own,
        "attacker and clients": time.process_time(),
        "machine": procfs.machine_busy_seconds(),
    }


async def settle(pid: int, base: Sample, limit: float) -> float | None:
    """Seconds until the gateway's fds and processes are back to `base` (None: not within `limit`)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        now = sample(pid)
        if now.fds <= base.fds + FD_SLACK and now.children <= base.children:
            return time.perf_counter() - t0
        await asyncio.sleep(SAMPLE_EVERY)
    return None


async def run_attack(spec: AttackSpec, gateway: Path, plan: HostilePlan, log: Callable[[str], None]) -> dict[str, Any]:
    port = free_port()
    command = [sys.executable, str(gateway), "--port", str(port), "--log-level", "warning"]
    command += ["--log-dir", str(WORK_DIR / "logs" / "hostile"), *os.environ.get(EXTRA_FLAGS, "").split()]
    tally: Tally = Counter()
    with started(command, WORK_DIR / "logs" / f"hostile-{spec.key}.log") as server:
        await wait_ready(server, port, plan.startup_timeout)
        watch = Watch(port, server.pid)
        helpers = [asyncio.ensure_future(c) for c in (watch.well_behaved(), watch.newcomer(), watch.sampler())]
        try:
            await asyncio.sleep(plan.before)
            before, watch.phase = watch.phase, Phase()
            base = before.samples[-1]
            cpu0 = _cpu(server.pid)
            attack = asyncio.ensure_future(spec.run(port, plan.strength, tally))
            await asyncio.sleep(plan.during)
            load = os.getloadavg()
            cores = {k: round((v - cpu0[k]) / plan.during, 2) for k, v in _cpu(server.pid).items()}
            attack.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await attack
            during, watch.phase = watch.phase, Phase()
            settled = await settle(server.pid, base, plan.settle)
            watch.phase = Phase()
            await asyncio.sleep(plan.after)
            after = watch.phase
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        counted = await metrics(port)
        if server.exited() is not None:
            raise RuntimeError(f"the gateway exited during {spec.key}:\n{server.log_tail()}")
    during_summary = during.summary()
    p95, failed = during_summary["p95_ms"], during_summary["failures"]
    result: dict[str, Any] = {
        "key": spec.key,
        "label": spec.label,
        "strength": spec.strength(plan.strength),
        "note": spec.note,
        "loadavg_during": load,
        "cores_busy_during": cores,
        "attack": dict(tally),
        "before": before.summary(),
        "during": during_summary,
        "after": after.summary(),
        "baseline": asdict(base),
        "back_to_baseline_s": settled,
        "metrics": counted,
    }
    result["passed"] = p95 is not None and p95 < P95_TARGET * 1e3 and failed == 0
    log(f"  {spec.key}: during p95 {_ms(p95)}, {failed} failed of {during_summary['cycles']}; attack {dict(tally)}")
    return result


def build_gateway() -> Path:
    out = BUILD_DIR / "hostile"
    subprocess.run(
        [sys.executable, "-m", "mcpgw", "build", str(CONFIG), "-o", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return out / "gateway.py"


@contextlib.contextmanager
def open_files(wanted: int) -> Iterator[int]:
    """The soft open-file limit raised towards `wanted` (the attacks hold a socket per connection)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield max(target, soft)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def run_hostile(keys: list[str], plan: HostilePlan, log: Callable[[str], None]) -> dict[str, Any]:
    """Build the gateway, run each attack against a fresh one, return everything (JSON-ready)."""
    gateway = build_gateway()
    results = []
    load_start = os.getloadavg()
    s = plan.strength
    wanted = max(s.slow_connections, s.slow_bodies, s.sse_streams, s.flood_connections) * 2 + 512
    with open_files(wanted) as limit:
        strength = plan.strength
        if limit < wanted:  # scale the connection counts down to what this process may open
            share = (limit - 512) // 2
            strength = replace(
                s, slow_connections=min(s.slow_connections, share), slow_bodies=min(s.slow_bodies, share),
                sse_streams=min(s.sse_streams, share), flood_connections=min(s.flood_connections, share),
            )  # fmt: skip
            log(f"  open-file limit {limit}: connection counts capped at {share}")
        for key in keys:
            log(f"- hostile: {BY_KEY[key].label}")
            results.append(asyncio.run(run_attack(BY_KEY[key], gateway, replace(plan, strength=strength), log)))
    return {
        "plan": {"before": plan.before, "during": plan.during, "settle": plan.settle, "after": plan.after},
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "open_file_limit": limit,
        "p95_target_ms": P95_TARGET * 1e3,
        "attacks": results,
        "passed": all(r["passed"] for r in results),
    }


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _int(value: float | None) -> str:
    return "—" if value is None else f"{int(value):,}"


def _tally(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "—"


def hostile_section(data: dict[str, Any]) -> str:
    """The markdown of the phase (pure)."""
    head = [
        "| attack | p50 / p95 / max during (ms) | failed during | p95 before / after (ms) | "
        "RSS MiB before / peak / after | fds before / peak / after | processes before / peak / after "
        "(their RSS peak, MiB) | newcomers admitted during | back to baseline | p95 < 1 s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    rows = []
    for r in data["attacks"]:
        b, d, a = r["before"], r["during"], r["after"]
        base = r["baseline"]
        admitted = d["newcomers"].get("HTTP 200", 0)
        tried = sum(d["newcomers"].values())
        back = "—" if r["back_to_baseline_s"] is None else f"{r['back_to_baseline_s']:.1f} s"
        last = a["last"] or {}
        rows.append(
            f"| {r['label']} | {_ms(d['p50_ms'])} / {_ms(d['p95_ms'])} / {_ms(d['max_ms'])} | "
            f"{d['failures']} of {d['cycles']} | {_ms(b['p95_ms'])} / {_ms(a['p95_ms'])} | "
            f"{_mib(base['rss_mib'])} / {_mib(d['rss_mib_max'])} / {_mib(last.get('rss_mib'))} | "
            f"{_int(base['fds'])} / {_int(d['fds_max'])} / {_int(last.get('fds'))} | "
            f"{_int(base['children'])} / {_int(d['children_max'])} / {_int(last.get('children'))} "
            f"({_mib(d['children_rss_mib_max'])}) | {admitted} of {tried} | {back} | "
            f"{'**pass**' if r['passed'] else '**FAIL**'} |"
        )
    details = []
    for r in data["attacks"]:
        load = ", ".join(f"{v:.2f}" for v in r["loadavg_during"])
        lines = [
            f"**{r['label']}**: {r['strength']}. Load average at the attack's end: {load}; cores busy "
            f"during it: {', '.join(f'{k} {v:.2f}' for k, v in r['cores_busy_during'].items())}.",
            f"- the attack got: {_tally(r['attack'])}",
            f"- well-behaved failures during: {_tally(r['during']['failures_by_kind'])}",
        ]
        if r["note"]:
            lines.append(f"- note: {r['note']}")
        if r["metrics"]:
            lines.append("- `/metrics` at the end: " + "; ".join(f"`{m}`" for m in r["metrics"]))
        details.append("\n".join(lines))
    plan = data["plan"]
    intro = (
        f"Each attack against a fresh gateway with default caps (`bench/configs/hostile.json`), "
        f"{plan['before']:g} s before, {plan['during']:g} s during, up to {plan['settle']:g} s to settle, "
        f"{plan['after']:g} s after. The well-behaved client: initialize + tools/list + tools/call (shared "
        f"backend) + DELETE on one keep-alive connection, back to back with a {CYCLE_PAUSE:g} s pause; a "
        f"newcomer opens a fresh connection for `/healthz` every second. Load average at start "
        f"{', '.join(f'{v:.2f}' for v in data['loadavg_start'])}, at the end "
        f"{', '.join(f'{v:.2f}' for v in data['loadavg_end'])} (the machine is shared). "
        f"Open-file limit of the attacker: {data['open_file_limit']:,}."
    )
    return "\n\n".join([intro, "\n".join([*head, *rows]), *details])
