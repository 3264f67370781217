"""The figures the benchmark reports: names, units, and which direction is better (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool = False
    digits: int = 2


FIGURES: tuple[Figure, ...] = (
    Figure("cpu_us_per_call", "CPU/call, sequential", "µs", digits=0),
    Figure("cpu_us_per_call_load", "CPU/call, 8 sessions", "µs", digits=0),
    Figure("echo_p50_ms", "echo p50", "ms"),
    Figure("echo_p99_ms", "echo p99", "ms"),
    Figure("throughput_rps", "throughput, 8 sessions", "calls/s", higher_is_better=True, digits=0),
    Figure("load_p50_ms", "p50 under load", "ms"),
    Figure("big_p50_ms", "256 KB result p50", "ms"),
    Figure("list5_ms", "tools/list 5x40 p50", "ms"),
    Figure("cold1_s", "cold start → tools/list, 1 backend", "s"),
    Figure("cold5_s", "cold start → tools/list, 5 backends", "s"),
    Figure("first_call_s", "cold start → first tools/call", "s"),
    Figure("rss1_mib", "RSS, 1 backend", "MiB", digits=0),
    Figure("rss5_mib", "RSS, 5 backends", "MiB", digits=0),
)
BY_KEY = {f.key: f for f in FIGURES}

DIRECT_REFERENCE = "direct-stdio"
"""Ratios "x direct" divide by this target's figure: the backend the gateway forwards to, without a hop."""

PEERS = ("fastmcp", "mcp-proxy")
