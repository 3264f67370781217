"""`mcpgw init`: the files of a starter project, as text; the CLI writes them.

A starter config holds the built-in server for this OS (`bash_server.py`, or
`powershell_server.py` on Windows), copied with its `_*.py` helpers into
`servers/` beside the config, so the folder works on its own and is reviewed
like the rest. `"$schema"` is
the relative path from the config to the schema of the mcpgw that wrote it
(the installed package's copy, or `schemas/` in a checkout): editors (VS Code,
JetBrains) resolve a relative `$schema` against the file, offline. A file URI
is used only when no relative path exists (another drive on Windows).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mcpgw.resources import schema_path, server_dir


@dataclass(frozen=True)
class BuiltIn:
    backend: str
    script: str
    description: str


BUILT_INS = {
    "posix": BuiltIn("bash", "bash_server.py", "Built-in: run bash commands (Linux, macOS, WSL)."),
    "win32": BuiltIn("powershell", "powershell_server.py", "Built-in: run PowerShell commands (Windows)."),
}


def built_in(platform: str = sys.platform) -> BuiltIn:
    """The built-in command server for `platform`."""
    return BUILT_INS["win32" if platform == "win32" else "posix"]


def schema_ref(config_path: Path) -> str:
    """`$schema` as the editor should resolve it from `config_path`'s folder."""
    schema = schema_path("config.schema.json").resolve()
    try:
        return Path(os.path.relpath(schema, config_path.resolve().parent)).as_posix()
    except ValueError:  # no relative path between drives
        return schema.as_uri()


CONFIG_NAME = "config.json"


def config_path_for(given: str) -> Path:
    """The config file `mcpgw init GIVEN` writes: GIVEN itself only when it names a .json file.

    A folder is what `git init DIR` and `cargo new DIR` take, so GIVEN is one
    (and gets `config.json`) when it is an existing folder, ends in a path
    separator, or does not end in `.json`. The separator is checked on the text
    as typed, since `Path` drops it.
    """
    path = Path(given)
    separators = tuple(s for s in (os.sep, os.altsep, "/") if s)
    if path.is_dir() or given.endswith(separators) or path.suffix.lower() != ".json":
        return path / CONFIG_NAME
    return path


def starter_files(config_path: Path, platform: str = sys.platform) -> dict[Path, str]:
    """`{path: text}` for the config and the built-in server script beside it."""
    server = built_in(platform)
    script = Path("servers") / server.script
    config = {
        "$schema": schema_ref(config_path),
        "gateway": {"name": "mcpgw", "port": 9000},
        server.backend: {
            "type": "stdio",
            "command": "python",
            "args": [script.as_posix()],
            "description": server.description,
        },
    }
    source = server_dir()
    files = {config_path: json.dumps(config, indent=2) + "\n"}
    for module in [server.script, *sorted(p.name for p in source.glob("_*.py"))]:
        files[config_path.parent / "servers" / module] = (source / module).read_text(encoding="utf-8")
    return files
