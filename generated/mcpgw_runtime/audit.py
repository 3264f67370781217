# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""The audit log's file: one JSON line per forwarded request, appended so that a SIGKILL loses nothing answered.

Why a file of its own, apart from the log (logfiles.py): the log says what the gateway
did, at a level an operator picks, and Python's logging buffers and formats it; the audit
log says who called what and how it ended, for every call, in a shape a program reads
(JSON Lines). exchange.py builds each record; this module only writes it.

Durability: each record is one `os.write` of one whole line on a file descriptor opened
with O_APPEND, with no buffer of Python's in between, and it is written before the answer
goes to the client. Once a client has its answer, its record is in the kernel's page
cache: a SIGKILL of the gateway cannot lose it (a power cut can; see docs/observability.md).
A record cut in the middle (a full disk) is followed by a newline before the next one,
so every other line stays whole.

Rotation by size, as the log's: past `max_bytes` the file becomes `<path>.1`, `.1`
becomes `.2`, ... up to `.<backups>`; the oldest is dropped. Renames only: a record is in
exactly one file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mcpgw_runtime.spec import AuditSpec

log = logging.getLogger("mcpgw")

FILE_MODE = 0o600
"""Only the gateway's user reads the audit log: it names callers, and with `arguments` holds what they sent."""


class AuditLog:
    """An open audit file: `write` appends one line; rotated by size."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.written = 0
        """Records written since the start (the records lost to a failed write are logged, not counted)."""
        self._fd = -1
        self._size = 0
        self._whole = True
        """Whether the file ends with a whole line (False after a write that was cut short)."""
        self._open()

    @classmethod
    def of(cls, spec: AuditSpec, base_dir: Path) -> AuditLog:
        """The audit file `spec` names, relative paths under the config's folder; OSError if it cannot be opened."""
        path = Path(spec.path)
        return cls(path if path.is_absolute() else base_dir / path, spec.max_bytes, spec.backups)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        self._size = os.fstat(self._fd).st_size

    def write(self, line: bytes) -> None:
        """Append one record (`line` ends with a newline); rotate first when it would pass `max_bytes`."""
        if not self._whole:
            line = b"\n" + line
        try:
            if self._fd < 0:  # a rotation could not reopen it: try again
                self._open()
            elif self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            done = os.write(self._fd, line)
        except OSError as exc:
            log.error("audit log %s: a record was lost: %s", self.path, exc.strerror or exc)
            return
        self._size += done
        self._whole = done == len(line)
        if self._whole:
            self.written += 1
        else:  # a full disk: the rest is dropped rather than written after another record
            log.error("audit log %s: a record was cut short (%d of %d bytes)", self.path, done, len(line))

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        try:
            if self.backups <= 0:
                self.path.unlink(missing_ok=True)
            else:
                for n in range(self.backups - 1, 0, -1):
                    older = self.path.with_name(f"{self.path.name}.{n}")
                    if older.exists():
                        older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
                self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        except OSError as exc:
            log.error("audit log %s: rotation failed, appending to it as it is: %s", self.path, exc.strerror or exc)
        self._open()  # OSError: the record is lost and logged (`write`); the next one tries again

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
