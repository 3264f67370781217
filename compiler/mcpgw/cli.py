"""The `mcpgw` command line: parse flags, print, and map results to exit codes.

Exit codes are an API: 0 clean, 1 stale output or drift, 2 bad input, 3 a backend could not be reached.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import anyio
import typer
from rich.console import Console

from mcpgw import __version__

if TYPE_CHECKING:
    from mcpgw.config import Config

EXIT_OK, EXIT_DIFF, EXIT_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 3

app = typer.Typer(
    name="mcpgw",
    help="Compile a declarative MCP gateway config into a standalone, reviewable gateway.py.\n\n"
    "Exit codes: 0 clean, 1 stale output or drift, 2 bad input, 3 a backend could not be reached.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class ErrorFormat(StrEnum):
    text = "text"
    json = "json"
    github = "github"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mcpgw {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Compile a declarative MCP gateway config into a standalone, reviewable gateway.py."""


def _fail(code: int, lines: list[str]) -> NoReturn:
    for line in lines:
        err.print(line, markup=False)
    raise typer.Exit(code)


def _load(config_path: Path, error_format: ErrorFormat) -> Config:
    """The validated config; every diagnostic (warnings too) printed; exit 2 on any error."""
    from mcpgw.load import load

    loaded = load(config_path)
    for d in loaded.diagnostics:
        if error_format is ErrorFormat.json:
            print(json.dumps(d.to_json(), sort_keys=True), file=sys.stderr)
        elif error_format is ErrorFormat.github:
            print(d.format_github(), file=sys.stderr)
        else:
            err.print(d.format_text(), markup=False)
    if loaded.config is None:
        errors = sum(1 for d in loaded.diagnostics if d.severity == "error")
        err.print(f"{errors} error(s) in {config_path}", markup=False)
        raise typer.Exit(EXIT_INPUT)
    return loaded.config


ConfigArg = Annotated[Path, typer.Argument(help='config.json: seed shape or {"mcpServers": ...}.')]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for unexpected errors.")]
FormatOpt = Annotated[ErrorFormat, typer.Option("--error-format", help="How to print config errors.")]


@app.command()
def validate(config: ConfigArg, error_format: FormatOpt = ErrorFormat.text, debug: DebugOpt = False) -> None:
    """Validate CONFIG against the schema and the config rules without contacting backends; exit 2 on error."""
    _guard(debug, lambda: _validate(config, error_format))


def _validate(config_path: Path, error_format: ErrorFormat) -> None:
    cfg = _load(config_path, error_format)
    enabled = sum(1 for b in cfg.backends.values() if b.enabled)
    err.print(f"{config_path}: ok ({enabled} enabled backends)", markup=False)


@app.command()
def schema(
    snapshot: Annotated[bool, typer.Option("--snapshot", help="Print the snapshot schema instead.")] = False,
) -> None:
    """Print the JSON Schema of config.json (or of snapshot.json), for editors and CI."""
    from mcpgw.resources import schema_path

    name = "snapshot.schema.json" if snapshot else "config.schema.json"
    sys.stdout.write(schema_path(name).read_text(encoding="utf-8"))


@app.command()
def build(
    config: ConfigArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder for gateway.py and snapshot.json.")],
    frozen: Annotated[
        bool, typer.Option("--frozen", help="Rebuild from OUTPUT/snapshot.json without probing backends.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 with a diff when OUTPUT is stale (implies --frozen)."),
    ] = False,
    error_format: FormatOpt = ErrorFormat.text,
    debug: DebugOpt = False,
) -> None:
    """Validate CONFIG, probe every enabled backend, and write gateway.py, snapshot.json and requirements.txt."""
    _guard(debug, lambda: _build(config, output, frozen or check, check, error_format))


def _build(config_path: Path, output: Path, frozen: bool, check: bool, error_format: ErrorFormat) -> None:
    from mcpgw.build import config_digest, diff_outputs, generate, write_outputs
    from mcpgw.probe import ProbeFailure, probe_all
    from mcpgw.progress import ProbeDisplay
    from mcpgw.snapshot import (
        FILENAME,
        BackendOffer,
        SnapshotError,
        build_snapshot,
        offers_from_snapshot,
        read_snapshot,
    )

    cfg = _load(config_path, error_format)
    base_dir = config_path.resolve().parent
    if frozen:
        try:
            snapshot = read_snapshot(output / FILENAME)
        except SnapshotError as exc:
            _fail(EXIT_INPUT, [f"error: {exc}"])
        offers = offers_from_snapshot(snapshot)
    else:
        names = [n for n, b in sorted(cfg.backends.items()) if b.enabled]
        display = ProbeDisplay(err, names)
        with display.shown():
            results = anyio.run(probe_all, cfg, base_dir, display.update)
        failures = [r for r in results.values() if isinstance(r, ProbeFailure)]
        if failures:
            lines = []
            for f in failures:
                lines.append(f"error: {f.message}")
                lines += [f"  | {line}" for line in f.stderr_tail.splitlines()]
            lines.append(f"{len(failures)} backend(s) unreachable; nothing was written")
            _fail(EXIT_UNREACHABLE, lines)
        offers = {n: r for n, r in results.items() if isinstance(r, BackendOffer)}
        snapshot = build_snapshot(offers, config_digest(cfg))
    outputs = generate(cfg, config_path, output, offers, snapshot)
    if isinstance(outputs, list):
        _fail(
            EXIT_INPUT,
            [f"{config_path}: error: {p}" for p in outputs] + [f"{len(outputs)} error(s); nothing was written"],
        )
    if check:
        diff = diff_outputs(output, outputs.files)
        if diff:
            sys.stdout.write(diff)
            _fail(EXIT_DIFF, [f"{output} is stale for {config_path}; run: mcpgw build {config_path} -o {output}"])
        err.print(f"{output} is up to date", markup=False)
        return
    write_outputs(output, outputs.files)
    tools, prompts = len(outputs.exposed.tools), len(outputs.exposed.prompts)
    err.print(f"wrote {output}/gateway.py ({tools} tools, {prompts} prompts), snapshot.json, requirements.txt")
    err.print(f"serve it: python {output}/gateway.py --port {cfg.gateway.port}", markup=False)


def _guard(debug: bool, run: Callable[[], None]) -> None:
    """No traceback for the user unless --debug: an unexpected error still gets a one-line message."""
    try:
        run()
    except typer.Exit:
        raise
    except Exception as exc:
        if debug:
            raise
        _fail(EXIT_INPUT, [f"error: {type(exc).__name__}: {exc}", "(run again with --debug for a traceback)"])


def main() -> None:
    app()
