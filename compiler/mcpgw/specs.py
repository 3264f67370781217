"""Config models → the runtime's `BackendSpec`, the one shape both probe and gateway use."""

from __future__ import annotations

from mcpgw_runtime.spec import AuditSpec, AuthSpec, BackendSpec, TracingSpec

from mcpgw.config import Audit, Auth, Backend, Tracing


def backend_spec(backend: Backend) -> BackendSpec:
    return BackendSpec(
        name=backend.name,
        type=backend.type,
        command=backend.command,
        args=tuple(backend.args),
        env=dict(sorted(backend.env.items())),
        cwd=backend.cwd,
        url=backend.url,
        headers=dict(sorted(backend.headers.items())),
        timeout=float(backend.timeout),
        tool_timeouts={k: float(v) for k, v in sorted(backend.tool_timeouts.items())},
        startup_timeout=float(backend.startup_timeout),
        max_concurrency=backend.max_concurrency,
        max_queue=backend.max_queue,
        session=backend.session,
        max_client_sessions=backend.max_client_sessions,
        client_idle_timeout=float(backend.client_idle_timeout),
        client_spawn_rate=float(backend.client_spawn_rate),
        pin=backend.pin,
        prefix=backend.prefix,
        tool_include=tuple(backend.tools.include),
        tool_exclude=tuple(backend.tools.exclude),
        tool_rename=dict(sorted(backend.tools.rename.items())),
        tool_describe=dict(sorted(backend.tools.describe.items())),
        prompt_include=tuple(backend.prompts.include),
        prompt_exclude=tuple(backend.prompts.exclude),
        prompt_rename=dict(sorted(backend.prompts.rename.items())),
        resource_include=tuple(backend.resources.include),
        resource_exclude=tuple(backend.resources.exclude),
    )


def auth_spec(auth: Auth) -> AuthSpec:
    return AuthSpec(
        issuer=auth.issuer,
        public_url=auth.public_url.rstrip("/") if auth.public_url is not None else None,
        jwks_uri=auth.jwks_uri,
        audience=tuple(auth.audience),
        scopes=tuple(auth.scopes),
        algorithms=tuple(auth.algorithms),
        clock_skew=float(auth.clock_skew),
        jwks_max_age=float(auth.jwks_max_age),
        jwks_min_interval=float(auth.jwks_min_interval),
    )


def audit_spec(audit: Audit) -> AuditSpec:
    return AuditSpec(path=audit.path, max_bytes=audit.max_bytes, backups=audit.backups, arguments=audit.arguments)


def tracing_spec(tracing: Tracing) -> TracingSpec:
    return TracingSpec(endpoint=tracing.endpoint, service_name=tracing.service_name)
