"""What crosses the gateway besides request and answer, with many clients at once.

One gateway fronts two copies of the conformance fixture (tests/conformance/fixture_server.py),
`a` over stdio and `b` over Streamable HTTP, both with the default shared session. Real SDK
clients over `/mcp` and `/sse` then:

* call slow tools concurrently across both backends, with progress and log notifications
  interleaved and a third of the calls cancelled midway: every client gets exactly its own
  result and progress, never another client's log entry, and every cancel reaches the backend
  (which records the cancelled call) while no completed call is reported cancelled;
* answer sampling and elicitation requests of a backend: each request reaches the client whose
  call caused it, and with calls of two clients in flight on one shared session the backend gets
  a clear error instead of a guess;
* subscribe to a resource: only the subscriber hears `resources/updated`, everyone hears
  `resources/list_changed`.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError

from tests import peers
from tests.conformance import fixture_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    # logging/setLevel and resources/subscribe are handshake-era features, deprecated at 2026-07-28.
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

FIXTURE = Path(fixture_server.__file__)
CLIENTS = 12


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("relay")
    port_b = peers.free_port()
    config = {
        "a": {"type": "stdio", "command": "python", "args": [str(FIXTURE), "stdio"]},
        "b": {
            "type": "http",
            "command": "python",
            "args": [str(FIXTURE), "http", "--port", str(port_b)],
            "url": f"http://127.0.0.1:{port_b}/mcp",
            "resources": {"exclude": ["*"]},  # the same URIs as `a`: one owner per URI
        },
    }
    peers.build_gateway(work, config)
    port = peers.free_port()
    with peers.run_process([sys.executable, str(work / "dist" / "gateway.py"), "--port", str(port)], port):
        url = f"http://127.0.0.1:{port}"
        _wait_until_ready(url)
        yield url


def _wait_until_ready(url: str, timeout: float = 60) -> None:
    """Both backends connected: a cancel must find its call already at the backend."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                if json.load(response)["status"] == "ok":
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "backends never became ready"
        time.sleep(0.1)


def _client(gateway: str, index: int, **callbacks: Any) -> Client:
    """Even clients over /mcp, odd ones over legacy SSE."""
    if index % 2:
        return Client(sse_client(f"{gateway}/sse"), mode="legacy", **callbacks)
    return Client(f"{gateway}/mcp", mode="legacy", **callbacks)


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def test_concurrent_calls_progress_logs_and_cancellation(gateway: str) -> None:
    seen: dict[int, dict[str, Any]] = {}

    async def one(index: int) -> None:
        tag = f"client{index}"
        backend = "a" if index % 4 < 2 else "b"
        cancel = index % 3 == 0
        progress: list[tuple[float, str | None]] = []
        logs: list[str] = []

        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            logs.append(str(params.data))

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, message))

        async with _client(gateway, index, logging_callback=on_log) as client:
            await client.set_logging_level("info")
            args = {"tag": tag, "steps": 6, "delay": 0.1}
            result = None
            with anyio.move_on_after(0.25 if cancel else 30):
                result = await client.call_tool(f"{backend}__slow_echo", args, progress_callback=on_progress)
            # The session survives a cancel: a second, short call on it still gets its own answer.
            after = await client.call_tool(f"{backend}__slow_echo", {"tag": f"{tag}-again", "steps": 1, "delay": 0})
        seen[index] = {
            "tag": tag,
            "backend": backend,
            "cancel": cancel,
            "result": result,
            "after": after,
            "progress": progress,
            "logs": logs,
        }

    async def main() -> dict[str, list[str]]:
        async with anyio.create_task_group() as tg:
            for index in range(CLIENTS):
                tg.start_soon(one, index)
        async with Client(f"{gateway}/mcp", mode="legacy") as client:
            cancelled = {}
            for backend in ("a", "b"):
                result = await client.call_tool(f"{backend}__cancelled_tags", {})
                cancelled[backend] = (result.structured_content or {})["tags"]
        return cancelled

    cancelled = anyio.run(main)
    for _, run in sorted(seen.items()):
        tag = run["tag"]
        assert _text(run["after"]) == f"{tag}-again", run
        assert all(str(m).startswith(f"{tag} ") for _, m in run["progress"]), (tag, run["progress"])
        assert [v for v, _ in run["progress"]] == sorted(v for v, _ in run["progress"]), run["progress"]
        foreign = [entry for entry in run["logs"] if not entry.startswith(f"{tag} ") and not entry.startswith(tag)]
        assert not foreign, f"{tag} heard another client's log: {foreign}"
        if run["cancel"]:
            assert run["result"] is None
            assert tag in cancelled[run["backend"]], f"the cancel of {tag} never reached backend {run['backend']}"
        else:
            assert run["result"] is not None and not run["result"].is_error
            assert run["result"].structured_content == {"tag": tag, "steps": 6}
            assert [v for v, _ in run["progress"]] == [1, 2, 3, 4, 5, 6], (tag, run["progress"])
            assert tag not in cancelled[run["backend"]]
    assert any(run["cancel"] for run in seen.values()) and not all(run["cancel"] for run in seen.values())


def _sampler(answer: str) -> Callable[..., Any]:
    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=answer), model="m"
        )

    return sample


def test_sampling_and_elicitation_reach_the_client_that_caused_them(gateway: str) -> None:
    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"username": "u", "email": "e@example.com"})

    async def main() -> list[str]:
        texts = []
        for index, backend in enumerate(("a", "b", "a", "b")):
            callbacks = {"sampling_callback": _sampler(f"answer-{index}"), "elicitation_callback": elicit}
            async with _client(gateway, index, **callbacks) as client:
                sampled = await client.call_tool(f"{backend}__test_sampling", {"prompt": f"p{index}"})
                elicited = await client.call_tool(f"{backend}__test_elicitation", {"message": "who?"})
                texts += [_text(sampled), _text(elicited)]
        return texts

    texts = anyio.run(main)
    assert texts[0::2] == [f"LLM response: answer-{i}" for i in range(4)]
    assert all('"username": "u"' in t and "action=accept" in t for t in texts[1::2])


def test_shared_session_refuses_to_guess(gateway: str) -> None:
    """Two clients in flight on one shared backend session: the backend's request gets a clear error."""

    async def main() -> str:
        async with (
            _client(gateway, 0, sampling_callback=_sampler("first")) as slow_client,
            _client(gateway, 2, sampling_callback=_sampler("second")) as asking,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(slow_client.call_tool, "a__slow_echo", {"tag": "busy", "steps": 10, "delay": 0.1})
            await anyio.sleep(0.3)
            try:
                result = await asking.call_tool("a__test_sampling", {"prompt": "x"})
            except MCPError as exc:
                return str(exc)
            return _text(result) if result.is_error else f"unexpected success: {_text(result)}"

    message = anyio.run(main)
    assert "cannot tell which client sampling/createMessage is for" in message, message


def test_subscriptions_and_list_changed(gateway: str) -> None:
    async def main() -> tuple[list[str], list[str]]:
        heard: tuple[list[str], list[str]] = ([], [])

        def handler(into: list[str]) -> Callable[[Any], Any]:
            async def on_message(message: Any) -> None:
                if isinstance(message, types.ResourceUpdatedNotification):
                    into.append(f"updated {message.params.uri}")
                elif isinstance(message, types.ResourceListChangedNotification):
                    into.append("resources changed")

            return on_message

        async with (
            _client(gateway, 0, message_handler=handler(heard[0])) as subscriber,
            _client(gateway, 1, message_handler=handler(heard[1])) as bystander,
        ):
            await subscriber.subscribe_resource(fixture_server.WATCHED)
            await bystander.call_tool("a__notify_changes", {})
            with anyio.fail_after(10):
                while "resources changed" not in heard[1] or not any(h.startswith("updated") for h in heard[0]):
                    await anyio.sleep(0.05)
            await subscriber.unsubscribe_resource(fixture_server.WATCHED)
        return heard

    subscriber, bystander = anyio.run(main)
    assert f"updated {fixture_server.WATCHED}" in subscriber and "resources changed" in subscriber
    assert not any(h.startswith("updated") for h in bystander), bystander
