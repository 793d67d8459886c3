"""The contact policy: whether a message goes out now, later, or not at all.

Pure functions of business time (the action's ``occurred_at``), so a replay of the
same actions decides the same way. Care messages always go out; incentive messages
respect marketing consent, a rolling per-member frequency cap and quiet hours in the
member's (else the shop's) time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.domain.playbook import ContactPolicy, QuietHours

DecisionKind = Literal["send", "suppress", "defer"]

NO_CONSENT = "no_consent"
FREQUENCY_CAP = "frequency_cap"
QUIET_HOURS = "quiet_hours"


@dataclass(frozen=True, slots=True)
class Decision:
    """``send`` now, ``suppress`` for ``reason``, or ``defer`` until ``due_at`` (aware)."""

    kind: DecisionKind
    reason: str | None = None
    due_at: datetime | None = None


SEND = Decision("send")


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone called ``name``; None for a missing or unknown name."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def contact_zone(member_tz: str | None, shop_tz: str | None) -> ZoneInfo:
    """The member's zone when valid, else the shop's, else UTC (never fails on bad data)."""
    return zone(member_tz) or zone(shop_tz) or ZoneInfo("UTC")


def in_quiet_hours(local: time, quiet: QuietHours) -> bool:
    """Whether a local wall-clock time falls in [start, end); the window may span midnight."""
    if quiet.start == quiet.end:
        return False
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def quiet_hours_end(moment: datetime, tz: ZoneInfo, quiet: QuietHours | None) -> datetime | None:
    """The instant (in UTC) the quiet window holding ``moment`` ends; None when not quiet.

    The end is built as a local wall-clock time in ``tz`` and resolved by zoneinfo, so a
    DST change during the night moves the UTC instant, not the local 08:00. It is
    returned in UTC because Python subtracts two datetimes sharing one zone by wall
    clock, which would be off by an hour across the change.
    """
    if quiet is None:
        return None
    local = _aware(moment).astimezone(tz)
    wall = local.time().replace(tzinfo=None)
    if not in_quiet_hours(wall, quiet):
        return None
    end_date = local.date()
    if quiet.start > quiet.end and wall >= quiet.start:
        end_date += timedelta(days=1)
    # fold=0: an ambiguous end takes its first occurrence; a non-existent one (in a
    # spring-forward gap) resolves to the instant just after the gap.
    end = datetime.combine(end_date, quiet.end, tzinfo=tz)
    return end.astimezone(UTC)


def decide(
    category: str,
    occurred_at: datetime,
    consent: bool | None,
    member_tz: str | None,
    shop_tz: str | None,
    policy: ContactPolicy,
    recent_incentives: int,
) -> Decision:
    """The decision for one message at business time ``occurred_at``.

    ``consent`` None means the member is unknown: no consent (privacy by default).
    ``recent_incentives`` counts the member's other incentive messages not suppressed
    or failed in the window (occurred_at - window, occurred_at].
    """
    if category != "incentive":
        return SEND
    if consent is not True:
        return Decision("suppress", NO_CONSENT)
    if recent_incentives >= policy.frequency_cap:
        return Decision("suppress", FREQUENCY_CAP)
    due_at = quiet_hours_end(occurred_at, contact_zone(member_tz, shop_tz), policy.quiet_hours)
    if due_at is not None:
        return Decision("defer", QUIET_HOURS, due_at)
    return SEND


def window_start(occurred_at: datetime, policy: ContactPolicy) -> datetime:
    """The exclusive lower bound of the frequency window ending at ``occurred_at``."""
    return _aware(occurred_at) - timedelta(hours=policy.frequency_window_hours)


def _aware(moment: datetime) -> datetime:
    """A naive timestamp is taken as UTC, the contract's wire convention."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
