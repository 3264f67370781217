"""The figures the benchmark reports: names, units, and which direction is better (pure).

A figure without a suffix is taken with the raw client (`clients.py`); the same key with `_sdk` with
the `mcp` SDK's own client (`sdkclient.py`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool = False
    digits: int = 2


_RAW: tuple[Figure, ...] = (
    Figure("cpu_us_per_call", "CPU/call, sequential", "µs", digits=0),
    Figure("cpu_us_per_call_load", "CPU/call, 8 sessions", "µs", digits=0),
    Figure("echo_p50_ms", "echo p50", "ms"),
    Figure("echo_hop_ms", "echo p50 less direct stdio's (the hop)", "ms"),
    Figure("echo_p99_ms", "echo p99", "ms"),
    Figure("throughput_rps", "throughput, 8 sessions", "calls/s", higher_is_better=True, digits=0),
    Figure("load_p50_ms", "p50 under load", "ms"),
    Figure("big_p50_ms", "256 KB result p50", "ms"),
    Figure("list5_ms", "tools/list 5x40 p50", "ms"),
    Figure("cold1_s", "cold start → tools/list, 1 backend", "s"),
    Figure("cold5_s", "cold start → tools/list, 5 backends", "s"),
    Figure("cold20_s", "cold start → tools/list, 20 backends", "s"),
    Figure("first_call_s", "cold start → first tools/call", "s"),
    Figure("rss1_mib", "RSS, 1 backend", "MiB", digits=0),
    Figure("rss5_mib", "RSS, 5 backends (gateways: after every method)", "MiB", digits=0),
    Figure("p99_64_fast_ms", "p99, 64 sessions on 3 fast backends", "ms"),
    Figure("p99_64_mixed_ms", "p99 of the same, 2 of 5 backends slow (100 ms)", "ms"),
    Figure("auth_cpu_us", "auth + policy + limits: gateway CPU/call over the same gateway without", "µs", digits=0),
    Figure("auth_p50_us", "auth + policy + limits: echo p50 over the same gateway without", "µs", digits=0),
)
SDK_SUFFIX = "_sdk"
SDK_DRIVEN = (
    "cpu_us_per_call",
    "cpu_us_per_call_load",
    "echo_p50_ms",
    "echo_hop_ms",
    "echo_p99_ms",
    "throughput_rps",
    "load_p50_ms",
    "big_p50_ms",
    "list5_ms",
    "cold1_s",
    "first_call_s",
    "rss1_mib",
    "rss5_mib",
    "auth_cpu_us",
    "auth_p50_us",
)
"""The figures also taken with the `mcp` SDK's own client (key + `_sdk`), each reported beside the raw
client's. Cold starts with 5 and 20 backends and the 64-session load are the raw client's only."""


def _with_sdk(raw: tuple[Figure, ...]) -> tuple[Figure, ...]:
    figures: list[Figure] = []
    for figure in raw:
        figures.append(figure)
        if figure.key in SDK_DRIVEN:
            label = f"{figure.label}, SDK client"
            figures.append(Figure(figure.key + SDK_SUFFIX, label, figure.unit, figure.higher_is_better, figure.digits))
    return tuple(figures)


FIGURES: tuple[Figure, ...] = _with_sdk(_RAW)
"""Every figure, each SDK-client figure right after the raw client's."""
BY_KEY = {f.key: f for f in FIGURES}

DIRECT_REFERENCE = "direct-stdio"
"""Ratios "x direct" divide by this target's figure: the backend the gateway forwards to, without a hop."""

PEERS = ("fastmcp", "mcp-proxy")
