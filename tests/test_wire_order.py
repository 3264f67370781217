"""Messages reach a stdio backend in the order the gateway sent them.

The dispatcher (SDK messages: `notifications/initialized`, cancellations, answers
to the backend's requests) and the lane (forwarded requests) share one pipe.
When the dispatcher's messages went through a writer task, a lane request sent
later could overtake them: `tools/list` arrived before `notifications/initialized`
in about one connection in five, and server-everything, which registers some
tools when it is initialized, then listed fewer tools than it has (a build's
snapshot missed them and the gateway held them back as new).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from mcpgw_runtime.connect import open_backend
from mcpgw_runtime.spec import BackendSpec

from tests import peers

pytestmark = pytest.mark.timeout(120)

# A stdio "server" that logs the method of every line it reads, in order, and answers just enough.
RECORDER = """
import json, sys
log = open(sys.argv[1], "a")
for line in sys.stdin:
    message = json.loads(line)
    log.write(message.get("method", "(answer)") + "\\n")
    log.flush()
    if "id" in message and "method" in message:
        if message["method"] == "initialize":
            result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                      "serverInfo": {"name": "recorder", "version": "0"}}
        else:
            result = {"tools": []}
        print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
"""

ROUNDS = 30


def _spec(command: str, args: list[str]) -> BackendSpec:
    return BackendSpec(name="b", type="stdio", command=command, args=tuple(args), startup_timeout=30)


def test_initialized_reaches_the_backend_before_the_first_request(tmp_path: Path) -> None:
    """30 fresh connections, each listing tools at once: every one wrote initialize, initialized, tools/list."""
    script, log = tmp_path / "recorder.py", tmp_path / "methods.log"
    script.write_text(RECORDER)

    async def main() -> None:
        for _ in range(ROUNDS):
            async with open_backend(_spec(sys.executable, [str(script), str(log)]), tmp_path) as conn:
                assert conn.lane is not None, "this test is about the lane beside the dispatcher"
                assert await conn.request("tools/list", None, 10) == {"tools": []}

    anyio.run(main)
    methods = log.read_text().split()
    expected = ["initialize", "notifications/initialized", "tools/list"]
    assert [methods[i : i + 3] for i in range(0, len(methods), 3)] == [expected] * ROUNDS


def test_server_everything_tools_registered_on_initialized_are_listed(tmp_path: Path) -> None:
    """server-everything adds tools in its `initialized` handler; the first tools/list must see them."""
    node, args = peers.everything_command("stdio")
    errlog = tmp_path / "stderr.log"

    async def first_listing() -> set[str]:
        with errlog.open("a") as err:
            async with open_backend(_spec(node, args), tmp_path, errlog=err) as conn:
                return {t["name"] for t in await conn.pages("tools/list", "tools", 30)}

    async def main() -> list[set[str]]:
        return [await first_listing() for _ in range(5)]

    listings = anyio.run(main)
    # Registered on initialized whatever the client declares (the others depend on declared capabilities).
    assert all("simulate-research-query" in names for names in listings), json.dumps(
        [sorted(n) for n in listings], indent=1
    )
    assert all(names == listings[0] for names in listings)
