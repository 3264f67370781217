"""`mcpgw check`: probe → snapshot the live offers → compare with the committed snapshot.

Nothing is written. The result is a `Report`, which the CLI prints and turns
into an exit code; a backend that cannot be probed is a finding too
(`BACKEND_UNREACHABLE`), so one dead server does not hide the others' drift.
The vendored runtime in the checked folder is compared with the digest its
`gateway.py` records (`RUNTIME_MODIFIED`): an edited runtime is as much a
change under the reviewed tables as an edited tool. The live offers are
linted as the build lints them (docs/lint.md). The live tools are priced per
profile as the build prices them: a budget or client target they now break is
drift too (`BUDGET_EXCEEDED`, `TARGET_EXCEEDED`), and each tool's token change
is reported.
"""

from __future__ import annotations

import re
from pathlib import Path

from mcpgw_runtime.drift import Change
from mcpgw_runtime.integrity import verify

from mcpgw.budgets import live_surface, surface_drift, token_changes
from mcpgw.build import config_digest
from mcpgw.compare import compare
from mcpgw.config import Config
from mcpgw.lint import lint, locate_all
from mcpgw.probe import Listener, ProbeFailure, probe_all
from mcpgw.report import Report
from mcpgw.snapshot import FILENAME, BackendOffer, build_snapshot, read_snapshot
from mcpgw.specs import backend_spec
from mcpgw.vendor import PACKAGE

_DIGEST = re.compile(r'^RUNTIME_SHA256 = "([0-9a-f]{64})"$', re.MULTILINE)


def runtime_changes(against: Path) -> list[Change]:
    """`RUNTIME_MODIFIED` when the runtime beside `against/gateway.py` differs from the digest it records."""
    gateway = against / "gateway.py"
    if not gateway.is_file():
        return []  # a folder holding only the snapshot: nothing vendored to check
    found = _DIGEST.search(gateway.read_text(encoding="utf-8"))
    if found is None:
        return [Change("RUNTIME_MODIFIED", "", "runtime", PACKAGE, f"{gateway} records no runtime digest; rebuild it")]
    verdict = verify(against / PACKAGE, found.group(1))
    if verdict.ok:
        return []
    message = f"{against / PACKAGE}: {verdict.describe()}; rebuild with `mcpgw build` to restore it"
    return [Change("RUNTIME_MODIFIED", "", "runtime", PACKAGE, message)]


async def check(config: Config, config_path: Path, against: Path, fail_on: str, listener: Listener) -> Report:
    """Raises `SnapshotError` when `against` holds no readable snapshot."""
    snapshot_path = against / FILENAME
    before = read_snapshot(snapshot_path)
    results = await probe_all(config, config_path.resolve().parent, listener)
    offers = {n: r for n, r in results.items() if isinstance(r, BackendOffer)}
    unreachable = {}
    for name, result in results.items():
        if isinstance(result, ProbeFailure):
            tail = result.stderr_tail.strip().splitlines()[-1:] if result.stderr_tail.strip() else []
            unreachable[name] = result.message + (f" (stderr: {tail[0].strip()})" if tail else "")
    after = build_snapshot(offers, config_digest(config))
    specs = {n: backend_spec(b) for n, b in sorted(config.backends.items()) if b.enabled}
    changes = runtime_changes(against) + compare(before, after, specs, config.gateway.separator, unreachable)
    live = live_surface(config, offers)
    if live is not None:
        changes += surface_drift(live)
    return Report(
        changes=changes,
        snapshot_file=str(snapshot_path),
        config_file=str(config_path),
        output_dir=str(against),
        fail_on=fail_on,
        before=before,
        after=after,
        snapshot_text=snapshot_path.read_text(encoding="utf-8"),
        surface=live.costs if live is not None else [],
        tokens=token_changes(before, after, specs, config.gateway.separator),
        lint=locate_all(lint(config, offers), config_path, config),
    )
