"""The in-memory config: one shape, whichever file shape it was loaded from.

The models accept exactly what `schemas/config.schema.json` accepts (a test
proves it on a table of fixtures). `load.py` runs the schema first because it
gives located messages; the models are the typed form the rest of the
compiler reads, with `type` normalised and every default filled.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mcpgw.clients import SERVERS_KEYS, plain_refs

Transport = Literal["stdio", "sse", "http"]
TYPE_ALIASES: dict[str, Transport] = {
    "stdio": "stdio",
    "sse": "sse",
    "http": "http",
    "streamable-http": "http",
    "streamableHttp": "http",
}
BACKEND_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
PROFILE_NAME = re.compile(r"(?!default$)[a-z0-9][a-z0-9_-]{0,31}")
"""A profile's name; "default" is the implicit profile that shows everything, at /mcp and /sse."""
SEPARATOR = re.compile(r"/|[A-Za-z0-9_-]+")
SEED_RESERVED = ("$schema", "gateway")
"""Top-level keys of the seed shape that are not backend names."""
CLIENTS_KEYS = ("$schema", "gateway", "mcpServers")
EXPANDED_FIELDS = ("command", "cwd", "url")


def _full_match(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{what} {value!r} does not match {pattern.pattern}")
        return value

    return AfterValidator(check)


def _integral(value: object) -> object:
    """JSON Schema counts 64.0 as an integer, so the models must too."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Text = Annotated[str, Field(min_length=1)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, BeforeValidator(_integral), Field(ge=1)]
Port = Annotated[int, BeforeValidator(_integral), Field(ge=1, le=65535)]
BackendName = Annotated[str, _full_match(BACKEND_NAME, "backend name")]
Separator = Annotated[str, _full_match(SEPARATOR, "separator")]
ProfileName = Annotated[str, _full_match(PROFILE_NAME, "profile name")]


def _from_document(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and info.context.get("document") is True


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any, info: ValidationInfo) -> Any:
        """In config.json no field accepts null: an optional field is left out, not set to null."""
        if _from_document(info) and isinstance(data, dict):
            for key, value in data.items():
                if value is None:
                    raise ValueError(f"{key!r} is null; leave the field out instead")
        return data


OAUTH_URL = re.compile(
    r"https://[^\s/?#]+(/[^\s?#]*)?|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?(/[^\s?#]*)?"
)
"""An issuer or JWKS URL: https, or http on a loopback host (a local test provider); no query, no fragment."""
PUBLIC_URL = re.compile(r"https?://[^\s/?#]+/?")
"""Where clients reach the gateway: scheme and authority only (the endpoints' paths are added to it)."""
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
"""An OAuth scope name (RFC 6749 section 3.3): printable ASCII without space, `"` or `\\`."""
JwsAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
"""The asymmetric JWS algorithms an access token may be signed with (never `none`, never HS*)."""
DEFAULT_ALGORITHMS: tuple[JwsAlgorithm, ...] = ("RS256", "ES256")


class Auth(_Frozen):
    """`gateway.auth`: the gateway as an OAuth 2.1 resource server (docs/auth.md); runtime: auth.py, oauth.py."""

    issuer: Annotated[str, _full_match(OAUTH_URL, "issuer")]
    public_url: Annotated[str, _full_match(PUBLIC_URL, "public_url")] | None = None
    jwks_uri: Annotated[str, _full_match(OAUTH_URL, "jwks_uri")] | None = None
    audience: list[Text] = Field(default_factory=list)
    scopes: list[Annotated[str, _full_match(SCOPE_TOKEN, "scope")]] = Field(default_factory=list)
    algorithms: list[JwsAlgorithm] = Field(default_factory=lambda: list(DEFAULT_ALGORITHMS), min_length=1)
    clock_skew: Annotated[float, Field(ge=0, le=300, allow_inf_nan=False)] = 30.0
    jwks_max_age: Seconds = 3600.0
    jwks_min_interval: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 10.0


OTLP_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")
"""An OTLP/HTTP receiver: http or https, no query, no fragment."""


class Audit(_Frozen):
    """`gateway.audit`: one JSON line per forwarded request (docs/observability.md); runtime: audit.py, exchange.py."""

    path: Text = "logs/audit.jsonl"
    max_bytes: Count = 50 * 1024 * 1024
    backups: Annotated[int, BeforeValidator(_integral), Field(ge=0)] = 10
    arguments: bool = False


class Tracing(_Frozen):
    """`gateway.tracing`: OpenTelemetry spans over OTLP/HTTP (docs/observability.md); runtime: tracing.py."""

    endpoint: Annotated[str, _full_match(OTLP_URL, "endpoint")] | None = None
    service_name: Text | None = None


class ResourceRules(_Frozen):
    """Globs over resource URIs and URI templates."""

    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)


class PromptRules(ResourceRules):
    """Globs over original prompt names, and renames."""

    rename: dict[str, Text] = Field(default_factory=dict)


class NameRules(PromptRules):
    """Tool filters: prompt rules plus description overrides."""

    describe: dict[str, str] = Field(default_factory=dict)


LINT_RULE_ID = re.compile(r"MCPGW-L[0-9]{3}")
LintRuleId = Annotated[str, _full_match(LINT_RULE_ID, "lint rule ID")]


class LintRules(_Frozen):
    """The lint's findings accepted on review: item name (or "$instructions") → rule IDs (docs/lint.md)."""

    accept: dict[Text, list[LintRuleId]] = Field(default_factory=dict)


def url_transport(url: object) -> Transport:
    """`sse` when the URL path ends in /sse, else `http` (the clients' convention)."""
    try:
        path = urlsplit(url).path if isinstance(url, str) else ""
    except ValueError:
        path = ""
    return "sse" if path.rstrip("/").endswith("/sse") else "http"


class Backend(_Frozen):
    """One backend. `type` is normalised: aliases mapped, an omitted type inferred."""

    name: BackendName
    type: Transport
    command: Text | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: Text | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    prefix: str | None = None
    """None means the backend name; "" exposes names unprefixed."""
    tools: NameRules = Field(default_factory=NameRules)
    prompts: PromptRules = Field(default_factory=PromptRules)
    resources: ResourceRules = Field(default_factory=ResourceRules)
    timeout: Seconds = 60.0
    tool_timeouts: dict[str, Seconds] = Field(default_factory=dict)
    startup_timeout: Seconds = 30.0
    max_concurrency: Count = 32
    max_queue: Annotated[int, BeforeValidator(_integral), Field(ge=0)] = 256
    session: Literal["shared", "per-client"] = "shared"
    max_client_sessions: Count = 16
    client_idle_timeout: Seconds = 300.0
    client_spawn_rate: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    pin: Literal["strict", "warn", "off"] = "strict"
    description: str | None = None
    lint: LintRules = Field(default_factory=LintRules)

    @model_validator(mode="before")
    @classmethod
    def _normalise_type(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        kind = data.get("type")
        if isinstance(kind, str) and kind in TYPE_ALIASES:
            return {**data, "type": TYPE_ALIASES[kind]}
        if "type" not in data and "url" in data:
            return {**data, "type": url_transport(data["url"])}
        if "type" not in data and "command" in data:
            return {**data, "type": "stdio"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _plain_refs(cls, data: Any) -> Any:
        """`${env:NAME}` (VS Code, Cursor) is `${NAME}`: written the one way, both build the same gateway."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key in EXPANDED_FIELDS:
            if isinstance(out.get(key), str):
                out[key] = plain_refs(out[key])
        if isinstance(out.get("args"), list):
            out["args"] = [plain_refs(a) if isinstance(a, str) else a for a in out["args"]]
        for key in ("env", "headers"):
            if isinstance(out.get(key), dict):
                out[key] = {k: plain_refs(v) if isinstance(v, str) else v for k, v in out[key].items()}
        return out

    @model_validator(mode="after")
    def _transport_fields(self) -> Backend:
        if self.type != "stdio":
            if self.url is None:
                raise ValueError(f'an {self.type} backend needs "url"')
            return self
        if self.command is None:
            raise ValueError('a stdio backend needs "command"')
        stray = sorted({"url", "headers"} & self.model_fields_set)
        if stray:
            raise ValueError(f"{', '.join(stray)} do not apply to a stdio backend")
        return self


class Selection(_Frozen):
    """A profile's globs over exposed names (or resource URIs and URI templates)."""

    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)


class Annotations(_Frozen):
    """The tool annotations a profile's tools must have; None: any value."""

    readOnlyHint: bool | None = None
    destructiveHint: bool | None = None
    idempotentHint: bool | None = None
    openWorldHint: bool | None = None


class ToolSelection(Selection):
    """Globs over exposed tool names, and annotation filters."""

    annotations: Annotations = Field(default_factory=Annotations)


class BudgetConfig(_Frozen):
    """Most tools and tokens a profile may list."""

    max_tools: Count | None = None
    max_tokens: Count | None = None


class ProfileConfig(_Frozen):
    """One named tool surface (`gateway.profiles.<name>`); omitted selections show everything."""

    description: str | None = None
    mode: Literal["all", "search"] = "all"
    backends: list[str] = Field(default_factory=lambda: ["*"])
    tools: ToolSelection = Field(default_factory=ToolSelection)
    prompts: Selection = Field(default_factory=Selection)
    resources: Selection = Field(default_factory=Selection)
    always: list[Text] = Field(default_factory=list)
    clients: list[Text] = Field(default_factory=list)
    budget: BudgetConfig | None = None


RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
"""A policy or rate rule's name: in error messages and a metric label."""
RuleName = Annotated[str, _full_match(RULE_NAME, "rule name")]
ScopeName = Annotated[str, _full_match(SCOPE_TOKEN, "scope")]


class PolicyItems(_Frozen):
    """What a policy rule allows or denies: globs over exposed names and resource URIs, and tool annotations.

    `tools` omitted means none, unless `annotations` is given: then every tool with those annotations.
    """

    tools: list[str] | None = None
    prompts: list[str] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    annotations: Annotations = Field(default_factory=Annotations)


class PolicyCallers(_Frozen):
    """Which callers a policy rule is for: every condition given must hold; none given: every caller."""

    scopes: list[ScopeName] = Field(default_factory=list)
    sub: list[Text] = Field(default_factory=list)
    client_id: list[Text] = Field(default_factory=list)
    claims: dict[Text, Annotated[list[Text], Field(min_length=1)]] = Field(default_factory=dict)
    static: Literal[True] | None = None
    local: Literal[True] | None = None


class PolicyRule(_Frozen):
    """One rule of `gateway.policy`: exactly one of `allow` and `deny`."""

    name: RuleName
    description: str | None = None
    allow: PolicyItems | None = None
    deny: PolicyItems | None = None
    callers: PolicyCallers = Field(default_factory=PolicyCallers)

    @model_validator(mode="after")
    def _one_effect(self) -> PolicyRule:
        if (self.allow is None) == (self.deny is None):
            raise ValueError('a policy rule needs exactly one of "allow" and "deny"')
        return self

    @property
    def effect(self) -> Literal["allow", "deny"]:
        return "allow" if self.allow is not None else "deny"

    @property
    def items(self) -> PolicyItems:
        found = self.allow if self.allow is not None else self.deny
        assert found is not None
        return found


class Policy(_Frozen):
    """`gateway.policy` (docs/policy.md): the first rule that matches the caller and names the item decides;
    anything no rule allows is denied."""

    rules: Annotated[list[PolicyRule], Field(min_length=1)]


class RateRule(_Frozen):
    """One `gateway.limits.rate` rule: a token bucket per caller or per tool."""

    name: RuleName | None = None
    tools: Annotated[list[str], Field(min_length=1)]
    per: Literal["caller", "tool"] = "caller"
    rate: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    burst: Count | None = None


class ResultCapRule(_Frozen):
    """One `gateway.limits.max_result_bytes` rule."""

    tools: Annotated[list[str], Field(min_length=1)]
    bytes: Annotated[int, BeforeValidator(_integral), Field(ge=256)]
    action: Literal["truncate", "refuse"] = "truncate"


class Limits(_Frozen):
    """`gateway.limits` (docs/policy.md): rate limits and result size caps per tool."""

    rate: list[RateRule] = Field(default_factory=list)
    max_result_bytes: list[ResultCapRule] = Field(default_factory=list)


class Gateway(_Frozen):
    """Gateway-wide settings, every one with a default."""

    name: Text = "mcpgw"
    separator: Separator = "__"
    max_name_length: Count = 64
    host: Text = "127.0.0.1"
    port: Port = 9000
    log_dir: Text = "logs"
    allowed_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    auth: Auth | None = None
    audit: Audit | None = None
    tracing: Tracing | None = None
    max_body_bytes: Count = 4 * 1024 * 1024
    max_header_bytes: Count = 32 * 1024
    max_headers: Count = 100
    header_timeout: Seconds = 10.0
    body_timeout: Seconds = 30.0
    max_connections: Count = 1000
    max_sse_streams: Count = 100
    max_sessions: Count = 1000
    session_idle_timeout: Seconds = 900.0
    max_sessions_per_caller: Count = 500
    instructions: str | None = None
    profiles: dict[ProfileName, ProfileConfig] = Field(default_factory=dict)
    policy: Policy | None = None
    limits: Limits | None = None


class Config(_Frozen):
    """A loaded config. `backends` is sorted by name; `shape` records the file's shape only."""

    backends: dict[BackendName, Backend] = Field(default_factory=dict)
    gateway: Gateway = Field(default_factory=Gateway)
    shape: Literal["seed", "mcpServers", "servers"] = "seed"

    @model_validator(mode="before")
    @classmethod
    def _unwrap_document(cls, data: Any, info: ValidationInfo) -> Any:
        """With context {"document": True}, `data` is config.json as parsed, in either shape."""
        if not _from_document(info) or not isinstance(data, dict):
            return data
        if not isinstance(data.get("$schema", ""), str):
            raise ValueError('"$schema" must be a string')
        if "mcpServers" in data:
            unknown = sorted(set(data) - set(CLIENTS_KEYS))
            if unknown:
                raise ValueError(f"unknown top-level field {unknown[0]!r}")
            out = {"backends": data["mcpServers"], "shape": "mcpServers"}
        elif "servers" in data:
            unknown = sorted(set(data) - set(SERVERS_KEYS))
            if unknown:
                raise ValueError(f"unknown top-level field {unknown[0]!r}")
            inputs = data.get("inputs", [])
            if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
                raise ValueError('"inputs" must be an array of objects')
            out = {"backends": data["servers"], "shape": "servers"}
        else:
            out = {"backends": {k: v for k, v in data.items() if k not in SEED_RESERVED}, "shape": "seed"}
        if "gateway" in data:
            out["gateway"] = data["gateway"]
        return out

    @field_validator("backends", mode="before")
    @classmethod
    def _names_from_keys(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key, raw in value.items():
            if isinstance(raw, dict) and "name" in raw:
                raise ValueError(f'backend {key!r}: "name" is not a field; the key is the name')
        return {key: {**raw, "name": key} if isinstance(raw, dict) else raw for key, raw in value.items()}

    @field_validator("backends")
    @classmethod
    def _sorted(cls, value: dict[str, Backend]) -> dict[str, Backend]:
        for key, backend in value.items():
            if backend.name != key:
                raise ValueError(f"backend {key!r} is named {backend.name!r}")
        return dict(sorted(value.items()))


def config_from_document(document: object) -> Config:
    """Build the models from config.json as parsed; raises pydantic.ValidationError."""
    return Config.model_validate(document, context={"document": True})


def _sorted_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_json(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_json(v) for v in value]
    return value


def normalized(config: Config) -> dict[str, Any]:
    """The canonical JSON-able config behind the config digest.

    Defaults filled, `type` normalised, keys sorted, `${VAR}` text unexpanded. The
    file shape, `$schema` and the lint's acceptances are left out: they change nothing the gateway does.
    """
    backends = {name: b.model_dump(mode="json", exclude={"name", "lint"}) for name, b in config.backends.items()}
    unset = {"policy", "limits"} - {name for name in ("policy", "limits") if getattr(config.gateway, name) is not None}
    gateway = config.gateway.model_dump(mode="json", exclude=unset if config.gateway.profiles else {"profiles", *unset})
    out: dict[str, Any] = _sorted_json({"backends": backends, "gateway": gateway})
    return out
