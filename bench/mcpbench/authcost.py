"""What `gateway.auth`, `gateway.policy` and `gateway.limits` cost per call: the same gateway with and without them.

Why: a team's gateway checks each request's access token, asks the compiled policy and takes a token
from a rate limit's bucket. The target: together at most 50 µs of the gateway's CPU per forwarded call
over the same gateway without them; and a gateway without them must not pay for them at all.

Two gateways are built from the same backend (`servers/echo_server.py`, 2 tools, as `configs/one.json`):
`plain`, and `auth` with an OAuth resource server (`gateway.auth`: the issuer, a required scope), a policy
of four rules (two of them match the caller: one denies `big`, the next allows `echo`) and a generous
per-caller rate limit on every tool. The issuer is this process: a tiny HTTP server on loopback serving
RFC 8414 metadata and a JWKS with a fresh RSA key, found by the gateway's own discovery; the access token
is an RS256 JWT minted with PyJWT for the gateway's `/mcp` URL (RFC 8707 audience).

Both gateways run at once; a session per gateway and client (the raw client, and the `mcp` SDK's) is
driven in alternating turns, the order rotated each round (`sidebyside.turns`), so the shared machine's
slow spells fall on both alike. The gateway's CPU is read around each turn from the kernel's per-process
CPU clock (to the nanosecond: `/proc/<pid>/stat` counts 10 ms ticks, too coarse for tens of µs a call),
so each round also gives a paired difference, whose spread the report shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from mcpbench import peers, procfs
from mcpbench.clients import DRIVERS, Driver, Endpoint, Session, call_tool, list_tools, open_session
from mcpbench.goals import GOALS, judge
from mcpbench.http11 import HttpConnection
from mcpbench.measure import ECHO_ARGS, Figures, keyed, timed, tool_named
from mcpbench.procs import LOCALHOST, ServerProcess, free_port, started, wait_listening
from mcpbench.sidebyside import turns
from mcpbench.stats import median_or_none, percentile
from mcpbench.targets import BUILD_DIR, ECHO_SERVER, WORK_DIR
from mcpbench.wire import JSON, RpcError

SCOPE = "mcp:tools"
CLIENT_ID = "bench-agent"
DENIED_TOOL = "echo__big"
GATEWAYS = ("plain", "auth")
LABELS = {"plain": "plain", "auth": "auth + policy + limits"}
GOAL = next(goal for goal in GOALS if goal.figure == "auth_cpu_us")
"""Judged on the raw client's figure: the SDK client's own GET stream and DELETE add requests per session,
not per call, and its turns are shorter."""

RULES: list[dict[str, Any]] = [
    {
        "name": "ops",
        "description": "Operators may use everything (not the benchmark's caller).",
        "allow": {"tools": ["*"], "prompts": ["*"], "resources": ["*"]},
        "callers": {"claims": {"groups": ["ops"]}},
    },
    {
        "name": "no-big-for-agents",
        "description": "The agent never gets the 256 KB tool.",
        "deny": {"tools": [DENIED_TOOL]},
        "callers": {"client_id": [CLIENT_ID]},
    },
    {"name": "tools", "allow": {"tools": ["echo__*"]}, "callers": {"scopes": [SCOPE]}},
    {"name": "monitor", "allow": {"tools": ["echo__echo"]}, "callers": {"static": True}},
]
LIMITS: dict[str, Any] = {"rate": [{"name": "generous", "tools": ["*"], "per": "caller", "rate": 100000}]}


@dataclass(frozen=True, slots=True)
class AuthPlan:
    rounds: int = 40
    block: int = 100  # the raw client's echo calls per turn
    sdk_block: int = 15  # the SDK client's: it costs 2-3 ms a call itself
    warmup: int = 100
    drivers: tuple[Driver, ...] = DRIVERS
    startup_timeout: float = 60.0

    @classmethod
    def quick(cls, drivers: tuple[Driver, ...] = DRIVERS) -> AuthPlan:
        return cls(rounds=10, block=50, sdk_block=5, warmup=20, drivers=drivers)


class LocalIssuer:
    """The public half of an OAuth authorization server, on loopback: RFC 8414 metadata and a JWKS holding
    one fresh RSA key; `mint` signs access tokens with its private half."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer((LOCALHOST, 0), self._handler())
        self.url = f"http://{LOCALHOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="issuer", daemon=True)

    def __enter__(self) -> LocalIssuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def documents(self) -> dict[str, JSON]:
        jwk = {**RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True), "kid": self.kid, "use": "sig"}
        metadata = {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "token_endpoint": f"{self.url}/token",
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": [SCOPE],
        }
        return {"/.well-known/oauth-authorization-server": metadata, "/jwks": {"keys": [jwk]}}

    def mint(self, audience: str, lifetime: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url, "sub": CLIENT_ID, "client_id": CLIENT_ID, "aud": audience, "scope": SCOPE,
            "iat": now, "exp": now + lifetime, "jti": secrets.token_hex(8),
        }  # fmt: skip
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                document = issuer.documents().get(self.path)
                body = json.dumps(document).encode() if document is not None else b'{"error": "not_found"}'
                self.send_response(200 if document is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def configs(issuer: str) -> dict[str, dict[str, Any]]:
    """The two gateways' configs: the same backend; `auth` adds `gateway.auth`, `.policy` and `.limits` (pure)."""
    servers = {"echo": {"type": "stdio", "command": "python", "args": [str(ECHO_SERVER), "--tools", "2"]}}
    gateway = {"auth": {"issuer": issuer, "scopes": [SCOPE]}, "policy": {"rules": RULES}, "limits": LIMITS}
    return {"plain": {"mcpServers": servers}, "auth": {"mcpServers": servers, "gateway": gateway}}


def build(issuer: str, root: Path = BUILD_DIR) -> dict[str, Path]:
    """`mcpgw build` of both configs, at once; the path of each gateway.py."""
    builds: dict[str, tuple[Path, subprocess.Popen[bytes]]] = {}
    for name, config in configs(issuer).items():
        path = WORK_DIR / "authcost" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2) + "\n")
        out = root / f"authcost-{name}"
        command = [sys.executable, "-m", "mcpgw", "build", str(path), "-o", str(out)]
        builds[name] = out, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    built: dict[str, Path] = {}
    for name, (out, process) in builds.items():
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"mcpgw build of the {name} gateway failed:\n{stderr.decode(errors='replace')}")
        built[name] = out / "gateway.py"
    return built


@dataclass(slots=True)
class _Lane:
    gateway: str
    driver: Driver
    session: Session
    echo: str
    pid: int
    samples: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    turn_cpu_us: list[float] = field(default_factory=list)  # the gateway's CPU per call in each turn


def _crypto_loaded(pid: int) -> bool:
    """Whether the process has mapped `cryptography`'s native module (what PyJWT's RSA checks need)."""
    with contextlib.suppress(OSError):
        return "cryptography" in Path(f"/proc/{pid}/maps").read_text()
    return False


async def _http(url: str, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> tuple[int, str]:
    conn = HttpConnection(LOCALHOST, int(url.rsplit(":", 1)[1].split("/", 1)[0]))
    try:
        response = await conn.request(method, path, dict(headers), body)
    finally:
        await conn.aclose()
    return response.status, bytes(response.body).decode(errors="replace")


def _families(metrics: str, prefixes: tuple[str, ...]) -> list[str]:
    return [line for line in metrics.splitlines() if line.startswith(prefixes)]


def metric_total(lines: list[str], family: str) -> float:
    """The sum of a counter family's samples in `/metrics` lines (pure)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.split("{", 1)[0].split(" ", 1)[0] == family)


async def _policy_refuses(endpoint: Endpoint) -> str:
    """What the auth gateway answers the caller's call of the tool its policy denies."""
    async with open_session(endpoint) as session:
        try:
            await session.call("tools/call", {"name": DENIED_TOOL, "arguments": {}})
        except RpcError as exc:
            return str(exc)
    return "answered"


async def measure(
    plan: AuthPlan, log: Callable[[str], None] = lambda _: None, build_root: Path = BUILD_DIR
) -> dict[str, Any]:
    """Build, start and drive both gateways; every figure, check and count of one A/B run (JSON-ready)."""
    loadavg_start = os.getloadavg()
    with LocalIssuer() as issuer:
        log("  building the plain and the auth + policy + limits gateways ...")
        built = await anyio.to_thread.run_sync(build, issuer.url, build_root)
        async with contextlib.AsyncExitStack() as stack:
            servers: dict[str, ServerProcess] = {}
            endpoints: dict[str, Endpoint] = {}
            for name in GATEWAYS:
                port = free_port()
                command = [sys.executable, str(built[name]), "--port", str(port), "--log-level", "warning"]
                log_path = WORK_DIR / "logs" / f"authcost-{name}.log"
                servers[name] = stack.enter_context(started(command, log_path, cwd=peers.REPO_ROOT))
                await wait_listening(servers[name], port, plan.startup_timeout)
                url = f"http://{LOCALHOST}:{port}/mcp"
                token = {"Authorization": f"Bearer {issuer.mint(url)}"} if name == "auth" else {}
                endpoints[name] = Endpoint("http", url=url, headers=token)
            lanes: dict[tuple[str, Driver], _Lane] = {}
            listed: dict[str, list[str]] = {}
            for name in GATEWAYS:
                for driver in plan.drivers:
                    session = await stack.enter_async_context(open_session(endpoints[name], driver))
                    names = [str(t.get("name")) for t in await list_tools(session)]
                    listed[name] = names
                    lane = _Lane(name, driver, session, tool_named(names, "echo"), servers[name].pid)
                    await timed(plan.warmup if driver == "raw" else max(1, plan.warmup // 10), _echo(lane))
                    lanes[name, driver] = lane
            log(f"  {plan.rounds} rounds: {', '.join(f'{g} ({d} client)' for g, d in lanes)} in turns")
            busy0, t0 = procfs.machine_busy_seconds(), time.perf_counter()
            for order in turns(list(lanes), plan.rounds):
                for key in order:
                    lane = lanes[key]
                    cpu0 = procfs.process_cpu_seconds(lane.pid)
                    samples = await timed(plan.block if lane.driver == "raw" else plan.sdk_block, _echo(lane))
                    spent = procfs.process_cpu_seconds(lane.pid) - cpu0
                    lane.samples += samples
                    lane.cpu_seconds += spent
                    lane.turn_cpu_us.append(spent / len(samples) * 1e6)
            cores_busy = (procfs.machine_busy_seconds() - busy0) / (time.perf_counter() - t0)
            rss = {name: procfs.rss_mib(server.pid) for name, server in servers.items()}
            crypto = {name: _crypto_loaded(server.pid) for name, server in servers.items()}  # before /metrics (SDK)
            no_token = (await _http(endpoints["auth"].url, "POST", "/mcp", {"Content-Type": "application/json"}))[0]
            refused = await _policy_refuses(endpoints["auth"])
            _, auth_metrics = await _http(endpoints["auth"].url, "GET", "/metrics", endpoints["auth"].headers)
            _, plain_metrics = await _http(endpoints["plain"].url, "GET", "/metrics", {})
    families = ("mcpgw_auth_", "mcpgw_policy_", "mcpgw_rate_limited_", "mcpgw_results_capped_")
    fast = "mcpgw_fast_path_requests_total"
    return result(
        lanes=[_lane_json(lane) for lane in lanes.values()],
        plan=plan,
        listed=listed,
        no_token_status=no_token,
        refused=refused,
        auth_metrics=[line for line in _families(auth_metrics, families) if not line.endswith(" 0")],
        plain_metrics=_families(plain_metrics, families),
        rss_mib=rss,
        crypto_loaded=crypto,
        fast_path_requests={
            name: metric_total(_families(page, (fast,)), fast)
            for name, page in (("plain", plain_metrics), ("auth", auth_metrics))
        },
        issuer_requests=list(issuer.requests),
        machine={"loadavg_start": loadavg_start, "loadavg_end": os.getloadavg(), "cores_busy": cores_busy},
    )


def _echo(lane: _Lane) -> Callable[[], Any]:
    return lambda: call_tool(lane.session, lane.echo, ECHO_ARGS)


def _lane_json(lane: _Lane) -> dict[str, Any]:
    return {
        "gateway": lane.gateway,
        "driver": lane.driver,
        "calls": len(lane.samples),
        "cpu_us_per_call": lane.cpu_seconds / len(lane.samples) * 1e6,
        "p50_ms": percentile(lane.samples, 50) * 1e3,
        "p99_ms": percentile(lane.samples, 99) * 1e3,
        "turn_cpu_us": lane.turn_cpu_us,
    }


def differences(lanes: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per client: the auth gateway's CPU per call and p50 less the plain one's, and the spread of the
    paired per-round CPU differences (pure)."""
    by = {(lane["gateway"], lane["driver"]): lane for lane in lanes}
    out: dict[str, dict[str, float]] = {}
    for driver in DRIVERS:
        plain, auth = by.get(("plain", driver)), by.get(("auth", driver))
        if plain is None or auth is None:
            continue
        paired = [a - p for a, p in zip(auth["turn_cpu_us"], plain["turn_cpu_us"], strict=False)]
        out[driver] = {
            "cpu_us": auth["cpu_us_per_call"] - plain["cpu_us_per_call"],
            "p50_us": (auth["p50_ms"] - plain["p50_ms"]) * 1e3,
            "rounds_p25_us": percentile(paired, 25),
            "rounds_median_us": percentile(paired, 50),
            "rounds_p75_us": percentile(paired, 75),
        }
    return out


def result(**data: Any) -> dict[str, Any]:
    """The run's data with its differences, figures and checks added (pure)."""
    plan: AuthPlan = data.pop("plan")
    diffs = differences(data["lanes"])
    auth_calls = {lane["driver"]: lane["calls"] for lane in data["lanes"] if lane["gateway"] == "auth"}
    accepted = metric_total(data["auth_metrics"], "mcpgw_auth_accepted_total")
    limited = metric_total(data["auth_metrics"], "mcpgw_rate_limited_total")
    denied = metric_total(data["auth_metrics"], "mcpgw_policy_denied_total")
    echo_only = sorted(data["listed"].get("auth", [])) == ["echo__echo"]
    checks = [
        ("auth gateway: a request without a token gets 401", f"HTTP {data['no_token_status']}",
         data["no_token_status"] == 401),
        ("auth gateway: tools/list shows the caller only what the policy allows", ", ".join(data["listed"]["auth"]),
         echo_only),
        (f"auth gateway: calling {DENIED_TOOL} is refused by the policy (-32010)", data["refused"][:120],
         "-32010" in data["refused"] and "no-big-for-agents" in data["refused"]),
        ("auth gateway: every measured call was let in by the token, none limited",
         f"{accepted:,.0f} requests accepted, {sum(auth_calls.values()):,} calls measured, "
         f"{limited:,.0f} rate-limited, {denied:,.0f} denied",
         accepted >= sum(auth_calls.values()) and limited == 0 and denied == 1),
        ("plain gateway: no auth, policy or limits at work (none of their metrics; PyJWT's cryptography not "
         "mapped after the calls)",
         f"{len(data['plain_metrics'])} metric lines, cryptography mapped: {data['crypto_loaded']['plain']}",
         not data["plain_metrics"] and not data["crypto_loaded"]["plain"]),
    ]  # fmt: skip
    return {
        **data,
        "plan": asdict(plan),
        "differences": diffs,
        "figures": figures(diffs),
        "checks": [{"check": c, "measured": m, "passed": bool(p)} for c, m, p in checks],
    }


def figures(diffs: Mapping[str, Mapping[str, float]]) -> Figures:
    """The run's figures for the main table (the gateway's column): the cost of auth + policy per call (pure)."""
    out: Figures = {}
    for driver in DRIVERS:
        if (diff := diffs.get(driver)) is None:
            continue
        out[keyed("auth_cpu_us", driver)] = diff["cpu_us"]
        out[keyed("auth_p50_us", driver)] = diff["p50_us"]
    return out


def median_figures(runs: list[dict[str, Any]]) -> Figures:
    keys = {key for run in runs for key in run["figures"]}
    return {key: median_or_none([run["figures"].get(key) for run in runs]) for key in sorted(keys)}


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def auth_cost_section(runs: list[dict[str, Any]]) -> str:
    """The phase's report: each run's lanes and differences, the median against the target, the checks (pure)."""
    lines = [
        _row(["run", "gateway", "client", "calls", "gateway CPU/call (µs)", "p50 (ms)", "p99 (ms)"]),
        _row(["---:", "---", "---", "---:", "---:", "---:", "---:"]),
    ]
    for index, run in enumerate(runs, 1):
        for lane in run["lanes"]:
            lines.append(
                _row([
                    str(index), LABELS[lane["gateway"]], lane["driver"], f"{lane['calls']:,}",
                    _num(lane["cpu_us_per_call"]), _num(lane["p50_ms"], 2), _num(lane["p99_ms"], 2),
                ])
            )  # fmt: skip
    diffs = [
        _row(["run", "client", "CPU/call over plain (µs)", "paired rounds: p25 / median / p75 (µs)",
              "p50 over plain (µs)", "load average at start / end", "cores busy (machine)"]),
        _row(["---:", "---", "---:", "---:", "---:", "---", "---:"]),
    ]  # fmt: skip
    for index, run in enumerate(runs, 1):
        machine = run["machine"]
        load = " / ".join(f"{machine[k][0]:.2f}" for k in ("loadavg_start", "loadavg_end"))
        for driver, diff in run["differences"].items():
            spread = " / ".join(_num(diff[k]) for k in ("rounds_p25_us", "rounds_median_us", "rounds_p75_us"))
            diffs.append(
                _row([str(index), driver, _num(diff["cpu_us"]), spread, _num(diff["p50_us"]), load,
                      f"{machine['cores_busy']:.2f} of {os.cpu_count()}"])
            )  # fmt: skip
    median = median_figures(runs)
    verdict = judge(GOAL, {GOAL.target: median})
    outcome = "n/a" if verdict.passed is None else "**pass**" if verdict.passed else "**FAIL**"
    goal = [
        _row(["target", "measured (median, raw client)", "limit", "result"]),
        _row(["---", "---:", "---:", "---"]),
        _row([GOAL.text, f"{_num(verdict.measured)} µs", f"{_num(verdict.limit)} µs", outcome]),
    ]
    checks = [_row(["check (last run)", "measured", "result"]), _row(["---", "---", "---"])]
    for check in runs[-1]["checks"]:
        checks.append(_row([check["check"], check["measured"], "**pass**" if check["passed"] else "**FAIL**"]))
    last = runs[-1]
    facts = (
        "Last run: requests served without the SDK (`mcpgw_fast_path_requests_total`): "
        + ", ".join(f"{LABELS[k]} {v:,.0f}" for k, v in last["fast_path_requests"].items())
        + "; RSS after the calls: "
        + ", ".join(f"{LABELS[k]} {v:.0f} MiB" for k, v in last["rss_mib"].items())
        + "; cryptography mapped: "
        + ", ".join(f"{LABELS[k]} {'yes' if v else 'no'}" for k, v in last["crypto_loaded"].items())
        + f"; the issuer was asked for {', '.join(last['issuer_requests']) or 'nothing'}."
    )
    plan = last["plan"]
    head = (
        f"{len(runs)} run(s); each: {plan['rounds']} rounds, a turn of {plan['block']} echo calls (raw client) "
        f"and {plan['sdk_block']} (SDK client) per gateway, after {plan['warmup']} warm-up calls; both gateways "
        "running at once, each with one stdio echo backend. CPU: the gateway process, from its kernel CPU clock."
    )
    return "\n\n".join([head, "\n".join(lines), "\n".join(diffs), "\n".join(goal), "\n".join(checks), facts])


def passed(runs: list[dict[str, Any]]) -> bool:
    verdict = judge(GOAL, {GOAL.target: median_figures(runs)})
    return verdict.passed is True and all(c["passed"] for run in runs for c in run["checks"])
