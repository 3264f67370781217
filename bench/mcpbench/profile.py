"""Where the gateway spends its time: py-spy samples under echo load, `-X importtime` at start.

`python bench/run.py --profile` writes the summaries to `bench/results/profile-*.txt` (raw data to
`.cache/bench/profiles/`). The summarizers are pure functions of the tools' text output.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import anyio

from mcpbench import peers
from mcpbench.clients import Endpoint, call_tool, list_tools, open_session
from mcpbench.measure import ECHO_ARGS, Plan
from mcpbench.procs import free_port, started, wait_listening
from mcpbench.targets import BY_KEY, launch

PROFILES = peers.CACHE_DIR / "profiles"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short(frame: str) -> tuple[str, str]:
    """`func (pkg/mod.py:12)` → (`pkg/mod.py:func`, `pkg`); py-spy already shortens paths to the module's."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), "?"
    path = match["file"].split("site-packages/")[-1]
    path = re.split(r"/lib/python3\.\d+/", path)[-1]
    parts = Path(path).parts
    package = parts[0] if len(parts) > 1 and not path.startswith("/") else Path(path).name
    return f"{'/'.join(parts[-2:])}:{match['func']}", package


def summarize_collapsed(lines: Iterable[str], top: int = 25) -> str:
    """Own (leaf) and inclusive sample shares per function, from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1][0]] += count
        for name in {label for label, _ in frames}:
            inclusive[name] += count
        packages[frames[-1][1]] += count
    if not total:
        return "no samples\n"

    def table(title: str, counter: Counter[str]) -> list[str]:
        rows = [f"{100 * n / total:5.1f}%  {name}" for name, n in counter.most_common(top)]
        return [title, *rows, ""]

    out = [f"{total} samples", ""]
    out += table("own time (leaf frame):", own)
    out += table("inclusive time:", inclusive)
    out += table("own time by package (leaf frame's distribution):", packages)
    return "\n".join(out)


def summarize_importtime(stderr: str, top: int = 20) -> str:
    """The slowest top-level imports (cumulative time) from `python -X importtime` output."""
    rows: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        if len(name) - len(name.lstrip()) == 1:  # one space: imported by the script itself, not nested
            rows.append((int(parts[1]), name.strip()))
    total = sum(us for us, _ in rows)
    lines = [f"top-level imports: {total / 1e6:.2f} s in all", ""]
    lines += [f"{us / 1e3:8.1f} ms  {name}" for us, name in sorted(rows, reverse=True)[:top]]
    return "\n".join(lines) + "\n"


async def _echo_load(url_port: int, seconds: float) -> int:
    """4 sessions calling echo back to back for `seconds`; the number of calls made."""
    endpoint = Endpoint("http", url=f"http://127.0.0.1:{url_port}/mcp")
    calls = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal calls
        async with open_session(endpoint) as session:
            names = [str(t.get("name")) for t in await list_tools(session)]
            echo = next(n for n in names if n.endswith("echo"))
            while time.perf_counter() < deadline:
                await call_tool(session, echo, ECHO_ARGS)
                calls += 1

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
    return calls


async def profile_calls(gateways: dict[int, Path], seconds: float) -> str:
    """py-spy record of the gateway (1 backend) while 4 sessions call echo back to back."""
    py_spy = peers.venv_bin("profilers", "py-spy")
    PROFILES.mkdir(parents=True, exist_ok=True)
    raw = PROFILES / "gateway-echo.collapsed"
    async with launch(BY_KEY["mcpgw-mcp"], 1, gateways) as running:
        assert running.server is not None
        port = int(running.endpoints[0].url.rsplit(":", 1)[1].split("/")[0])
        await _echo_load(port, 1.0)  # warm: backend connected, code paths hot
        command = [str(py_spy), "record", "--pid", str(running.server.pid), "--rate", "250", "--nonblocking"]
        command += ["--duration", str(int(seconds)), "--format", "raw", "--output", str(raw)]
        recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        calls = await _echo_load(port, seconds)
        recorder.wait(timeout=seconds + 30)
    summary = summarize_collapsed(raw.read_text().splitlines())
    return f"gateway /mcp, 1 stdio backend, 4 sessions calling echo for {seconds:g}s ({calls} calls)\n\n{summary}"


async def profile_imports(gateways: dict[int, Path]) -> str:
    """`python -X importtime gateway.py`: which imports stand between spawn and serving."""
    port = free_port()
    log = PROFILES / "gateway-importtime.log"
    command = [sys.executable, "-X", "importtime", str(gateways[5]), "--port", str(port), "--log-level", "warning"]
    t0 = time.perf_counter()
    with started(command, log) as server:
        await wait_listening(server, port, Plan().startup_timeout)
        listening = time.perf_counter() - t0
    summary = summarize_importtime(log.read_text(errors="replace"))
    return f"gateway (5 backends) spawn → port listening: {listening:.2f} s (under -X importtime)\n\n{summary}"
