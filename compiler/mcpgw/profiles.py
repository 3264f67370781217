"""Profiles: which of the exposed tools, prompts and resources each named tool surface shows.

A gateway serves everything at `/mcp` and `/sse` (the implicit profile "default"); each
`gateway.profiles.<name>` of the config is a subset of that, served at `/mcp/<name>`,
`/sse/<name>` and with `--profile <name>` under stdio. The subsets are decided here, at
build time, from the exposed tables (names.py), so that each profile's tables are written
into `gateway.py` and reviewed in the diff; the runtime only looks them up.

Every problem is collected and reported with the profile's JSON path and what was
expected, as the naming problems are. Client targets and budgets (other modules) read
the resolved `Profile`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from mcpgw_runtime.search import CALL_TOOL, SEARCH_TOOL, tool_definitions
from mcpgw_runtime.spec import selected

from mcpgw.config import Config, ProfileConfig
from mcpgw.names import Exposed, Exposure

JSON = dict[str, Any]

DEFAULT = "default"
"""The implicit profile: everything the gateway exposes, at /mcp and /sse."""

ANNOTATION_DEFAULTS: dict[str, bool] = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": True,
}
"""What a tool that leaves a hint out means by it (the MCP specification's defaults)."""


@dataclass(frozen=True)
class Budget:
    max_tools: int | None
    max_tokens: int | None


@dataclass(frozen=True)
class Profile:
    """One resolved profile: what its clients can call and what its `tools/list` lists."""

    name: str
    """"default" for the implicit everything-profile (always first)."""
    mode: str
    """"all" or "search"."""
    tools: tuple[JSON, ...]
    """Exposed tool definitions this profile can call, exactly as tools/list sends them, in listing order."""
    listed: tuple[JSON, ...]
    """What its tools/list lists: `tools` in mode all; in mode search the search and call tools, then `always`."""
    prompts: tuple[str, ...]
    """Exposed prompt names."""
    clients: tuple[str, ...]
    budget: Budget | None
    path: str
    """The profile's JSON path in the config, e.g. "gateway.profiles.readonly" ("gateway" for default)."""
    description: str | None = None
    backends: tuple[str, ...] = ()
    """The enabled backends whose items the profile may show."""
    always: tuple[str, ...] = ()
    resource_include: tuple[str, ...] = ("*",)
    resource_exclude: tuple[str, ...] = ()

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(str(t["name"]) for t in self.tools)


def search_definitions() -> tuple[JSON, ...]:
    """The search and call tools' definitions, as the runtime lists them (search.py)."""
    return tuple(tool_definitions())


def _annotated(definition: JSON, wanted: dict[str, bool]) -> bool:
    annotations = definition.get("annotations")
    given = annotations if isinstance(annotations, dict) else {}
    return all(given.get(hint, ANNOTATION_DEFAULTS[hint]) is value for hint, value in wanted.items())


def _default(exposed: Exposed, backends: tuple[str, ...]) -> Profile:
    tools = tuple(e.definition for e in exposed.tools)
    return Profile(
        name=DEFAULT,
        mode="all",
        tools=tools,
        listed=tools,
        prompts=tuple(e.name for e in exposed.prompts),
        clients=(),
        budget=None,
        path="gateway",
        backends=backends,
    )


def _backends(rules: ProfileConfig, path: str, enabled: Sequence[str], problems: list[str]) -> tuple[str, ...]:
    for i, glob in enumerate(rules.backends):
        if not any(fnmatchcase(b, glob) for b in enabled):
            problems.append(
                f"{path}.backends[{i}]: {glob!r} matches no enabled backend; expected one of: {', '.join(enabled)}"
            )
    return tuple(b for b in enabled if any(fnmatchcase(b, g) for g in rules.backends))


def _resolve(name: str, rules: ProfileConfig, exposed: Exposed, enabled: Sequence[str], problems: list[str]) -> Profile:
    path = f"gateway.profiles.{name}"
    backends = _backends(rules, path, enabled, problems)
    wanted = {k: v for k, v in rules.tools.annotations.model_dump().items() if v is not None}
    include, exclude = tuple(rules.tools.include), tuple(rules.tools.exclude)

    def shown(e: Exposure) -> bool:
        return e.backend in backends and selected(e.name, include, exclude) and _annotated(e.definition, wanted)

    tools = tuple(e.definition for e in exposed.tools if shown(e))
    prompt_rules = (tuple(rules.prompts.include), tuple(rules.prompts.exclude))
    prompts = tuple(e.name for e in exposed.prompts if e.backend in backends and selected(e.name, *prompt_rules))
    if not tools:
        problems.append(
            f"{path}: selects no tool; expected its backends, tools.include, tools.exclude and tools.annotations "
            f"to leave at least one of the gateway's {len(exposed.tools)} exposed tools"
        )
    names = {str(t["name"]) for t in tools}
    every = {e.name for e in exposed.tools}
    if rules.mode == "all" and rules.always:
        problems.append(f'{path}.always: only a profile in mode "search" lists tools besides its own; remove it')
    for i, tool in enumerate(rules.always if rules.mode == "search" else ()):
        if tool not in every:
            problems.append(f"{path}.always[{i}]: unknown tool {tool!r}; expected an exposed tool name")
        elif tool not in names:
            problems.append(f"{path}.always[{i}]: tool {tool!r} is not among this profile's tools; select it first")
    listed = tools
    if rules.mode == "search":
        for tool in sorted(names & {SEARCH_TOOL, CALL_TOOL}):
            problems.append(
                f"{path}: exposed tool {tool!r} has the name of the search profile's own tool; "
                f"rename it in its backend or exclude it from this profile"
            )
        always = [t for t in tools if t["name"] in rules.always]
        listed = (*search_definitions(), *always)
    budget = rules.budget
    return Profile(
        name=name,
        mode=rules.mode,
        tools=tools,
        listed=listed,
        prompts=prompts,
        clients=tuple(rules.clients),
        budget=None if budget is None else Budget(budget.max_tools, budget.max_tokens),
        path=path,
        description=rules.description,
        backends=backends,
        always=tuple(t for t in rules.always if t in names),
        resource_include=tuple(rules.resources.include),
        resource_exclude=tuple(rules.resources.exclude),
    )


def resolve_profiles(config: Config, exposed: Exposed) -> list[Profile] | list[str]:
    """The default profile, then each configured one by name; or every problem found."""
    enabled = [n for n, b in sorted(config.backends.items()) if b.enabled]
    problems: list[str] = []
    profiles = [_default(exposed, tuple(enabled))]
    for name, rules in sorted(config.gateway.profiles.items()):
        profiles.append(_resolve(name, rules, exposed, enabled, problems))
    return problems if problems else profiles
