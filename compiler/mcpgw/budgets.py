"""What each profile's tool list costs the model, and the budgets that cap it.

For every profile the build counts the tools its `tools/list` lists and the tokens
their definitions cost (tokens.py: o200k_base over name, description, inputSchema
and outputSchema, as the gateway sends them), in total and per backend. A profile's
`budget: {max_tools, max_tokens}` fails the build when the listing is over it,
naming the biggest contributors and the excludes that bring it back under.
`mcpgw check` re-counts the live tools: growth past a budget is drift
(`BUDGET_EXCEEDED`), and each tool's token change is shown.

`--report` prints the whole table with the costliest tools; `--report-format json`
gives the same for CI (`report_json`, a documented shape: docs/targets.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcpgw_runtime.drift import Change
from mcpgw_runtime.spec import BackendSpec

from mcpgw.config import Config
from mcpgw.names import Exposed, Exposure, expose
from mcpgw.profiles import Budget, Profile, resolve_profiles
from mcpgw.snapshot import BackendOffer
from mcpgw.targets import Finding, cap_fix, check_targets, owners_of
from mcpgw.tokens import ENCODING, tool_tokens
from mcpgw.wording import plural

REPORT_FORMAT = 1
GATEWAY = ""
"""The 'backend' of the gateway's own tools (a search profile's search and call tools)."""


@dataclass(frozen=True)
class ToolCost:
    name: str
    backend: str
    tokens: int


@dataclass(frozen=True)
class BackendCost:
    name: str
    tools: int
    tokens: int


@dataclass(frozen=True)
class ProfileCost:
    """A profile's listing, priced; `callable_*` count every tool it can call (more than listed in mode search)."""

    name: str
    mode: str
    path: str
    listed: tuple[ToolCost, ...]
    callable_tools: int
    callable_tokens: int
    budget: Budget | None

    @property
    def tools(self) -> int:
        return len(self.listed)

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.listed)

    def backends(self) -> list[BackendCost]:
        """Per backend (the gateway's own tools under ""), sorted by name."""
        sums: dict[str, tuple[int, int]] = {}
        for t in self.listed:
            n, k = sums.get(t.backend, (0, 0))
            sums[t.backend] = (n + 1, k + t.tokens)
        return [BackendCost(b, n, k) for b, (n, k) in sorted(sums.items())]

    def top(self, limit: int) -> list[ToolCost]:
        """The costliest listed tools, most expensive first (ties by name)."""
        return sorted(self.listed, key=lambda t: (-t.tokens, t.name))[:limit]


def profile_costs(profiles: Sequence[Profile], exposed: Exposed) -> list[ProfileCost]:
    """Every profile's listing, priced, in the profiles' order (default first)."""
    owners = owners_of(exposed)
    cache: dict[tuple[str, str], int] = {}

    def cost(tool: Mapping[str, Any]) -> ToolCost:
        name = str(tool["name"])
        owner = owners.get(name)
        backend = owner.backend if owner is not None else GATEWAY
        if (name, backend) not in cache:
            cache[name, backend] = tool_tokens(tool)
        return ToolCost(name, backend, cache[name, backend])

    out = []
    for p in profiles:
        listed = tuple(cost(t) for t in p.listed)
        reachable = [cost(t) for t in p.tools]
        out.append(
            ProfileCost(
                name=p.name,
                mode=p.mode,
                path=p.path,
                listed=listed,
                callable_tools=len(reachable),
                callable_tokens=sum(t.tokens for t in reachable),
                budget=p.budget,
            )
        )
    return out


def _names(tools: Iterable[ToolCost]) -> str:
    return ", ".join(f"{t.name} ({t.tokens})" for t in tools)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _token_fix(cost: ProfileCost, profile: Profile, limit: int) -> str:
    """The fewest costliest tools whose exclusion brings the listing to `limit` tokens, as a config change."""
    over = cost.tokens - limit
    dropped: list[ToolCost] = []
    for tool in cost.top(len(cost.listed)):
        if over <= 0:
            break
        if tool.backend == GATEWAY:
            continue
        dropped.append(tool)
        over -= tool.tokens
    names = [t.name for t in dropped]
    left = cost.tokens - sum(t.tokens for t in dropped)
    kept = [t for t in cost.listed if t.backend != GATEWAY and t not in dropped]
    if not kept:
        cheapest = min(t.tokens for t in cost.listed)
        return f"even its cheapest tool costs {cheapest} tokens: raise {profile.path}.budget.max_tokens" + (
            "" if profile.mode == "search" else '; or set "mode": "search" to list only the search and call tools'
        )
    if profile.mode == "search":
        return f"remove {_quoted(names)} from {profile.path}.always ({left} tokens then)"
    return (
        f'exclude {_quoted(names)}: {profile.path}: "tools": {{"exclude": [{_quoted(names)}]}} ({left} tokens then)'
        '; or set "mode": "search" to list only the search and call tools'
    )


def check_budgets(costs: Sequence[ProfileCost], profiles: Sequence[Profile], exposed: Exposed) -> list[Finding]:
    """Each budget a profile's listing is over, with its biggest contributors and a fix."""
    owners: dict[str, Exposure] = owners_of(exposed)
    out: list[Finding] = []
    for cost, profile in zip(costs, profiles, strict=True):
        budget = cost.budget
        if budget is None:
            continue
        base = f"/gateway/profiles/{cost.name}/budget"
        why = f"profile {cost.name!r}"
        if budget.max_tools is not None and cost.tools > budget.max_tools:
            fix = cap_fix(profile, owners, budget.max_tools)
            out.append(
                Finding(
                    f"{base}/max_tools",
                    f"{why}: lists {plural(cost.tools, 'tool')}, over its budget of {budget.max_tools}: {fix}",
                    kind="budget",
                    profile=cost.name,
                )
            )
        if budget.max_tokens is not None and cost.tokens > budget.max_tokens:
            top = cost.top(5)
            out.append(
                Finding(
                    f"{base}/max_tokens",
                    f"{why}: its {plural(cost.tools, 'tool')} cost {cost.tokens} tokens ({ENCODING}), "
                    f"{cost.tokens - budget.max_tokens} over its budget of {budget.max_tokens}; "
                    f"biggest: {_names(top)}; fix: {_token_fix(cost, profile, budget.max_tokens)}",
                    kind="budget",
                    profile=cost.name,
                )
            )
    return out


def _budget_text(cost: ProfileCost) -> str:
    b = cost.budget
    if b is None:
        return ""
    parts = []
    if b.max_tools is not None:
        parts.append(f"{b.max_tools} tools")
    if b.max_tokens is not None:
        parts.append(f"{b.max_tokens} tokens")
    return f", budget {' / '.join(parts)}" if parts else ""


def summary_line(cost: ProfileCost) -> str:
    """One line of the build's output: what the profile lists and costs."""
    line = f"profile {cost.name}: {plural(cost.tools, 'tool')}, {cost.tokens} tokens ({ENCODING})"
    backends = cost.backends()
    if len(backends) > 1:
        line += (
            " [" + "; ".join(f"{b.name or '(gateway)'}: {plural(b.tools, 'tool')}, {b.tokens}" for b in backends) + "]"
        )
    if cost.mode == "search":
        line += f"; searches {plural(cost.callable_tools, 'tool')} that would cost {cost.callable_tokens} listed"
    return line + _budget_text(cost)


def report_text(costs: Sequence[ProfileCost], top: int = 10) -> str:
    """Per profile: per backend counts and tokens, then the costliest tools."""
    lines = [
        f"tokens: {ENCODING} over each listed tool's name, description, inputSchema and outputSchema, "
        "as tools/list sends them (compact JSON)",
    ]
    for cost in costs:
        lines += ["", summary_line(cost)]
        rows = [(b.name or "(gateway)", b.tools, b.tokens) for b in cost.backends()]
        width = max([len("backend"), *(len(r[0]) for r in rows)])
        lines.append(f"  {'backend':<{width}}  {'tools':>5}  {'tokens':>7}")
        lines += [f"  {name:<{width}}  {n:>5}  {k:>7}" for name, n, k in rows]
        shown = cost.top(top)
        if shown:
            lines.append(f"  top {len(shown)} by tokens:")
            name_width = max(len(t.name) for t in shown)
            lines += [f"  {t.tokens:>7}  {t.name:<{name_width}}  {t.backend or '(gateway)'}" for t in shown]
    return "\n".join(lines) + "\n"


def _cost_json(cost: ProfileCost, top: int) -> dict[str, Any]:
    b = cost.budget
    return {
        "backends": [{"name": x.name, "tokens": x.tokens, "tools": x.tools} for x in cost.backends()],
        "budget": None if b is None else {"max_tokens": b.max_tokens, "max_tools": b.max_tools},
        "callable": {"tokens": cost.callable_tokens, "tools": cost.callable_tools},
        "mode": cost.mode,
        "name": cost.name,
        "tokens": cost.tokens,
        "tools": cost.tools,
        "top": [{"backend": t.backend, "name": t.name, "tokens": t.tokens} for t in cost.top(top)],
    }


def report_json(costs: Sequence[ProfileCost], top: int = 10) -> dict[str, Any]:
    """The `--report-format json` document (docs/targets.md); keys never renamed."""
    return {
        "encoding": ENCODING,
        "format": REPORT_FORMAT,
        "profiles": [_cost_json(c, top) for c in costs],
    }


@dataclass(frozen=True)
class TokenChange:
    """One exposed tool whose definition's token cost moved between the snapshot and the live backend."""

    backend: str
    tool: str
    before: int | None
    after: int | None

    @property
    def delta(self) -> int:
        return (self.after or 0) - (self.before or 0)


def _entry_tokens(entry: Mapping[str, Any]) -> int:
    recorded = entry.get("tokens")
    return recorded if isinstance(recorded, int) else tool_tokens(entry["definition"])


def token_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], specs: Mapping[str, BackendSpec], separator: str
) -> list[TokenChange]:
    """Per backend present in both snapshots, each tool the config exposes whose token count differs.

    Counts are the snapshot's `tokens` (the backend's own definition); a snapshot written
    before tokens were recorded is counted from its definitions.
    """
    out = []
    b_backends, a_backends = before.get("backends") or {}, after.get("backends") or {}
    for backend in sorted(set(b_backends) & set(a_backends)):
        b_tools = b_backends[backend].get("tools") or {}
        a_tools = a_backends[backend].get("tools") or {}
        spec = specs.get(backend)
        for tool in sorted(set(b_tools) | set(a_tools)):
            if spec is None or spec.exposed_name("tool", tool, separator) is None:
                continue
            old = _entry_tokens(b_tools[tool]) if tool in b_tools else None
            new = _entry_tokens(a_tools[tool]) if tool in a_tools else None
            if old != new:
                out.append(TokenChange(backend, tool, old, new))
    return out


def token_changes_text(changes: Sequence[TokenChange]) -> list[str]:
    if not changes:
        return []
    lines = [f"token changes ({ENCODING}, the backend's own definitions):"]
    for c in changes:
        old = "-" if c.before is None else str(c.before)
        new = "-" if c.after is None else str(c.after)
        lines.append(f"  {c.backend}/{c.tool}: {old} → {new} ({c.delta:+d})")
    return lines


def token_changes_json(changes: Sequence[TokenChange]) -> list[dict[str, Any]]:
    return [{"after": c.after, "backend": c.backend, "before": c.before, "tool": c.tool} for c in changes]


@dataclass(frozen=True)
class Surface:
    """Every profile's priced listing, and every client-target and budget problem found in it."""

    costs: list[ProfileCost]
    findings: list[Finding]


def surface(config: Config, exposed: Exposed, targets: Sequence[str] = ()) -> Surface | list[str]:
    """Resolve the profiles of `config` over `exposed`, price them, check targets and budgets.

    A list of strings is the profiles' own problems (nothing to price until they are fixed).
    """
    profiles = resolve_profiles(config, exposed)
    if not profiles or isinstance(profiles[0], str):
        return [str(p) for p in profiles]
    resolved = [p for p in profiles if isinstance(p, Profile)]
    costs = profile_costs(resolved, exposed)
    findings = check_targets(resolved, exposed, config, targets) + check_budgets(costs, resolved, exposed)
    return Surface(costs, findings)


def live_surface(config: Config, offers: Mapping[str, BackendOffer]) -> Surface | None:
    """What `mcpgw check` sees in the live offers; None when they no longer expose cleanly (reported elsewhere)."""
    enabled = {n: o for n, o in offers.items() if n in config.backends and config.backends[n].enabled}
    exposed = expose(config, enabled)
    if isinstance(exposed, list):
        return None
    found = surface(config, exposed)
    return None if isinstance(found, list) else found


DRIFT_CODES = {"budget": "BUDGET_EXCEEDED", "target": "TARGET_EXCEEDED"}


def surface_drift(found: Surface) -> list[Change]:
    """Each budget or client target the live tools break, as a drift change (a rebuild would fail on it)."""
    return [
        Change(DRIFT_CODES[f.kind], "", "profile", f.profile, f.message)
        for f in found.findings
        if f.severity == "error" and f.kind in DRIFT_CODES
    ]
