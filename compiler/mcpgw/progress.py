"""Show probe progress: a live rich table on a terminal, plain lines otherwise.

Without a terminal only the outcomes are printed, and any wait long enough to be
reported ("waiting for backend ... up to 30s"): a build log must not fall silent
while a backend is waited for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.live import Live
from rich.table import Table

STYLE = {"failed": "red", "connecting": "yellow"}
WAITING = "waiting for"
"""How the probe's report of a long wait begins (probe.NOTICE_AFTER)."""


class ProbeDisplay:
    def __init__(self, console: Console, names: list[str]) -> None:
        self.console = console
        self.status = dict.fromkeys(names, "waiting")
        self._live: Live | None = None

    def _table(self) -> Table:
        table = Table(title="Probing backends", title_justify="left", show_edge=False)
        table.add_column("backend")
        table.add_column("status")
        for name, status in self.status.items():
            style = (
                "green"
                if status.startswith("ok")
                else "yellow"
                if status.startswith(WAITING)
                else STYLE.get(status, "")
            )
            table.add_row(name, f"[{style}]{status}[/]" if style else status)
        return table

    def update(self, name: str, status: str) -> None:
        self.status[name] = status
        if self._live is not None:
            self._live.update(self._table())
        elif status.startswith(("ok", WAITING)) or status == "failed":
            self.console.print(f"probe {name}: {status}", highlight=False)

    @contextlib.contextmanager
    def shown(self) -> Iterator[ProbeDisplay]:
        if not self.console.is_terminal:
            yield self
            return
        with Live(self._table(), console=self.console, refresh_per_second=8, transient=False) as live:
            self._live = live
            try:
                yield self
            finally:
                live.update(self._table())
                self._live = None
