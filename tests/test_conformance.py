"""The official MCP conformance suite, against the fixture directly and through generated gateways.

`@modelcontextprotocol/conformance` (npm, Node 22+, installed by `.ci/run` into `.cache/npm22`)
runs every server scenario (`--suite all`: active and pending) against a Streamable HTTP URL:

1. `tests/conformance/fixture_server.py` served directly: every scenario must pass except those in
   `tests/conformance/expected-failures.yml` (each justified there), and none of those may pass;
2. a gateway built by `mcpgw build` in front of that fixture, reached by the gateway over stdio,
   legacy SSE and Streamable HTTP: the gateway's `/mcp` must pass every scenario the fixture
   passes directly, with at least as many passed checks.

The pass/fail table of all four runs is printed in the test output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "conformance" / "fixture_server.py"
BASELINE = HERE / "conformance" / "expected-failures.yml"
BACKEND_TRANSPORTS = ("stdio", "sse", "http")
SUITE_TIMEOUT = 240  # seconds for one whole `--suite all` run; each takes a few seconds here


@dataclass(frozen=True)
class Outcome:
    """One scenario's checks as the suite counted them."""

    passed: int
    failed: int
    warnings: int
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """The suite's own rule (its baseline logic): a FAILURE or a WARNING means not passing."""
        return self.failed == 0 and self.warnings == 0

    def cell(self) -> str:
        verdict = "pass" if self.ok else ("WARN" if self.failed == 0 else "FAIL")
        return f"{verdict} {self.passed}/{self.passed + self.failed}" + (f" w{self.warnings}" if self.warnings else "")


def baseline() -> list[str]:
    """Scenario names listed under `server:` in the expected-failures file (a flat YAML list)."""
    names = []
    for line in BASELINE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s+-\s+([\w-]+)\s*$", line)
        if match:
            names.append(match.group(1))
    return names


def scenario_names() -> list[str]:
    """Every server scenario of the installed suite, from its own `list --server`."""
    proc = subprocess.run(
        [*peers.conformance_command(), "list", "--server"], capture_output=True, text=True, timeout=60, check=True
    )
    return re.findall(r"^\s+-\s+([\w-]+)", proc.stdout, flags=re.MULTILINE)


def run_suite(url: str, out_dir: Path) -> dict[str, Outcome]:
    """Run the whole server suite against `url`; the per-scenario checks, read from `checks.json`."""
    proc = subprocess.run(
        [*peers.conformance_command(), "server", "--url", url, "--suite", "all", "-o", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
        check=False,
    )
    outcomes: dict[str, Outcome] = {}
    for checks_file in out_dir.glob("server-*/checks.json"):
        match = re.match(r"server-(.+)-\d{4}-\d\d-\d\dT", checks_file.parent.name)
        assert match, checks_file
        checks = json.loads(checks_file.read_text(encoding="utf-8"))
        statuses = [c.get("status") for c in checks]
        errors = tuple(f"{c.get('name')}: {c.get('errorMessage')}" for c in checks if c.get("status") == "FAILURE")
        outcomes[match.group(1)] = Outcome(
            statuses.count("SUCCESS"), statuses.count("FAILURE"), statuses.count("WARNING"), errors
        )
    assert outcomes, f"the suite wrote no results:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return outcomes


def _backend_config(transport: str) -> dict[str, object]:
    """The fixture as the gateway's only backend, unprefixed so the suite's names reach it unchanged."""
    if transport == "stdio":
        return {"type": "stdio", "command": "python", "args": [str(FIXTURE), "stdio"], "prefix": ""}
    port = peers.free_port()
    path = "/mcp" if transport == "http" else "/sse"
    return {
        "type": transport,
        "command": "python",
        "args": [str(FIXTURE), transport, "--port", str(port)],
        "url": f"http://127.0.0.1:{port}{path}",
        "prefix": "",
    }


def build_gateway(work: Path, transport: str) -> Path:
    config = {"mcpServers": {"fx": _backend_config(transport)}, "gateway": {"name": f"conformance-{transport}"}}
    return peers.build_gateway(work, config)


@dataclass
class Runs:
    names: list[str]
    direct: dict[str, Outcome]
    gateway: dict[str, dict[str, Outcome]]

    def table(self) -> str:
        columns = ["direct", *(f"gw<-{t}" for t in self.gateway)]
        width = max(len(n) for n in self.names)
        lines = [f"{'scenario':<{width}}  " + "  ".join(f"{c:<14}" for c in columns)]
        for name in self.names:
            cells = [self.direct.get(name), *(g.get(name) for g in self.gateway.values())]
            lines.append(f"{name:<{width}}  " + "  ".join(f"{c.cell() if c else 'missing':<14}" for c in cells))
        return "\n".join(lines)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    names = scenario_names()
    tmp = tmp_path_factory.mktemp("conformance")
    port = peers.free_port()
    with peers.run_process([sys.executable, str(FIXTURE), "http", "--port", str(port)], port):
        direct = run_suite(f"http://127.0.0.1:{port}/mcp", tmp / "direct")
    gateway: dict[str, dict[str, Outcome]] = {}
    for transport in BACKEND_TRANSPORTS:
        work = tmp / transport
        work.mkdir()
        script = build_gateway(work, transport)
        gw_port = peers.free_port()
        command = [sys.executable, str(script), "--port", str(gw_port), "--transport", "http", "--log-level", "warning"]
        with peers.run_process(command, gw_port):
            gateway[transport] = run_suite(f"http://127.0.0.1:{gw_port}/mcp", work / "results")
    yield Runs(names, direct, gateway)


def test_table(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    """Print the pass/fail table (direct, and through the gateway per backend transport)."""
    with capsys.disabled():
        print("\n\nconformance server scenarios (@modelcontextprotocol/conformance, --suite all):")
        print(runs.table())
    assert set(runs.names) <= set(runs.direct), "the suite skipped scenarios against the fixture"


def test_fixture_passes_directly(runs: Runs) -> None:
    """Every scenario passes against the fixture itself, except the justified baseline; no stale entry."""
    expected = set(baseline())
    assert expected <= set(runs.names), f"baseline names unknown to the suite: {expected - set(runs.names)}"
    failing = {name for name, outcome in runs.direct.items() if not outcome.ok}
    unexpected = {name: runs.direct[name].errors for name in failing - expected}
    assert not unexpected, f"fixture fails scenarios not in the baseline: {unexpected}\n{runs.table()}"
    stale = expected - failing
    assert not stale, f"baseline entries that now pass (remove them): {stale}"


@pytest.mark.parametrize("transport", BACKEND_TRANSPORTS)
def test_gateway_passes_what_the_fixture_passes(runs: Runs, transport: str) -> None:
    """Through the gateway, every scenario the fixture passes directly passes too, check for check."""
    seen = runs.gateway[transport]
    lost = {
        name: seen[name].errors if name in seen else ("scenario missing",)
        for name, outcome in runs.direct.items()
        if outcome.ok and (name not in seen or not seen[name].ok or seen[name].passed < outcome.passed)
    }
    assert not lost, f"gateway (backend over {transport}) loses scenarios: {lost}\n{runs.table()}"
