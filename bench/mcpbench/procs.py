"""The one place that starts and stops the processes under test.

Each runs in its own session (process group) so stopping it also stops the backends it
spawned; its output goes to a log file, never to the benchmark's terminal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import anyio

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A started server: its pid (the process whose CPU and RSS are measured) and its log."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path, started: float) -> None:
        self.popen = popen
        self.log = log
        self.started = started

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the whole group, SIGKILL it after `grace` seconds."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; make sure no child of the group survives it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            return


@contextlib.contextmanager
def started(
    command: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[ServerProcess]:
    """Start `command` (its output to `log`) and stop its process group on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        t0 = time.perf_counter()
        popen = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    server = ServerProcess(popen, log, t0)
    try:
        yield server
    finally:
        server.stop()


async def wait_listening(server: ServerProcess, port: int, timeout: float) -> None:
    """Poll until `port` accepts a connection; fail early if the process exits."""
    deadline = time.perf_counter() + timeout
    while True:
        code = server.exited()
        if code is not None:
            raise RuntimeError(f"process exited with code {code} before listening:\n{server.log_tail()}")
        try:
            stream = await anyio.connect_tcp(LOCALHOST, port)
        except OSError:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"nothing listening on {port} after {timeout}s:\n{server.log_tail()}") from None
            await anyio.sleep(0.01)
        else:
            await stream.aclose()
            return
