"""What operators type, parsed and checked before anything connects: instants, ranges, periods.

Every refusal is a usage error (exit code 2) that names the option and the rule, never
anything from the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import typer


def parse_instant(text: str) -> datetime:
    """An RFC 3339 time with its offset (``2026-03-01T09:00:00+08:00``, ``…Z``), or ``now`` (the wall clock)."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("not an RFC 3339 time (e.g. 2026-03-01T09:00:00+08:00)") from None
    if value.tzinfo is None:
        raise typer.BadParameter("needs a UTC offset (Z or ±hh:mm)")
    return value


@dataclass(frozen=True, slots=True)
class OffsetBounds:
    """Offsets [first, stop) of each chosen partition; None: from its first record, or to its end."""

    first: int | None = None
    stop: int | None = None


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """Records timestamped in [since, until); None: from the first record, or to the end."""

    since: datetime | None = None
    until: datetime | None = None


Bounds = OffsetBounds | TimeBounds


def replay_bounds(
    from_offset: int | None, to_offset: int | None, since: datetime | None, until: datetime | None
) -> Bounds:
    """The range asked for: by offsets or by times, never both; its start before its end."""
    by_offset = from_offset is not None or to_offset is not None
    by_time = since is not None or until is not None
    if by_offset and by_time:
        raise typer.BadParameter("give offsets (--from-offset/--to-offset) or times (--since/--until), not both")
    if by_time:
        if since is not None and until is not None and since >= until:
            raise typer.BadParameter("--since must be before --until")
        return TimeBounds(since, until)
    for name, offset in (("--from-offset", from_offset), ("--to-offset", to_offset)):
        if offset is not None and offset < 0:
            raise typer.BadParameter(f"{name} must be 0 or more")
    if from_offset is not None and to_offset is not None and from_offset >= to_offset:
        raise typer.BadParameter("--from-offset must be below --to-offset (the range is [from, to))")
    return OffsetBounds(from_offset, to_offset)


def resolve(
    bounds: Bounds, begin: int, end: int, at_since: int | None = None, at_until: int | None = None
) -> tuple[int, int]:
    """The offsets [start, stop) to read of a partition whose records lie in [begin, end).

    For times, ``at_since`` and ``at_until`` are the broker's answers to "the first offset
    timestamped at or after" each bound (None when no record is): a range past the last
    record is empty, and one that ends past it runs to the end.
    """
    if isinstance(bounds, OffsetBounds):
        start = begin if bounds.first is None else max(bounds.first, begin)
        stop = end if bounds.stop is None else min(bounds.stop, end)
    else:
        start = begin if bounds.since is None else (end if at_since is None else max(at_since, begin))
        stop = end if bounds.until is None or at_until is None else min(at_until, end)
    return start, max(start, stop)


def report_period(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime | None, datetime]:
    """The incentives report's period [start, end), as the API takes it: ``end`` now when omitted."""
    end = end if end is not None else now
    if start is not None and start >= end:
        raise typer.BadParameter("--from must be before --to (or before now when --to is omitted)")
    return start, end
