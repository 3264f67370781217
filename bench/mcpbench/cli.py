"""`python bench/run.py [--quick] [--runs N] [--targets a,b] [--out PATH] [--strict] [--scale-out] [--hostile]
[--auth-cost] [--ensure-nginx]`."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from mcpbench import authcost, peers
from mcpbench.clients import DRIVERS
from mcpbench.figures import FIGURES
from mcpbench.goals import Table, judge_all
from mcpbench.hostile import ATTACKS, HostilePlan, hostile_section, run_hostile
from mcpbench.measure import Figures, Plan, cold_start, five_backends, one_backend
from mcpbench.nginx import NginxUnavailableError, ensure_nginx
from mcpbench.profile import profile_calls, profile_imports
from mcpbench.report import as_json, markdown, scale_out_section
from mcpbench.scaleout import ScalePlan, run_scale_out
from mcpbench.sidebyside import side_by_side
from mcpbench.slowload import slow_backends
from mcpbench.stats import median_or_none
from mcpbench.targets import BY_KEY, TARGETS, Target, build_gateways, launch

PHASE_TIMEOUT = 300.0
DEFAULT_OUT = peers.BENCH_DIR / "results" / "latest.json"
SCALE_OUT_OUT = peers.BENCH_DIR / "results" / "scaleout.json"
SCALE_OUT_TITLE = "### Scale-out: `--stateless` replicas behind nginx"
HOSTILE_OUT = peers.BENCH_DIR / "results" / "hostile.json"
HOSTILE_TITLE = "### Hostile clients: a well-behaved client under each attack"
AUTH_COST_OUT = peers.BENCH_DIR / "results" / "authcost.json"
AUTH_COST_TITLE = "### The cost of auth + policy + limits: the same gateway with and without them"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the generated gateway against direct connections and peers."
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 run, few calls, short load")
    parser.add_argument("--runs", type=int, default=None, help="runs to take the median of (default 3, 1 with --quick)")
    parser.add_argument(
        "--targets", default=",".join(t.key for t in TARGETS), help="comma-separated target keys (default: all)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"JSON output; the markdown goes beside it (.md) (default: {DEFAULT_OUT.relative_to(peers.REPO_ROOT)}, "
        f"with --scale-out {SCALE_OUT_OUT.relative_to(peers.REPO_ROOT)})",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--drivers", default="raw,sdk", help="the clients that take the figures: raw, sdk (the mcp SDK's), or both"
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="only the side-by-side phase (echo and 256 KB, sequential): a quick A/B of a few targets",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the benchmark: py-spy the gateway under echo load and -X importtime its start",
    )
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help="only the scale-out phase: 1 and 2 --stateless gateway replicas behind nginx (also part of a full run)",
    )
    parser.add_argument(
        "--hostile",
        action="store_true",
        help="only the hostile-clients phase: each attack against a fresh gateway while a well-behaved client "
        f"is measured (~5 min; writes {HOSTILE_OUT.relative_to(peers.REPO_ROOT)})",
    )
    parser.add_argument(
        "--auth-cost",
        action="store_true",
        help="only the auth-cost phase: the gateway with gateway.auth + policy + limits against the same gateway "
        f"without, A/B (also part of a full run; writes {AUTH_COST_OUT.relative_to(peers.REPO_ROOT)})",
    )
    parser.add_argument(
        "--attacks",
        default=",".join(a.key for a in ATTACKS),
        help="with --hostile: comma-separated attack keys (default: all)",
    )
    parser.add_argument(
        "--ensure-nginx",
        action="store_true",
        help="fetch and extract the distro's nginx into .cache/bench/nginx unless present; print its path",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = (
            SCALE_OUT_OUT
            if args.scale_out
            else HOSTILE_OUT
            if args.hostile
            else AUTH_COST_OUT
            if args.auth_cost
            else DEFAULT_OUT
        )
    unknown_attacks = [k for k in args.attacks.split(",") if k not in {a.key for a in ATTACKS}]
    if unknown_attacks:
        parser.error(f"unknown attacks {unknown_attacks}; choose from {', '.join(a.key for a in ATTACKS)}")
    if not args.drivers or any(d not in DRIVERS for d in args.drivers.split(",")):
        parser.error(f"--drivers takes a comma-separated list of {', '.join(DRIVERS)}")
    unknown = [k for k in args.targets.split(",") if k not in BY_KEY]
    if unknown:
        parser.error(f"unknown targets {unknown}; choose from {', '.join(BY_KEY)}")
    return args


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _venv_version(venv: str, package: str) -> str | None:
    python = peers.venv_python(venv)
    if not python.is_file():
        return None
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def machine_facts(runs: int, quick: bool, plan: Plan | ScalePlan | HostilePlan | authcost.AuthPlan) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, mcp {_version('mcp')}",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "mcp": _version("mcp"),
        "mcpgw": _version("mcpgw"),
        "fastmcp": _venv_version("fastmcp", "fastmcp"),
        "mcp-proxy": _venv_version("mcp-proxy", "mcp-proxy"),
        "mcp in mcp-proxy venv": _venv_version("mcp-proxy", "mcp"),
        "loadavg at start": os.getloadavg(),
        "runs": runs,
        "quick": quick,
        "plan": dataclasses.asdict(plan),
        "command": "python bench/run.py " + " ".join(sys.argv[1:]),
    }


async def measure_target(target: Target, gateways: dict[int, Path], plan: Plan, errors: list[str]) -> Figures:
    """Every figure of one target, one fresh process per phase; a failing phase leaves its figures empty."""
    figures: Figures = {}

    async def phase(name: str, backends: int, body: Any) -> None:
        t0 = time.perf_counter()
        try:
            with anyio.fail_after(PHASE_TIMEOUT):
                figures.update(await body())
        except Exception as exc:
            errors.append(f"{target.key} {name}: {type(exc).__name__}: {exc}")
            _log(f"  {target.key} {name}: FAILED {type(exc).__name__}: {exc}")
            if os.environ.get("MCPBENCH_DEBUG"):
                traceback.print_exc()
        else:
            _log(f"  {target.key} {name}: {time.perf_counter() - t0:.1f}s")

    async def one() -> Figures:
        async with launch(target, 1, gateways, timeout=plan.startup_timeout) as running:
            return await one_backend(running, plan)

    async def five() -> Figures:
        async with launch(target, 5, gateways, timeout=plan.startup_timeout) as running:
            return await five_backends(running, plan)

    async def slow() -> Figures:
        async with launch(target, 5, gateways, timeout=plan.startup_timeout) as running:
            return await slow_backends(running, plan)

    if plan.sequential_only:
        return figures
    await phase("1 backend", 1, one)
    for driver in plan.drivers:
        await phase(f"cold start 1 ({driver} client)", 1, lambda d=driver: cold_start(target, 1, gateways, plan, d))
    if target.multi:
        await phase("5 backends", 5, five)
        await phase("cold start 5", 5, lambda: cold_start(target, 5, gateways, plan))
    if target.multi and target.role == "gateway":
        await phase("64 sessions, 2 of 5 backends slow", 5, slow)
        await phase("cold start 20", 20, lambda: cold_start(target, 20, gateways, plan))
    return figures


async def run_once(targets: Sequence[Target], gateways: dict[int, Path], plan: Plan, errors: list[str]) -> Table:
    table: Table = {}
    for target in targets:
        _log(f"- {target.label}")
        table[target.key] = await measure_target(target, gateways, plan, errors)
    _log("- side by side: sequential echo and 256 KB calls, every target in turn")
    t0 = time.perf_counter()
    with anyio.fail_after(PHASE_TIMEOUT * 2):
        for key, figures in (await side_by_side(targets, gateways, plan, errors)).items():
            table[key].update(figures)
    _log(f"  side by side: {time.perf_counter() - t0:.1f}s")
    return table


def median_table(runs: Sequence[Table], targets: Sequence[Target]) -> Table:
    return {
        t.key: {f.key: median_or_none([run.get(t.key, {}).get(f.key) for run in runs]) for f in FIGURES}
        for t in targets
    }


def run_profiles(gateways: dict[int, Path], seconds: float) -> int:
    """Write the gateway's CPU profile and import profile beside the results."""
    results = peers.BENCH_DIR / "results"
    results.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("profile-calls.txt", anyio.run(profile_calls, gateways, seconds)),
        ("profile-imports.txt", anyio.run(profile_imports, gateways)),
    ):
        (results / name).write_text(text)
        print(f"## {name}\n\n{text}")
    return 0


def scale_out(gateway: Path, runs: int, quick: bool, errors: list[str]) -> dict[str, Any] | None:
    """The scale-out phase, or None (with the reason in `errors`) when it could not run."""
    _log("- scale-out: --stateless replicas behind nginx")
    t0 = time.perf_counter()
    try:
        data = run_scale_out(gateway, runs, ScalePlan.quick() if quick else ScalePlan(), _log)
    except Exception as exc:
        errors.append(f"scale-out: {type(exc).__name__}: {exc}")
        _log(f"  scale-out: FAILED {type(exc).__name__}: {exc}")
        if os.environ.get("MCPBENCH_DEBUG"):
            traceback.print_exc()
        return None
    _log(f"  scale-out: {time.perf_counter() - t0:.1f}s")
    return data


def _write(out: Path, report: str, data: dict[str, Any]) -> None:
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    out.with_suffix(".md").write_text(report + "\n")
    _log(f"wrote {out} and {out.with_suffix('.md')}")


def _scale_out_failed(data: dict[str, Any] | None) -> bool:
    return data is None or not all(check["passed"] for check in data["checks"])


def main_scale_out(args: argparse.Namespace, runs: int) -> int:
    """`--scale-out`: build the 1-backend gateway, run only the scale-out phase, write its report."""
    _log("building the 1-backend gateway with mcpgw build ...")
    gateway = build_gateways(counts=(1,))[1]
    meta = machine_facts(runs, args.quick, ScalePlan.quick() if args.quick else ScalePlan())
    errors: list[str] = []
    data = scale_out(gateway, runs, args.quick, errors)
    head = f"Run {meta['date']} on {meta['machine']}{' (--quick)' if args.quick else ''}."
    section = scale_out_section(data) if data is not None else "Scale-out did not run: " + "; ".join(errors)
    _write(args.out, f"{head}\n\n{SCALE_OUT_TITLE}\n\n{section}", {"meta": meta, "scale_out": data, "errors": errors})
    return 1 if args.strict and _scale_out_failed(data) else 0


def main_hostile(args: argparse.Namespace) -> int:
    """`--hostile`: each attack against a fresh gateway, the well-behaved client's figures, the report."""
    plan = HostilePlan.quick() if args.quick else HostilePlan()
    meta = machine_facts(1, args.quick, plan)
    _log("building the hostile-clients gateway with mcpgw build ...")
    data = run_hostile(args.attacks.split(","), plan, _log)
    head = f"Run {meta['date']} on {meta['machine']}{' (--quick)' if args.quick else ''}."
    _write(args.out, f"{head}\n\n{HOSTILE_TITLE}\n\n{hostile_section(data)}", {"meta": meta, "hostile": data})
    return 1 if args.strict and not data["passed"] else 0


def auth_cost(plan: authcost.AuthPlan, errors: list[str]) -> dict[str, Any] | None:
    """One A/B run of the auth-cost phase, or None (with the reason in `errors`) when it could not run."""
    _log("- auth cost: the gateway with auth + policy + limits against the same gateway without")
    t0 = time.perf_counter()

    async def bounded() -> dict[str, Any]:
        with anyio.fail_after(PHASE_TIMEOUT):
            return await authcost.measure(plan, _log)

    try:
        data = anyio.run(bounded)
    except Exception as exc:
        errors.append(f"auth cost: {type(exc).__name__}: {exc}")
        _log(f"  auth cost: FAILED {type(exc).__name__}: {exc}")
        if os.environ.get("MCPBENCH_DEBUG"):
            traceback.print_exc()
        return None
    _log(f"  auth cost: {time.perf_counter() - t0:.1f}s")
    return data


def main_auth_cost(args: argparse.Namespace, runs: int) -> int:
    """`--auth-cost`: only the auth-cost phase, `runs` times; its report."""
    drivers = tuple(args.drivers.split(","))
    plan = authcost.AuthPlan.quick(drivers) if args.quick else authcost.AuthPlan(drivers=drivers)
    meta = machine_facts(runs, args.quick, plan)
    errors: list[str] = []
    done = [data for data in (auth_cost(plan, errors) for _ in range(runs)) if data is not None]
    head = f"Run {meta['date']} on {meta['machine']}{' (--quick)' if args.quick else ''}."
    section = authcost.auth_cost_section(done) if done else "The auth-cost phase did not run: " + "; ".join(errors)
    _write(args.out, f"{head}\n\n{AUTH_COST_TITLE}\n\n{section}", {"meta": meta, "auth_cost": done, "errors": errors})
    return 1 if args.strict and (errors or not authcost.passed(done)) else 0


def main_alone(args: argparse.Namespace, runs: int) -> int | None:
    """The modes that run instead of the benchmark (one phase alone, or a tool); None: none was asked for."""
    if args.ensure_nginx:
        try:
            print(ensure_nginx())
        except (NginxUnavailableError, OSError, subprocess.CalledProcessError) as exc:
            print(f"error: no nginx: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.scale_out:
        return main_scale_out(args, runs)
    if args.hostile:
        return main_hostile(args)
    if args.auth_cost:
        return main_auth_cost(args, runs)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    plan = dataclasses.replace(plan, drivers=tuple(args.drivers.split(",")), sequential_only=args.sequential)
    runs = args.runs or (1 if args.quick else 3)
    alone = main_alone(args, runs)
    if alone is not None:
        return alone
    targets = [BY_KEY[k] for k in args.targets.split(",")]
    for venv in ["profilers"] if args.profile else [t.venv for t in targets if t.venv]:
        peers.ensure_venv(venv)
    _log("building gateways with mcpgw build ...")
    gateways = build_gateways()
    if args.profile:
        return run_profiles(gateways, 5.0 if args.quick else 20.0)
    meta = machine_facts(runs, args.quick, plan)
    errors: list[str] = []
    tables: list[Table] = []
    with_auth_cost = "mcpgw-mcp" in args.targets.split(",") and not args.sequential
    auth_plan = authcost.AuthPlan.quick(plan.drivers) if args.quick else authcost.AuthPlan(drivers=plan.drivers)
    auth_runs: list[dict[str, Any]] = []
    for index in range(runs):
        _log(f"run {index + 1}/{runs}")
        tables.append(anyio.run(run_once, targets, gateways, plan, errors))
        if with_auth_cost and (auth_data := auth_cost(auth_plan, errors)) is not None:
            auth_runs.append(auth_data)
            tables[-1]["mcpgw-mcp"].update(auth_data["figures"])
    with_scale_out = "mcpgw-mcp" in args.targets.split(",") and not args.sequential
    scaled = scale_out(gateways[1], runs, args.quick, errors) if with_scale_out else None
    table = median_table(tables, targets)
    labels = {t.key: t.label for t in targets}
    verdicts = judge_all(table, tables)
    report = markdown(table, labels, verdicts, meta)
    if auth_runs:
        report += f"\n\n{AUTH_COST_TITLE}\n\n{authcost.auth_cost_section(auth_runs)}"
    if scaled is not None:
        report += f"\n\n{SCALE_OUT_TITLE}\n\n{scale_out_section(scaled)}"
    data = as_json(table, tables, labels, verdicts, meta, errors)
    if with_auth_cost:
        data["auth_cost"] = auth_runs
    if with_scale_out:
        data["scale_out"] = scaled
    _write(args.out, report, data)
    if errors:
        _log(f"{len(errors)} phase(s) failed: see 'errors' in the JSON")
    failed = (
        errors
        or any(v.passed is not True for v in verdicts)
        or (with_scale_out and _scale_out_failed(scaled))
        or (with_auth_cost and not authcost.passed(auth_runs))
    )
    return 1 if args.strict and failed else 0
