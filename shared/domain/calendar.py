"""Due times of calendar gifts (anniversaries, birthdays) on business time, in the member's local zone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta

_BIRTHDAY = re.compile(r"(?:([0-9]{4})-)?([0-9]{2})-([0-9]{2})")
_LEAP_YEAR = 2000  # any leap year: a year-less "MM-DD" is valid if it exists in some year


def _load(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Unknown names, path-like names ("../x", "Europe") and odd characters all mean "no usable zone".
        return None


def zone(name: str | None, fallback: str) -> ZoneInfo:
    """The member's zone when it is a valid IANA name, else the shop's; never raises (UTC as a last resort).

    Member profiles carry free text, so a bad zone must degrade to the shop's rather than stop processing.
    """
    return _load(name) or _load(fallback) or ZoneInfo("UTC")


def add_months(at: datetime, months: int) -> datetime:
    """Calendar months, clamped to the month's end (31 Jan + 1 month = 28/29 Feb), not 30-day blocks."""
    return at + relativedelta(months=months)


def local_due(day: date, send_at: time, tz: ZoneInfo) -> datetime:
    """The instant ``send_at`` strikes on ``day`` in ``tz``, as UTC so callers compare plainly.

    fold=0 gives both DST rules we want: a time skipped by a gap is read with the offset before the
    transition, which moves it forward by the gap (02:30 -> 03:30 EDT); an ambiguous time takes its
    first occurrence.
    """
    local = datetime.combine(day, send_at.replace(tzinfo=None, fold=0), tzinfo=tz)
    return local.astimezone(UTC)


def same_day_in(year: int, month: int, day: int) -> date:
    """The date in ``year``; 29 February falls on 28 February in common years."""
    try:
        return date(year, month, day)
    except ValueError:
        if (month, day) != (2, 29):
            raise
        return date(year, 2, 28)


@lru_cache(maxsize=65536)
def next_anniversary(joined_at: datetime, after: datetime, tz: ZoneInfo, send_at: time) -> tuple[int, datetime]:
    """The first membership anniversary due strictly after ``after``: (years since joining, due instant in UTC).

    The anniversary is the member's local join date in ``tz`` (not the UTC date), so a join just before
    local midnight is celebrated on the day the member saw. Strictly after, so an anniversary due exactly at
    ``after`` (already handled by the caller) yields the next year's.
    """
    joined = joined_at.astimezone(tz).date()
    years = max(1, after.astimezone(tz).year - joined.year - 1)
    while True:
        due = local_due(same_day_in(joined.year + years, joined.month, joined.day), send_at, tz)
        if due > after:
            return years, due
        years += 1


def parse_birthday(text: str) -> tuple[int, int] | None:
    match = _BIRTHDAY.fullmatch(text.strip())
    if match is None:
        return None
    year_text, month_text, day_text = match.groups()
    month, day = int(month_text), int(day_text)
    try:
        date(int(year_text) if year_text else _LEAP_YEAR, month, day)
    except ValueError:
        return None
    return month, day


@lru_cache(maxsize=65536)
def next_birthday(birthday: str, after: datetime, tz: ZoneInfo, send_at: time) -> tuple[int, datetime] | None:
    """The first birthday due strictly after ``after``: (calendar year of that birthday, due instant in UTC).

    ``birthday`` is "MM-DD" or "YYYY-MM-DD" (the year is only validated); None when it names no real date,
    so bad profile data skips the gift instead of failing. 29 February is celebrated on 28 February in
    common years.
    """
    parsed = parse_birthday(birthday)
    if parsed is None:
        return None
    month, day = parsed
    year = after.astimezone(tz).year - 1
    while True:
        due = local_due(same_day_in(year, month, day), send_at, tz)
        if due > after:
            return year, due
        year += 1
