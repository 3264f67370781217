# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Limits at run time: per tool and per caller rate limits, and per tool caps on a result's size.

The tables are the compiler's (`gateway.limits`, resolved by `mcpgw build` into gateway.py's
`LIMITS`: each rule with the exact exposed tools it covers). Both halves of the gateway apply
them at the same two points of a tool call, after the route and the policy and around the
forward:

    tools/call ─▶ route, policy ─▶ admit: every rate rule naming the tool has a token?
                                     │ no: Refused(RATE_LIMITED), data.retryAfter; nothing taken, not forwarded
                                     ▼
                                  the backend ─▶ cap: the result's bytes over the tool's cap?
                                                   │ "truncate": text content cut, a visible marker added
                                                   │ "refuse":   Refused(RESULT_TOO_LARGE)

A rate rule is a token bucket (`rate` tokens a second, at most `burst` held) per tool ("per":
"tool", shared by every caller) or per caller ("per": "caller", one bucket per caller for all the
rule's tools together). A call takes a token from every rule naming its tool, or from none.
One `Limits` per process (`of`): the front's and the core's buckets are the same.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core

from mcpgw_runtime.auth import Caller
from mcpgw_runtime.caller import CALLER, identity
from mcpgw_runtime.forwarding import RATE_LIMITED, RESULT_TOO_LARGE, Refused
from mcpgw_runtime.metrics import Tally

JSON = dict[str, Any]

MAX_BUCKETS = 100_000
"""Per-caller buckets kept at once; past it, the full ones (those a new bucket would equal) are dropped."""

RESULT_HEAD = len(b',"result":')


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One `gateway.limits.rate` rule, as compiled."""

    name: str
    tools: tuple[str, ...]
    """Exposed tool names it limits."""
    rate: float
    """Tokens added per second."""
    burst: int
    """Most tokens a bucket holds: calls that may come at once after a quiet spell."""
    per: str = "caller"
    """"caller": a bucket per caller, for all of `tools` together; "tool": a bucket per tool, for every caller."""


@dataclass(frozen=True, slots=True)
class ResultCap:
    """One `gateway.limits.max_result_bytes` rule, as compiled (a tool is in one rule at most: the first)."""

    tools: tuple[str, ...]
    bytes: int
    action: str = "truncate"
    """"truncate" (cut the text, mark it) or "refuse" (an error instead of the result)."""


@dataclass(frozen=True, slots=True)
class LimitsSpec:
    """`gateway.limits`: rate rules and result caps."""

    rates: tuple[RateLimit, ...] = ()
    result_caps: tuple[ResultCap, ...] = ()


class Bucket:
    """A token bucket: `tokens` as of `stamp`."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp

    def level(self, rule: RateLimit, now: float) -> float:
        """Tokens held now (refilled since `stamp`, at most `burst`)."""
        return min(float(rule.burst), self.tokens + (now - self.stamp) * rule.rate)


# ---- counters for /metrics ----------------------------------------------------------------------

LIMITED: dict[tuple[str, str], Tally] = {}
"""Calls refused by a rate rule, by (rule, tool): bounded by the compiled tables."""
CAPPED: dict[tuple[str, str], Tally] = {}
"""Results over their cap, by (tool, action)."""
_ENABLED: list[bool] = []


def _count(table: dict[tuple[str, str], Tally], key: tuple[str, str]) -> None:
    tally = table.get(key)
    if tally is None:
        tally = table[key] = Tally()
    tally.count += 1


def render_limits_metrics() -> str:
    """`mcpgw_rate_limited_total` and `mcpgw_results_capped_total`, appended to `/metrics`; "" without limits."""
    if not _ENABLED:
        return ""
    families = (
        ("mcpgw_rate_limited_total", ("rule", "tool"), LIMITED, "Tool calls refused by a rate limit (not forwarded)."),
        ("mcpgw_results_capped_total", ("tool", "action"), CAPPED, "Tool results over their size cap."),
    )
    parts = []
    for name, (first, second), tallies, help_text in families:
        samples = "".join(
            f'{name}{{{first}="{_label(a)}",{second}="{_label(b)}"}} {t.count}\n'
            for (a, b), t in sorted(tallies.items())
        )
        parts.append(f"# HELP {name} {help_text}\n# TYPE {name} counter\n{samples}")
    return "".join(parts)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# ---- the limits of one gateway ------------------------------------------------------------------

_SHARED: dict[int, Limits] = {}


class Limits:
    """The compiled limits; one per process (`of`), so both halves of the gateway share the buckets."""

    def __init__(self, spec: LimitsSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.clock = clock
        rates: dict[str, list[tuple[int, RateLimit]]] = {}
        for index, rule in enumerate(spec.rates):
            for tool in rule.tools:
                rates.setdefault(tool, []).append((index, rule))
        self._rates = {tool: tuple(rules) for tool, rules in rates.items()}
        self._caps: dict[str, ResultCap] = {}
        for cap in spec.result_caps:
            for tool in cap.tools:
                self._caps.setdefault(tool, cap)
        self._buckets: dict[tuple[int, object], Bucket] = {}
        _ENABLED.append(True)

    @classmethod
    def of(cls, spec: LimitsSpec) -> Limits:
        found = _SHARED.get(id(spec))
        if found is None or found.spec is not spec:
            found = _SHARED[id(spec)] = cls(spec)
        return found

    # -- rates ------------------------------------------------------------------------------------

    def admit(self, tool: str, caller: Caller | None = None) -> None:
        """Take a token from every rate rule naming `tool`, or `Refused(RATE_LIMITED)` taking none."""
        rules = self._rates.get(tool)
        if rules is None:
            return
        now = self.clock()
        buckets = []
        for index, rule in rules:
            key = (index, tool if rule.per == "tool" else identity(caller or CALLER.get()))
            bucket = self._buckets.get(key)
            level = float(rule.burst) if bucket is None else bucket.level(rule, now)
            if level < 1.0:
                _count(LIMITED, (rule.name, tool))
                wait = math.ceil((1.0 - level) / rule.rate * 1000) / 1000
                who = "each caller" if rule.per == "caller" else "every caller together"
                raise Refused(
                    RATE_LIMITED,
                    f"rate limit {rule.name!r} reached for tool {tool!r} ({rule.rate:g} calls a second, bursts of "
                    f"{rule.burst}, for {who}); retry in {wait:g}s",
                    {"retryAfter": wait, "rule": rule.name, "tool": tool},
                )
            buckets.append((key, bucket, level))
        for key, found, level in buckets:
            if found is not None:
                found.tokens, found.stamp = level - 1.0, now
                continue
            if len(self._buckets) >= MAX_BUCKETS:
                self._prune(now)
            self._buckets[key] = Bucket(level - 1.0, now)

    def _prune(self, now: float) -> None:
        """Forget the buckets that are full again: a new bucket starts full, so nothing changes for their callers."""
        rules = self.spec.rates
        full = [k for k, b in self._buckets.items() if b.level(rules[k[0]], now) >= rules[k[0]].burst]
        for key in full:
            del self._buckets[key]

    # -- result caps ------------------------------------------------------------------------------

    def capped(self, tool: str) -> bool:
        return tool in self._caps

    def cap(self, tool: str, result: JSON, size: int | None = None) -> JSON:
        """`result` within the tool's cap: unchanged, truncated with a marker, or `Refused(RESULT_TOO_LARGE)`.

        `size`: the result's bytes as the backend sent them, when known (else its compact JSON's).
        """
        cap = self._caps.get(tool)
        if cap is None:
            return result
        if size is None:
            tail = getattr(result, "tail", None)  # a stdio backend's result keeps its bytes (stdio_lane.Wire)
            size = result_size(tail) if tail is not None else len(pydantic_core.to_json(result))
        if size <= cap.bytes:
            return result
        _count(CAPPED, (tool, cap.action))
        if cap.action == "refuse":
            raise Refused(
                RESULT_TOO_LARGE,
                f"the result of tool {tool!r} is {size:,} bytes, over its {cap.bytes:,}-byte cap "
                "(gateway.limits.max_result_bytes)",
                {"bytes": size, "cap": cap.bytes, "tool": tool},
            )
        return truncated(result, size, cap.bytes)


def result_size(tail: bytes | memoryview) -> int:
    """The bytes of the result in an answer's tail (`,"result":...}`), as the backend sent them."""
    return max(len(tail) - RESULT_HEAD - 1, 0)


def marker(size: int, cap: int) -> str:
    return f"[… truncated by mcpgw: {size - cap:,} bytes over the {cap:,}-byte cap]"


def _size(value: object) -> int:
    return len(pydantic_core.to_json(value))


def truncated(result: JSON, size: int, cap: int) -> JSON:
    """`result` cut to at most `cap` bytes of JSON: `structuredContent` kept when it takes at most half the cap
    (else dropped), then content kept in order while it fits, the text that crosses the cap cut and ended with
    the marker (or the marker as a text item of its own), the rest dropped."""
    note = marker(size, cap)
    out: JSON = {k: v for k, v in result.items() if k not in ("content", "structuredContent")}
    structured = result.get("structuredContent")
    if structured is not None and _size(structured) <= cap // 2:
        out["structuredContent"] = structured
    budget = cap - _size({**out, "content": []}) - _size({"type": "text", "text": note}) - 8
    content: list[Any] = []
    marked = False
    for item in result.get("content") or ():
        cost = _size(item) + 1
        if cost <= budget:
            content.append(item)
            budget -= cost
            continue
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            text = _cut(item["text"], budget - (_size({**item, "text": ""}) + 1))
            content.append({**item, "text": f"{text}\n{note}" if text else note})
            marked = True
        break
    if not marked:
        content.append({"type": "text", "text": note})
    out["content"] = content
    return out


def _cut(text: str, room: int) -> str:
    """The longest start of `text` whose JSON string form fits in `room` bytes (escapes counted)."""
    if room <= 2:
        return ""
    cut = text.encode()[: room - 2].decode(errors="ignore")
    while cut and _size(cut) > room:
        cut = cut[: max(0, len(cut) - (_size(cut) - room) - 1)]
    return cut
