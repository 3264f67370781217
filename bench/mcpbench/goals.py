"""The targets for the generated gateway, each checked against one run's medians (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from mcpbench.figures import BY_KEY as FIGURES

Table = dict[str, dict[str, float | None]]
"""target key → figure key → value (None: not measured)."""

GATEWAY = "mcpgw-mcp"


@dataclass(frozen=True, slots=True)
class Goal:
    """`figure` of the gateway against an absolute limit, or against `factor` x a reference target's figure."""

    text: str
    figure: str
    limit: float | None = None
    reference: str | None = None
    factor: float = 1.0
    target: str = GATEWAY


@dataclass(frozen=True, slots=True)
class Verdict:
    goal: Goal
    measured: float | None
    limit: float | None
    passed: bool | None  # None: a figure is missing


GOALS: tuple[Goal, ...] = (
    Goal("gateway CPU per forwarded call ≤ 500 µs", "cpu_us_per_call", limit=500),
    Goal("echo p50 via /mcp ≤ SDK HTTP server with JSON responses", "echo_p50_ms", reference="direct-http-json"),
    Goal("throughput ≥ 2x FastMCP (8 sessions)", "throughput_rps", reference="fastmcp", factor=2.0),
    Goal("throughput ≥ 1.5x mcp-proxy (8 sessions)", "throughput_rps", reference="mcp-proxy", factor=1.5),
    Goal("tools/list 5x40 ≤ listing the 5 backends directly", "list5_ms", reference="direct-stdio"),
    Goal("cold start → tools/list ≤ 0.5 s, 1 backend", "cold1_s", limit=0.5),
    Goal("cold start → tools/list ≤ 0.5 s, 5 backends", "cold5_s", limit=0.5),
    Goal("gateway RSS ≤ 60 MiB with 5 backends", "rss5_mib", limit=60),
    Goal("256 KB result ≤ 1.2x direct", "big_p50_ms", reference="direct-stdio", factor=1.2),
)


def judge(goal: Goal, table: Table) -> Verdict:
    measured = table.get(goal.target, {}).get(goal.figure)
    limit = goal.limit
    if goal.reference is not None:
        reference = table.get(goal.reference, {}).get(goal.figure)
        limit = None if reference is None else reference * goal.factor
    if measured is None or limit is None:
        return Verdict(goal, measured, limit, None)
    higher = FIGURES[goal.figure].higher_is_better
    return Verdict(goal, measured, limit, measured >= limit if higher else measured <= limit)


def judge_all(table: Table) -> list[Verdict]:
    return [judge(goal, table) for goal in GOALS]
