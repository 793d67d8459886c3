"""The window of business time the service accepts, so no time can overflow date arithmetic.

Events and requests name times as they please (year 1, year 9999, any offset); everything
downstream adds days, years and time zones to them. Times outside this window are refused
at the edge instead: an event is dead-lettered (``time_out_of_range``), a request answers 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class BusinessTimeBounds:
    """Accepted times lie in [``earliest``, wall clock + ``max_ahead``]."""

    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    max_ahead: timedelta = timedelta(days=1)

    def contains(self, at: datetime, now: datetime) -> bool:
        """True when ``at`` (aware) lies in the window as of the wall clock ``now``.

        A time whose UTC equivalent falls outside what ``datetime`` can hold (year 1 with a
        positive offset, year 9999 with a negative one) is outside the window too.
        """
        try:
            at_utc = at.astimezone(UTC)
            return self.earliest <= at_utc <= now.astimezone(UTC) + self.max_ahead
        except (OverflowError, ValueError):
            return False

    def describe(self) -> str:
        """The rule, for error messages (never the rejected value)."""
        return (
            f"must lie between {self.earliest.astimezone(UTC).isoformat()} and "
            f"{_duration(self.max_ahead)} after the receiving service's clock"
        )


def _duration(span: timedelta) -> str:
    if span % timedelta(days=1) == timedelta(0):
        days = span // timedelta(days=1)
        return f"{days} day" + ("s" if days != 1 else "")
    return f"{span.total_seconds():g} seconds"
