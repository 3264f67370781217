"""Typed shapes of the tables that `mcpgw build` writes into every gateway.

The compiler renders these as literals; the runtime reads them. Nothing here
is computed at run time, so what a reviewer sees in `gateway.py` is what runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

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
    session: str = "shared"
    pin: str = "strict"
    resource_include: tuple[str, ...] = ("*",)
    resource_exclude: tuple[str, ...] = ()

    def exposes_resource(self, uri: str) -> bool:
        """The config's `resources` globs, applied to live listings as the build applied them."""
        return any(fnmatchcase(uri, p) for p in self.resource_include) and not any(
            fnmatchcase(uri, p) for p in self.resource_exclude
        )


@dataclass(frozen=True, slots=True)
class Target:
    """Where an exposed tool or prompt name goes: backend and original name."""

    backend: str
    name: str


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
    pins: Mapping[str, str]
    instructions: str | None = None
    host: str = "127.0.0.1"
    port: int = 9000
    log_dir: str = "logs"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 4 * 1024 * 1024
