# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Per-tool policy at run time: which caller may list and call which exposed tool, prompt and resource.

The rules are the compiler's (`gateway.policy` in the config, resolved by `mcpgw build` into
gateway.py's `POLICY`: each rule with the concrete exposed tool and prompt names it covers and its
caller matcher); nothing here decides membership, it only looks the tables up:

    the request's caller (caller.CALLER; None, where no token is checked or under stdio: LOCAL)
        └─▶ the rules whose `callers` match it, in order (cached per caller)
              └─▶ Permissions, cached per set of matching rules: for each tool and prompt the
                  first of those rules that names it decides (allow or deny); one no rule names
                  is denied (default deny); a resource URI: the first rule whose globs match it

Profiles and policy compose (profiles.py): a profile's lists are filtered to what the caller
is allowed, and a name outside the profile stays an unknown tool, while a name in it that the
policy denies gets `POLICY_DENIED` naming the rule, is never forwarded, and is counted in
`/metrics` (`mcpgw_policy_denied_total{rule,kind}`). A gateway without `gateway.policy` builds
none of this: `Profiles.policy` is None and every check is one attribute test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from mcpgw_runtime.auth import Caller
from mcpgw_runtime.caller import CALLER
from mcpgw_runtime.forwarding import POLICY_DENIED, Refused
from mcpgw_runtime.metrics import Tally
from mcpgw_runtime.search import CALL_TOOL, SEARCH_TOOL

JSON = dict[str, Any]

LOCAL = Caller("local", "local")
"""Who calls where no token is checked (loopback without one, `--no-auth`) and under `--transport stdio`: the
local user, whom rules select with `"callers": {"local": true}`."""

DEFAULT_RULE = "(default)"
"""The rule name a denial by no rule carries (in its error's data and the metric's label)."""

MAX_CALLERS = 4096
"""Callers whose permissions are remembered at once; the table is emptied when full (recomputing is cheap)."""

OWN_TOOLS = frozenset({SEARCH_TOOL, CALL_TOOL})
"""A search profile's own tools: always listed; what `call_tool` runs is checked as a direct call."""

KINDS = {"tools/list": ("tool", "tools"), "prompts/list": ("prompt", "prompts")}


@dataclass(frozen=True, slots=True)
class CallerMatch:
    """Which callers a rule is for; every condition given must hold, an empty matcher holds for everyone."""

    kind: str | None = None
    """"oauth", "static" (MCPGW_TOKEN) or "local"; None: any."""
    scopes: tuple[str, ...] = ()
    """Scopes the caller's token must all carry."""
    subjects: tuple[str, ...] = ()
    """`sub` values, any of them; empty: any."""
    client_ids: tuple[str, ...] = ()
    """OAuth client ids, any of them; empty: any."""
    claims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """claim → values: the claim (a string, or a list of strings such as `groups`) must hold one of them."""

    def matches(self, caller: Caller) -> bool:
        if self.kind is not None and caller.kind != self.kind:
            return False
        if self.scopes and not caller.scopes.issuperset(self.scopes):
            return False
        if self.subjects and caller.subject not in self.subjects:
            return False
        if self.client_ids and caller.client_id not in self.client_ids:
            return False
        return all(_holds(caller.claims.get(claim), wanted) for claim, wanted in self.claims.items())


def _holds(value: object, wanted: tuple[str, ...]) -> bool:
    if isinstance(value, str):
        return value in wanted
    if isinstance(value, list | tuple):
        return any(isinstance(v, str) and v in wanted for v in value)
    return False


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rule of `gateway.policy.rules`, as compiled: the exact names it covers."""

    name: str
    effect: str
    """"allow" or "deny"."""
    callers: CallerMatch = field(default_factory=CallerMatch)
    tools: tuple[str, ...] = ()
    """Exposed tool names (the config's globs and annotation conditions, resolved at build time)."""
    prompts: tuple[str, ...] = ()
    """Exposed prompt names."""
    resources: tuple[str, ...] = ()
    """Globs over resource URIs and URI templates (resources are listed live, so matched at run time)."""


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """`gateway.policy`: the rules in order; the first that matches the caller and names the item decides."""

    rules: tuple[PolicyRule, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str
    """The deciding rule's name; `DEFAULT_RULE` when none names the item."""


DENIED = Decision(False, DEFAULT_RULE)


class Permissions:
    """What one sequence of matching rules decides, precomputed: sets of allowed names, a decision per name."""

    __slots__ = ("_resources", "_uris", "decisions", "prompts", "tools")

    def __init__(self, rules: Sequence[PolicyRule]) -> None:
        self.decisions: dict[str, dict[str, Decision]] = {"tool": {}, "prompt": {}}
        for rule in rules:
            decision = Decision(rule.effect == "allow", rule.name)
            for kind, names in (("tool", rule.tools), ("prompt", rule.prompts)):
                table = self.decisions[kind]
                for name in names:
                    table.setdefault(name, decision)
        self.tools = frozenset(n for n, d in self.decisions["tool"].items() if d.allowed)
        self.prompts = frozenset(n for n, d in self.decisions["prompt"].items() if d.allowed)
        self._resources = tuple((r.resources, Decision(r.effect == "allow", r.name)) for r in rules if r.resources)
        self._uris: dict[str, Decision] = {}

    def decide(self, kind: str, name: str) -> Decision:
        """`kind` "tool", "prompt" or "resource" (a URI or URI template)."""
        if kind == "resource":
            return self.resource(name)
        return self.decisions[kind].get(name, DENIED)

    def resource(self, uri: str) -> Decision:
        found = self._uris.get(uri)
        if found is None:
            found = next((d for globs, d in self._resources if any(fnmatchcase(uri, g) for g in globs)), DENIED)
            if len(self._uris) >= MAX_CALLERS:
                self._uris.clear()
            self._uris[uri] = found
        return found


# ---- counters for /metrics ----------------------------------------------------------------------

DENIALS: dict[tuple[str, str], Tally] = {}
"""Denied requests by (rule, kind): bounded by the rules and the three kinds."""
_ENABLED: list[bool] = []


def render_policy_metrics() -> str:
    """The `mcpgw_policy_denied_total` family, appended to `/metrics` by http.py; "" without a policy."""
    if not _ENABLED:
        return ""
    name = "mcpgw_policy_denied_total"
    samples = "".join(
        f'{name}{{rule="{_label(rule)}",kind="{kind}"}} {t.count}\n' for (rule, kind), t in sorted(DENIALS.items())
    )
    help_text = "Requests the policy denied (never forwarded), by the deciding rule and the kind of item."
    return f"# HELP {name} {help_text}\n# TYPE {name} counter\n{samples}"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _denied(decision: Decision, kind: str, name: str) -> Refused:
    tally = DENIALS.get((decision.rule, kind))
    if tally is None:
        tally = DENIALS[(decision.rule, kind)] = Tally()
    tally.count += 1
    if decision.rule == DEFAULT_RULE:
        message = f"denied by policy: no rule allows {kind} {name!r} to this caller"
    else:
        message = f"denied by policy rule {decision.rule!r}: {kind} {name!r}"
    return Refused(POLICY_DENIED, message, {"rule": decision.rule, "kind": kind, "name": name})


# ---- the policy of one gateway ------------------------------------------------------------------

_SHARED: dict[int, Policy] = {}


class Policy:
    """The compiled rules applied to the current request's caller; one per process (`of`), shared by both halves."""

    def __init__(self, spec: PolicySpec) -> None:
        self.rules = spec.rules
        self._claims = tuple(sorted({c for r in spec.rules for c in r.callers.claims}))
        """The claims some rule reads: part of a caller's cache key (a `Caller` compares without its claims)."""
        self._by_caller: dict[object, Permissions] = {}
        self._by_rules: dict[tuple[int, ...], Permissions] = {}
        self._lists: dict[tuple[str, str, Permissions], tuple[JSON, JSON]] = {}
        _ENABLED.append(True)

    @classmethod
    def of(cls, spec: PolicySpec) -> Policy:
        """The process's one `Policy` for these rules: the front's and the core's caches are the same."""
        found = _SHARED.get(id(spec))
        if found is None or found.rules is not spec.rules:
            found = _SHARED[id(spec)] = cls(spec)
        return found

    def permissions(self, caller: Caller | None = None) -> Permissions:
        """What `caller` (default: the request's) may do; the same object for callers the same rules match."""
        if caller is None:
            caller = CALLER.get() or LOCAL
        key: object = caller
        if self._claims:
            claims = caller.claims
            key = (caller, *[tuple(v) if type(v) is list else v for v in map(claims.get, self._claims)])
        try:
            found = self._by_caller.get(key)
        except TypeError:  # a claim holding objects: hashed the slow way
            key = (caller, *[_hashable(caller.claims.get(c)) for c in self._claims])
            found = self._by_caller.get(key)
        if found is None:
            matched = tuple(i for i, rule in enumerate(self.rules) if rule.callers.matches(caller))
            found = self._by_rules.get(matched)
            if found is None:
                found = self._by_rules[matched] = Permissions([self.rules[i] for i in matched])
            if len(self._by_caller) >= MAX_CALLERS:
                self._by_caller.clear()
            self._by_caller[key] = found
        return found

    def decide(self, caller: Caller | None, kind: str, name: str) -> Decision:
        """Whether `caller` may use the exposed tool or prompt, or the resource URI, `name`, and which rule says so."""
        return self.permissions(caller).decide(kind, name)

    def check(self, kind: str, name: str) -> None:
        """`Refused(POLICY_DENIED)` naming the rule when the request's caller may not use `name`; counted."""
        decision = self.permissions().decide(kind, name)
        if not decision.allowed:
            raise _denied(decision, kind, name)

    def listing(self, method: str, result: JSON, profile: str, *, searching: bool = False) -> JSON:
        """`tools/list` or `prompts/list` (`result`, `profile`'s) as the request's caller may use it.

        `searching`: `profile` is a search profile, whose own search and call tools stay listed.
        Made once per (profile, method, permission set) and change of `result`.
        """
        permissions = self.permissions()
        key = (profile, method, permissions)
        cached = self._lists.get(key)
        if cached is not None and cached[0] is result:
            return cached[1]
        kind, items = KINDS[method]
        allowed = permissions.tools if kind == "tool" else permissions.prompts
        own = OWN_TOOLS if kind == "tool" and searching else frozenset()
        kept = [item for item in result.get(items) or () if item.get("name") in allowed or item.get("name") in own]
        filtered: JSON = {**result, items: kept}
        self._lists[key] = (result, filtered)
        return filtered

    def templates(self, templates: Sequence[JSON]) -> list[JSON]:
        """The resource templates the request's caller may use (its `uriTemplate` under the rules' globs)."""
        permissions = self.permissions()
        return [t for t in templates if permissions.resource(str(t.get("uriTemplate"))).allowed]

    def resources(self, listed: Sequence[Any]) -> list[Any]:
        """The entries of a `resources/list` page the request's caller may read."""
        permissions = self.permissions()
        return [r for r in listed if permissions.resource(str(r.get("uri"))).allowed]


def _hashable(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    return value
