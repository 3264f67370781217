"""Client targets: what each MCP client accepts, checked against every profile at build time.

Clients cap how many tools they pass to the model and reject names their model API
does not take, some after prefixing them with the server's name. A profile that
breaks a rule fails at run time, in the client, far from the config; here it fails
the build, naming the profile, the client, the rule's source and a concrete fix (a
`rename`, an exclude, a profile split). A profile is checked for the clients it lists
in `clients` and for every `mcpgw build --target NAME`.

`RULES` is the one table of those facts, each row with where it comes from;
`mcpgw targets` prints it and docs/targets.md reproduces it. Adding a client is
adding a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcpgw.config import Config
from mcpgw.diagnostics import Diagnostic
from mcpgw.jsonpos import located as locate_in_config
from mcpgw.jsonpos import pointer
from mcpgw.names import Exposed, Exposure
from mcpgw.profiles import DEFAULT, Profile
from mcpgw.wording import plural

SERVER_NAME = "gateway"
"""The name the README's snippets give the gateway in a client's config (`"mcpServers": {"gateway": ...}`).

Clients that prefix tool names with the server's name (Claude Code, Cursor) are checked
with it; a longer name in a client's config leaves less room for the tool names.
"""


@dataclass(frozen=True)
class ClientRule:
    """One client's limits. None: the client has no such limit (or none is documented)."""

    name: str
    """What `clients` and `--target` take."""
    label: str
    tool_cap: int | None
    """More tools than this: the client drops the rest or fails the request (a build error)."""
    warn_cap: int | None
    """More tools than this: the client (or an older version of it) warns or truncates (a build warning)."""
    pattern: str | None
    """A regex the whole name the model sees (with `prefix`) must match."""
    max_length: int | None
    """Most characters of the whole name the model sees (with `prefix`)."""
    prefix: str
    """What the client puts before a tool's name, `{server}` standing for the server's name in its config."""
    sources: tuple[str, ...]
    notes: str

    def seen_as(self, tool_name: str, server: str = SERVER_NAME) -> str:
        """The name the model is given for `tool_name`."""
        return self.prefix.format(server=server) + tool_name


RULES: tuple[ClientRule, ...] = (
    ClientRule(
        name="claude-code",
        label="Claude Code",
        tool_cap=None,
        warn_cap=None,
        pattern=r"[a-zA-Z0-9_-]{1,64}",
        max_length=64,
        prefix="mcp__{server}__",
        sources=(
            "https://github.com/anthropics/claude-code/issues/2326",
            "https://github.com/mims-harvard/ToolUniverse/issues/65",
        ),
        notes="prefixes each tool's name with mcp__, the server's name and __; the Anthropic API rejects a whole name "
        "over 64 characters",
    ),
    ClientRule(
        name="claude-desktop",
        label="Claude Desktop",
        tool_cap=None,
        warn_cap=None,
        pattern=r"[a-zA-Z0-9_-]{1,64}",
        max_length=64,
        prefix="",
        sources=("https://github.com/anthropics/claude-code/issues/34960",),
        notes="passes tool names as they are; over 64 characters the tools are unusable",
    ),
    ClientRule(
        name="cursor",
        label="Cursor",
        tool_cap=40,
        warn_cap=None,
        pattern=None,
        max_length=60,
        prefix="{server}",
        sources=(
            "https://docs.cursor.com/context/model-context-protocol#tool-quantity",
            "https://github.com/getsentry/sentry-mcp-stdio/issues/3",
            "https://github.com/Snowflake-Labs/mcp/issues/77",
            "https://easymanage.com/res/docs/tutorials/ai-solutions/chapter-3-mcp-advanced",
        ),
        notes="sends only the first 40 tools to the agent (later versions warn above 80 instead); "
        "warns when server name + tool name exceed 60 characters",
    ),
    ClientRule(
        name="gemini",
        label="Gemini",
        tool_cap=128,
        warn_cap=64,
        pattern=r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}",
        max_length=64,
        prefix="",
        sources=(
            "https://cloud.google.com/vertex-ai/generative-ai/docs/reference/nodejs/1.1.0/vertexai/functiondeclaration",
            "https://pub.dev/documentation/google_cloud_ai_generativelanguage_v1beta/latest/generativelanguage/FunctionDeclaration/name.html",
            "https://pub-web-s2.flutter-io.cn/documentation/google_cloud_aiplatform_v1beta1/latest/aiplatform/Tool/functionDeclarations.html",
            "https://cloud.google.com/vertex-ai/generative-ai/docs/reference/nodejs/latest/vertexai/functiondeclarationstool",
        ),
        notes="a function name starts with a letter or underscore; at most 128 function declarations "
        "(64 in older API versions)",
    ),
    ClientRule(
        name="openai",
        label="OpenAI",
        tool_cap=128,
        warn_cap=None,
        pattern=r"[a-zA-Z0-9_-]{1,64}",
        max_length=64,
        prefix="",
        sources=(
            "https://portkey.ai/error-library/input-validation-error-10046",
            "https://github.com/vishalmysore/Tools4AI/issues/16",
        ),
        notes="the API's tools array takes at most 128 functions (array_above_max_length)",
    ),
    ClientRule(
        name="vscode",
        label="VS Code (Copilot Chat)",
        tool_cap=128,
        warn_cap=None,
        pattern=None,
        max_length=None,
        prefix="",
        sources=(
            "https://github.com/microsoft/vscode-copilot-release/issues/11653",
            "https://github.com/microsoft/vscode/issues/243602",
        ),
        notes='fails every request with "Cannot have more than 128 tools per request"; '
        "it prefixes and shortens MCP tool names itself",
    ),
)
"""Every client mcpgw checks, by name."""

BY_NAME = {rule.name: rule for rule in RULES}

Severity = Literal["error", "warning"]
Kind = Literal["target", "budget", "config"]


@dataclass(frozen=True)
class Finding:
    """A problem of one profile, placed at a JSON pointer into the config ("" = no place in it)."""

    pointer: str
    message: str
    severity: Severity = "error"
    kind: Kind = "target"
    """What broke: a client target, a budget, or the config itself (an unknown client name)."""
    profile: str = ""


def unknown_targets(targets: Iterable[str]) -> list[str]:
    return [t for t in targets if t not in BY_NAME]


def known() -> str:
    return ", ".join(sorted(BY_NAME))


def owners_of(exposed: Exposed) -> dict[str, Exposure]:
    """Each exposed tool name's exposure: its backend and original name."""
    return {e.name: e for e in exposed.tools}


def _shown(names: Sequence[str]) -> str:
    """Names as JSON strings, every one of them: a fix is copied into the config as it is printed."""
    return ", ".join(f'"{n}"' for n in names)


def _split(profile: Profile, owners: dict[str, Exposure], cap: int) -> str:
    """Backends grouped, in order, into profiles of at most `cap` tools each (or why that cannot be)."""
    counts: dict[str, int] = {}
    for tool in profile.listed:
        owner = owners.get(str(tool["name"]))
        counts[owner.backend if owner else ""] = counts.get(owner.backend if owner else "", 0) + 1
    too_big = [b for b, n in counts.items() if b and n > cap]
    if too_big or "" in counts:
        return ""
    groups: list[list[str]] = [[]]
    room = cap
    for backend, n in counts.items():
        if n > room:
            groups.append([])
            room = cap
        groups[-1].append(backend)
        room -= n
    base = profile.name if profile.name != DEFAULT else "part"
    parts = ", ".join(f'"{base}-{i}": {{"backends": [{_shown(g)}]}}' for i, g in enumerate(groups, 1))
    return f'; or split it by backend: "gateway": {{"profiles": {{{parts}}}}}'


def cap_fix(profile: Profile, owners: dict[str, Exposure], cap: int, rule: ClientRule | None = None) -> str:
    """How to bring `profile` down to `cap` listed tools: excludes, a split by backend, or mode search."""
    over = len(profile.listed) - cap
    last = [str(t["name"]) for t in profile.listed[-over:]]
    split = _split(profile, owners, cap)
    if profile.name == DEFAULT and rule is not None:
        by_backend: dict[str, list[str]] = {}
        for name in last:
            owner = owners.get(name)
            if owner is not None:
                by_backend.setdefault(owner.backend, []).append(owner.original)
        excludes = "; ".join(
            f'backend "{b}": "tools": {{"exclude": [{_shown(names)}]}}' for b, names in by_backend.items()
        )
        return (
            f"exclude the last {plural(over, 'tool')} where they come from ({excludes}); or give {rule.label} a "
            f'profile of its own: "gateway": {{"profiles": {{"{rule.name}": {{"clients": ["{rule.name}"], '
            f'"tools": {{"exclude": [{_shown(last)}]}}}}}}}} and build without --target {rule.name}' + split
        )
    if profile.mode == "search":
        always = list(profile.always[-over:])
        return f"list fewer tools always: remove {_shown(always)} from {profile.path}.always"
    return (
        f'exclude the last {plural(over, "tool")}: {profile.path}: "tools": {{"exclude": [{_shown(last)}]}}'
        f'; or set "mode": "search" to list only the search and call tools' + split
    )


def _words_cut(stem: str, room: int) -> str:
    """`stem` cut to `room` characters, at a word boundary when that keeps at least half of it."""
    if len(stem) <= room:
        return stem
    cut = stem[:room]
    boundary = max(cut.rfind("_"), cut.rfind("-"))
    if boundary >= room // 2:
        cut = cut[:boundary]
    return cut.strip("_-") or stem[:room]


def _rename_fix(owner: Exposure, rule: ClientRule, config: Config, taken: set[str]) -> str:
    """A concrete change that makes the tool's name fit the rule: a rename, else a prefix or separator."""
    backend = config.backends[owner.backend]
    sep = config.gateway.separator
    prefix = backend.name if backend.prefix is None else backend.prefix
    head = f"{prefix}{sep}" if prefix else ""
    pattern = re.compile(rule.pattern) if rule.pattern else None
    if pattern is not None and head and not pattern.fullmatch(rule.seen_as(head + "x")):
        return (
            f'the prefix "{head}" is outside {rule.label}\'s grammar; use a separator it takes: '
            f'"gateway": {{"separator": "_"}}, or in backend "{owner.backend}": "prefix": ""'
        )
    limit = rule.max_length if rule.max_length is not None else 64
    room = limit - len(rule.seen_as(head))
    if room < 3:
        short = re.sub(r"[^A-Za-z0-9]", "", owner.backend)[:4] or "b"
        return f'its prefix leaves no room; in backend "{owner.backend}": "prefix": "{short}"'
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", owner.original).strip("_-") or "tool"
    if pattern is not None and not head and not pattern.fullmatch(rule.seen_as(stem[:1] or "x")):
        stem = "_" + stem
    candidate = _words_cut(stem, room)
    n = 2
    while head + candidate in taken:
        tail = f"_{n}"
        candidate = _words_cut(stem, room - len(tail)) + tail
        n += 1
    taken.add(head + candidate)
    return f'in backend "{owner.backend}": "tools": {{"rename": {{"{owner.original}": "{candidate}"}}}}'


def _name_faults(rule: ClientRule, name: str, server: str) -> list[str]:
    seen = rule.seen_as(name, server)
    faults = []
    if rule.max_length is not None and len(seen) > rule.max_length:
        faults.append(f"{len(seen)} characters, over its {rule.max_length}")
    # The grammar is judged on a name cut to the length limit, so a name that is only too long is not also "outside" it.
    shape = seen[: rule.max_length] if rule.max_length is not None else seen
    if rule.pattern is not None and not re.fullmatch(rule.pattern, shape):
        faults.append(f"outside its name grammar ^{rule.pattern}$")
    return faults


def _as_seen(rule: ClientRule, name: str, server: str) -> str:
    """How the client sees the name, for the message: prefixed, counted with the server's name, or as is."""
    if rule.prefix == "{server}":
        return f"with the server name {server!r} is, to {rule.label},"
    seen = rule.seen_as(name, server)
    return f"is {seen!r} to {rule.label}," if seen != name else f"is, to {rule.label},"


def _check(
    profile: Profile, rule: ClientRule, where: str, owners: dict[str, Exposure], config: Config, server: str
) -> list[Finding]:
    """Every rule `profile` breaks for one client; `where` is the pointer of the reason it is checked."""
    why = f"profile {profile.name!r}, client {rule.name!r}"
    source = rule.sources[0]
    out: list[Finding] = []
    count = len(profile.listed)
    if rule.tool_cap is not None and count > rule.tool_cap:
        fix = cap_fix(profile, owners, rule.tool_cap, rule)
        out.append(
            Finding(
                where,
                f"{why}: lists {plural(count, 'tool')}; {rule.label} takes at most {rule.tool_cap} ({source}): {fix}",
                profile=profile.name,
            )
        )
    elif rule.warn_cap is not None and count > rule.warn_cap:
        out.append(
            Finding(
                where,
                f"{why}: lists {plural(count, 'tool')}; {rule.label} may take only {rule.warn_cap} "
                f"({rule.notes}): {cap_fix(profile, owners, rule.warn_cap, rule)}",
                "warning",
                profile=profile.name,
            )
        )
    taken = set(owners)
    for tool in profile.listed:
        name = str(tool["name"])
        faults = _name_faults(rule, name, server)
        if not faults:
            continue
        owner = owners.get(name)
        fix = _rename_fix(owner, rule, config, taken) if owner else "it is the gateway's own tool; report it"
        out.append(
            Finding(
                where,
                f"{why}: tool {name!r} {_as_seen(rule, name, server)} {' and '.join(faults)} ({source}); fix: {fix}",
                profile=profile.name,
            )
        )
    return out


def check_targets(
    profiles: Sequence[Profile],
    exposed: Exposed,
    config: Config,
    targets: Sequence[str] = (),
    server_name: str = SERVER_NAME,
) -> list[Finding]:
    """Every client rule every profile breaks: the clients each lists, and `targets` (`--target`) for all.

    Unknown client names in the config are findings too; unknown `targets` are the
    caller's usage error (see `unknown_targets`).
    """
    owners = owners_of(exposed)
    out: list[Finding] = []
    for profile in profiles:
        checks: dict[str, str] = {}
        base = pointer(["gateway", "profiles", profile.name]) if profile.name != DEFAULT else ""
        for i, client in enumerate(profile.clients):
            where = f"{base}/clients/{i}"
            if client not in BY_NAME:
                message = f"profile {profile.name!r}: unknown client {client!r}; expected one of: {known()}"
                out.append(Finding(where, message, kind="config", profile=profile.name))
            else:
                checks.setdefault(client, where)
        for target in targets:
            checks.setdefault(target, base)
        for client, where in checks.items():
            if client in BY_NAME:
                out.extend(_check(profile, BY_NAME[client], where, owners, config, server_name))
    return out


def located(findings: Iterable[Finding], config_path: Path) -> list[Diagnostic]:
    """Findings as the config's diagnostics, each at the line of its pointer (or its nearest parent)."""
    return locate_in_config(((f.pointer, f.message, f.severity) for f in findings), config_path, at_key=True)


def _counted(rule: ClientRule) -> str:
    if rule.prefix == "{server}":
        return "counting the server name + the tool name"
    return f"as {rule.seen_as('<tool>', '<server>')!r}"


def table_text() -> str:
    """The rules as `mcpgw targets` prints them: one block per client, its sources last."""
    lines = [f"Client rules mcpgw checks (server name in prefixes: {SERVER_NAME!r}, as in the README's snippets)", ""]
    for rule in RULES:
        name_rule = f"^{rule.pattern}$" if rule.pattern else "-"
        lines += [
            f"{rule.name}  ({rule.label})",
            f"  tools at most : {rule.tool_cap if rule.tool_cap is not None else '-'}"
            + (f" (warns above {rule.warn_cap})" if rule.warn_cap is not None else ""),
            f"  name          : {name_rule}, at most {rule.max_length if rule.max_length is not None else '-'} "
            f"characters, {_counted(rule)}",
            f"  notes         : {rule.notes}",
            *(f"  source        : {url}" for url in rule.sources),
            "",
        ]
    return "\n".join(lines)


def table_json() -> list[dict[str, object]]:
    return [
        {
            "name": r.name,
            "label": r.label,
            "tool_cap": r.tool_cap,
            "warn_cap": r.warn_cap,
            "pattern": r.pattern,
            "max_length": r.max_length,
            "prefix": r.prefix,
            "sources": list(r.sources),
            "notes": r.notes,
        }
        for r in RULES
    ]
