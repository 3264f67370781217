# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""`--transport stdio`: one client on this process's stdin/stdout, through the SDK's stdio server."""

from __future__ import annotations

import logging
import os
import signal
import sys

import anyio

from mcpgw_runtime.gateway_server import Gateway
from mcpgw_runtime.profiles import DEFAULT, PROFILE

log = logging.getLogger("mcpgw")


def run_stdio(gateway: Gateway, profile: str = DEFAULT) -> None:
    """Serve the one client on stdin/stdout `profile`'s tools (`--profile`; "default": everything)."""
    anyio.run(serve_stdio, gateway, profile)


SIGNAL_STOP_DEADLINE = 5.0
"""Seconds a signalled stdio gateway waits for its backends to stop (each takes at most about 3.5 s)."""


async def serve_stdio(gateway: Gateway, profile: str = DEFAULT) -> None:
    """Serve one client over stdin/stdout; logs go to stderr only."""
    from mcp.server.stdio import stdio_server

    PROFILE.set(profile)  # the client's requests are served in tasks this one starts
    gateway.transport = "pipe"

    server = gateway.build_server()
    backends_stopped = anyio.Event()

    async def run_backends() -> None:
        try:
            await gateway.run_backends()
        finally:
            backends_stopped.set()

    async with anyio.create_task_group() as tg:
        await tg.start(gateway.rounds.run)
        tg.start_soon(run_backends)
        tg.start_soon(_stop_on_signal, tg.cancel_scope, backends_stopped)
        async with stdio_server() as (read, write):
            await server.run(read, write, gateway.initialization_options(server))
        tg.cancel_scope.cancel()


async def _stop_on_signal(scope: anyio.CancelScope, backends_stopped: anyio.Event) -> None:
    """SIGINT/SIGTERM end the stdio gateway as stdin's EOF does (backends stopped, no orphans), then exit.

    The exit is `os._exit`: the SDK reads stdin in a worker thread that nothing can
    interrupt, so a client that keeps the pipe open would otherwise hold the process
    forever. In-flight calls are cancelled; the client sees the pipe close.
    """
    if sys.platform == "win32":
        return
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("signal %d: shutting down; stopping backends", signum)
            scope.cancel()
            with anyio.CancelScope(shield=True), anyio.move_on_after(SIGNAL_STOP_DEADLINE):
                await backends_stopped.wait()
            logging.shutdown()
            os._exit(0)
