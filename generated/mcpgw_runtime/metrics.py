# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Counters and latency histograms per backend and tool, and `/metrics` in Prometheus text format.

The hot path (`Series.observe`) is a bisect and a few integer increments on
a per-(method, tool) object that each backend keeps; everything else (cumulative
buckets, label escaping, gauges read from the live gateway) happens at scrape
time. The exposition format is written here directly (text format 0.0.4), so
the gateway needs no client library.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Protocol

from mcpgw_runtime.profiles import PROFILE

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the latency histogram; `+Inf` is implied."""

BACKEND_STATES = ("starting", "ready", "degraded", "restarting", "failed")


class Series:
    """What happened to one (backend, method, tool): counts and a latency histogram."""

    __slots__ = ("buckets", "count", "errors", "sum", "timeouts", "tool_errors")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.timeouts = 0
        self.tool_errors = 0
        self.sum = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        self.buckets[bisect_left(BUCKETS, seconds)] += 1


class CallStats:
    """One backend's series, created on first use, by method, tool and the request's profile (profiles.py)."""

    __slots__ = ("series",)

    def __init__(self) -> None:
        self.series: dict[tuple[str, str, str], Series] = {}

    def get(self, method: str, tool: str | None) -> Series:
        key = (method, tool or "", PROFILE.get())
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series()
        return series


class Tally:
    """A bare counter, cheap enough for the hot path: `tally.count += 1`."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


SERVED_WITHOUT_SDK = Tally()
"""`POST /mcp` requests answered without the SDK, whichever part answered them.

The front (front.py) counts those it answers from the embedded tables and its own
backends before the core is loaded; the fast path (fastpath.py) those it answers once
the core is up. Both run in the gateway's one process and the front comes before the
core exists, so the tally is the module's, not an object the core would own.
"""

SERVED_WITHOUT_SDK_HELP = (
    "POST /mcp requests answered without the SDK: by the front (initialize, notifications/initialized, "
    "ping, lists and tool calls) before the core is loaded, and by the fast path (tools/call, tools/list, "
    "prompts/list) after."
)


def render_served_without_sdk() -> str:
    """The `mcpgw_fast_path_requests_total` family (`SERVED_WITHOUT_SDK`), appended to the page by http.py."""
    name = "mcpgw_fast_path_requests_total"
    return f"# HELP {name} {SERVED_WITHOUT_SDK_HELP}\n# TYPE {name} counter\n{name} {SERVED_WITHOUT_SDK.count}\n"


GUARD_REFUSALS: dict[int, Tally] = {status: Tally() for status in (401, 403, 413, 421)}
"""HTTP requests turned away before any MCP handling, by status.

Counted where the refusal is decided (guard.py `refuse` for 401, 403 and 421, by the
auth gate, the front or the core's middleware, whichever saw the request; the fast path for a `POST /mcp`
body over `max_body_bytes`, which the SDK then answers with 413). Like `SERVED_WITHOUT_SDK`
it is the module's: the front counts before the core exists. Every status is on the page
from the start, so a rate over it never starts from a missing series.
"""

GUARD_REFUSALS_HELP = (
    "HTTP requests refused before any MCP handling, by status: 401 no or wrong bearer token, "
    "403 foreign Origin or an access token without a required scope, 421 foreign Host, "
    "413 POST /mcp body over max_body_bytes."
)


def render_guard_refusals() -> str:
    """The `mcpgw_guard_refusals_total` family (`GUARD_REFUSALS`), appended to the page by http.py."""
    name = "mcpgw_guard_refusals_total"
    counts = sorted(GUARD_REFUSALS.items())
    samples = "".join(f'{name}{{status="{status}"}} {tally.count}\n' for status, tally in counts)
    return f"# HELP {name} {GUARD_REFUSALS_HELP}\n# TYPE {name} counter\n{samples}"


class Scraped(Protocol):
    """What `/metrics` reads from a backend (a `backends.Backend`)."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def restarts(self) -> int: ...
    @property
    def stats(self) -> CallStats: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def rejected(self) -> int: ...


def _label_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric_labels(pairs: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_label_escape(v)}"' for k, v in pairs.items()) + "}"


def _metric_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _MetricsWriter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, labels: Mapping[str, str], value: float) -> None:
        self.lines.append(f"{name}{_metric_labels(labels)} {_metric_number(value)}")


def render_metrics(
    backends: Iterable[Scraped],
    held: Mapping[str, Mapping[str, tuple[str, str]]],
    refused: Mapping[tuple[str, str, str], int] | None = None,
    *,
    profiled: bool = False,
) -> str:
    """The whole `/metrics` page.

    `held` is the gateway's kind → name → (backend, reason) map of pin holds; `refused`
    counts the calls those holds refused, by (backend, kind, exposed name). `profiled`: the
    request families carry a `profile` label ("default" for `/mcp` and `/sse`), for a gateway
    with named profiles.
    """
    ordered = sorted(backends, key=lambda b: b.name)
    out = _MetricsWriter()
    _calls(out, ordered, profiled)
    _backends(out, ordered)
    _pin_holds(out, ordered, held, refused or {})
    return "\n".join(out.lines) + "\n"


def _calls(out: _MetricsWriter, backends: list[Scraped], profiled: bool) -> None:
    series = [
        ({"backend": b.name, "method": m, "tool": t, **({"profile": p} if profiled else {})}, s)
        for b in backends
        for (m, t, p), s in sorted(b.stats.series.items())
    ]
    counters = (
        ("mcpgw_requests_total", "Requests forwarded to a backend.", "count"),
        ("mcpgw_request_errors_total", "Requests that ended in a JSON-RPC error (timeouts included).", "errors"),
        ("mcpgw_request_timeouts_total", "Requests that got no answer within their timeout.", "timeouts"),
        ("mcpgw_tool_errors_total", "tools/call results with isError true.", "tool_errors"),
    )
    for name, help_text, attr in counters:
        out.family(name, "counter", help_text)
        for labels, s in series:
            out.sample(name, labels, getattr(s, attr))
    hist = "mcpgw_request_duration_seconds"
    out.family(hist, "histogram", "Time from the gateway forwarding a request to the backend's answer or error.")
    bounds = [*(_metric_number(b) for b in BUCKETS), "+Inf"]
    for labels, s in series:
        running = 0
        for bound, n in zip(bounds, s.buckets, strict=True):
            running += n
            out.sample(f"{hist}_bucket", {**labels, "le": bound}, running)
        out.sample(f"{hist}_sum", labels, s.sum)
        out.sample(f"{hist}_count", labels, s.count)


def _backends(out: _MetricsWriter, backends: list[Scraped]) -> None:
    out.family("mcpgw_backend_state", "gauge", "1 for the state each backend is in, 0 for the others.")
    for b in backends:
        for state in BACKEND_STATES:
            out.sample("mcpgw_backend_state", {"backend": b.name, "state": state}, int(b.state == state))
    gauges = (
        ("mcpgw_backend_restarts_total", "counter", "Times the connection ended or failed to start.", "restarts"),
        ("mcpgw_backend_in_flight", "gauge", "Requests the backend is working on now.", "in_flight"),
        ("mcpgw_backend_queued", "gauge", "Requests waiting for a free slot (max_concurrency).", "queued"),
        ("mcpgw_backend_rejected_total", "counter", "Requests refused because the queue was full.", "rejected"),
    )
    for name, kind, help_text, attr in gauges:
        out.family(name, kind, help_text)
        for b in backends:
            out.sample(name, {"backend": b.name}, getattr(b, attr))


def _pin_holds(
    out: _MetricsWriter,
    backends: list[Scraped],
    held: Mapping[str, Mapping[str, tuple[str, str]]],
    refused: Mapping[tuple[str, str, str], int],
) -> None:
    out.family("mcpgw_pin_held", "gauge", "Tools and prompts held back by pin 'strict' (a call gets an error).")
    counts: dict[tuple[str, str], int] = {(b.name, kind): 0 for b in backends for kind in held}
    for kind, names in held.items():
        for owner, _ in names.values():
            counts[(owner, kind)] = counts.get((owner, kind), 0) + 1
    for (backend, kind), n in sorted(counts.items()):
        out.sample("mcpgw_pin_held", {"backend": backend, "kind": kind}, n)
    out.family("mcpgw_pin_held_item", "gauge", "1 per held tool or prompt, by exposed name.")
    for kind, names in sorted(held.items()):
        for name, (owner, _) in sorted(names.items()):
            out.sample("mcpgw_pin_held_item", {"backend": owner, "kind": kind, "name": name}, 1)
    out.family("mcpgw_pin_refusals_total", "counter", "Calls refused because their tool or prompt is held back.")
    for (backend, kind, name), n in sorted(refused.items()):
        out.sample("mcpgw_pin_refusals_total", {"backend": backend, "kind": kind, "name": name}, n)
