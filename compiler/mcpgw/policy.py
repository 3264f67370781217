"""Policy and limits at build time: `gateway.policy` and `gateway.limits` resolved against the exposed tables.

Why here: each rule's globs and annotation conditions become the exact exposed tool and prompt
names it covers, written into gateway.py (`POLICY`, `LIMITS`), so that a policy change is a
reviewed diff and a reviewer sees what each rule grants; the runtime (policy.py, limits.py of
mcpgw_runtime) only looks them up. The checks, each a `Problem` at its JSON pointer in the
config (the CLI locates it at line:col like every other config diagnostic):

    error    a tools or prompts glob that matches no exposed name; a rule that names nothing
    error    a rule that can never match a caller: scopes, sub, client_id or claims without
             `gateway.auth` (only an OAuth token carries them), with `static` or `local`; `static`
             and `local` together; a claim the gateway does not keep from a token
    error    two rules with the same name
    warning  a rule an earlier one shadows: the earlier one matches every caller it matches and
             names every item it names, so it never decides anything
    warning  a resources glob that matches no resource or template of the snapshot (resources
             are listed live, so it may still match at run time)
    error    a limits tools glob that matches no exposed tool
    warning  a result cap rule whose every tool an earlier rule already caps

Scopes a rule asks for need not be among `gateway.auth.scopes`: those are the scopes every
token must carry, not every scope a token may carry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from mcpgw_runtime.limits import LimitsSpec, RateLimit, ResultCap
from mcpgw_runtime.oauth import KEPT_CLAIMS
from mcpgw_runtime.policy import CallerMatch, PolicyRule, PolicySpec

from mcpgw.config import Config, PolicyCallers, PolicyItems
from mcpgw.diagnostics import Severity
from mcpgw.jsonpos import pointer
from mcpgw.names import Exposed, Exposure
from mcpgw.profiles import ANNOTATION_DEFAULTS
from mcpgw.pyliteral import pyliteral
from mcpgw.validate import did_you_mean

JSON = dict[str, Any]
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """A located policy or limits problem: `path` is the JSON path in the config document."""

    severity: Severity
    path: Path
    message: str

    @property
    def pointer(self) -> str:
        return pointer(self.path)


@dataclass(frozen=True)
class Compiled:
    """The tables gateway.py gets (None: not configured) and every problem found."""

    policy: PolicySpec | None
    limits: LimitsSpec | None
    problems: tuple[Problem, ...]
    descriptions: tuple[str | None, ...] = ()
    """Each policy rule's `description`, written above it as a comment."""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def _annotated(definition: JSON, wanted: dict[str, bool]) -> bool:
    annotations = definition.get("annotations")
    given = annotations if isinstance(annotations, dict) else {}
    return all(given.get(hint, ANNOTATION_DEFAULTS[hint]) is value for hint, value in wanted.items())


def _names(
    globs: Sequence[str], exposed: Sequence[Exposure], what: str, path: Path, problems: list[Problem]
) -> list[str]:
    """The exposed names the globs match, in table order; an error for each glob that matches none."""
    every = [e.name for e in exposed]
    matched: set[str] = set()
    for i, glob in enumerate(globs):
        found = {n for n in every if fnmatchcase(n, glob)}
        if not found:
            guess = did_you_mean(glob, every)
            hint = f"; did you mean {guess!r}?" if guess else ""
            problems.append(Problem("error", (*path, i), f"{glob!r} matches no exposed {what}{hint}"))
        matched |= found
    return [n for n in every if n in matched]


def _resources(globs: Sequence[str], exposed: Exposed, path: Path, problems: list[Problem]) -> tuple[str, ...]:
    known = [*exposed.resources, *(str(t.get("uriTemplate")) for _, t in exposed.resource_templates)]
    for i, glob in enumerate(globs):
        if not any(fnmatchcase(uri, glob) for uri in known):
            problems.append(
                Problem(
                    "warning",
                    (*path, i),
                    f"{glob!r} matches no resource or resource template of the snapshot; "
                    "it applies to resources the backends list at run time",
                )
            )
    return tuple(globs)


def _items(items: PolicyItems, exposed: Exposed, path: Path, problems: list[Problem]) -> tuple[Any, ...]:
    """(tools, prompts, resources) a rule names."""
    wanted = {k: v for k, v in items.annotations.model_dump().items() if v is not None}
    globs = items.tools if items.tools is not None else (["*"] if wanted else [])
    tools = _names(globs, exposed.tools, "tool", (*path, "tools"), problems)
    if wanted and tools:
        definitions = {e.name: e.definition for e in exposed.tools}
        tools = [t for t in tools if _annotated(definitions[t], wanted)]
        if not tools:
            problems.append(
                Problem("error", (*path, "annotations"), f"no tool {_selection(items)} has the annotations {wanted}")
            )
    prompts = _names(items.prompts, exposed.prompts, "prompt", (*path, "prompts"), problems)
    resources = _resources(items.resources, exposed, (*path, "resources"), problems)
    if items.tools is None and not wanted and not items.prompts and not items.resources:
        problems.append(Problem("error", path, "names nothing; expected tools, prompts, resources or annotations"))
    return tuple(tools), tuple(prompts), resources


def _selection(items: PolicyItems) -> str:
    return "of the gateway" if items.tools is None else f"matching {items.tools}"


OAUTH_CONDITIONS = ("scopes", "sub", "client_id", "claims")


def _callers(callers: PolicyCallers, config: Config, path: Path, problems: list[Problem]) -> CallerMatch:
    """The runtime's matcher; errors for conditions no caller can meet."""
    oauth = [c for c in OAUTH_CONDITIONS if getattr(callers, c)]
    kinds = [k for k in ("static", "local") if getattr(callers, k)]
    never = "can never match"
    if len(kinds) > 1:
        problems.append(Problem("error", path, f"{never}: a caller is either the static token's or the local user"))
    taken = " or ".join(oauth)
    if kinds and oauth:
        problems.append(
            Problem("error", path, f"{never}: a {kinds[0]} caller has no OAuth access token to take {taken} from")
        )
    elif oauth and config.gateway.auth is None:
        problems.append(
            Problem(
                "error",
                path,
                f"{never}: without gateway.auth no caller has an OAuth access token to take {taken} from",
            )
        )
    for claim in callers.claims:
        if claim not in KEPT_CLAIMS:
            problems.append(
                Problem(
                    "error",
                    (*path, "claims", claim),
                    f"{never}: the gateway does not keep the claim {claim!r} of a token; "
                    f"it keeps: {', '.join(KEPT_CLAIMS)}",
                )
            )
    kind = kinds[0] if kinds else ("oauth" if oauth else None)
    return CallerMatch(
        kind=kind,
        scopes=tuple(sorted(set(callers.scopes))),
        subjects=tuple(callers.sub),
        client_ids=tuple(callers.client_id),
        claims={claim: tuple(values) for claim, values in sorted(callers.claims.items())},
    )


def covers(first: CallerMatch, later: CallerMatch) -> bool:
    """Whether every caller `later` matches, `first` matches too."""
    if first.kind is not None and first.kind != later.kind:
        return False
    if not set(first.scopes) <= set(later.scopes):
        return False
    for mine, theirs in ((first.subjects, later.subjects), (first.client_ids, later.client_ids)):
        if mine and not (theirs and set(theirs) <= set(mine)):
            return False
    return all(
        claim in later.claims and set(later.claims[claim]) <= set(values) for claim, values in first.claims.items()
    )


def _globs_cover(first: Iterable[str], later: Iterable[str]) -> bool:
    """Whether every glob of `later` is one of `first`'s, or what one of `first`'s matches as text."""
    mine = list(first)
    return all(any(g == f or fnmatchcase(g, f) for f in mine) for g in later)


def shadowed_by(rules: Sequence[PolicyRule], index: int) -> int | None:
    """The earlier rule that decides everything rule `index` would, if any."""
    later = rules[index]
    for i, first in enumerate(rules[:index]):
        if (
            covers(first.callers, later.callers)
            and set(later.tools) <= set(first.tools)
            and set(later.prompts) <= set(first.prompts)
            and _globs_cover(first.resources, later.resources)
        ):
            return i
    return None


def _policy(config: Config, exposed: Exposed, problems: list[Problem]) -> tuple[PolicySpec | None, list[str | None]]:
    configured = config.gateway.policy
    if configured is None:
        return None, []
    rules: list[PolicyRule] = []
    seen: dict[str, int] = {}
    base: Path = ("gateway", "policy", "rules")
    for i, rule in enumerate(configured.rules):
        path = (*base, i)
        if rule.name in seen:
            problems.append(
                Problem("error", (*path, "name"), f"rule name {rule.name!r} is taken by rules[{seen[rule.name]}]")
            )
        seen.setdefault(rule.name, i)
        tools, prompts, resources = _items(rule.items, exposed, (*path, rule.effect), problems)
        callers = _callers(rule.callers, config, (*path, "callers"), problems)
        rules.append(PolicyRule(rule.name, rule.effect, callers, tools, prompts, resources))
        first = shadowed_by(rules, i) if tools or prompts or resources else None
        if first is not None:
            problems.append(
                Problem(
                    "warning",
                    path,
                    f"rule {rule.name!r} never decides anything: rule {rules[first].name!r} (rules[{first}]) comes "
                    "first, matches every caller it matches and names every item it names; move it up or remove it",
                )
            )
    return PolicySpec(tuple(rules)), [r.description for r in configured.rules]


def _limits(config: Config, exposed: Exposed, problems: list[Problem]) -> LimitsSpec | None:
    configured = config.gateway.limits
    if configured is None:
        return None
    rates = []
    for i, rule in enumerate(configured.rate):
        path = ("gateway", "limits", "rate", i)
        tools = _names(rule.tools, exposed.tools, "tool", (*path, "tools"), problems)
        burst = rule.burst if rule.burst is not None else max(1, math.ceil(rule.rate))
        rates.append(RateLimit(rule.name or f"rate[{i}]", tuple(tools), rule.rate, burst, rule.per))
    caps = []
    capped: dict[str, int] = {}
    for i, cap in enumerate(configured.max_result_bytes):
        path = ("gateway", "limits", "max_result_bytes", i)
        tools = _names(cap.tools, exposed.tools, "tool", (*path, "tools"), problems)
        own = [t for t in tools if t not in capped]
        if tools and not own:
            earlier = sorted({capped[t] for t in tools})
            problems.append(
                Problem(
                    "warning",
                    path,
                    f"caps nothing: every tool it names is capped by an earlier rule "
                    f"({', '.join(f'max_result_bytes[{e}]' for e in earlier)}); the first rule naming a tool caps it",
                )
            )
        for tool in own:
            capped[tool] = i
        if own:
            caps.append(ResultCap(tuple(own), cap.bytes, cap.action))
    return LimitsSpec(tuple(rates), tuple(caps))


def compile_policy(config: Config, exposed: Exposed) -> Compiled:
    """`gateway.policy` and `gateway.limits` as the runtime's tables, and every problem, in config order."""
    problems: list[Problem] = []
    policy, descriptions = _policy(config, exposed, problems)
    limits = _limits(config, exposed, problems)
    return Compiled(policy, limits, tuple(problems), tuple(descriptions))


# ---- gateway.py's literals --------------------------------------------------------------------------


def _lines(values: Sequence[str]) -> str:
    """A tuple of names one per line (the trailing comma keeps ruff from joining them): one name, one diff line."""
    return "(" + "".join(f"{pyliteral(v)}, " for v in values) + ")"


def _matcher(callers: CallerMatch) -> str:
    written = []
    if callers.kind is not None:
        written.append(f"kind={pyliteral(callers.kind)}")
    for name in ("scopes", "subjects", "client_ids"):
        values = getattr(callers, name)
        if values:
            written.append(f"{name}={pyliteral(tuple(values))}")
    if callers.claims:
        claims = ", ".join(f"{pyliteral(k)}: {pyliteral(tuple(v))}" for k, v in callers.claims.items())
        written.append(f"claims={{{claims}}}")
    return f"CallerMatch({', '.join(written)})"


def policy_literal(compiled: Compiled) -> str:
    """`PolicySpec(rules=(...))`: each rule with its callers and the names it covers, one per line."""
    assert compiled.policy is not None
    rules = []
    for i, rule in enumerate(compiled.policy.rules):
        written = [f"name={pyliteral(rule.name)}", f"effect={pyliteral(rule.effect)}"]
        if rule.callers != CallerMatch():
            written.append(f"callers={_matcher(rule.callers)}")
        for field in ("tools", "prompts", "resources"):
            values = getattr(rule, field)
            if values:
                written.append(f"{field}={_lines(values)}")
        description = compiled.descriptions[i] if i < len(compiled.descriptions) else None
        comment = "".join(f"\n# {line}" for line in (description or "").splitlines())
        rules.append(f"{comment}\nPolicyRule({', '.join(written)},),")
    return f"PolicySpec(rules=({''.join(rules)}\n),)"


def limits_literal(limits: LimitsSpec) -> str:
    """`LimitsSpec(...)`: each rate rule and result cap with the tools it covers, one per line."""
    written = []
    if limits.rates:
        rates = "".join(
            f"RateLimit(name={pyliteral(r.name)}, tools={_lines(r.tools)}, rate={pyliteral(r.rate)}, "
            f"burst={r.burst}, per={pyliteral(r.per)},),"
            for r in limits.rates
        )
        written.append(f"rates=({rates})")
    if limits.result_caps:
        caps = "".join(
            f"ResultCap(tools={_lines(c.tools)}, bytes={c.bytes}, action={pyliteral(c.action)},),"
            for c in limits.result_caps
        )
        written.append(f"result_caps=({caps})")
    return f"LimitsSpec({', '.join(written)},)"


def runtime_imports(compiled: Compiled) -> list[str]:
    """The `from mcpgw_runtime... import ...` lines gateway.py needs for these tables."""
    lines = []
    if compiled.policy is not None:
        names = ["PolicyRule", "PolicySpec"]
        if any(r.callers != CallerMatch() for r in compiled.policy.rules):
            names.insert(0, "CallerMatch")
        lines.append(f"from mcpgw_runtime.policy import {', '.join(names)}")
    if compiled.limits is not None:
        names = ["LimitsSpec"]
        names += ["RateLimit"] if compiled.limits.rates else []
        names += ["ResultCap"] if compiled.limits.result_caps else []
        lines.append(f"from mcpgw_runtime.limits import {', '.join(names)}")
    return lines
