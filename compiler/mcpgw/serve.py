"""`mcpgw serve`: run a freshly built gateway as a child and stand in for it.

The gateway runs with the interpreter running mcpgw. On POSIX it gets a
session of its own, so a Ctrl+C in the terminal reaches it exactly once,
through us: SIGINT, SIGTERM and SIGHUP are forwarded, and our exit code is the
gateway's (128 + N when a signal N ended it), as if it had been run directly.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

FORWARDED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def exit_code(returncode: int) -> int:
    """A child's return code as a shell reports it: a signal N becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def run_forwarding(command: Sequence[str]) -> int:
    """Run `command` to completion, forwarding termination signals; its exit code."""
    posix = sys.platform != "win32"
    child = subprocess.Popen(list(command), start_new_session=posix)

    def forward(signum: int, frame: FrameType | None) -> None:
        if child.poll() is None and posix:
            child.send_signal(signum)
        elif child.poll() is None and signum != signal.SIGINT:  # Windows: Ctrl+C already reached the child
            child.terminate()

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        while True:
            try:
                return exit_code(child.wait())
            except KeyboardInterrupt:  # pragma: no cover - only if a handler was replaced behind our back
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
