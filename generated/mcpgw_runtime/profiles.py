# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Profiles at run time: which profile a request belongs to, and what that profile lets it list and call.

A profile's tables are the compiler's (`spec.ProfileSpec`, written into gateway.py's
`PROFILES`); nothing here decides membership. This module only applies them, the
same way in both halves of the gateway (the front without the SDK, the core with it):

    /mcp, /sse                         the implicit profile "default": everything
    /mcp/<name>, /sse/<name>           PROFILE set for the request (front.py, http.py)
    --transport stdio --profile <name> PROFILE set for the process's one client (stdio.py)

`PROFILE` is a context variable, set for each HTTP request from its path and read
wherever the request is served: the SDK runs a message's handler in the context of
the request that carried it (its dispatcher carries the sender's context variables
over), and the front's own answers run in that request's task. A session keeps the
profile of the path that opened it: the session table (session_table.py) answers a
request naming it on another profile's path as it answers an unknown session (404),
and a legacy SSE session is unknown to every other profile's message endpoint.

A name outside the request's profile is an unknown tool (or prompt); a resource
outside it is one no backend offers: a client cannot tell a hidden item from a
missing one. What a profile lists is the gateway's current list (the tables, then
the pins' verdicts) filtered to the profile's names, so a held-back tool leaves every
profile's list at once.

With `gateway.policy` (policy.py) the lists, the search and the resources are then
filtered to what the request's caller may use, and `permit` refuses a name in the
profile that the policy denies (`POLICY_DENIED`, naming the rule): a profile and a
policy compose, a caller sees their intersection.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from mcpgw_runtime.search import CALL_TOOL, SEARCH_TOOL, call_target, search_call, tool_definitions
from mcpgw_runtime.spec import JSON, GatewaySpec, ProfileSpec

if TYPE_CHECKING:
    from mcpgw_runtime.policy import Policy

DEFAULT = "default"
"""The implicit profile: everything the gateway exposes."""

PROFILE: ContextVar[str] = ContextVar("mcpgw_profile", default=DEFAULT)
"""The profile of the request being served (or of the session whose task this is)."""


def path_profile(path: str, base: str, names: Container[str]) -> str | None:
    """The profile a request path names: `base` itself is "default", `base/<name>` a named one; None: neither."""
    if path == base:
        return DEFAULT
    head, _, name = path.rpartition("/")
    return name if head == base and name in names else None


class Profiles:
    """Every profile of a gateway, applied to the current request's (`PROFILE`).

    With no named profiles each method returns at once what it was given: a gateway
    without profiles pays one dictionary lookup per request at most.
    """

    def __init__(self, spec: GatewaySpec) -> None:
        self.specs: Mapping[str, ProfileSpec] = spec.profiles
        self._names = {
            "tool": {name: frozenset(p.tools) for name, p in spec.profiles.items()},
            "prompt": {name: frozenset(p.prompts) for name, p in spec.profiles.items()},
        }
        searching = any(p.mode == "search" for p in spec.profiles.values())
        self.search_tools: tuple[JSON, ...] = tool_definitions() if searching else ()
        """The search and call tools' definitions (search.py), listed first by a profile in mode search."""
        self._lists: dict[tuple[str, str], tuple[JSON, JSON]] = {}
        """(profile, method) → (the gateway's list it was made from, the profile's)."""
        self._usable: dict[tuple[str, object], tuple[JSON, dict[str, JSON]]] = {}
        """(profile, the caller's permissions with a policy) → (the gateway's tools/list it was made from, the
        profile's tools by name in it)."""
        self.policy: Policy | None = None
        """The caller's permissions (policy.py), applied after the profile's; None: no `gateway.policy`."""
        if spec.policy is not None:
            from mcpgw_runtime.policy import Policy

            self.policy = Policy.of(spec.policy)

    def current(self) -> ProfileSpec | None:
        """The request's named profile; None for "default" (everything)."""
        return self.specs.get(PROFILE.get()) if self.specs else None

    def allows(self, kind: str, name: str) -> bool:
        """Whether the request's profile may call this exposed tool or get this prompt ("tool" or "prompt")."""
        if not self.specs:
            return True
        names = self._names[kind].get(PROFILE.get())
        return names is None or name in names

    def permit(self, kind: str, name: str) -> None:
        """`Refused(POLICY_DENIED)` naming the rule when the policy denies the request's caller this tool, prompt
        or resource URI ("tool", "prompt", "resource"); checked once the name is known to be in the profile."""
        if self.policy is not None:
            self.policy.check(kind, name)

    def shows_resource(self, uri: str, backend: str) -> bool:
        """Whether the request's profile shows this resource URI (or URI template) of `backend`."""
        profile = self.current()
        return profile is None or profile.shows_resource(uri, backend)

    def shows_backend(self, backend: str) -> bool:
        """Whether the request's profile shows anything of `backend` (which backends `resources/list` asks)."""
        profile = self.current()
        return profile is None or backend in profile.backends

    def listing(self, method: str, full: JSON) -> JSON:
        """The request's profile's answer to `tools/list` or `prompts/list`, given the gateway's (`full`).

        Made once per change of `full` (a new object whenever the gateway's list changes).
        """
        profile = self.current()
        if self.policy is not None:
            listed = full if profile is None else self._listing(method, full, profile)
            searching = profile is not None and profile.mode == "search"
            return self.policy.listing(method, listed, PROFILE.get(), searching=searching)
        return full if profile is None else self._listing(method, full, profile)

    def _listing(self, method: str, full: JSON, profile: ProfileSpec) -> JSON:
        key = (PROFILE.get(), method)
        cached = self._lists.get(key)
        if cached is not None and cached[0] is full:
            return cached[1]
        kind, field = ("tool", "tools") if method == "tools/list" else ("prompt", "prompts")
        items = [item for item in full.get(field) or () if self.allows(kind, str(item.get("name")))]
        if kind == "tool" and profile.mode == "search":
            always = set(profile.always)
            items = [*self.search_tools, *(item for item in items if item.get("name") in always)]
        result: JSON = {field: items}
        self._lists[key] = (full, result)
        return result

    def direct(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """The tools/call a request asks for: in a search profile, `call_tool` becomes the call it names.

        The direct call then goes the way every call goes (the profile's names, pins, timeouts,
        limits, progress, errors). ValueError says what is malformed in `call_tool`'s arguments.
        """
        if params.get("name") != CALL_TOOL or not self.specs:
            return params
        profile = self.current()
        if profile is None or profile.mode != "search":
            return params
        name, arguments = call_target(params.get("arguments") if isinstance(params.get("arguments"), dict) else {})
        direct: JSON = {"name": name, "arguments": arguments}
        if "_meta" in params:
            direct["_meta"] = params["_meta"]
        return direct

    def target(self, params: object) -> str | None:
        """The exposed tool a tools/call runs (`call_tool` unwrapped); None when it names none."""
        if not isinstance(params, Mapping):
            return None
        try:
            name = self.direct(params).get("name")
        except ValueError:
            return None
        return name if isinstance(name, str) else None

    def search(self, params: Mapping[str, Any], full: JSON) -> JSON | None:
        """A search profile's `search_tools` call, answered here from its index; None for any other call.

        `full` is the gateway's current tools/list: a tool a pin holds back is not found.
        """
        if params.get("name") != SEARCH_TOOL or not self.specs:
            return None
        profile = self.current()
        if profile is None or profile.mode != "search" or profile.search is None:
            return None
        key: tuple[str, object] = (PROFILE.get(), None)
        if self.policy is not None:  # only what the caller may call is found
            permissions = self.policy.permissions()
            full = self.policy.listing("tools/list", full, f"{key[0]} search")
            key = (key[0], permissions)
        cached = self._usable.get(key)
        if cached is None or cached[0] is not full:
            usable = {str(t.get("name")): t for t in full.get("tools") or () if self.allows("tool", str(t.get("name")))}
            cached = self._usable[key] = (full, usable)
        arguments = params.get("arguments")
        return search_call(profile.search, cached[1], arguments if isinstance(arguments, dict) else {})

    def templates(self, templates: Sequence[tuple[str, JSON]]) -> list[JSON]:
        """The resource templates (backend, template) the request's profile shows."""
        profile = self.current()
        shown = [
            t for backend, t in templates if profile is None or profile.shows_resource(str(t["uriTemplate"]), backend)
        ]
        return shown if self.policy is None else self.policy.templates(shown)

    def resources(self, backend: str, listed: Sequence[Any]) -> list[Any]:
        """The entries of one backend's `resources/list` page the request's profile shows."""
        profile = self.current()
        shown = [r for r in listed if profile is None or profile.shows_resource(str(r.get("uri")), backend)]
        return shown if self.policy is None else self.policy.resources(shown)


def table_lists(spec: GatewaySpec, profiles: Profiles, encode: Callable[[Any], bytes]) -> dict[str, dict[str, bytes]]:
    """Each profile's answers from the embedded tables, encoded once: profile → method → result bytes."""
    full = {"tools/list": {"tools": list(spec.tools)}, "prompts/list": {"prompts": list(spec.prompts)}}
    out: dict[str, dict[str, bytes]] = {}
    for name in (DEFAULT, *spec.profiles):
        token = PROFILE.set(name)
        try:
            out[name] = {
                "tools/list": encode(profiles.listing("tools/list", full["tools/list"])),
                "prompts/list": encode(profiles.listing("prompts/list", full["prompts/list"])),
                "resources/templates/list": encode({"resourceTemplates": profiles.templates(spec.resource_templates)}),
                "ping": b"{}",
            }
        finally:
            PROFILE.reset(token)
    return out


def health(spec: GatewaySpec) -> JSON:
    """`/healthz`'s `profiles` entry: each profile's mode, how many tools and prompts it has, and its paths."""
    entries: JSON = {DEFAULT: {"mode": "all", "tools": len(spec.tools), "prompts": len(spec.prompts)}}
    for name, p in sorted(spec.profiles.items()):
        entries[name] = {"mode": p.mode, "tools": len(p.tools), "prompts": len(p.prompts)}
    for name, entry in entries.items():
        suffix = "" if name == DEFAULT else f"/{name}"
        entry["paths"] = [f"/mcp{suffix}", f"/sse{suffix}"]
    return entries
