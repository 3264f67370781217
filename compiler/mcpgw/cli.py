"""The `mcpgw` command line: parse flags, print, and map results to exit codes.

Exit codes are an API: 0 clean, 1 stale output or drift, 2 bad input, 3 a backend could not be reached.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import anyio
import typer
from rich.console import Console

from mcpgw import __version__
from mcpgw.wording import plural

if TYPE_CHECKING:
    from mcpgw.budgets import ProfileCost
    from mcpgw.config import Config
    from mcpgw.diagnostics import Diagnostic
    from mcpgw.names import Exposed
    from mcpgw.snapshot import BackendOffer

EXIT_OK, EXIT_DIFF, EXIT_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 3


def _prose(text: str | None) -> str | None:
    """Each paragraph of a docstring as one line, so the help wraps it at the terminal's width.

    typer's rich help keeps the source's line breaks, and a paragraph wrapped at
    120 columns in the code broke mid-sentence in any other terminal width.
    """
    if text is None:
        return None
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _flag(option: Any) -> Any:
    """A flag takes no value: no metavar (typer's rich help shows `<bool>` beside `--help` and every flag)."""
    if option is not None and getattr(option, "is_flag", False) and option.metavar is None:
        option.metavar = ""
    return option


class _Group(typer.core.TyperGroup):
    """The `mcpgw` group, with the help cleaned up as `_Command`'s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _prose(self.help)
        for param in self.params:
            _flag(param)

    def get_help_option(self, ctx: Any) -> Any:
        return _flag(super().get_help_option(ctx))


class _Command(typer.core.TyperCommand):
    """A subcommand whose help reads cleanly at any width: docstrings rewrapped, flags without a metavar."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _prose(self.help)
        for param in self.params:
            _flag(param)

    def get_help_option(self, ctx: Any) -> Any:
        return _flag(super().get_help_option(ctx))


app = typer.Typer(
    name="mcpgw",
    help="Compile a declarative MCP gateway config into a standalone, reviewable gateway.py.\n\n"
    "Exit codes: 0 clean, 1 stale output or drift, 2 bad input, 3 a backend could not be reached.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class ErrorFormat(StrEnum):
    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


class ReportFormat(StrEnum):
    text = "text"
    json = "json"


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


def _print_diagnostics(diagnostics: list[Diagnostic], error_format: ErrorFormat) -> None:
    for d in diagnostics:
        if error_format is ErrorFormat.json:
            print(json.dumps(d.to_json(), sort_keys=True), file=sys.stderr)
        elif error_format is ErrorFormat.github:
            print(d.format_github(), file=sys.stderr)
        else:
            err.print(d.format_text(), markup=False)


def _load(config_path: Path, error_format: ErrorFormat) -> Config:
    """The validated config; every diagnostic (warnings too) printed; exit 2 on any error."""
    from mcpgw.load import load

    loaded = load(config_path)
    _print_diagnostics(loaded.diagnostics, error_format)
    if loaded.config is None:
        errors = sum(1 for d in loaded.diagnostics if d.severity == "error")
        err.print(f"{plural(errors, 'error')} in {config_path}", markup=False)
        raise typer.Exit(EXIT_INPUT)
    return loaded.config


ConfigArg = Annotated[
    Path,
    typer.Argument(
        metavar="CONFIG",
        help='config.json (seed shape or {"mcpServers": ...}), or a client\'s file as is: '
        "claude_desktop_config.json, .cursor/mcp.json, .vscode/mcp.json.",
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for unexpected errors.")]
FormatOpt = Annotated[
    ErrorFormat,
    typer.Option("--error-format", help="How to print config errors and lint findings; sarif: SARIF 2.1.0 on stdout."),
]


@app.command(cls=_Command)
def validate(config: ConfigArg, error_format: FormatOpt = ErrorFormat.text, debug: DebugOpt = False) -> None:
    """Validate CONFIG against the schema and the config rules without contacting backends; exit 2 on error."""
    _guard(debug, lambda: _validate(config, error_format))


def _validate(config_path: Path, error_format: ErrorFormat) -> None:
    cfg = _load(config_path, error_format)
    enabled = sum(1 for b in cfg.backends.values() if b.enabled)
    err.print(f"{config_path}: ok ({plural(enabled, 'enabled backend')})", markup=False)


@app.command(cls=_Command)
def schema(
    snapshot: Annotated[bool, typer.Option("--snapshot", help="Print the snapshot schema instead.")] = False,
) -> None:
    """Print the JSON Schema of config.json (or of snapshot.json), for editors and CI."""
    from mcpgw.resources import schema_path

    name = "snapshot.schema.json" if snapshot else "config.schema.json"
    sys.stdout.write(schema_path(name).read_text(encoding="utf-8"))


@app.command(cls=_Command)
def targets(
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """Print the client rules `clients` and `--target` check: tool caps, name grammar and length, sources."""
    from mcpgw.targets import table_json, table_text

    if as_json:
        sys.stdout.write(json.dumps(table_json(), indent=2) + "\n")
    else:
        sys.stdout.write(table_text())


@app.command(cls=_Command)
def build(
    config: ConfigArg,
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="OUTPUT", help="Output folder for gateway.py and snapshot.json.")
    ],
    frozen: Annotated[
        bool, typer.Option("--frozen", help="Rebuild from OUTPUT/snapshot.json without probing backends.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 with a diff when OUTPUT is stale (implies --frozen)."),
    ] = False,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            metavar="CLIENT",
            help="Check every profile against this client's tool cap and name rules too (repeatable); "
            "`mcpgw targets` lists the clients.",
        ),
    ] = None,
    report: Annotated[
        bool,
        typer.Option("--report", help="Print each profile's tools and tokens per backend and its costliest tools."),
    ] = False,
    report_format: Annotated[
        ReportFormat, typer.Option("--report-format", help="text, or json for CI (implies --report; on stdout).")
    ] = ReportFormat.text,
    error_format: FormatOpt = ErrorFormat.text,
    debug: DebugOpt = False,
) -> None:
    """Validate CONFIG, probe every enabled backend, and write gateway.py, snapshot.json and requirements.txt.

    Each profile's listing is priced in tokens (o200k_base) and checked against its budget and client
    targets: exit 2, nothing written, when one is exceeded.
    """
    shown = report_format if report or report_format is not ReportFormat.text else None

    def run() -> None:
        _build(config, output, frozen or check, check, error_format, targets=target or [], report=shown)

    _guard(debug, run)


def _surface(
    cfg: Config, config_path: Path, exposed: Exposed, targets: list[str], error_format: ErrorFormat
) -> list[ProfileCost]:
    """Price every profile and check its targets and budgets; every problem printed, exit 2 on any error."""
    from mcpgw.budgets import surface
    from mcpgw.diagnostics import has_errors
    from mcpgw.targets import located

    found = surface(cfg, exposed, targets)
    if isinstance(found, list):
        _fail(
            EXIT_INPUT,
            [f"{config_path}: error: {p}" for p in found] + [f"{plural(len(found), 'error')}; nothing was written"],
        )
    diagnostics = located(found.findings, config_path)
    _print_diagnostics(diagnostics, error_format)
    if has_errors(diagnostics):
        errors = sum(1 for d in diagnostics if d.severity == "error")
        summary = f"{plural(errors, 'error')} in the profiles' client targets and budgets; nothing was written"
        _fail(EXIT_INPUT, [summary])
    return found.costs


def _print_costs(costs: list[ProfileCost], report: ReportFormat | None) -> None:
    from mcpgw.budgets import report_json, report_text, summary_line

    for cost in costs:
        err.print(summary_line(cost), markup=False)
    if report is ReportFormat.json:
        sys.stdout.write(json.dumps(report_json(costs), indent=2, sort_keys=True) + "\n")
    elif report is ReportFormat.text:
        sys.stdout.write(report_text(costs))


def _build(
    config_path: Path,
    output: Path,
    frozen: bool,
    check: bool,
    error_format: ErrorFormat,
    announce: bool = True,
    targets: list[str] | None = None,
    report: ReportFormat | None = None,
) -> None:
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
    from mcpgw.targets import known, unknown_targets

    unknown = unknown_targets(targets or [])
    if unknown:
        _fail(EXIT_INPUT, [f"error: --target {t}: unknown client; expected one of: {known()}" for t in unknown])
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
            lines.append(f"{plural(len(failures), 'backend')} unreachable; nothing was written")
            _fail(EXIT_UNREACHABLE, lines)
        offers = {n: r for n, r in results.items() if isinstance(r, BackendOffer)}
        snapshot = build_snapshot(offers, config_digest(cfg))
    _lint(cfg, config_path, offers, error_format, trailer="nothing was written")
    _policy(cfg, config_path, offers, error_format)
    outputs = generate(cfg, config_path, output, offers, snapshot)
    if isinstance(outputs, list):
        _generate_failed(outputs, config_path, error_format)
    costs = _surface(cfg, config_path, outputs.exposed, targets or [], error_format)
    if check:
        diff = diff_outputs(output, outputs.files)
        if diff:
            (sys.stderr if error_format is ErrorFormat.sarif else sys.stdout).write(diff)
            _fail(EXIT_DIFF, [f"{output} is stale for {config_path}; run: mcpgw build {config_path} -o {output}"])
        err.print(f"{output} is up to date", markup=False)
        _print_costs(costs, report)
        return
    write_outputs(output, outputs.files)
    counts = f"{plural(len(outputs.exposed.tools), 'tool')}, {plural(len(outputs.exposed.prompts), 'prompt')}"
    runtime = f"mcpgw_runtime/ (sha256 {outputs.runtime_digest[:12]})"
    err.print(f"wrote {output}/gateway.py ({counts}), {runtime}, snapshot.json, requirements.txt", markup=False)
    _print_costs(costs, report)
    if announce:
        err.print(f"serve it: python {output}/gateway.py --port {cfg.gateway.port}", markup=False)


class FailOn(StrEnum):
    breaking = "breaking"
    security = "security"
    any = "any"


@app.command(cls=_Command)
def check(
    config: ConfigArg,
    against: Annotated[
        Path,
        typer.Option(
            "--against", metavar="AGAINST", help="Folder holding the committed snapshot.json (the build's output)."
        ),
    ],
    fail_on: Annotated[
        FailOn,
        typer.Option(
            "--fail-on",
            help="Which drift fails: breaking; security (and breaking); any (also additive changes).",
        ),
    ] = FailOn.any,
    error_format: Annotated[
        ErrorFormat,
        typer.Option(
            "--error-format",
            help="text (summary + diffs), json (docs/check.md), github (annotations) or sarif (drift and lint).",
        ),
    ] = ErrorFormat.text,
    debug: DebugOpt = False,
) -> None:
    """Re-probe every enabled backend and report drift from AGAINST/snapshot.json; writes nothing.

    Exit 0 no failing drift, 1 drift that --fail-on fails on, 2 bad input, 3 a backend unreachable.
    """
    _guard(debug, lambda: _check(config, against, fail_on, error_format))


def _check(config_path: Path, against: Path, fail_on: FailOn, error_format: ErrorFormat) -> None:
    from mcpgw.check import check as run_check
    from mcpgw.progress import ProbeDisplay
    from mcpgw.report import format_github, format_json, format_text
    from mcpgw.snapshot import SnapshotError

    cfg = _load(config_path, error_format)
    names = [n for n, b in sorted(cfg.backends.items()) if b.enabled]
    display = ProbeDisplay(err, names)
    try:
        with display.shown():
            report = anyio.run(run_check, cfg, config_path, against, fail_on.value, display.update)
    except SnapshotError as exc:
        _fail(EXIT_INPUT, [f"error: {exc}"])
    if error_format in (ErrorFormat.text, ErrorFormat.github):
        from mcpgw.budgets import summary_line

        for cost in report.surface:
            err.print(summary_line(cost), markup=False)
    from mcpgw.lint.sarif import format_sarif

    render = {ErrorFormat.text: format_text, ErrorFormat.json: format_json, ErrorFormat.github: format_github}
    sys.stdout.write(
        format_sarif(report.lint, report) if error_format is ErrorFormat.sarif else render[error_format](report)
    )
    if any(c.code == "BACKEND_UNREACHABLE" for c in report.changes):
        raise typer.Exit(EXIT_UNREACHABLE)
    if report.failing or report.lint_failing:
        raise typer.Exit(EXIT_DIFF)


def _lint(
    cfg: Config, config_path: Path, offers: dict[str, BackendOffer], error_format: ErrorFormat, trailer: str
) -> None:
    """Print the lint's findings (SARIF on stdout, the rest on stderr); exit 2 on an error not accepted."""
    from mcpgw.lint import lint, locate_all
    from mcpgw.lint.output import format_github, format_json_lines, format_text, summary
    from mcpgw.lint.sarif import format_sarif

    located = locate_all(lint(cfg, offers), config_path, cfg)
    if error_format is ErrorFormat.sarif:
        sys.stdout.write(format_sarif(located))
    elif error_format is ErrorFormat.json:
        print("".join(line + "\n" for line in format_json_lines(located)), end="", file=sys.stderr)
    elif error_format is ErrorFormat.github:
        print("".join(line + "\n" for line in format_github(located)), end="", file=sys.stderr)
    else:
        for line in format_text(located):
            err.print(line, markup=False)
    failing = [loc for loc in located if loc.finding.failing]
    if located:
        err.print(summary(located), markup=False)
    if failing:
        why = f"{plural(len(failing), 'lint error')}; {trailer}"
        _fail(EXIT_INPUT, [f'{why}. Once reviewed, a finding is accepted in its backend\'s "lint": {{"accept": ...}}'])


def _policy(cfg: Config, config_path: Path, offers: dict[str, BackendOffer], error_format: ErrorFormat) -> None:
    """Print the policy's and limits' problems located in the config (policy.py); exit 2 on an error."""
    if cfg.gateway.policy is None and cfg.gateway.limits is None:
        return
    from mcpgw.jsonpos import located
    from mcpgw.names import expose
    from mcpgw.policy import compile_policy

    exposed = expose(cfg, {n: o for n, o in offers.items() if n in cfg.backends and cfg.backends[n].enabled})
    if isinstance(exposed, list):
        return  # naming problems: generate reports them
    problems = compile_policy(cfg, exposed).problems
    diagnostics = located(((p.pointer, p.message, p.severity) for p in problems), config_path)
    _print_diagnostics(diagnostics, ErrorFormat.text if error_format is ErrorFormat.sarif else error_format)
    errors = sum(1 for d in diagnostics if d.severity == "error")
    if errors:
        _fail(EXIT_INPUT, [f"{plural(errors, 'error')} in the policy and limits of {config_path}; nothing was written"])


_PLACED = re.compile(r"^(gateway(?:\.[^.:\s\[\]]+|\[\d+\])*): (.*)$", re.S)


def _generate_failed(problems: list[str], config_path: Path, error_format: ErrorFormat) -> NoReturn:
    """The build's naming and profile problems; those that name a place in `gateway` are located there."""
    from mcpgw.jsonpos import dotted_pointer, located

    placed = [m for m in map(_PLACED.match, problems) if m is not None]
    diagnostics = located(((dotted_pointer(m[1]), m[2], "error") for m in placed), config_path, at_key=True)
    _print_diagnostics(diagnostics, ErrorFormat.text if error_format is ErrorFormat.sarif else error_format)
    rest = [f"{config_path}: error: {p}" for p in problems if _PLACED.match(p) is None]
    _fail(EXIT_INPUT, [*rest, f"{plural(len(problems), 'error')}; nothing was written"])


@app.command("lint", cls=_Command)
def lint_command(
    config: ConfigArg,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against", metavar="DIR", help="Lint DIR/snapshot.json (the build's output) instead of probing."
        ),
    ] = None,
    error_format: Annotated[
        ErrorFormat,
        typer.Option("--error-format", help="text, json (one object a line), github (annotations) or sarif (stdout)."),
    ] = ErrorFormat.text,
    debug: DebugOpt = False,
) -> None:
    """Lint what CONFIG's backends offer for instructions hidden from a reviewer; writes nothing.

    Every exposed tool, prompt, resource and the servers' instructions: invisible and look-alike
    characters, instruction-like phrasing, references to other backends' tools, in descriptions and
    schema strings (rules: docs/lint.md). Probes every enabled backend, or reads --against DIR.
    Exit 0 no error, 2 an error-level finding the config does not accept (or bad input), 3 a backend
    unreachable.
    """
    _guard(debug, lambda: _lint_only(config, against, error_format))


def _lint_only(config_path: Path, against: Path | None, error_format: ErrorFormat) -> None:
    from mcpgw.probe import ProbeFailure, probe_all
    from mcpgw.progress import ProbeDisplay
    from mcpgw.snapshot import FILENAME, BackendOffer, SnapshotError, offers_from_snapshot, read_snapshot

    cfg = _load(config_path, error_format)
    if against is not None:
        try:
            offers = offers_from_snapshot(read_snapshot(against / FILENAME))
        except SnapshotError as exc:
            _fail(EXIT_INPUT, [f"error: {exc}"])
    else:
        names = [n for n, b in sorted(cfg.backends.items()) if b.enabled]
        display = ProbeDisplay(err, names)
        with display.shown():
            results = anyio.run(probe_all, cfg, config_path.resolve().parent, display.update)
        failures = [r for r in results.values() if isinstance(r, ProbeFailure)]
        if failures:
            _fail(EXIT_UNREACHABLE, [f"error: {f.message}" for f in failures])
        offers = {n: r for n, r in results.items() if isinstance(r, BackendOffer)}
    _lint(cfg, config_path, offers, error_format, trailer="see above")
    enabled = [n for n, b in sorted(cfg.backends.items()) if b.enabled and n in offers]
    if error_format is ErrorFormat.text:
        err.print(f"lint: no errors in {plural(len(enabled), 'backend')}", markup=False)


@app.command(cls=_Command)
def init(
    path: Annotated[
        str,
        typer.Argument(
            metavar="PATH",
            help="A folder to set up (gets config.json and servers/): an existing folder, or any path not ending "
            "in .json. A path ending in .json is the config file itself, with servers/ beside it.",
        ),
    ] = "config.json",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the config and servers/<script> when they exist.")
    ] = False,
) -> None:
    """Write a starter config: the built-in command server for this OS, copied into servers/ beside it.

    `mcpgw init gw` writes gw/config.json and gw/servers/; `mcpgw init gw.json` writes gw.json and servers/.
    The server is bash_server.py on Linux and macOS, powershell_server.py on Windows, with their _*.py helpers.
    "$schema" is the relative path to the schema of this mcpgw, so editors complete and check the file.
    Refuses to overwrite the config, or a server file that differs, unless --force is given (exit 2).
    """
    from mcpgw.starter import config_path_for, starter_files

    config = config_path_for(path)
    folder = config.parent
    if folder.exists() and not folder.is_dir():
        _fail(EXIT_INPUT, [f"error: {folder} exists and is not a folder; to write a config file, end PATH in .json"])
    files = starter_files(config)
    existing = [p for p, text in files.items() if p.exists() and (p == config or p.read_text(encoding="utf-8") != text)]
    if existing and not force:
        _fail(EXIT_INPUT, [f"error: {p} exists; pass --force to overwrite it" for p in existing])
    for file, text in files.items():
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8", newline="\n")
        except OSError as exc:
            _fail(EXIT_INPUT, [f"error: cannot write {file}: {exc.strerror or exc}"])
        err.print(f"wrote {file}", markup=False)
    err.print(f"next: mcpgw serve {config}   (or: mcpgw build {config} -o dist)", markup=False)


@app.command(cls=_Command)
def serve(
    config: ConfigArg,
    host: Annotated[str | None, typer.Option("--host", help="Address to bind (default: the config's).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to bind (default: the config's).")] = None,
    transport: Annotated[
        str | None, typer.Option("--transport", help="'http,sse' (default), 'http', 'sse' or 'stdio'.")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info (default), warning or error.")
    ] = None,
    log_dir: Annotated[
        Path | None, typer.Option("--log-dir", help="Folder for log files (default: the config's, beside it).")
    ] = None,
    stateless: Annotated[bool, typer.Option("--stateless", help="Serve /mcp without session state.")] = False,
    eager_core: Annotated[
        bool,
        typer.Option(
            "--eager-core/--lazy-core",
            help="Load the SDK core at start, or only when a request needs it (the default, where every backend "
            "is a shared stdio one).",
        ),
    ] = False,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve off loopback without a bearer token (MCPGW_TOKEN).")
    ] = False,
    error_format: FormatOpt = ErrorFormat.text,
    debug: DebugOpt = False,
) -> None:
    """Build CONFIG into a temporary folder and run the gateway from there, in one step.

    Probes every backend as `build` does, then runs the gateway with this Python until it stops; its exit
    code becomes ours, and Ctrl+C, SIGTERM and SIGHUP are passed on. Relative paths in CONFIG resolve
    against its folder. For production, commit the output of `mcpgw build` instead.
    """
    flags: list[str] = []
    for name, value in (("--host", host), ("--port", port), ("--transport", transport), ("--log-level", log_level)):
        if value is not None:
            flags += [name, str(value)]
    if log_dir is not None:
        flags += ["--log-dir", str(log_dir.resolve())]
    flags += ["--stateless"] * stateless + ["--eager-core"] * eager_core + ["--no-auth"] * no_auth
    _guard(debug, lambda: _serve(config, flags, error_format))


def _serve(config_path: Path, flags: list[str], error_format: ErrorFormat) -> None:
    import tempfile

    from mcpgw.serve import run_forwarding

    with tempfile.TemporaryDirectory(prefix="mcpgw-serve-") as tmp:
        output = Path(tmp)
        _build(config_path, output, frozen=False, check=False, error_format=error_format, announce=False)
        base_dir = str(config_path.resolve().parent)
        code = run_forwarding([sys.executable, str(output / "gateway.py"), "--base-dir", base_dir, *flags])
    raise typer.Exit(code)


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
