"""What a new user meets first: file modes of `dist/`, `init` on a folder, counts, `--help`, piped gateway output.

Everything runs the real `mcpgw` command (or a real built gateway) in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest
from mcpgw.resources import schema_path
from mcpgw.wording import plural
from mcpgw_runtime.console import OperatorConsole, Startup
from mcpgw_runtime.observe import STATE_LISTENERS, ObservedState
from mcpgw_runtime.spec import BackendSpec, GatewaySpec, Target

from tests import peers

REPO = Path(__file__).resolve().parent.parent
BASH_SERVER = REPO / "servers" / "bash_server.py"

pytestmark = pytest.mark.timeout(180)


def mcpgw(*args: str, cwd: Path, columns: int = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpgw", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"},
        timeout=150,
        check=False,
    )


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """The umask a child process inherits, as a shell's `umask` sets it."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _bash_config(folder: Path) -> Path:
    config = folder / "config.json"
    config.write_text(json.dumps({"bash": {"type": "stdio", "command": "python", "args": [str(BASH_SERVER)]}}))
    return config


# -- build: dist/ is readable by whoever may run it --------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_build_writes_files_with_the_callers_umask(tmp_path: Path, mask: int, file_mode: int, dir_mode: int) -> None:
    _bash_config(tmp_path)
    with umask(mask):
        proc = mcpgw("build", "config.json", "-o", "out/dist", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    dist = tmp_path / "out" / "dist"
    files = [p for p in dist.rglob("*") if p.is_file()]
    assert {"gateway.py", "snapshot.json", "requirements.txt"} <= {p.name for p in files}
    assert not [p for p in files if p.name.endswith(".tmp")], "temporary files left behind"
    modes = {p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {oct(file_mode)}, modes
    folders = [tmp_path / "out", dist, *(p for p in dist.rglob("*") if p.is_dir())]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in folders} == {oct(dir_mode)}
    # a rebuild replaces every file (atomically) and still leaves the umask's mode
    with umask(mask):
        again = mcpgw("build", "config.json", "-o", "out/dist", "--frozen", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in dist.rglob("*") if p.is_file()} == {oct(file_mode)}


# -- init: a folder argument is a project folder --------------------------------------------------


def test_init_on_a_new_folder_writes_config_and_servers_inside_it(tmp_path: Path) -> None:
    proc = mcpgw("init", "gw", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "gw").is_dir()
    config = json.loads((tmp_path / "gw" / "config.json").read_text())
    assert (tmp_path / "gw" / config["$schema"]).resolve() == schema_path("config.schema.json").resolve()
    assert config["bash"]["args"] == ["servers/bash_server.py"]
    assert (tmp_path / "gw" / "servers" / "bash_server.py").is_file()
    assert not (tmp_path / "servers").exists()
    assert "next: mcpgw serve gw/config.json" in proc.stderr
    assert mcpgw("validate", "config.json", cwd=tmp_path / "gw").returncode == 0


def test_init_on_an_existing_folder_with_force(tmp_path: Path) -> None:
    (tmp_path / "gw").mkdir()
    first = mcpgw("init", "gw", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = mcpgw("init", "gw", cwd=tmp_path)
    assert again.returncode == 2
    assert "gw/config.json exists; pass --force" in again.stderr
    forced = mcpgw("init", "gw", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "Traceback" not in forced.stderr and "Error" not in forced.stderr
    assert json.loads((tmp_path / "gw" / "config.json").read_text())["bash"]["type"] == "stdio"


def test_init_tells_a_folder_from_a_config_file(tmp_path: Path) -> None:
    assert mcpgw("init", "with-slash.json/", cwd=tmp_path).returncode == 0  # a trailing separator: a folder
    assert (tmp_path / "with-slash.json" / "config.json").is_file()
    assert (tmp_path / "with-slash.json" / "servers" / "bash_server.py").is_file()
    assert mcpgw("init", "sub/mine.json", cwd=tmp_path).returncode == 0  # ends in .json: the file itself
    assert (tmp_path / "sub" / "mine.json").is_file()
    assert (tmp_path / "sub" / "servers" / "bash_server.py").is_file()
    (tmp_path / "notes").write_text("mine\n")
    proc = mcpgw("init", "notes", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "error: notes exists and is not a folder; to write a config file, end PATH in .json\n"
    assert (tmp_path / "notes").read_text() == "mine\n"


# -- counts read as English --------------------------------------------------


def test_plural() -> None:
    assert plural(0, "tool") == "0 tools"
    assert plural(1, "tool") == "1 tool"
    assert plural(2, "enabled backend") == "2 enabled backends"
    assert plural(1, "child", "children") == "1 child"
    assert plural(3, "child", "children") == "3 children"


def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    _bash_config(tmp_path)
    validated = mcpgw("validate", "config.json", cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
    assert validated.stderr == "config.json: ok (1 enabled backend)\n"
    built = mcpgw("build", "config.json", "-o", "dist", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "wrote dist/gateway.py (1 tool, 0 prompts)" in built.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"bash": {"type": "stdio"}}))
    invalid = mcpgw("validate", "bad.json", cwd=tmp_path)
    assert invalid.returncode == 2
    assert invalid.stderr.splitlines()[-1] == "1 error in bad.json"
    ghost = tmp_path / "ghost.json"
    ghost.write_text(json.dumps({"ghost": {"command": "definitely-not-a-real-mcp-server"}}))
    unreachable = mcpgw("build", "ghost.json", "-o", "never", cwd=tmp_path)
    assert unreachable.returncode == 3
    assert "1 backend unreachable; nothing was written" in unreachable.stderr


# -- --help reads cleanly at any width --------------------------------------------------


COMMANDS = ["build", "check", "init", "schema", "serve", "validate"]


def _prose_lines(help_text: str) -> list[list[str]]:
    """The paragraphs above the first panel (Usage line excluded), each a list of its stripped lines."""
    head = help_text.split("╭", 1)[0]
    paragraphs: list[list[str]] = [[]]
    for line in head.splitlines():
        text = line.strip()
        if not text:
            paragraphs.append([])
        elif not text.startswith("Usage:"):
            paragraphs[-1].append(text)
    return [p for p in paragraphs if p]


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_wraps_at_the_terminal_width_and_flags_show_no_type(
    tmp_path: Path, command: str | None, columns: int
) -> None:
    proc = mcpgw(*([command] if command else []), "--help", cwd=tmp_path, columns=columns)
    assert proc.returncode == 0, proc.stderr
    assert "<bool>" not in proc.stdout
    assert re.search(r"│\s+--help\s+Show this message", proc.stdout), proc.stdout  # no type between
    assert max(len(line) for line in proc.stdout.splitlines()) <= columns
    for paragraph in _prose_lines(proc.stdout):
        for line, following in itertools.pairwise(paragraph):
            # a line ends early only when the next word would not have fitted on it
            assert len(line) + 1 + len(following.split()[0]) > columns - 4, f"broken early: {line!r}\n{proc.stdout}"
    if command is None:
        assert re.search(r"│ --version\s+Print the version and exit\.", proc.stdout), proc.stdout


# -- a gateway's piped output: each state change once --------------------------------------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo's config with `bash` real and `time` a command that does not exist: one ready, one failed."""
    work = tmp_path_factory.mktemp("piped")
    config = json.loads((REPO / "config.json").read_text())
    del config["$schema"]
    config["bash"]["args"] = [str(BASH_SERVER)]
    config["time"] = {"command": "no-such-time-server", "startup_timeout": 2}
    (work / "config.json").write_text(json.dumps(config))
    (work / "dist").mkdir()
    shutil.copy(REPO / "generated" / "snapshot.json", work / "dist")
    proc = mcpgw("build", "config.json", "-o", "dist", "--frozen", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work / "dist" / "gateway.py"


FAILURE = "backend 'time': cannot start 'no-such-time-server'"


@pytest.mark.e2e
@pytest.mark.timeout(90)
def test_piped_gateway_prints_each_state_change_once(gateway: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"  # stdout and stderr into one file, as `2>&1`, a container's log or journald has it
    logs = tmp_path / "logs"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(gateway), "--port", str(peers.free_port()), "--log-dir", str(logs)],
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                text = out.read_text(errors="replace")
                if "backend bash: starting -> ready" in text and text.count(FAILURE) >= 3:  # two retries seen
                    break
                time.sleep(0.2)
        finally:
            peers.kill_process_group(proc)
    text = out.read_text()
    (log_file,) = logs.iterdir()
    logged = log_file.read_text()
    assert "backend bash ready (bash)" in logged and FAILURE in logged  # the log file keeps every record
    bash_ready = [line for line in text.splitlines() if "backend bash" in line and "ready" in line]
    assert len(bash_ready) == 1, text
    assert re.fullmatch(r"\d\d:\d\d:\d\d backend bash: starting -> ready \(bash\).*", bash_ready[0])
    assert len(re.findall(r"backend time: starting -> failed", text)) == 1, text
    # the console's line stands for the failure logged around the change; each later retry is still shown
    assert text.count(FAILURE) == logged.count(FAILURE) - 1, text


def _spec() -> GatewaySpec:
    """A gateway of one backend `a`, with only the tables the panel reads filled in."""
    given: dict[str, Any] = dict(
        name="demo",
        version="1",
        generator="9.9",
        config_dir=".",
        backends=(BackendSpec("a", "stdio", command="x"),),
        tools=({"name": "a__t"},),
        tool_routes={"a__t": Target("a", "t")},
        prompts=(),
        prompt_routes={},
        resource_templates=(),
        resources={},
    )
    empty = {f.name: {} for f in fields(GatewaySpec) if f.name not in given and f.default is MISSING}
    return GatewaySpec(**given, **empty)


class _Backend:
    """Just what the console reads of a backend: a name, an error and an observed state."""

    state = ObservedState()

    def __init__(self, name: str) -> None:
        self.name, self.error = name, None
        self.state = "starting"


def test_log_lines_that_repeat_a_state_line_stay_off_the_streams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both orders the supervisors log in (before the change, after it); a failure without a change stays."""
    root, log = logging.getLogger(), logging.getLogger("mcpgw")
    stream, file = logging.StreamHandler(sys.stderr), logging.FileHandler(tmp_path / "gateway.log")
    for handler in (stream, file):
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    console = OperatorConsole(io.StringIO(), fancy=False)
    STATE_LISTENERS.append(console.changed)
    try:
        console.show(_spec(), Startup(("u",), "none", "l"), {})
        front = _Backend("a")
        front.error = "backend 'a': boom"
        front.state = "failed"  # the front: the state first, then the line
        log.error("%s", front.error)
        core = _Backend("a")  # the core takes it over: the failure is logged while it is still starting
        core.error = "backend 'a': boom"
        log.error("%s", core.error)
        core.state = "failed"
        log.error("%s", core.error)  # a retry: no change, so the line stays
        core.error = None
        core.state = "ready"
        log.info("backend %s ready (%s)", "a", "srv")
        log.warning("backend %s: connection closed", "a")  # still ready: the change follows
        core.state = "restarting"
        log.info("backend %s: tools list changed; re-verifying pins", "a")
    finally:
        STATE_LISTENERS.remove(console.changed)
        for handler in (stream, file):
            root.removeHandler(handler)
            handler.filters.clear()
            handler.close()
        root.level = level
    assert isinstance(console.stream, io.StringIO)
    shown = [line.split(" ", 1)[1] for line in console.stream.getvalue().splitlines()[-3:]]
    assert shown == [
        "backend a: starting -> failed: backend 'a': boom",
        "backend a: failed -> ready",
        "backend a: ready -> restarting",
    ]
    assert capsys.readouterr().err.splitlines() == [
        "ERROR backend 'a': boom",
        "INFO backend a: tools list changed; re-verifying pins",
    ]
    assert (tmp_path / "gateway.log").read_text().splitlines() == [
        "ERROR backend 'a': boom",
        "ERROR backend 'a': boom",
        "ERROR backend 'a': boom",
        "INFO backend a ready (srv)",
        "WARNING backend a: connection closed",
        "INFO backend a: tools list changed; re-verifying pins",
    ]
