# mcpgw runtime, vendored into every generated gateway. DO NOT EDIT the copy in dist/: its digest is checked at start.
"""Log files: `<log dir>/mcpgw_YYYYmmdd_HHMMSS_LEVEL.log`, rotated by size.

One file per gateway start, named after the start time and the `--log-level`
it records, like the seed's. The handler sits on the root logger, so the
gateway's own lines and those of the libraries it runs (the `mcp` SDK) land
there. Nothing in the gateway logs tool arguments above debug.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from datetime import datetime
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FILE_MAX_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5
"""Each file rotates at 10 MB into `.1` ... `.5`; the oldest is dropped."""


def log_file_name(level: str, started: datetime) -> str:
    """`mcpgw_20250131_142501_INFO.log`."""
    return f"mcpgw_{started:%Y%m%d_%H%M%S}_{level.upper()}.log"


def open_log_file(folder: Path, level: str, started: datetime | None = None) -> Path | None:
    """Attach a rotating file handler at `level` to the root logger; the file's path, or None if it cannot be made."""
    path = folder / log_file_name(level, started or datetime.now())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
    except OSError as exc:
        print(f"warning: no log file: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return None
    handler.setLevel(level.upper())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    return path
