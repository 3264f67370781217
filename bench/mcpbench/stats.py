"""Percentiles, medians and ratios: the only arithmetic the report relies on."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], pct: float) -> float:
    """The `pct` percentile (0-100) by linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median_or_none(values: Sequence[float | None]) -> float | None:
    """Median of the values that were measured; None when none was."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(value: float | None, reference: float | None) -> float | None:
    """`value / reference`, or None when either is missing or the reference is zero."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def best(values: Sequence[float | None], *, higher_is_better: bool) -> float | None:
    """The best of the measured values (max or min), None when none was measured."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return max(present) if higher_is_better else min(present)
