"""The targets for the generated gateway, each checked against one run's medians (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcpbench.figures import BY_KEY as FIGURES

Table = dict[str, dict[str, float | None]]
"""target key → figure key → value (None: not measured)."""

GATEWAY = "mcpgw-mcp"


@dataclass(frozen=True, slots=True)
class Goal:
    """`figure` of `target` against an absolute limit, or against `factor` x a reference's figure plus
    `offset` (the reference: target `reference`'s `reference_figure`, by default the same figure).
    With `every_run`, each run must pass, not only the median."""

    text: str
    figure: str
    limit: float | None = None
    reference: str | None = None
    factor: float = 1.0
    target: str = GATEWAY
    reference_figure: str | None = None
    offset: float = 0.0
    every_run: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    goal: Goal
    measured: float | None
    limit: float | None
    passed: bool | None  # None: a figure is missing


GOALS: tuple[Goal, ...] = (
    Goal(
        "SDK client: echo p50 via /mcp ≤ 1.25x the same client on direct stdio",
        "echo_p50_ms_sdk",
        reference="direct-stdio",
        factor=1.25,
    ),
    Goal(
        "SDK client: throughput ≥ 2x mcp-proxy (8 sessions)",
        "throughput_rps_sdk",
        reference="mcp-proxy",
        factor=2.0,
    ),
    Goal("SDK client: 256 KB result ≤ 1.3x direct stdio", "big_p50_ms_sdk", reference="direct-stdio", factor=1.3),
    Goal("hop over direct stdio, echo p50 (raw client) ≤ 0.25 ms", "echo_hop_ms", limit=0.25),
    Goal("gateway CPU per forwarded call ≤ 250 µs, sequential", "cpu_us_per_call", limit=250),
    Goal("gateway CPU per forwarded call ≤ 250 µs, 8 sessions", "cpu_us_per_call_load", limit=250),
    Goal("throughput ≥ 3x mcp-proxy (8 sessions)", "throughput_rps", reference="mcp-proxy", factor=3.0),
    Goal(
        "256 KB result ≤ 1.1x direct, in every run",
        "big_p50_ms",
        reference="direct-stdio",
        factor=1.1,
        every_run=True,
    ),
    Goal("/sse: CPU per call ≤ 1.3x /mcp", "cpu_us_per_call", reference=GATEWAY, factor=1.3, target="mcpgw-sse"),
    Goal("/sse: 256 KB result ≤ 1.3x direct", "big_p50_ms", reference="direct-stdio", factor=1.3, target="mcpgw-sse"),
    Goal("RSS ≤ 60 MiB with 5 backends after every method", "rss5_mib", limit=60),
    Goal("RSS ≤ 60 MiB with 5 backends, --eager-core", "rss5_mib", limit=60, target="mcpgw-eager"),
    Goal("cold start → tools/list ≤ 0.5 s, 1 backend", "cold1_s", limit=0.5),
    Goal("cold start → tools/list ≤ 0.5 s, 20 backends", "cold20_s", limit=0.5),
    Goal(
        "64 sessions: 2 slow backends raise the fast ones' p99 ≤ 20%",
        "p99_64_mixed_ms",
        reference=GATEWAY,
        reference_figure="p99_64_fast_ms",
        factor=1.2,
    ),
    Goal("auth + policy cost ≤ 50 µs CPU per call", "auth_cpu_us", limit=50),
)


def _limit(goal: Goal, table: Table) -> float | None:
    if goal.reference is None:
        return goal.limit
    reference = table.get(goal.reference, {}).get(goal.reference_figure or goal.figure)
    return None if reference is None else reference * goal.factor + goal.offset


def _passes(goal: Goal, measured: float, limit: float) -> bool:
    return measured >= limit if FIGURES[goal.figure].higher_is_better else measured <= limit


def judge(goal: Goal, table: Table, runs: Sequence[Table] = ()) -> Verdict:
    """The goal against the medians; with `every_run`, also against each run's own figures."""
    measured = table.get(goal.target, {}).get(goal.figure)
    limit = _limit(goal, table)
    if measured is None or limit is None:
        return Verdict(goal, measured, limit, None)
    passed = _passes(goal, measured, limit)
    if goal.every_run:
        for run in runs:
            value, bound = run.get(goal.target, {}).get(goal.figure), _limit(goal, run)
            passed = passed and value is not None and bound is not None and _passes(goal, value, bound)
    return Verdict(goal, measured, limit, passed)


def judge_all(table: Table, runs: Sequence[Table] = ()) -> list[Verdict]:
    return [judge(goal, table, runs) for goal in GOALS]
