# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Typed shapes of the tables that `mcpgw build` writes into every gateway.

The compiler renders these as literals; the runtime reads them. Nothing here
is computed at run time, so what a reviewer sees in `gateway.py` is what runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcpgw_runtime.limits import LimitsSpec
    from mcpgw_runtime.policy import PolicySpec
    from mcpgw_runtime.search import SearchIndex

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """How to reach one backend; strings keep their `${VAR}` references."""

    name: str
    type: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    tool_timeouts: Mapping[str, float] = field(default_factory=dict)
    startup_timeout: float = 30.0
    max_concurrency: int = 32
    """Requests in flight to this backend at once; more wait in a queue."""
    max_queue: int = 256
    """Requests that may wait for a slot; beyond it a call is rejected with an error naming the backend."""
    session: str = "shared"
    max_client_sessions: int = 16
    """`session: per-client`: this backend's connections (processes, for stdio) open for clients at once."""
    client_idle_timeout: float = 300.0
    """`session: per-client`: seconds a client's own connection may go without a call before it is closed."""
    client_spawn_rate: float = 1.0
    """`session: per-client`: connections (processes, for stdio) this backend may open per second for clients."""
    pin: str = "strict"
    prefix: str | None = None
    """What exposed names start with; None means the backend's name, "" means no prefix."""
    tool_include: tuple[str, ...] = ("*",)
    tool_exclude: tuple[str, ...] = ()
    tool_rename: Mapping[str, str] = field(default_factory=dict)
    tool_describe: Mapping[str, str] = field(default_factory=dict)
    prompt_include: tuple[str, ...] = ("*",)
    prompt_exclude: tuple[str, ...] = ()
    prompt_rename: Mapping[str, str] = field(default_factory=dict)
    resource_include: tuple[str, ...] = ("*",)
    resource_exclude: tuple[str, ...] = ()

    def exposes_resource(self, uri: str) -> bool:
        """The config's `resources` globs, applied to live listings as the build applied them."""
        return selected(uri, self.resource_include, self.resource_exclude)

    def texts(self) -> list[str]:
        """Every field that may hold a `${VAR}` reference (what error messages must not quote expanded)."""
        texts = [self.command or "", *self.args, *self.env.values(), self.cwd or "", self.url or ""]
        return [*texts, *self.headers.values()]

    def exposed_name(self, kind: str, original: str, separator: str) -> str | None:
        """The name clients see for a backend's tool or prompt, or None if the config filters it out.

        The build and the running gateway (for tools that appear after the
        snapshot, under `pin: warn|off`) both name items with this.
        """
        if kind == "tool":
            include, exclude, rename = self.tool_include, self.tool_exclude, self.tool_rename
        else:
            include, exclude, rename = self.prompt_include, self.prompt_exclude, self.prompt_rename
        if not selected(original, include, exclude):
            return None
        renamed = rename.get(original, original)
        prefix = self.name if self.prefix is None else self.prefix
        return f"{prefix}{separator}{renamed}" if prefix else renamed

    def expose(self, kind: str, item: Mapping[str, Any], separator: str) -> JSON | None:
        """The definition clients see: renamed, description overridden; None if filtered out."""
        original = str(item.get("name"))
        name = self.exposed_name(kind, original, separator)
        if name is None:
            return None
        definition = {**item, "name": name}
        if kind == "tool" and original in self.tool_describe:
            definition["description"] = self.tool_describe[original]
        return definition


def selected(name: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Glob filters as the config means them: any include matches and no exclude does."""
    return any(fnmatchcase(name, p) for p in include) and not any(fnmatchcase(name, p) for p in exclude)


@dataclass(frozen=True, slots=True)
class AuthSpec:
    """`gateway.auth`: the gateway as an OAuth 2.1 resource server (auth.py, oauth.py; docs/auth.md)."""

    issuer: str
    """The authorization server's issuer identifier: tokens must carry exactly this `iss`."""
    public_url: str | None = None
    """The URL clients reach the gateway at (scheme://host[:port]); None: the bound address."""
    jwks_uri: str | None = None
    """The issuer's key set; None: found by RFC 8414 / OpenID Connect discovery of `issuer`."""
    audience: tuple[str, ...] = ()
    """Accepted `aud` values; empty: the gateway's own URLs (public_url, and public_url + /mcp, /sse, ...)."""
    scopes: tuple[str, ...] = ()
    """Scopes every token must carry (403 insufficient_scope otherwise); advertised as scopes_supported."""
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    """JWS algorithms accepted; asymmetric only."""
    clock_skew: float = 30.0
    """Seconds of slack on `exp`, `nbf` and `iat`."""
    jwks_max_age: float = 3600.0
    """Seconds a fetched key set is used before it is fetched again."""
    jwks_min_interval: float = 10.0
    """Fewest seconds between two fetches of the key set that requests cause (an unknown `kid`)."""


@dataclass(frozen=True, slots=True)
class AuditSpec:
    """`gateway.audit`: one JSON line per forwarded request in its own file (audit.py; docs/observability.md)."""

    path: str = "logs/audit.jsonl"
    """The file, relative to the config's folder; rotated to `<path>.1` ... `<path>.<backups>`."""
    max_bytes: int = 50 * 1024 * 1024
    """Size at which the file is rotated."""
    backups: int = 10
    """Rotated files kept; the oldest is dropped."""
    arguments: bool = False
    """Also record the request's arguments themselves (always: their sha256)."""


@dataclass(frozen=True, slots=True)
class TracingSpec:
    """`gateway.tracing`: OpenTelemetry spans exported over OTLP/HTTP (tracing.py; docs/observability.md)."""

    endpoint: str | None = None
    """The OTLP/HTTP receiver (`http://127.0.0.1:4318`; spans go to its `/v1/traces`); None: the
    OTEL_EXPORTER_OTLP_* environment variables, else the exporter's default."""
    service_name: str | None = None
    """`service.name` of the spans; None: OTEL_SERVICE_NAME, else the gateway's name."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where an exposed tool or prompt name goes: backend and original name."""

    backend: str
    name: str


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """One named profile's tables (`gateway.profiles.<name>`): what its clients list and may call.

    Served at `/mcp/<name>`, `/sse/<name>` and with `--profile <name>` under stdio; `/mcp`
    and `/sse` serve everything (the implicit profile "default", which has no entry).
    """

    tools: tuple[str, ...]
    """The exposed tools it may call, in listing order; any other name is an unknown tool."""
    prompts: tuple[str, ...] = ()
    """The exposed prompts it may list and get."""
    backends: tuple[str, ...] = ()
    """The backends whose resources and resource templates it shows."""
    resource_include: tuple[str, ...] = ("*",)
    resource_exclude: tuple[str, ...] = ()
    mode: str = "all"
    """"all": tools/list lists `tools`; "search": a search tool and a call tool, then `always`."""
    always: tuple[str, ...] = ()
    """mode search: tools listed beside the search and call tools."""
    search: SearchIndex | None = None
    """mode search: the compiled search index over `tools` (search.py)."""
    description: str | None = None
    """Shown in the startup panel."""

    def shows_resource(self, uri: str, backend: str) -> bool:
        """A resource URI or URI template of `backend`, under this profile's globs."""
        return backend in self.backends and selected(uri, self.resource_include, self.resource_exclude)


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    """Gateway-wide settings and every embedded table."""

    name: str
    version: str
    generator: str
    config_dir: str
    backends: tuple[BackendSpec, ...]
    tools: tuple[JSON, ...]
    tool_routes: Mapping[str, Target]
    prompts: tuple[JSON, ...]
    prompt_routes: Mapping[str, Target]
    resource_templates: tuple[tuple[str, JSON], ...]
    resources: Mapping[str, str]
    tool_pins: Mapping[str, str]
    prompt_pins: Mapping[str, str]
    separator: str = "__"
    instructions: str | None = None
    host: str = "127.0.0.1"
    port: int = 9000
    log_dir: str = "logs"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    auth: AuthSpec | None = None
    """OAuth 2.1 resource server settings; None: only the static MCPGW_TOKEN, if set."""
    max_body_bytes: int = 4 * 1024 * 1024
    max_header_bytes: int = 32 * 1024
    """Largest request head (request line and headers), in bytes: 431 beyond (httplimits.py)."""
    max_headers: int = 100
    """Most header fields in one request: 431 beyond."""
    header_timeout: float = 10.0
    """Seconds from a connection's open (or a request's first byte) to its headers' end: 408 after."""
    body_timeout: float = 30.0
    """Seconds from a request's headers' end to its body's end: 408 after."""
    max_connections: int = 1000
    """Client connections open at once: 503 with Retry-After at accept beyond."""
    max_sse_streams: int = 100
    """Legacy `/sse` streams open at once: 503 with Retry-After beyond (http.py)."""
    max_sessions: int = 1000
    """Streamable HTTP sessions open at once, the front's and the SDK's together (session_table.py)."""
    session_idle_timeout: float = 900.0
    """Seconds a Streamable HTTP session may go with no request in flight before it is ended."""
    max_sessions_per_caller: int = 500
    """Sessions one OAuth caller may hold of them (session_table.py); the static token is everyone's, not counted."""
    profiles: Mapping[str, ProfileSpec] = field(default_factory=dict)
    """Named profiles by name (profiles.py applies them); none: every client sees everything."""
    audit: AuditSpec | None = None
    """The audit log's settings; None: no audit log unless `--audit` asks for one."""
    tracing: TracingSpec | None = None
    """OpenTelemetry tracing; None: only if OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) is set."""
    policy: PolicySpec | None = None
    """`gateway.policy`: which callers may list and call what (policy.py); None: every caller everything."""
    limits: LimitsSpec | None = None
    """`gateway.limits`: rate limits and result size caps (limits.py); None: none."""
