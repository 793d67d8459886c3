"""What operators type into the command line: times, replay ranges, report periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import typer

from services.ops.arguments import OffsetBounds, TimeBounds, parse_instant, replay_bounds, report_period, resolve

T = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T09:00:00Z", T),
        ("2026-03-01T17:00:00+08:00", T),
        ("2026-03-01T04:00:00.000-05:00", T),
        ("2026-03-01 09:00:00+00:00", T),
    ],
)
def test_an_rfc_3339_time_with_its_offset_is_that_instant(text: str, expected: datetime) -> None:
    parsed = parse_instant(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None


def test_the_offset_written_is_kept_for_the_messages_that_repeat_it() -> None:
    assert parse_instant("2026-03-01T17:00:00+08:00").tzinfo == timezone(timedelta(hours=8))


def test_now_is_the_wall_clock_in_utc() -> None:
    before = datetime.now(UTC)
    parsed = parse_instant("now")
    assert before <= parsed <= datetime.now(UTC)
    assert parse_instant(" NOW ").tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-03-01T09:00:00", "needs a UTC offset"),
        ("2026-03-01", "needs a UTC offset"),
        ("yesterday", "not an RFC 3339 time"),
        ("2026-13-01T09:00:00Z", "not an RFC 3339 time"),
        ("", "not an RFC 3339 time"),
    ],
)
def test_a_time_without_an_offset_or_not_a_time_is_refused_with_the_rule(text: str, problem: str) -> None:
    with pytest.raises(typer.BadParameter, match=problem):
        parse_instant(text)


def test_a_range_is_given_by_offsets_or_by_times_and_defaults_to_the_whole_topic() -> None:
    assert replay_bounds(None, None, None, None) == OffsetBounds(None, None)
    assert replay_bounds(10, 20, None, None) == OffsetBounds(10, 20)
    assert replay_bounds(None, None, T, None) == TimeBounds(T, None)
    assert replay_bounds(None, None, None, T) == TimeBounds(None, T)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ((1, None, T, None), "not both"),
        ((None, 5, None, T), "not both"),
        ((20, 20, None, None), "must be below"),
        ((21, 20, None, None), "must be below"),
        ((-1, None, None, None), "--from-offset must be 0 or more"),
        ((None, -1, None, None), "--to-offset must be 0 or more"),
        ((None, None, T, T), "--since must be before --until"),
        ((None, None, T + timedelta(seconds=1), T), "--since must be before --until"),
    ],
)
def test_a_range_that_mixes_kinds_or_ends_before_it_starts_is_refused(
    arguments: tuple[int | None, int | None, datetime | None, datetime | None], problem: str
) -> None:
    with pytest.raises(typer.BadParameter, match=problem):
        replay_bounds(*arguments)


def test_offsets_are_half_open_and_clamped_to_what_the_partition_holds() -> None:
    # The partition holds offsets [100, 200): retention removed the first hundred.
    assert resolve(OffsetBounds(), 100, 200) == (100, 200)
    assert resolve(OffsetBounds(120, 130), 100, 200) == (120, 130)
    assert resolve(OffsetBounds(0, 130), 100, 200) == (100, 130)
    assert resolve(OffsetBounds(150, 999), 100, 200) == (150, 200)
    assert resolve(OffsetBounds(250, None), 100, 200) == (250, 250)  # past the end: nothing
    assert resolve(OffsetBounds(None, 50), 100, 200) == (100, 100)  # before the first: nothing


def test_times_use_the_brokers_first_offset_at_or_after_each_bound() -> None:
    # since found at 140, until at 170: [140, 170).
    assert resolve(TimeBounds(T, T + timedelta(hours=1)), 100, 200, 140, 170) == (140, 170)
    # Nothing timestamped at or after until: to the end.
    assert resolve(TimeBounds(T, T + timedelta(hours=1)), 100, 200, 140, None) == (140, 200)
    # Nothing at or after since: the range is empty, wherever until is.
    assert resolve(TimeBounds(T, None), 100, 200, None, None) == (200, 200)
    # No since: from the first record.
    assert resolve(TimeBounds(None, T), 100, 200, None, 170) == (100, 170)


def test_the_report_period_ends_now_when_to_is_omitted_and_must_not_end_before_it_starts() -> None:
    now = T + timedelta(days=30)
    assert report_period(None, None, now) == (None, now)
    assert report_period(T, None, now) == (T, now)
    assert report_period(T, T + timedelta(days=1), now) == (T, T + timedelta(days=1))
    with pytest.raises(typer.BadParameter, match="--from must be before --to"):
        report_period(T, T, now)
    with pytest.raises(typer.BadParameter, match="before now when --to is omitted"):
        report_period(now + timedelta(seconds=1), None, now)
