"""The run's result as a markdown report and as JSON (pure: no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcpbench.figures import DIRECT_REFERENCE, FIGURES, PEERS, Figure
from mcpbench.goals import Table, Verdict
from mcpbench.stats import best, ratio


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def ratios(table: Table, figure: Figure, target: str) -> tuple[float | None, float | None]:
    """(x the direct connection, x the best peer) of one figure of one target."""
    value = table.get(target, {}).get(figure.key)
    direct = table.get(DIRECT_REFERENCE, {}).get(figure.key)
    best_peer = best([table.get(p, {}).get(figure.key) for p in PEERS], higher_is_better=figure.higher_is_better)
    return ratio(value, direct), ratio(value, best_peer)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def figures_table(table: Table, labels: Mapping[str, str]) -> str:
    keys = list(labels)
    lines = [_row(["figure", *labels.values()]), _row(["---", *("---:" for _ in keys)])]
    for figure in FIGURES:
        values = [fmt(table.get(k, {}).get(figure.key), figure.digits) for k in keys]
        lines.append(_row([f"{figure.label} ({figure.unit})", *values]))
    return "\n".join(lines)


def ratios_table(table: Table, labels: Mapping[str, str]) -> str:
    keys = [k for k in labels if k != DIRECT_REFERENCE]
    lines = [_row(["figure", *(labels[k] for k in keys)]), _row(["---", *("---:" for _ in keys)])]
    for figure in FIGURES:
        cells = []
        for key in keys:
            direct, peer = ratios(table, figure, key)
            cells.append(f"{fmt_ratio(direct)} / {fmt_ratio(peer)}")
        lines.append(_row([figure.label, *cells]))
    return "\n".join(lines)


def goals_table(verdicts: Sequence[Verdict]) -> str:
    lines = [_row(["target", "measured", "limit", "result"]), _row(["---", "---:", "---:", "---"])]
    for v in verdicts:
        figure = next(f for f in FIGURES if f.key == v.goal.figure)
        result = "n/a" if v.passed is None else ("**pass**" if v.passed else "**FAIL**")
        unit = f" {figure.unit}"
        lines.append(
            _row([v.goal.text, fmt(v.measured, figure.digits) + unit, fmt(v.limit, figure.digits) + unit, result])
        )
    return "\n".join(lines)


def markdown(table: Table, labels: Mapping[str, str], verdicts: Sequence[Verdict], meta: Mapping[str, Any]) -> str:
    """The whole report: figures, ratios, targets."""
    head = (
        f"Run {meta.get('date', '?')} on {meta.get('machine', '?')}; median of {meta.get('runs', '?')} run(s)"
        f"{' (--quick)' if meta.get('quick') else ''}."
    )
    return "\n\n".join(
        [
            head,
            "### Figures\n\n" + figures_table(table, labels),
            "### Ratios: x direct stdio / x best peer (lower is better, except throughput)\n\n"
            + ratios_table(table, labels),
            "### Targets (the gateway as it starts, over /mcp unless named)\n\n" + goals_table(verdicts),
        ]
    )


def as_json(
    table: Table,
    runs: Sequence[Table],
    labels: Mapping[str, str],
    verdicts: Sequence[Verdict],
    meta: Mapping[str, Any],
    errors: Sequence[str],
) -> dict[str, Any]:
    ratio_json: dict[str, dict[str, dict[str, float | None]]] = {}
    for key in labels:
        ratio_json[key] = {}
        for figure in FIGURES:
            direct, peer = ratios(table, figure, key)
            ratio_json[key][figure.key] = {"vs_direct": direct, "vs_best_peer": peer}
    return {
        "meta": dict(meta),
        "targets": dict(labels),
        "figures": {f.key: {"label": f.label, "unit": f.unit, "higher_is_better": f.higher_is_better} for f in FIGURES},
        "median": table,
        "ratios": ratio_json,
        "goals": [
            {"goal": v.goal.text, "figure": v.goal.figure, "measured": v.measured, "limit": v.limit, "passed": v.passed}
            for v in verdicts
        ],
        "runs": list(runs),
        "errors": list(errors),
    }


_OURS = ("gateways", "backends", "nginx", "load generator")


def scale_out_section(data: Mapping[str, Any]) -> str:
    """The scale-out phase: one row per setup, then the checks of the scale-out targets."""
    setups: Mapping[str, Mapping[str, Any]] = data["setups"]
    reference = setups.get("nginx-1", {}).get("throughput_rps")
    lines = [
        _row(
            [
                "setup",
                "calls",
                "failed",
                "calls/s",
                "x 1 replica behind nginx",
                "p50 (ms)",
                "calls per replica",
                "cores busy: gateways / backends / nginx / load gen.",
                "machine (all processes)",
                "CPU/call, ours (µs)",
            ]
        ),
        _row(["---", *("---:" for _ in range(9))]),
    ]
    for row in setups.values():
        cores = row["cpu_cores"]
        ours = sum(cores.get(k) or 0.0 for k in _OURS)
        rps = row["throughput_rps"]
        lines.append(
            _row(
                [
                    row["label"],
                    f"{row['calls']:,}",
                    str(row["failures"]),
                    fmt(rps, 0),
                    fmt_ratio(ratio(rps, reference)),
                    fmt(row["p50_ms"]),
                    " / ".join(f"{c:,}" for c in row["replica_calls"]),
                    " / ".join(fmt(cores.get(k)) for k in _OURS) + f" = {ours:.2f}",
                    fmt(cores.get("machine")),
                    fmt(ours / rps * 1e6, 0) if rps else "—",
                ]
            )
        )
    plan = data["plan"]
    head = (
        f"{plan['sessions']} sessions calling echo for {plan['seconds']} s per setup, {plan['runs']} run(s): "
        f"calls and failures summed over the runs, rates medians; {data.get('cores')} cores; {data.get('nginx')}."
    )
    checks = [_row(["check (scale-out)", "measured", "result"]), _row(["---", "---", "---"])]
    for check in data["checks"]:
        checks.append(_row([check["check"], check["measured"], "**pass**" if check["passed"] else "**FAIL**"]))
    return "\n\n".join([head, "\n".join(lines), "\n".join(checks)])
