"""A backend's requests to a 2026-07-28 client, relayed as input-required rounds (rounds.py).

One gateway fronts tests/servers/asking_server.py over stdio; the backend asks through the SDK's
own `ctx.session.create_message` / `elicit` / `list_roots`. Clients are the SDK's `Client` on
protocol 2026-07-28 over `/mcp` (and once over the gateway's own stdio transport):

* with sampling, elicitation and roots callbacks, `call_tool`, `get_prompt` and `read_resource`
  just work: the SDK's client drives the rounds, and the backend gets the answers;
* driven by hand (`allow_input_required=True`): each backend request arrives as its own round with
  an opaque, sealed `requestState`; a tampered state and a state whose call has finished are refused
  with clear errors;
* a round the client never answers expires after the backend's timeout: the retry is refused and
  the backend's call was cancelled (the backend says so).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests import peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ASKING = Path(__file__).parent / "servers" / "asking_server.py"
EXPIRY = 2.0  # seconds: the backend's timeout for `wait_for_answer`, so how long its round waits


@pytest.fixture(scope="module")
def gateway_py(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("rounds")
    config = {
        "ask": {
            "type": "stdio",
            "command": "python",
            "args": [str(ASKING)],
            "tool_timeouts": {"wait_for_answer": EXPIRY},
        }
    }
    return peers.build_gateway(work, config)


@pytest.fixture(scope="module")
def gateway(gateway_py: Path) -> Iterator[str]:
    port = peers.free_port()
    with peers.run_process([sys.executable, str(gateway_py), "--port", str(port)], port):
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url)
        yield url


def wait_until_ready(url: str, timeout: float = 60) -> None:
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


async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    content = params.messages[0].content
    asked = content.text if isinstance(content, types.TextContent) else "?"
    return types.CreateMessageResult(role="assistant", content=types.TextContent(text=f"S({asked})"), model="m")


async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "ann"})


async def roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/a"), types.Root(uri="file:///work/b")])


def modern(gateway: str, **callbacks: Any) -> Client:
    return Client(f"{gateway}/mcp", mode="2026-07-28", **callbacks)


def text(result: types.CallToolResult | types.GetPromptResult) -> str:
    if isinstance(result, types.GetPromptResult):
        content: Any = result.messages[0].content
    else:
        content = result.content[0]
    assert isinstance(content, types.TextContent), result
    return content.text


def test_the_sdk_client_drives_the_rounds(gateway: str) -> None:
    async def main() -> dict[str, str]:
        callbacks = {"sampling_callback": sample, "elicitation_callback": elicit, "list_roots_callback": roots}
        async with modern(gateway, **callbacks) as client:
            assert client.protocol_version == "2026-07-28"
            resource = await client.read_resource("ask://elicited")
            block = resource.contents[0]
            assert isinstance(block, types.TextResourceContents)
            return {
                "two rounds": text(await client.call_tool("ask__sample_then_elicit", {"prompt": "hi"})),
                "parallel": text(await client.call_tool("ask__two_at_once", {})),
                "roots": text(await client.call_tool("ask__roots", {})),
                "prompt": text(await client.get_prompt("ask__asking_prompt")),
                "resource": block.text,
            }

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the roots callback is deprecated at 2026-07-28
        seen = anyio.run(main)
    assert seen == {
        "two rounds": 'sampled=S(hi); elicited=accept:{"name": "ann"}',
        "parallel": "left=S(left); right=S(right)",
        "roots": "file:///work/a,file:///work/b",
        "prompt": "prompt sampled S(for the prompt)",
        "resource": 'resource accept:{"name": "ann"}',
    }


def test_rounds_over_a_stdio_gateway(gateway_py: Path) -> None:
    """The same rounds when the gateway itself is a 2026-07-28 stdio server."""
    server = StdioServerParameters(command=sys.executable, args=[str(gateway_py), "--transport", "stdio"])

    async def main() -> str:
        async with Client(server, mode="2026-07-28", sampling_callback=sample, elicitation_callback=elicit) as client:
            assert client.protocol_version == "2026-07-28"
            return text(await client.call_tool("ask__sample_then_elicit", {"prompt": "stdio"}))

    assert anyio.run(main) == 'sampled=S(stdio); elicited=accept:{"name": "ann"}'


def test_rounds_by_hand_and_unusable_state(gateway: str) -> None:
    async def main() -> None:
        async with modern(gateway) as client:
            session = client.session
            name, args = "ask__sample_then_elicit", {"prompt": "p"}
            first = await session.call_tool(name, args, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult)
            assert list(first.input_requests or {}) == ["sampling-1"]
            request = (first.input_requests or {})["sampling-1"]
            assert isinstance(request, types.CreateMessageRequest)
            state = first.request_state
            assert state and state.startswith("v1.")  # sealed by the SDK's RequestStateBoundary

            with pytest.raises(MCPError, match="Invalid or expired requestState"):
                await session.call_tool(name, args, request_state=state[:-4] + "AAAA", allow_input_required=True)
            with pytest.raises(MCPError, match="Invalid or expired requestState"):  # bound to the arguments
                await session.call_tool(name, {"prompt": "other"}, request_state=state, allow_input_required=True)

            answer = types.CreateMessageResult(role="assistant", content=types.TextContent(text="x"), model="m")
            second = await session.call_tool(
                name, args, input_responses={"sampling-1": answer}, request_state=state, allow_input_required=True
            )
            assert isinstance(second, types.InputRequiredResult)
            assert list(second.input_requests or {}) == ["elicitation-2"]
            assert isinstance((second.input_requests or {})["elicitation-2"], types.ElicitRequest)

            accepted = types.ElicitResult(action="decline")
            final = await session.call_tool(
                name,
                args,
                input_responses={"elicitation-2": accepted},
                request_state=second.request_state,
                allow_input_required=True,
            )
            assert isinstance(final, types.CallToolResult)
            assert text(final) == "sampled=x; elicited=decline:null"

            with pytest.raises(MCPError, match="unknown or expired requestState") as finished:
                await session.call_tool(
                    name,
                    args,
                    input_responses={"elicitation-2": accepted},
                    request_state=second.request_state,
                    allow_input_required=True,
                )
            assert finished.value.error.code == types.INVALID_PARAMS

    anyio.run(main)


def test_an_unanswered_round_expires_and_the_backend_call_is_cancelled(gateway: str) -> None:
    async def main() -> tuple[str, str]:
        async with modern(gateway) as client:
            session = client.session
            before = text(await client.call_tool("ask__abandoned", {}))
            first = await session.call_tool("ask__wait_for_answer", {}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult)
            await anyio.sleep(EXPIRY * 2.5)
            with pytest.raises(MCPError, match="unknown or expired requestState"):
                await session.call_tool(
                    "ask__wait_for_answer",
                    {},
                    input_responses={"elicitation-1": types.ElicitResult(action="cancel")},
                    request_state=first.request_state,
                    allow_input_required=True,
                )
            return before, text(await client.call_tool("ask__abandoned", {}))

    before, after = anyio.run(main)
    assert int(after) == int(before) + 1, "the backend's call was not cancelled"
