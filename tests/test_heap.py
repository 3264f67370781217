"""The allocator limits a large message fixes (runtime `heap.py`), and the readers that fix them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from mcpgw_runtime import heap, jsonrpc_http, pipes
from mcpgw_runtime.heap import LARGE_MESSAGE, glibc
from mcpgw_runtime.jsonrpc_http import read_body
from mcpgw_runtime.pipes import Pipe

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

ANSWERING_BACKEND = textwrap.dedent(
    """
    import json, sys
    for line in sys.stdin:
        request = json.loads(line)
        size = request["params"]["size"]
        answer = {"jsonrpc": "2.0", "id": request["id"], "result": {"text": "x" * size}}
        sys.stdout.write(json.dumps(answer) + "\\n")
        sys.stdout.flush()
    """
)


@pytest.mark.skipif(not glibc(), reason="the limits are glibc's; other C libraries are left alone")
def test_freed_large_blocks_are_reused_once_the_limits_are_fixed() -> None:
    """In a fresh interpreter: blocks of 300 KB freed and allocated again fault every time, then never."""
    script = textwrap.dedent(
        """
        import resource
        from mcpgw_runtime.heap import keep_freed_memory

        def faults(rounds=50):
            start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(rounds):
                blocks = [bytes(300_000) for _ in range(4)]
                del blocks
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

        faults(5)
        before = faults()
        fixed = keep_freed_memory()
        faults(5)
        print(before, fixed, faults())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(TEMPLATES)}
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    before, fixed, after = out.stdout.split()
    assert fixed == "True"
    assert int(before) >= 500, f"glibc's defaults should hand these pages back: {out.stdout}"
    assert int(after) * 10 < int(before), f"faults before / after the limits: {before} / {after}"


def test_a_stdio_backends_large_answer_fixes_the_limits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Small answers leave the allocator alone; the first line of `LARGE_MESSAGE` bytes fixes its limits."""
    calls: list[None] = []
    monkeypatch.setattr(pipes, "keep_freed_memory", lambda: bool(calls.append(None)))

    async def main() -> None:
        command = [sys.executable, "-c", ANSWERING_BACKEND]
        pipe = await Pipe.spawn(command, str(tmp_path), dict(os.environ), sys.stderr)
        try:
            reply, _ = await pipe.request("echo", {"size": 1000}, 10)
            assert len(reply["result"]["text"]) == 1000
            assert calls == []
            reply, line = await pipe.request("echo", {"size": LARGE_MESSAGE}, 10)
            assert len(reply["result"]["text"]) == LARGE_MESSAGE and len(line) > LARGE_MESSAGE
            assert calls == [None]
        finally:
            await pipe.stop()

    asyncio.run(main())


def test_a_large_request_body_fixes_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client's body of `LARGE_MESSAGE` bytes, in pieces, fixes them too; a small one or a refused one does not."""
    calls: list[None] = []
    monkeypatch.setattr(jsonrpc_http, "keep_freed_memory", lambda: bool(calls.append(None)))

    def receiver(*pieces: bytes) -> Any:
        messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        return receive

    piece = b"x" * (LARGE_MESSAGE // 2)
    assert asyncio.run(read_body(receiver(b"{}"), 1 << 20)) == (b"{}", True)
    assert asyncio.run(read_body(receiver(piece, piece), LARGE_MESSAGE - 1))[1] is False
    assert calls == []
    assert asyncio.run(read_body(receiver(piece, piece), 1 << 20)) == (piece + piece, True)
    assert calls == [None]


def test_other_c_libraries_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """No glibc (musl answers no such name, Windows has no `confstr`): nothing is changed, nothing raises."""
    heap.keep_freed_memory.cache_clear()
    try:

        def musl(name: str) -> str:
            raise ValueError("unrecognized configuration name")

        monkeypatch.setattr(os, "confstr", musl)
        assert heap.glibc() is False and heap.keep_freed_memory() is False
        heap.keep_freed_memory.cache_clear()
        monkeypatch.delattr(os, "confstr")
        assert heap.glibc() is False and heap.keep_freed_memory() is False
    finally:
        heap.keep_freed_memory.cache_clear()
