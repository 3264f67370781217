"""Units of the runtime's Prometheus exposition (metrics.py); the concurrency cap is in test_forwarding.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from mcpgw_runtime.metrics import CallStats, render_metrics


@dataclass
class _B:
    name: str
    state: str = "ready"
    restarts: int = 2
    stats: CallStats = field(default_factory=CallStats)
    in_flight: int = 0
    queued: int = 0
    rejected: int = 0


def test_exposition_format() -> None:
    backend = _B('we"ird')
    series = backend.stats.get("tools/call", "echo")
    series.observe(0.003)
    series.observe(99)
    series.errors += 1
    text = render_metrics(
        [backend], {"tool": {"we__x": ('we"ird', "held")}, "prompt": {}}, {('we"ird', "tool", "we__x"): 3}
    )
    labels = 'backend="we\\"ird",method="tools/call",tool="echo"'
    assert f"mcpgw_requests_total{{{labels}}} 2\n" in text
    assert f'mcpgw_request_duration_seconds_bucket{{{labels},le="0.0025"}} 0\n' in text
    assert f'mcpgw_request_duration_seconds_bucket{{{labels},le="0.005"}} 1\n' in text
    assert f'mcpgw_request_duration_seconds_bucket{{{labels},le="+Inf"}} 2\n' in text
    assert f"mcpgw_request_errors_total{{{labels}}} 1\n" in text
    assert 'mcpgw_backend_state{backend="we\\"ird",state="ready"} 1\n' in text
    assert 'mcpgw_pin_held{backend="we\\"ird",kind="tool"} 1\n' in text
    assert 'mcpgw_pin_held_item{backend="we\\"ird",kind="tool",name="we__x"} 1\n' in text
    assert 'mcpgw_pin_refusals_total{backend="we\\"ird",kind="tool",name="we__x"} 3\n' in text
    for line in text.splitlines():
        assert line.startswith("# ") or line.rsplit(" ", 1)[1].replace(".", "").replace("e", "").isdigit(), line
