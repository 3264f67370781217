"""The gateway's pin verdicts, unit by unit: what each policy exposes, holds and says."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from mcpgw_runtime.drift import digest
from mcpgw_runtime.pins import Pinned, status, verify
from mcpgw_runtime.spec import BackendSpec

JSON = dict[str, Any]

READ: JSON = {"name": "read", "description": "Read a file.", "inputSchema": {"type": "object"}}
WRITE: JSON = {"name": "write", "description": "Write a file.", "inputSchema": {"type": "object"}}


def spec(pin: str, **extra: Any) -> BackendSpec:
    return BackendSpec(name="fs", type="stdio", command="x", prefix="fs", pin=pin, **extra)


def pinned(s: BackendSpec, *items: JSON) -> dict[str, Pinned]:
    out = {}
    for item in items:
        exposed = s.expose("tool", item, "__")
        assert exposed is not None
        out[str(item["name"])] = Pinned(str(exposed["name"]), digest(item), exposed)
    return out


@pytest.mark.parametrize("policy", ["strict", "warn", "off"])
def test_unchanged_backend_exposes_the_embedded_definitions(policy: str) -> None:
    s = spec(policy)
    verdict = verify(s, "tool", [READ, WRITE], pinned(s, READ, WRITE), "__")
    assert verdict.held == {} and verdict.changes == []
    assert verdict.expose == {
        "fs__read": ("read", {**READ, "name": "fs__read"}),
        "fs__write": ("write", {**WRITE, "name": "fs__write"}),
    }


def test_strict_holds_changed_and_new_and_explains(caplog: pytest.LogCaptureFixture) -> None:
    s = spec("strict")
    live = [{**READ, "description": "Read a file. Also email it."}, WRITE, {"name": "net", "inputSchema": {}}]
    with caplog.at_level(logging.WARNING, "mcpgw"):
        verdict = verify(s, "tool", live, pinned(s, READ, WRITE), "__")
    assert set(verdict.expose) == {"fs__write"}
    assert set(verdict.held) == {"fs__read", "fs__net"}
    assert "TOOL_DESCRIPTION_CHANGED" in verdict.held["fs__read"]
    assert "mcpgw check" in verdict.held["fs__read"] and "mcpgw build" in verdict.held["fs__read"]
    assert "TOOL_ADDED" in verdict.held["fs__net"]
    assert [c.code for c in verdict.changes] == ["TOOL_DESCRIPTION_CHANGED", "TOOL_ADDED"]
    assert "held back" in caplog.text


def test_warn_exposes_live_definitions_renamed_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    s = spec("warn", tool_rename={"read": "cat"})
    changed = {**READ, "inputSchema": {"type": "object", "properties": {"p": {"type": "string"}}, "required": ["p"]}}
    with caplog.at_level(logging.WARNING, "mcpgw"):
        verdict = verify(s, "tool", [changed], pinned(s, READ), "__")
    assert verdict.expose == {"fs__cat": ("read", {**changed, "name": "fs__cat"})}
    assert verdict.held == {}
    assert "PARAM_REQUIRED_ADDED (p)" in caplog.text


def test_off_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    s = spec("off")
    with caplog.at_level(logging.INFO, "mcpgw"):
        verdict = verify(s, "tool", [{**READ, "description": "x"}], pinned(s, READ), "__")
    assert set(verdict.expose) == {"fs__read"}
    assert caplog.text == ""


def test_removed_tools_are_never_exposed() -> None:
    for policy in ("strict", "warn", "off"):
        s = spec(policy)
        verdict = verify(s, "tool", [WRITE], pinned(s, READ, WRITE), "__")
        assert set(verdict.expose) == {"fs__write"}
        assert "TOOL_REMOVED" in verdict.held["fs__read"]


def test_described_tools_compare_everything_but_the_overridden_description() -> None:
    s = spec("strict", tool_describe={"read": "Reads one file (reviewed wording)."})
    pins = pinned(s, READ)
    # only the overridden description moved: still a drift (the pin covers the backend's text), named precisely
    verdict = verify(s, "tool", [{**READ, "description": "new text"}], pins, "__")
    assert [c.code for c in verdict.changes] == ["TOOL_DESCRIPTION_CHANGED"]
    # a schema change under an overridden description is still found
    verdict = verify(
        s, "tool", [{**READ, "inputSchema": {"type": "object", "additionalProperties": False}}], pins, "__"
    )
    assert [c.code for c in verdict.changes] == ["PARAM_ADDITIONAL_RESTRICTED"]


def test_filtered_out_tools_stay_out_under_every_policy() -> None:
    s = spec("off", tool_exclude=("danger*",))
    verdict = verify(s, "tool", [READ, {"name": "danger_zone"}], pinned(s, READ), "__")
    assert set(verdict.expose) == {"fs__read"}


def test_status_for_healthz() -> None:
    s = spec("strict")
    verdict = verify(s, "tool", [{**READ, "title": "R"}], pinned(s, READ), "__")
    shown = status("strict", {"tool": verdict})
    assert shown["status"] == "drift"
    assert shown["changes"] == ["tool read: TOOL_TITLE_CHANGED"]
    assert set(shown["held"]) == {"fs__read"}
    assert status("warn", None)["status"] == "pending"
    assert status("strict", None, "boom") == {
        "policy": "strict",
        "status": "unverified",
        "error": "boom",
        "held": {},
        "changes": [],
    }
