"""Render `gateway.py` and `requirements.txt` from the templates, one template per output file.

The compiler decides every value and its order here; the templates only lay
them out. Nothing rendered depends on time, hash seed or the machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
from mcpgw_runtime.spec import AuditSpec, GatewaySpec, TracingSpec

from mcpgw import __version__
from mcpgw.config import Auth, Config
from mcpgw.format import format_python
from mcpgw.names import Exposed
from mcpgw.policy import Compiled, limits_literal, policy_literal, runtime_imports
from mcpgw.profiles import DEFAULT, Profile
from mcpgw.pyliteral import pyliteral
from mcpgw.resources import template_dir
from mcpgw.search_index import build_index, render_index
from mcpgw.snapshot import BackendOffer
from mcpgw.specs import audit_spec, auth_spec, backend_spec, tracing_spec
from mcpgw.vendor import Vendored
from mcpgw.wording import plural

RUNTIME_PACKAGES = frozenset({"httptools", "mcp", "pyjwt", "rich", "starlette", "uvicorn", "uvloop"})
"""What the gateway imports besides the standard library.

pyjwt (with `cryptography`, its `crypto` extra) checks OAuth access tokens; only a gateway with
`gateway.auth` imports it, and mcp requires it anyway.

rich only draws the panel on a terminal; httptools and uvloop are what uvicorn picks
when present, and halve the HTTP hop's CPU (bench/README.md); without them it runs on h11
and asyncio's own loop."""


def runtime_requirements() -> tuple[str, ...]:
    """pyproject.toml's exact pins of `RUNTIME_PACKAGES`, read from mcpgw's installed metadata: one source."""
    found = []
    for line in metadata.requires("mcpgw") or []:
        name = re.split(r"[\s=<>!~;\[]", line, maxsplit=1)[0].lower()
        if name in RUNTIME_PACKAGES and "extra ==" not in line:
            found.append(line.replace('"', "'"))
    return tuple(sorted(found))


TRACING_PACKAGES = frozenset({"opentelemetry-exporter-otlp-proto-http", "opentelemetry-sdk"})
"""What a gateway with `gateway.tracing` imports besides (tracing.py): pyproject.toml's `otel` extra."""


def tracing_requirements() -> tuple[str, ...]:
    """The `otel` extra's exact pins, read as `runtime_requirements` reads the runtime's, without the extra marker."""
    found = []
    for line in metadata.requires("mcpgw") or []:
        requirement, _, marker = line.partition(";")
        name = re.split(r"[\s=<>!~\[]", requirement, maxsplit=1)[0].lower()
        if name in TRACING_PACKAGES and "otel" in marker:
            found.append(requirement.strip())
    return tuple(sorted(found))


@dataclass(frozen=True)
class RenderInput:
    config: Config
    config_name: str
    config_dir_from_output: str
    offers: dict[str, BackendOffer]
    exposed: Exposed
    tool_pins: dict[str, str]
    prompt_pins: dict[str, str]
    runtime: Vendored
    profiles: tuple[Profile, ...] = ()
    """Every profile, "default" first; only the named ones are written."""
    policy: Compiled | None = None
    """`gateway.policy` and `gateway.limits` resolved (policy.py); None or empty tables: neither configured."""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["py"] = pyliteral
    env.filters["plural"] = plural
    return env


def _default(field: Field[Any]) -> object:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return MISSING


def _non_default(value: object, field: Field[Any]) -> bool:
    return _default(field) is MISSING or _plain(value) != _plain(_default(field))


def _backend_literal(config: Config, name: str) -> str:
    """`BackendSpec(...)` with the fields that differ from the runtime's defaults: a one-line config
    change is a one-line table change, and a new field needs no change here."""
    spec = backend_spec(config.backends[name])
    values = ((f.name, getattr(spec, f.name)) for f in fields(spec) if _non_default(getattr(spec, f.name), f))
    return f"BackendSpec({', '.join(f'{k}={pyliteral(_plain(v))}' for k, v in values)})"


GATEWAY_SETTINGS = (
    "separator",
    "instructions",
    "host",
    "port",
    "log_dir",
    "allowed_hosts",
    "allowed_origins",
    "max_body_bytes",
    "max_header_bytes",
    "max_headers",
    "header_timeout",
    "body_timeout",
    "max_connections",
    "max_sse_streams",
    "max_sessions",
    "session_idle_timeout",
    "max_sessions_per_caller",
)
"""The `gateway` section's fields that `GatewaySpec` carries, written when not the runtime's default."""


def _settings(config: Config) -> list[str]:
    by_name = {f.name: f for f in fields(GatewaySpec)}
    written = []
    for name in GATEWAY_SETTINGS:
        value = getattr(config.gateway, name)
        value = tuple(value) if isinstance(value, list) else value
        if _non_default(value, by_name[name]):
            written.append(f"{name}={pyliteral(_plain(value))}")
    if config.gateway.auth is not None:
        written.append(f"auth={_auth_literal(config.gateway.auth)}")
    if config.gateway.audit is not None:
        written.append(f"audit={_literal('AuditSpec', audit_spec(config.gateway.audit))}")
    if config.gateway.tracing is not None:
        written.append(f"tracing={_literal('TracingSpec', tracing_spec(config.gateway.tracing))}")
    return written


def _literal(kind: str, spec: AuditSpec | TracingSpec) -> str:
    """`AuditSpec(...)`, `TracingSpec(...)`: the fields that differ from the runtime's defaults."""
    values = ((f.name, getattr(spec, f.name)) for f in fields(spec) if _non_default(getattr(spec, f.name), f))
    return f"{kind}({', '.join(f'{k}={pyliteral(v)}' for k, v in values)})"


def _auth_literal(auth: Auth) -> str:
    """`AuthSpec(...)` with the issuer and the fields that differ from the runtime's defaults."""
    spec = auth_spec(auth)
    values = ((f.name, getattr(spec, f.name)) for f in fields(spec) if _non_default(getattr(spec, f.name), f))
    return f"AuthSpec({', '.join(f'{k}={pyliteral(v)}' for k, v in values)})"


def _plain(value: object) -> object:
    return dict(value) if isinstance(value, Mapping) else value


def _lines(values: tuple[str, ...]) -> str:
    """A tuple of names one per line (the trailing comma keeps ruff from joining them): one name, one diff line."""
    return "(" + "".join(f"{pyliteral(v)}, " for v in values) + ")"


def _profile_literal(profile: Profile) -> str:
    """`ProfileSpec(...)`: the names it shows, one per line, and the settings that differ from the defaults."""
    written = [f"tools={_lines(profile.tool_names)}"]
    if profile.prompts:
        written.append(f"prompts={_lines(profile.prompts)}")
    written.append(f"backends={pyliteral(profile.backends)}")
    if profile.resource_include != ("*",):
        written.append(f"resource_include={pyliteral(profile.resource_include)}")
    if profile.resource_exclude:
        written.append(f"resource_exclude={pyliteral(profile.resource_exclude)}")
    if profile.mode != "all":
        written.append(f"mode={pyliteral(profile.mode)}")
    if profile.always:
        written.append(f"always={_lines(profile.always)}")
    if profile.mode == "search":
        written.append(f"search={render_index(build_index(profile.tools))}")
    if profile.description is not None:
        written.append(f"description={pyliteral(profile.description)}")
    return f"ProfileSpec({', '.join(written)},)"


def render_gateway(inp: RenderInput) -> str:
    config, exposed, compiled = inp.config, inp.exposed, inp.policy
    enabled = [name for name, b in sorted(config.backends.items()) if b.enabled]
    text = (
        _environment()
        .get_template("gateway.py.jinja")
        .render(
            version=__version__,
            config_name=inp.config_name,
            gateway=config.gateway,
            runtime_version=inp.runtime.version,
            runtime_digest=inp.runtime.digest,
            backends=[_backend_literal(config, n) for n in enabled],
            profiles={p.name: _profile_literal(p) for p in inp.profiles if p.name != DEFAULT},
            policy=policy_literal(compiled) if compiled is not None and compiled.policy is not None else None,
            limits=limits_literal(compiled.limits) if compiled is not None and compiled.limits is not None else None,
            policy_imports=runtime_imports(compiled) if compiled is not None else [],
            searching=any(p.mode == "search" for p in inp.profiles),
            settings=_settings(config),
            exposed=exposed,
            tool_pins=inp.tool_pins,
            prompt_pins=inp.prompt_pins,
            config_dir=inp.config_dir_from_output,
        )
    )
    return format_python(text)


def render_requirements(inp: RenderInput) -> str:
    return (
        _environment()
        .get_template("requirements.txt.jinja")
        .render(
            version=__version__,
            config_name=inp.config_name,
            requirements=runtime_requirements(),
            tracing=tracing_requirements() if inp.config.gateway.tracing is not None else (),
        )
    )


def relative_dir(config_path: Path, output_dir: Path) -> str:
    """The config's folder as seen from the output folder, POSIX-style, for the embedded table."""
    rel = os.path.relpath(config_path.resolve().parent, output_dir.resolve())
    return Path(rel).as_posix()
