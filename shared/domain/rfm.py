"""Recency, frequency and monetary scores 1..5 on the quintile edges of a shop's buyers, and their segment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

from shared.domain.playbook import RfmSegment

OTHERS = "others"
_QUINTILES = (0.2, 0.4, 0.6, 0.8)
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class RfmEdges:
    """A shop's 20/40/60/80th percentiles of its buyers' figures, computed as of business time ``as_of``."""

    as_of: datetime
    recency_days: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]

    def __post_init__(self) -> None:
        # More than four edges would give scores above 5; unsorted ones would make them meaningless.
        for name in ("recency_days", "frequency", "monetary"):
            edges: tuple[float, ...] = getattr(self, name)
            if len(edges) != len(_QUINTILES) or any(a > b for a, b in pairwise(edges)):
                raise ValueError(f"{name} needs {len(_QUINTILES)} ascending edges, got {edges!r}")


def quintile_edges(values: Sequence[float]) -> tuple[float, float, float, float]:
    """The 20/40/60/80th percentiles, interpolated exactly like PostgreSQL ``percentile_cont``.

    Matching the database lets the edges be computed there or here with the same result.
    """
    if not values:
        raise ValueError("quintile_edges needs at least one value")
    ordered = sorted(float(v) for v in values)
    last = len(ordered) - 1

    def percentile(p: float) -> float:
        position = p * last
        low = math.floor(position)
        high = math.ceil(position)
        if low == high:
            return ordered[low]
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    p20, p40, p60, p80 = (percentile(p) for p in _QUINTILES)
    return p20, p40, p60, p80


def rfm_scores(
    edges: RfmEdges, last_order_at: datetime | None, paid_orders: int, net_spend: Decimal
) -> tuple[int, int, int] | None:
    """(r, f, m), each 1..5; None for a member who never paid.

    Ties: a value equal to an edge is not above it, so it gets the lower score for f and m
    and, since fewer days is better, the higher score for r. ``net_spend`` is compared as a
    float, so a figure that produced an edge through ``quintile_edges`` ties with it exactly.
    """
    if last_order_at is None:
        return None
    recency_days = max(0.0, (edges.as_of - last_order_at).total_seconds() / _SECONDS_PER_DAY)
    spend = float(net_spend)
    r = 5 - sum(1 for edge in edges.recency_days if edge < recency_days)
    f = 1 + sum(1 for edge in edges.frequency if edge < paid_orders)
    m = 1 + sum(1 for edge in edges.monetary if edge < spend)
    return r, f, m


def rfm_segment(r: int, f: int, m: int, segments: Sequence[RfmSegment]) -> str:
    """The first segment whose inclusive ranges hold all three scores, so the playbook's order sets priority."""
    for segment in segments:
        if (
            segment.r[0] <= r <= segment.r[1]
            and segment.f[0] <= f <= segment.f[1]
            and segment.m[0] <= m <= segment.m[1]
        ):
            return segment.name
    return OTHERS
