"""Config models → the runtime's `BackendSpec`, the one shape both probe and gateway use."""

from __future__ import annotations

from mcpgw_runtime.spec import BackendSpec

from mcpgw.config import Backend


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
        session=backend.session,
        pin=backend.pin,
        resource_include=tuple(backend.resources.include),
        resource_exclude=tuple(backend.resources.exclude),
    )
