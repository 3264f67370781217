"""The pure core: (config, offers) → every output file as text. Writing and checking share it.

Like sqlc's `Generate()`, nothing here touches the output folder: `write_outputs`
puts the map on disk, `diff_outputs` compares it with what is there.
"""

from __future__ import annotations

import difflib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from mcpgw.canonical import digest
from mcpgw.config import Config, normalized
from mcpgw.names import Exposed, expose
from mcpgw.policy import compile_policy
from mcpgw.profiles import Profile, resolve_profiles
from mcpgw.render import RenderInput, relative_dir, render_gateway, render_requirements
from mcpgw.snapshot import FILENAME as SNAPSHOT
from mcpgw.snapshot import BackendOffer, render_snapshot
from mcpgw.vendor import GITATTRIBUTES, GITIGNORE, PACKAGE, vendored_runtime

GATEWAY = "gateway.py"
REQUIREMENTS = "requirements.txt"

JSONDoc = dict[str, object]


@dataclass(frozen=True)
class Outputs:
    files: dict[str, str]
    exposed: Exposed
    runtime_digest: str
    """sha256 of the vendored runtime's manifest, as gateway.py records it."""
    profiles: tuple[Profile, ...] = ()
    """Every profile, "default" first (profiles.py)."""


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
    profiles = resolve_profiles(config, exposed)
    if profiles and isinstance(profiles[0], str):
        return [p for p in profiles if isinstance(p, str)]
    resolved = tuple(p for p in profiles if isinstance(p, Profile))
    compiled = compile_policy(config, exposed)
    if compiled.errors:  # the CLI reports them located first (cli._policy); here only for other callers
        return [f"{p.pointer}: {p.message}" for p in compiled.errors]
    runtime = vendored_runtime()
    inp = RenderInput(
        config=config,
        config_name=config_path.name,
        config_dir_from_output=relative_dir(config_path, output_dir),
        offers=enabled,
        exposed=exposed,
        tool_pins={e.name: digest(e.source) for e in exposed.tools},
        prompt_pins={e.name: digest(e.source) for e in exposed.prompts},
        runtime=runtime,
        profiles=resolved,
        policy=compiled,
    )
    files = {
        GATEWAY: render_gateway(inp),
        REQUIREMENTS: render_requirements(inp),
        SNAPSHOT: render_snapshot(snapshot),
        ".gitattributes": GITATTRIBUTES,
        ".gitignore": GITIGNORE,
        **runtime.files,
    }
    return Outputs(files=files, exposed=exposed, runtime_digest=runtime.digest, profiles=resolved)


def write_outputs(output_dir: Path, files: dict[str, str]) -> None:
    """Write each file atomically, so an interrupted build never leaves half a gateway.

    Files and folders get the mode any new file of the caller gets (0644 and 0755
    under umask 022), not a temporary file's 0600: `dist/` is read by other users,
    and by the non-root user of a container image it is copied into.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in _stale(output_dir, files):
        stale.unlink()
    for name, text in sorted(files.items()):
        target = output_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _new_temp(target)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)


def _new_temp(target: Path) -> tuple[int, Path]:
    """A new, empty file beside `target` to write and rename over it, created as `open()` would create it.

    `tempfile.mkstemp` would do, but creates it 0600 whatever the umask, and the
    rename keeps that mode. Asking for 0666 lets the kernel apply the umask. O_BINARY
    (Windows) keeps the written newlines as they are.
    """
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def _stale(output_dir: Path, files: dict[str, str]) -> list[Path]:
    """Files in the vendored runtime folder that this build does not write (a module an upgrade dropped,
    or one added by hand): the folder is mcpgw's alone, and the gateway refuses to start beside them."""
    folder = output_dir / PACKAGE
    if not folder.is_dir():
        return []
    found = (p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(p for p in found if p.relative_to(output_dir).as_posix() not in files)


def diff_outputs(output_dir: Path, files: dict[str, str]) -> str:
    """A unified diff from what is on disk to what a build would write; empty when current."""
    chunks: list[str] = []
    for stale in _stale(output_dir, files):
        current = stale.read_text(encoding="utf-8", errors="replace")
        chunks.extend(difflib.unified_diff(current.splitlines(keepends=True), [], f"{stale} (on disk)", "/dev/null"))
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
