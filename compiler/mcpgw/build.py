"""The pure core: (config, offers) → every output file as text. Writing and checking share it.

Like sqlc's `Generate()`, nothing here touches the output folder: `write_outputs`
puts the map on disk, `diff_outputs` compares it with what is there.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mcpgw.canonical import digest
from mcpgw.config import Config, normalized
from mcpgw.names import Exposed, expose
from mcpgw.render import RenderInput, relative_dir, render_gateway, render_requirements
from mcpgw.snapshot import FILENAME as SNAPSHOT
from mcpgw.snapshot import BackendOffer, render_snapshot

GATEWAY = "gateway.py"
REQUIREMENTS = "requirements.txt"

JSONDoc = dict[str, object]


@dataclass(frozen=True)
class Outputs:
    files: dict[str, str]
    exposed: Exposed


def config_digest(config: Config) -> str:
    return digest(normalized(config))


def generate(
    config: Config, config_path: Path, output_dir: Path, offers: dict[str, BackendOffer], snapshot: JSONDoc
) -> Outputs | list[str]:
    """Every output file, or every naming problem; never touches the disk."""
    missing = [n for n, b in sorted(config.backends.items()) if b.enabled and n not in offers]
    if missing:
        return [f"backend {n!r} is not in {SNAPSHOT}; run `mcpgw build` without --frozen to probe it" for n in missing]
    enabled = {n: o for n, o in offers.items() if n in config.backends and config.backends[n].enabled}
    exposed = expose(config, enabled)
    if isinstance(exposed, list):
        return exposed
    inp = RenderInput(
        config=config,
        config_name=config_path.name,
        config_dir_from_output=relative_dir(config_path, output_dir),
        offers=enabled,
        exposed=exposed,
        tool_pins={e.name: digest(e.source) for e in exposed.tools},
        prompt_pins={e.name: digest(e.source) for e in exposed.prompts},
    )
    files = {
        GATEWAY: render_gateway(inp),
        REQUIREMENTS: render_requirements(inp),
        SNAPSHOT: render_snapshot(snapshot),
    }
    return Outputs(files=files, exposed=exposed)


def write_outputs(output_dir: Path, files: dict[str, str]) -> None:
    """Write each file atomically, so an interrupted build never leaves half a gateway."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(files.items()):
        target = output_dir / name
        fd, tmp = tempfile.mkstemp(dir=output_dir, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def diff_outputs(output_dir: Path, files: dict[str, str]) -> str:
    """A unified diff from what is on disk to what a build would write; empty when current."""
    chunks: list[str] = []
    for name, text in sorted(files.items()):
        path = output_dir / name
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = ""
        if current != text:
            chunks.extend(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    fromfile=f"{path} (on disk)",
                    tofile=f"{path} (expected)",
                )
            )
    return "".join(chunks)
