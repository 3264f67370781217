"""Policy and limits without a running gateway: the config's rules → compiled tables (or located problems), and
the runtime's application of them (which caller a rule matches, first match, default deny, listings, token
buckets, result caps, session binding).

The end-to-end proof with real callers (OAuth tokens from a real provider) against real servers is
tests/test_policy_e2e.py; the golden cases tests/cases/policy*/ pin the rendered tables and the error output.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pydantic_core
import pytest
from mcpgw.config import config_from_document
from mcpgw.names import Exposed, expose
from mcpgw.policy import Compiled, compile_policy, covers, limits_literal, policy_literal
from mcpgw.snapshot import offers_from_snapshot, read_snapshot
from mcpgw.validate import schema_errors
from mcpgw_runtime import caller as caller_module
from mcpgw_runtime import limits as limits_module
from mcpgw_runtime import policy as policy_module
from mcpgw_runtime.auth import Caller
from mcpgw_runtime.caller import CALLER
from mcpgw_runtime.forwarding import POLICY_DENIED, RATE_LIMITED, RESULT_TOO_LARGE, Refused
from mcpgw_runtime.limits import Limits, LimitsSpec, RateLimit, ResultCap, marker, truncated
from mcpgw_runtime.policy import DEFAULT_RULE, LOCAL, CallerMatch, Policy, PolicyRule, PolicySpec
from mcpgw_runtime.profiles import PROFILE, Profiles
from mcpgw_runtime.search import CALL_TOOL, SEARCH_TOOL, SearchIndex
from mcpgw_runtime.spec import GatewaySpec, ProfileSpec
from pydantic import ValidationError

from tests.test_hostile_sessions import Driver

CASE = Path(__file__).parent / "cases" / "policy"

ALICE = Caller("oauth", "alice", "web", frozenset({"mcp:tools", "mcp:read"}), MappingProxyType({"groups": ["ops"]}))
BOB = Caller("oauth", "bob", "web", frozenset({"mcp:read"}), MappingProxyType({"groups": "dev"}))
BOT = Caller("oauth", "bot", "ci-agent", frozenset({"mcp:tools", "mcp:read"}), MappingProxyType({}))
STATIC = Caller("static", "static-token")


# ---------------------------------------------------------------- config → tables


def _compile(gateway: dict[str, Any]) -> tuple[Compiled, Exposed]:
    document = json.loads((CASE / "config.json").read_text())
    document["gateway"] = gateway
    config = config_from_document(document)
    exposed = expose(config, offers_from_snapshot(read_snapshot(CASE / "snapshot.json")))
    assert isinstance(exposed, Exposed)
    return compile_policy(config, exposed), exposed


def _problems(gateway: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(p.severity, p.pointer, p.message) for p in _compile(gateway)[0].problems]


AUTH = {"issuer": "https://login.example.com"}


def test_globs_and_annotations_resolve_to_the_exposed_names_in_table_order() -> None:
    compiled, _ = _compile(
        {
            "auth": AUTH,
            "policy": {
                "rules": [
                    {"name": "open", "deny": {"annotations": {"openWorldHint": True}}, "callers": {"scopes": ["a"]}},
                    {"name": "time", "allow": {"tools": ["time__*", "everything__echo"], "prompts": ["*simple*"]}},
                    {"name": "ro-time", "allow": {"tools": ["time__*"], "annotations": {"readOnlyHint": True}}},
                    {"name": "docs", "allow": {"resources": ["demo://resource/static/*"]}},
                ]
            },
        }
    )
    assert compiled.policy is not None and compiled.limits is None
    rules = compiled.policy.rules
    assert rules[0] == PolicyRule(
        "open",
        "deny",
        CallerMatch(kind="oauth", scopes=("a",)),
        (
            "everything__gzip-file-as-resource",
            "everything__trigger-sampling-request",
            "everything__trigger-url-elicitation",
        ),
    )
    assert rules[1].tools == ("everything__echo", "time__convert_time", "time__get_current_time")
    assert rules[1].prompts == ("everything__simple-prompt",) and rules[1].callers == CallerMatch()
    assert rules[2].tools == ("time__convert_time", "time__get_current_time")
    assert rules[3].resources == ("demo://resource/static/*",) and rules[3].tools == ()
    # rule 2 names nothing rule 1 does not, for the same callers: shadowed
    assert [(p.severity, p.pointer) for p in compiled.problems] == [("warning", "/gateway/policy/rules/2")]


def test_rules_that_can_never_match_and_names_that_match_nothing_are_errors() -> None:
    problems = _problems(
        {
            "policy": {
                "rules": [
                    {"name": "a", "allow": {"tools": ["time__now"]}},
                    {"name": "b", "allow": {"tools": ["*"]}, "callers": {"scopes": ["x"]}},
                    {"name": "c", "allow": {"tools": ["*"]}, "callers": {"static": True, "local": True}},
                    {"name": "a", "allow": {"prompts": ["everything__simple"]}},
                    {"name": "e", "deny": {"tools": ["everything__*"], "annotations": {"destructiveHint": True}}},
                ]
            }
        }
    )
    assert problems == [
        ("error", "/gateway/policy/rules/0/allow/tools/0", "'time__now' matches no exposed tool"),
        (
            "error",
            "/gateway/policy/rules/1/callers",
            "can never match: without gateway.auth no caller has an OAuth access token to take scopes from",
        ),
        (
            "error",
            "/gateway/policy/rules/2/callers",
            "can never match: a caller is either the static token's or the local user",
        ),
        ("error", "/gateway/policy/rules/3/name", "rule name 'a' is taken by rules[0]"),
        (
            "error",
            "/gateway/policy/rules/3/allow/prompts/0",
            "'everything__simple' matches no exposed prompt; did you mean 'everything__simple-prompt'?",
        ),
        (
            "error",
            "/gateway/policy/rules/4/deny/annotations",
            "no tool matching ['everything__*'] has the annotations {'destructiveHint': True}",
        ),
    ]


def test_with_auth_oauth_conditions_are_fine_but_unkept_claims_and_static_with_scopes_are_not() -> None:
    problems = _problems(
        {
            "auth": AUTH,
            "policy": {
                "rules": [
                    {"name": "ops", "allow": {"tools": ["*"]}, "callers": {"claims": {"groups": ["ops"]}}},
                    {"name": "dept", "allow": {"tools": ["*"]}, "callers": {"claims": {"department": ["x"]}}},
                    {"name": "probe", "allow": {"tools": ["time__*"]}, "callers": {"static": True, "scopes": ["a"]}},
                ]
            },
        }
    )
    assert [(s, p) for s, p, _ in problems] == [
        ("error", "/gateway/policy/rules/1/callers/claims/department"),
        ("error", "/gateway/policy/rules/2/callers"),
    ]
    assert "does not keep the claim 'department'" in problems[0][2]
    assert problems[1][2] == "can never match: a static caller has no OAuth access token to take scopes from"


def test_shadowing_needs_an_earlier_rule_for_every_caller_and_every_item() -> None:
    rules = [
        {"name": "all-time", "allow": {"tools": ["time__*"]}, "callers": {"scopes": ["a"]}},
        {"name": "narrower", "deny": {"tools": ["time__convert_time"]}, "callers": {"scopes": ["a", "b"]}},
        {"name": "wider-callers", "deny": {"tools": ["time__convert_time"]}},
        {"name": "more-items", "allow": {"tools": ["time__*", "everything__echo"]}, "callers": {"scopes": ["a"]}},
    ]
    problems = _problems({"auth": AUTH, "policy": {"rules": rules}})
    assert [(s, p) for s, p, _ in problems] == [("warning", "/gateway/policy/rules/1")]
    assert "rule 'narrower' never decides anything: rule 'all-time' (rules[0]) comes first" in problems[0][2]


def test_covers() -> None:
    everyone = CallerMatch()
    ops = CallerMatch(kind="oauth", claims={"groups": ("ops", "sre")})
    assert covers(everyone, ops) and not covers(ops, everyone)
    assert covers(ops, CallerMatch(kind="oauth", scopes=("x",), claims={"groups": ("ops",)}))
    assert not covers(ops, CallerMatch(kind="oauth", claims={"groups": ("ops", "dev")}))
    assert covers(CallerMatch(subjects=("a", "b")), CallerMatch(subjects=("a",)))
    assert not covers(CallerMatch(subjects=("a",)), CallerMatch(kind="static"))
    assert not covers(CallerMatch(kind="static"), CallerMatch(kind="local"))


def test_limits_compile_with_defaults_and_the_first_cap_wins() -> None:
    compiled, _ = _compile(
        {
            "limits": {
                "rate": [
                    {"tools": ["time__*"], "rate": 2.5},
                    {"name": "echo", "tools": ["*echo"], "rate": 1, "per": "tool"},
                ],
                "max_result_bytes": [
                    {"tools": ["everything__get-*"], "bytes": 1000, "action": "refuse"},
                    {"tools": ["everything__*"], "bytes": 5000},
                    {"tools": ["everything__get-env"], "bytes": 9000},
                    {"tools": ["nothing__*"], "bytes": 9000},
                ],
            }
        }
    )
    limits = compiled.limits
    assert compiled.policy is None and limits is not None
    assert limits.rates == (
        RateLimit("rate[0]", ("time__convert_time", "time__get_current_time"), 2.5, 3, "caller"),
        RateLimit("echo", ("everything__echo",), 1.0, 1, "tool"),
    )
    assert [c.bytes for c in limits.result_caps] == [1000, 5000]
    assert "everything__get-env" in limits.result_caps[0].tools
    assert "everything__get-env" not in limits.result_caps[1].tools
    assert "everything__echo" in limits.result_caps[1].tools
    assert [(p.severity, p.pointer) for p in compiled.problems] == [
        ("warning", "/gateway/limits/max_result_bytes/2"),
        ("error", "/gateway/limits/max_result_bytes/3/tools/0"),
    ]


def test_literals_are_python_that_builds_the_same_tables() -> None:
    compiled, _ = _compile(json.loads((CASE / "config.json").read_text())["gateway"])
    assert compiled.policy is not None and compiled.limits is not None
    namespace: dict[str, Any] = {
        "CallerMatch": CallerMatch,
        "PolicyRule": PolicyRule,
        "PolicySpec": PolicySpec,
        "LimitsSpec": LimitsSpec,
        "RateLimit": RateLimit,
        "ResultCap": ResultCap,
    }
    assert eval(policy_literal(compiled), namespace) == compiled.policy
    assert eval(limits_literal(compiled.limits), namespace) == compiled.limits


SCHEMA_AND_MODELS: list[tuple[object, bool]] = [
    ({"gateway": {"policy": {"rules": [{"name": "a", "allow": {"tools": ["*"]}}]}}}, True),
    (
        {
            "gateway": {
                "policy": {
                    "rules": [
                        {
                            "name": "a.b:c-d_e",
                            "description": "x",
                            "deny": {"annotations": {"destructiveHint": True}, "resources": ["x://*"]},
                            "callers": {"scopes": ["s"], "sub": ["u"], "client_id": ["c"], "claims": {"groups": ["g"]}},
                        },
                        {"name": "b", "allow": {"prompts": []}, "callers": {"local": True}},
                    ]
                }
            }
        },
        True,
    ),
    ({"gateway": {"policy": {"rules": [{"name": "a"}]}}}, False),
    ({"gateway": {"policy": {"rules": [{"name": "a", "allow": {}, "deny": {}}]}}}, False),
    ({"gateway": {"policy": {"rules": []}}}, False),
    ({"gateway": {"policy": {}}}, False),
    ({"gateway": {"policy": {"rules": [{"name": "-a", "allow": {}}]}}}, False),
    ({"gateway": {"policy": {"rules": [{"name": "a", "allow": {}, "callers": {"static": False}}]}}}, False),
    ({"gateway": {"policy": {"rules": [{"name": "a", "allow": {}, "callers": {"claims": {"g": []}}}]}}}, False),
    ({"gateway": {"policy": {"rules": [{"name": "a", "allow": {"tools": None}}]}}}, False),
    ({"gateway": {"policy": {"rules": [{"name": "a", "allow": {"tool": ["x"]}}]}}}, False),
    ({"gateway": {"policy": {"rules": [{"name": "a", "allow": {}, "callers": {"scopes": ["a b"]}}]}}}, False),
    ({"gateway": {"limits": {}}}, True),
    ({"gateway": {"limits": {"rate": [{"tools": ["*"], "rate": 0.1}], "max_result_bytes": []}}}, True),
    ({"gateway": {"limits": {"rate": [{"tools": ["a"], "rate": 1, "burst": 2.0, "per": "tool", "name": "r"}]}}}, True),
    ({"gateway": {"limits": {"rate": [{"tools": ["*"], "rate": 0}]}}}, False),
    ({"gateway": {"limits": {"rate": [{"tools": [], "rate": 1}]}}}, False),
    ({"gateway": {"limits": {"rate": [{"tools": ["a"], "rate": 1, "burst": 0}]}}}, False),
    ({"gateway": {"limits": {"rate": [{"tools": ["a"], "rate": 1, "per": "session"}]}}}, False),
    ({"gateway": {"limits": {"max_result_bytes": [{"tools": ["x"], "bytes": 1000, "action": "refuse"}]}}}, True),
    ({"gateway": {"limits": {"max_result_bytes": [{"tools": ["x"], "bytes": 100}]}}}, False),
    ({"gateway": {"limits": {"max_result_bytes": [{"tools": ["x"], "bytes": 1000, "action": "cut"}]}}}, False),
]


@pytest.mark.parametrize(
    ("document", "valid"), SCHEMA_AND_MODELS, ids=[json.dumps(d)[:70] for d, _ in SCHEMA_AND_MODELS]
)
def test_schema_and_models_agree(document: object, valid: bool) -> None:
    assert (not schema_errors(document)) is valid, schema_errors(document)
    try:
        config_from_document(document)
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted is valid


# ---------------------------------------------------------------- the runtime: who matches, what is decided


def test_caller_matchers() -> None:
    assert CallerMatch().matches(LOCAL) and CallerMatch().matches(ALICE)
    assert CallerMatch(kind="static").matches(STATIC) and not CallerMatch(kind="static").matches(ALICE)
    assert CallerMatch(scopes=("mcp:tools", "mcp:read")).matches(ALICE)
    assert not CallerMatch(scopes=("mcp:tools", "mcp:read")).matches(BOB)  # every scope, not any
    assert CallerMatch(subjects=("bob", "carol")).matches(BOB) and not CallerMatch(subjects=("carol",)).matches(BOB)
    assert CallerMatch(client_ids=("ci-agent",)).matches(BOT) and not CallerMatch(client_ids=("x",)).matches(BOT)
    groups = CallerMatch(claims={"groups": ("ops", "dev")})
    assert groups.matches(ALICE) and groups.matches(BOB)  # a list holding one, or a string equal to one
    assert not groups.matches(BOT) and not groups.matches(LOCAL)


SPEC = PolicySpec(
    (
        PolicyRule("agents", "deny", CallerMatch(client_ids=("ci-agent",)), ("t_open",)),
        PolicyRule("ops", "allow", CallerMatch(claims={"groups": ("ops",)}), ("t_open", "t_read"), ("p",), ("*",)),
        PolicyRule("readers", "allow", CallerMatch(scopes=("mcp:read",)), ("t_read",), (), ("doc://*",)),
        PolicyRule("local", "allow", CallerMatch(kind="local"), ("t_read",)),
    )
)


def test_the_first_matching_rule_that_names_the_item_decides_else_default_deny() -> None:
    policy = Policy(SPEC)
    assert policy.decide(ALICE, "tool", "t_open") == policy_module.Decision(True, "ops")
    assert policy.decide(BOT, "tool", "t_open") == policy_module.Decision(False, "agents")
    assert policy.decide(BOT, "tool", "t_read") == policy_module.Decision(True, "readers")
    assert policy.decide(BOB, "tool", "t_open") == policy_module.Decision(False, DEFAULT_RULE)
    assert policy.decide(BOB, "prompt", "p") == policy_module.Decision(False, DEFAULT_RULE)
    assert policy.decide(BOB, "resource", "doc://a") == policy_module.Decision(True, "readers")
    assert policy.decide(BOB, "resource", "file:///etc/passwd") == policy_module.Decision(False, DEFAULT_RULE)
    assert policy.decide(ALICE, "resource", "file:///etc/passwd").allowed
    assert policy.decide(None, "tool", "t_read") == policy_module.Decision(True, "local")  # None: the local user
    assert policy.decide(STATIC, "tool", "t_read") == policy_module.Decision(False, DEFAULT_RULE)


def test_permissions_are_shared_by_callers_the_same_rules_match_and_keyed_by_the_claims_rules_read() -> None:
    policy = Policy(SPEC)
    carol = Caller("oauth", "carol", "web", frozenset({"mcp:read"}), MappingProxyType({"groups": "dev"}))
    assert policy.permissions(BOB) is policy.permissions(carol)
    assert policy.permissions(BOB).tools == frozenset({"t_read"})
    # the same identity and scopes with another group: other permissions (a Caller compares without claims)
    promoted = Caller("oauth", "bob", "web", frozenset({"mcp:read"}), MappingProxyType({"groups": ["ops"]}))
    assert promoted == BOB and policy.permissions(promoted).tools == frozenset({"t_open", "t_read"})


def test_check_refuses_with_the_rule_in_the_error_and_counts_it() -> None:
    policy = Policy(SPEC)
    before = policy_module.DENIALS.get(("agents", "tool"))
    count = before.count if before is not None else 0
    token = CALLER.set(BOT)
    try:
        policy.check("tool", "t_read")
        with pytest.raises(Refused) as refused:
            policy.check("tool", "t_open")
    finally:
        CALLER.reset(token)
    assert refused.value.code == POLICY_DENIED == -32010
    assert refused.value.message == "denied by policy rule 'agents': tool 't_open'"
    assert refused.value.data == {"rule": "agents", "kind": "tool", "name": "t_open"}
    assert policy_module.DENIALS[("agents", "tool")].count == count + 1
    with pytest.raises(Refused, match="no rule allows prompt 'p' to this caller"):
        policy.check("prompt", "p")  # the local user
    page = policy_module.render_policy_metrics()
    assert "# TYPE mcpgw_policy_denied_total counter\n" in page
    assert f'mcpgw_policy_denied_total{{rule="agents",kind="tool"}} {count + 1}\n' in page


def _gateway_spec(**extra: Any) -> GatewaySpec:
    tools = tuple({"name": n, "inputSchema": {"type": "object"}} for n in ("t_open", "t_read", "t_other"))
    templates = (("b", {"uriTemplate": "doc://{id}", "name": "doc"}), ("b", {"uriTemplate": "file://{p}", "name": "f"}))
    return GatewaySpec(
        name="g",
        version="0",
        generator="0",
        config_dir=".",
        backends=(),
        tools=tools,
        tool_routes={},
        prompts=({"name": "p"},),
        prompt_routes={},
        resource_templates=templates,
        resources={},
        tool_pins={},
        prompt_pins={},
        **extra,
    )


def test_profiles_and_policy_compose_in_lists_templates_and_resources() -> None:
    profiles = Profiles(_gateway_spec(policy=SPEC, profiles={"ro": ProfileSpec(tools=("t_read", "t_other"))}))
    full = {"tools": list(_gateway_spec().tools)}
    for who, profile, listed in [
        (ALICE, "default", ["t_open", "t_read"]),
        (ALICE, "ro", ["t_read"]),
        (BOB, "default", ["t_read"]),
        (STATIC, "default", []),
    ]:
        caller, path = CALLER.set(who), PROFILE.set(profile)
        try:
            assert [t["name"] for t in profiles.listing("tools/list", full)["tools"]] == listed, (who, profile)
            again = profiles.listing("tools/list", full)
            assert again is profiles.listing("tools/list", full)  # made once per permission set
        finally:
            CALLER.reset(caller)
            PROFILE.reset(path)
    token = CALLER.set(BOB)
    try:
        assert [t["uriTemplate"] for t in profiles.templates(_gateway_spec().resource_templates)] == ["doc://{id}"]
        assert profiles.resources("b", [{"uri": "doc://1"}, {"uri": "file://x"}]) == [{"uri": "doc://1"}]
        with pytest.raises(Refused):
            profiles.permit("resource", "file://x")
        profiles.permit("resource", "doc://1")
    finally:
        CALLER.reset(token)


def test_without_a_policy_nothing_is_filtered_or_built() -> None:
    profiles = Profiles(_gateway_spec())
    full = {"tools": list(_gateway_spec().tools)}
    assert profiles.policy is None and profiles.listing("tools/list", full) is full
    profiles.permit("tool", "anything")


# ---------------------------------------------------------------- limits


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _limits(*rates: RateLimit, caps: tuple[ResultCap, ...] = ()) -> tuple[Limits, Clock]:
    clock = Clock()
    return Limits(LimitsSpec(rates, caps), clock=clock), clock


def test_a_bucket_per_caller_lets_a_burst_through_then_refuses_with_a_retry_hint() -> None:
    limits, clock = _limits(RateLimit("slow", ("a", "b"), 0.5, 2, "caller"))
    limits.admit("a", ALICE)
    limits.admit("b", ALICE)  # the rule's tools share the caller's bucket
    with pytest.raises(Refused) as refused:
        limits.admit("a", ALICE)
    assert refused.value.code == RATE_LIMITED == -32011
    assert refused.value.data == {"retryAfter": 2.0, "rule": "slow", "tool": "a"}
    assert "rate limit 'slow' reached for tool 'a' (0.5 calls a second, bursts of 2, for each caller)" in str(
        refused.value
    )
    limits.admit("a", BOB)  # another caller: its own bucket
    limits.admit("c", ALICE)  # a tool no rule names
    clock.now += 1.0
    with pytest.raises(Refused) as again:
        limits.admit("a", ALICE)
    assert again.value.data["retryAfter"] == 1.0
    clock.now += 1.0
    limits.admit("a", ALICE)
    assert limits_module.LIMITED[("slow", "a")].count >= 2


def test_a_bucket_per_tool_is_shared_and_a_refusal_takes_no_token_from_other_rules() -> None:
    limits, _ = _limits(RateLimit("wide", ("a", "b"), 10.0, 5, "caller"), RateLimit("narrow", ("a",), 1.0, 1, "tool"))
    limits.admit("a", ALICE)
    with pytest.raises(Refused, match=r"rate limit 'narrow'.*for every caller together"):
        limits.admit("a", BOB)  # the tool's bucket is everyone's
    for _ in range(4):  # ALICE's "wide" bucket lost one token only: the refused call took none
        limits.admit("b", ALICE)
    with pytest.raises(Refused, match="'wide'"):
        limits.admit("b", ALICE)


def test_full_buckets_are_forgotten_when_the_table_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits_module, "MAX_BUCKETS", 3)
    limits, clock = _limits(RateLimit("r", ("a",), 1.0, 1, "caller"))
    for i in range(3):
        limits.admit("a", Caller("oauth", f"u{i}"))
    clock.now += 5
    limits.admit("a", Caller("oauth", "u9"))
    assert len(limits._buckets) == 1


def _text_result(text: str, **extra: Any) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": False, **extra}


def test_a_result_over_its_cap_is_truncated_with_a_marker_or_refused() -> None:
    limits, _ = _limits(caps=(ResultCap(("big",), 1000), ResultCap(("strict",), 1000, "refuse")))
    small = _text_result("x" * 100)
    assert limits.cap("big", small) is small and limits.cap("other", _text_result("y" * 5000))["content"]
    large = _text_result("é" * 3000)
    size = len(pydantic_core.to_json(large))
    cut = limits.cap("big", large)
    text = cut["content"][0]["text"]
    assert text.startswith("éé") and text.endswith(marker(size, 1000))
    assert marker(size, 1000) == f"[… truncated by mcpgw: {size - 1000:,} bytes over the 1,000-byte cap]"
    assert len(pydantic_core.to_json(cut)) <= 1000 and cut["isError"] is False
    with pytest.raises(Refused) as refused:
        limits.cap("strict", large)
    assert refused.value.code == RESULT_TOO_LARGE == -32012
    assert refused.value.data == {"bytes": size, "cap": 1000, "tool": "strict"}
    assert limits_module.CAPPED[("big", "truncate")].count >= 1


def test_truncation_keeps_whole_items_while_they_fit_and_structured_content_only_if_it_fits() -> None:
    image = {"type": "image", "data": "A" * 3000, "mimeType": "image/png"}
    result = {"content": [{"type": "text", "text": "head"}, image, {"type": "text", "text": "tail"}]}
    cut = truncated(result, 3200, 1000)
    assert [c["type"] for c in cut["content"]] == ["text", "text"]
    assert cut["content"][0] == {"type": "text", "text": "head"} and cut["content"][1]["text"] == marker(3200, 1000)
    escaped = _text_result('"\n' * 2000, structuredContent={"k": "v" * 2000})
    cut = truncated(escaped, len(pydantic_core.to_json(escaped)), 1500)
    assert "structuredContent" not in cut and len(pydantic_core.to_json(cut)) <= 1500
    kept = _text_result("z" * 5000, structuredContent={"k": 1})
    cut = truncated(kept, len(pydantic_core.to_json(kept)), 1500)
    assert cut["structuredContent"] == {"k": 1} and len(pydantic_core.to_json(cut)) <= 1500


# ---------------------------------------------------------------- sessions belong to their caller


def test_a_session_is_unknown_to_any_other_caller() -> None:
    async def main() -> None:
        driver = Driver(8)
        token = CALLER.set(ALICE)
        sid = await driver.open()
        assert await driver.use(sid) == 200
        refreshed = Caller("oauth", "alice", "web", frozenset({"mcp:tools"}))  # a new token: other scopes, same one
        CALLER.set(refreshed)
        assert await driver.use(sid) == 200
        for other in (BOB, STATIC, None):
            CALLER.set(other)
            assert await driver.use(sid) == 404, other
        CALLER.reset(token)

    asyncio.run(main())
    assert caller_module.identity(ALICE) == ("oauth", "alice", "web") and caller_module.identity(None) is None


def test_a_search_profile_keeps_its_own_tools_and_finds_only_what_the_caller_may_call() -> None:
    index = SearchIndex(tools=("t_open", "t_read"), postings={"alpha": "0:200", "zulu": "1:100"})
    search = ProfileSpec(tools=("t_open", "t_read"), mode="search", always=("t_read",), search=index)
    profiles = Profiles(_gateway_spec(policy=SPEC, profiles={"find": search}))
    full = {"tools": list(_gateway_spec().tools)}
    asked = {"name": SEARCH_TOOL, "arguments": {"query": "alpha zulu"}}
    path = PROFILE.set("find")
    try:
        for who, listed, found in [(ALICE, ["t_read"], ["t_open", "t_read"]), (BOB, ["t_read"], ["t_read"])]:
            caller = CALLER.set(who)
            try:
                names = [t["name"] for t in profiles.listing("tools/list", full)["tools"]]
                assert names == [SEARCH_TOOL, CALL_TOOL, *listed]
                result = profiles.search(asked, full)
                assert result is not None
                assert [t["name"] for t in result["structuredContent"]["tools"]] == found, who
            finally:
                CALLER.reset(caller)
    finally:
        PROFILE.reset(path)
