"""Small statistics on timestamps and samples (no numpy)."""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def sustained_rate(times: Sequence[float], low: float = 0.1, high: float = 0.9) -> float | None:
    """Messages per second between the `low` and `high` fractions of all arrivals: the steady
    state, without the start-up tick and the tail."""
    ordered = sorted(times)
    n = len(ordered)
    if n < 10:
        return None
    a, b = int(n * low), int(n * high) - 1
    span = ordered[b] - ordered[a]
    return (b - a) / span if span > 0 else None


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most arrivals in any half-open interval [t, t + window), over every t (a sliding
    window: stricter than counting per calendar second)."""
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):
        j = bisect.bisect_left(ordered, t + window, lo=i)
        best = max(best, j - i)
    return best


def per_second(times: Sequence[float]) -> list[int]:
    """Arrivals in each whole second after the first arrival."""
    ordered = sorted(times)
    if not ordered:
        return []
    start = ordered[0]
    counts = [0] * (int(ordered[-1] - start) + 1)
    for t in ordered:
        counts[int(t - start)] += 1
    return counts
