"""The contact policy: care always goes, incentives respect consent, the cap and quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.domain.contact_policy import (
    FREQUENCY_CAP,
    NO_CONSENT,
    QUIET_HOURS,
    Decision,
    decide,
    in_quiet_hours,
    quiet_hours_end,
    window_start,
)
from shared.domain.playbook import ContactPolicy, QuietHours

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = ContactPolicy()


def local(tz: str, year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz))


def incentive(
    at: datetime,
    *,
    consent: bool | None = True,
    member_tz: str | None = None,
    shop_tz: str = "Asia/Shanghai",
    policy: ContactPolicy = POLICY,
    recent: int = 0,
) -> Decision:
    return decide("incentive", at, consent, member_tz, shop_tz, policy, recent)


def test_care_is_always_sent_even_without_consent_at_night_over_the_cap() -> None:
    night = local("Asia/Shanghai", 2024, 5, 1, 23, 30)
    assert decide("care", night, None, None, "Asia/Shanghai", POLICY, 99) == Decision("send")
    assert decide("care", night, False, None, "Asia/Shanghai", POLICY, 0) == Decision("send")


@pytest.mark.parametrize("consent", [False, None])
def test_incentive_without_consent_is_suppressed(consent: bool | None) -> None:
    noon = local("Asia/Shanghai", 2024, 5, 1, 12, 0)
    assert incentive(noon, consent=consent) == Decision("suppress", NO_CONSENT)


def test_frequency_cap_allows_exactly_three_then_suppresses() -> None:
    noon = local("Asia/Shanghai", 2024, 5, 1, 12, 0)
    for recent in range(3):
        assert incentive(noon, recent=recent).kind == "send"
    assert incentive(noon, recent=3) == Decision("suppress", FREQUENCY_CAP)
    assert incentive(noon, recent=3, policy=ContactPolicy(frequency_cap=4)).kind == "send"


def test_frequency_window_is_rolling_hours_before_occurred_at() -> None:
    at = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)
    assert window_start(at, POLICY) == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert window_start(at, ContactPolicy(frequency_window_hours=1)) == datetime(2024, 5, 2, 11, 0, tzinfo=UTC)


def test_consent_is_checked_before_the_cap() -> None:
    noon = local("Asia/Shanghai", 2024, 5, 1, 12, 0)
    assert incentive(noon, consent=False, recent=5).reason == NO_CONSENT


@pytest.mark.parametrize(
    ("hour", "minute", "deferred"),
    [(21, 59, False), (22, 0, True), (23, 30, True), (0, 0, True), (7, 59, True), (8, 0, False), (12, 0, False)],
)
def test_quiet_hours_spanning_midnight(hour: int, minute: int, deferred: bool) -> None:
    at = local("Asia/Shanghai", 2024, 5, 1, hour, minute)
    decision = incentive(at)
    if deferred:
        assert decision.kind == "defer"
        assert decision.reason == QUIET_HOURS
        expected_day = 2 if hour >= 22 else 1
        assert decision.due_at == local("Asia/Shanghai", 2024, 5, expected_day, 8, 0)
    else:
        assert decision == Decision("send")


def test_quiet_hours_use_local_time_of_a_utc_timestamp() -> None:
    # 15:00 UTC is 23:00 in Shanghai.
    decision = incentive(datetime(2024, 5, 1, 15, 0, tzinfo=UTC))
    assert decision.kind == "defer"
    assert decision.due_at == datetime(2024, 5, 2, 0, 0, tzinfo=UTC)


def test_member_timezone_overrides_the_shops() -> None:
    # 14:00 UTC: 22:00 in Shanghai (quiet) but 15:00 in London (not quiet).
    at = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
    assert incentive(at).kind == "defer"
    assert incentive(at, member_tz="Europe/London").kind == "send"
    # And the other way round: afternoon in Shanghai is night in Los Angeles.
    late = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)  # 14:00 Shanghai, 23:00 (PDT) Los Angeles
    assert incentive(late).kind == "send"
    decision = incentive(late, member_tz="America/Los_Angeles")
    assert decision.kind == "defer"
    assert decision.due_at == local("America/Los_Angeles", 2024, 5, 1, 8, 0)


def test_unknown_member_timezone_falls_back_to_the_shops() -> None:
    at = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)  # 22:00 Shanghai
    assert incentive(at, member_tz="Not/AZone").kind == "defer"


def test_dst_spring_forward_night_gives_eight_local_in_summer_time() -> None:
    # New York, 9 -> 10 March 2024: clocks jump 02:00 EST -> 03:00 EDT.
    at = local("America/New_York", 2024, 3, 9, 23, 0)  # 04:00 UTC
    decision = incentive(at, member_tz="America/New_York")
    assert decision.kind == "defer"
    assert decision.due_at == datetime(2024, 3, 10, 12, 0, tzinfo=UTC)  # 08:00 EDT, 8 hours later, not 9
    assert decision.due_at is not None
    assert decision.due_at - at == timedelta(hours=8)


def test_dst_fall_back_night_gives_eight_local_in_standard_time() -> None:
    # New York, 2 -> 3 November 2024: clocks fall back 02:00 EDT -> 01:00 EST.
    at = local("America/New_York", 2024, 11, 2, 23, 0)  # 03:00 UTC
    decision = incentive(at, member_tz="America/New_York")
    assert decision.due_at == datetime(2024, 11, 3, 13, 0, tzinfo=UTC)  # 08:00 EST, 10 hours later


def test_quiet_hours_end_in_a_dst_gap_resolves_after_the_gap() -> None:
    quiet = QuietHours(start=time(1, 0), end=time(2, 30))  # 02:30 does not exist on 10 March 2024
    at = local("America/New_York", 2024, 3, 10, 1, 15)
    end = quiet_hours_end(at, ZoneInfo("America/New_York"), quiet)
    assert end == datetime(2024, 3, 10, 7, 30, tzinfo=UTC)  # 03:30 EDT


def test_quiet_hours_none_disables_them() -> None:
    at = local("Asia/Shanghai", 2024, 5, 1, 23, 0)
    assert incentive(at, policy=ContactPolicy(quiet_hours=None)) == Decision("send")


def test_quiet_hours_within_one_day() -> None:
    quiet = QuietHours(start=time(12, 0), end=time(14, 0))
    assert not in_quiet_hours(time(11, 59), quiet)
    assert in_quiet_hours(time(12, 0), quiet)
    assert not in_quiet_hours(time(14, 0), quiet)
    end = quiet_hours_end(local("Asia/Shanghai", 2024, 5, 1, 13, 0), SHANGHAI, quiet)
    assert end == local("Asia/Shanghai", 2024, 5, 1, 14, 0)


def test_empty_quiet_window_never_defers() -> None:
    assert not in_quiet_hours(time(3, 0), QuietHours(start=time(8, 0), end=time(8, 0)))


def test_naive_occurred_at_is_read_as_utc() -> None:
    decision = incentive(datetime(2024, 5, 1, 15, 0))  # 23:00 Shanghai
    assert decision.due_at == datetime(2024, 5, 2, 0, 0, tzinfo=UTC)
