"""Calendar gifts' due times: month ends, leap days, local dates, zones and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.calendar import add_months, local_due, next_anniversary, next_birthday, zone

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC_ZONE = ZoneInfo("UTC")
TEN = time(10, 0)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- zones -----------------------------------------------------------------------------------------------


def test_zone_prefers_the_members_valid_zone() -> None:
    assert zone("Europe/Berlin", "Asia/Shanghai") == BERLIN


@pytest.mark.parametrize("name", [None, "", "Mars/Olympus", "../etc/passwd", "/etc/passwd", "Europe", "a\x00b", " "])
def test_zone_falls_back_to_the_shop_for_missing_or_invalid_names(name: str | None) -> None:
    assert zone(name, "Asia/Shanghai") == SHANGHAI


def test_zone_uses_utc_when_even_the_fallback_is_invalid() -> None:
    assert zone("nope", "also/nope") == UTC_ZONE


# --- months ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (utc(2025, 1, 31, 12), 1, utc(2025, 2, 28, 12)),
        (utc(2024, 1, 31, 12), 1, utc(2024, 2, 29, 12)),
        (utc(2025, 3, 31, 12), 1, utc(2025, 4, 30, 12)),
        (utc(2025, 3, 31, 12), -1, utc(2025, 2, 28, 12)),
        (utc(2025, 11, 30, 8), 3, utc(2026, 2, 28, 8)),
        (utc(2025, 5, 15, 8), 12, utc(2026, 5, 15, 8)),
    ],
)
def test_add_months_uses_calendar_months_clamped_to_the_month_end(
    start: datetime, months: int, expected: datetime
) -> None:
    assert add_months(start, months) == expected


def test_add_months_keeps_the_wall_clock_of_an_aware_local_time() -> None:
    assert add_months(datetime(2025, 1, 31, 9, tzinfo=BERLIN), 5) == datetime(2025, 6, 30, 9, tzinfo=BERLIN)


# --- local due times and DST -----------------------------------------------------------------------------


def test_local_due_is_the_local_time_returned_in_utc() -> None:
    due = local_due(date(2025, 6, 1), TEN, SHANGHAI)
    assert due == utc(2025, 6, 1, 2)
    assert due.tzinfo is UTC


def test_a_time_in_the_spring_forward_gap_moves_forward_by_the_gap_new_york() -> None:
    due = local_due(date(2025, 3, 9), time(2, 30), NEW_YORK)
    assert due == utc(2025, 3, 9, 7, 30)
    local = due.astimezone(NEW_YORK)
    assert (local.hour, local.minute, local.tzname()) == (3, 30, "EDT")


def test_a_time_in_the_spring_forward_gap_moves_forward_by_the_gap_berlin() -> None:
    due = local_due(date(2025, 3, 30), time(2, 15), BERLIN)
    assert due.astimezone(BERLIN).replace(tzinfo=None) == datetime(2025, 3, 30, 3, 15)
    assert due == utc(2025, 3, 30, 1, 15)


def test_an_ambiguous_fall_back_time_takes_its_first_occurrence() -> None:
    assert local_due(date(2025, 11, 2), time(1, 30), NEW_YORK) == utc(2025, 11, 2, 5, 30)  # 01:30 EDT
    assert local_due(date(2025, 10, 26), time(2, 30), BERLIN) == utc(2025, 10, 26, 0, 30)  # 02:30 CEST


def test_a_send_time_with_fold_or_tzinfo_is_read_as_plain_local_time() -> None:
    odd = time(1, 30, fold=1, tzinfo=UTC)
    assert local_due(date(2025, 11, 2), odd, NEW_YORK) == utc(2025, 11, 2, 5, 30)


def test_local_due_on_normal_days_around_dst() -> None:
    assert local_due(date(2025, 3, 8), TEN, NEW_YORK) == utc(2025, 3, 8, 15)  # EST
    assert local_due(date(2025, 3, 10), TEN, NEW_YORK) == utc(2025, 3, 10, 14)  # EDT


# --- anniversaries ---------------------------------------------------------------------------------------


def test_first_anniversary_one_year_after_joining() -> None:
    joined = datetime(2024, 5, 1, 15, tzinfo=SHANGHAI)
    assert next_anniversary(joined, joined, SHANGHAI, TEN) == (1, utc(2025, 5, 1, 2))


def test_anniversary_before_the_join_is_still_the_first() -> None:
    joined = utc(2024, 5, 1, 12)
    assert next_anniversary(joined, utc(2020, 1, 1), UTC_ZONE, TEN) == (1, utc(2025, 5, 1, 10))


def test_anniversaries_of_a_29_february_join() -> None:
    joined = utc(2024, 2, 29, 12)
    after = joined
    seen = []
    for _ in range(5):
        years, due = next_anniversary(joined, after, UTC_ZONE, TEN)
        seen.append((years, due.date()))
        after = due
    assert seen == [
        (1, date(2025, 2, 28)),
        (2, date(2026, 2, 28)),
        (3, date(2027, 2, 28)),
        (4, date(2028, 2, 29)),
        (5, date(2029, 2, 28)),
    ]


def test_anniversary_follows_the_local_join_date_not_the_utc_date() -> None:
    joined = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)  # 2 March 07:30 in Shanghai
    years, due = next_anniversary(joined, joined, SHANGHAI, TEN)
    assert years == 1
    assert due.astimezone(SHANGHAI) == datetime(2026, 3, 2, 10, tzinfo=SHANGHAI)
    assert next_anniversary(joined, joined, UTC_ZONE, TEN) == (1, utc(2026, 3, 1, 10))


def test_anniversary_join_just_after_local_midnight_west_of_utc() -> None:
    joined = utc(2025, 3, 1, 3)  # still 28 February 22:00 in New York
    _, due = next_anniversary(joined, joined, NEW_YORK, TEN)
    assert due.astimezone(NEW_YORK).date() == date(2026, 2, 28)


def test_an_anniversary_due_exactly_at_after_is_not_next_the_following_one_is() -> None:
    joined = utc(2023, 7, 10, 18)
    years, due = next_anniversary(joined, utc(2024, 7, 1), UTC_ZONE, TEN)
    assert (years, due) == (1, utc(2024, 7, 10, 10))
    assert next_anniversary(joined, due, UTC_ZONE, TEN) == (2, utc(2025, 7, 10, 10))
    assert next_anniversary(joined, due - timedelta(microseconds=1), UTC_ZONE, TEN) == (1, due)


def test_anniversary_far_after_the_join_counts_the_years() -> None:
    joined = utc(2001, 9, 1, 8)
    assert next_anniversary(joined, utc(2025, 9, 1, 9, 59), UTC_ZONE, TEN) == (24, utc(2025, 9, 1, 10))
    assert next_anniversary(joined, utc(2025, 9, 1, 10), UTC_ZONE, TEN) == (25, utc(2026, 9, 1, 10))


def test_anniversary_on_a_dst_gap_day_moves_forward() -> None:
    joined = datetime(2024, 3, 30, 12, tzinfo=BERLIN)  # 30 March 2025 is the spring-forward day
    _, due = next_anniversary(joined, joined, BERLIN, time(2, 30))
    assert due.astimezone(BERLIN).replace(tzinfo=None) == datetime(2025, 3, 30, 3, 30)


# --- birthdays -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected_year", "expected_day"),
    [
        ("07-15", 2025, date(2025, 7, 15)),
        ("1990-07-15", 2025, date(2025, 7, 15)),
        (" 07-15 ", 2025, date(2025, 7, 15)),
        ("03-01", 2026, date(2026, 3, 1)),
        ("02-29", 2026, date(2026, 2, 28)),
        ("2000-02-29", 2026, date(2026, 2, 28)),
        ("12-31", 2025, date(2025, 12, 31)),
    ],
)
def test_next_birthday_parses_both_forms(text: str, expected_year: int, expected_day: date) -> None:
    result = next_birthday(text, utc(2025, 3, 1, 12), UTC_ZONE, TEN)
    assert result == (expected_year, local_due(expected_day, TEN, UTC_ZONE))


@pytest.mark.parametrize(
    "text",
    [
        "02-30",
        "13-01",
        "00-10",
        "04-31",
        "2023-02-29",
        "0000-01-01",
        "garbage",
        "",
        "7-15",
        "07/15",
        "1990-7-15",
        "07-15-1990",
        "٠٧-١٥",
    ],
)
def test_next_birthday_is_none_for_text_that_is_no_date(text: str) -> None:
    assert next_birthday(text, utc(2025, 3, 1), UTC_ZONE, TEN) is None


def test_birthday_on_29_february_in_a_leap_year() -> None:
    assert next_birthday("02-29", utc(2028, 1, 1), UTC_ZONE, TEN) == (2028, utc(2028, 2, 29, 10))


def test_birthday_due_exactly_at_after_gives_next_year() -> None:
    due = local_due(date(2025, 7, 15), TEN, SHANGHAI)
    assert next_birthday("07-15", due, SHANGHAI, TEN) == (2026, local_due(date(2026, 7, 15), TEN, SHANGHAI))
    assert next_birthday("07-15", due - timedelta(seconds=1), SHANGHAI, TEN) == (2025, due)


def test_birthday_year_is_the_local_year_of_the_occurrence() -> None:
    after = utc(2025, 12, 31, 20)  # already 1 January 2026 04:00 in Shanghai
    assert next_birthday("01-01", after, SHANGHAI, TEN) == (2026, datetime(2026, 1, 1, 10, tzinfo=SHANGHAI))
    assert next_birthday("12-31", after, SHANGHAI, TEN) == (2026, datetime(2026, 12, 31, 10, tzinfo=SHANGHAI))


def test_birthday_in_a_dst_overlap_takes_the_first_occurrence() -> None:
    assert next_birthday("11-02", utc(2025, 1, 1), NEW_YORK, time(1, 30)) == (2025, utc(2025, 11, 2, 5, 30))


# --- property --------------------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Shanghai",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "America/St_Johns",
]


@given(
    joined_at=st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2080, 1, 1), timezones=st.just(UTC)),
    gap=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=365 * 40)),
    tz_name=st.sampled_from(ZONES),
    send_at=st.times(),
)
def test_next_anniversary_property(joined_at: datetime, gap: timedelta, tz_name: str, send_at: time) -> None:
    tz = ZoneInfo(tz_name)
    after = joined_at + gap
    years, due = next_anniversary(joined_at, after, tz, send_at)
    assert years >= 1
    assert after < due <= after + timedelta(days=367)
    joined_local = joined_at.astimezone(tz).date()
    due_local = due.astimezone(tz).date()
    assert due_local.year == joined_local.year + years
    if (joined_local.month, joined_local.day) == (2, 29) and due_local.month == 2 and due_local.day == 28:
        assert due_local.year % 4 != 0 or (due_local.year % 100 == 0 and due_local.year % 400 != 0)
    else:
        assert (due_local.month, due_local.day) == (joined_local.month, joined_local.day)
