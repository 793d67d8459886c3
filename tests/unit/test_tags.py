"""Member tags: the catalogue, when tags next change with time alone, and keeping them current on the scheduler.

Each tag's edges are in test_tag_edges.py and test_tag_edges_dynamic.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain import lifecycle
from shared.domain.decisions import MemberContext
from shared.domain.due_rules import plan, run_due
from shared.domain.tags import GROUPS, built_in, catalogue, evaluate
from tests.builders import counted_order, joined, member_context, member_state, order_paid, posted_review
from tests.unit.test_due_rules import DEFAULT, consume
from tests.unit.test_tag_edges import EDGES
from tests.unit.test_tag_edges_dynamic import DYNAMIC

EPS = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NEW_YORK = "America/New_York"


def local(year: int, month: int, day: int, hour: int = 0, tz: str = "Asia/Shanghai") -> datetime:
    return datetime(year, month, day, hour, tzinfo=ZoneInfo(tz))


def test_the_default_playbook_is_the_one_these_tests_assume() -> None:
    assert DEFAULT.timezone == "Asia/Shanghai"
    assert DEFAULT.reference_order_value == Decimal("100")
    assert [tier.code for tier in DEFAULT.tiers] == ["member", "advanced", "vip", "supreme"]
    assert [band.name for band in DEFAULT.score.bands] == ["basic", "silver", "gold", "diamond"]


# --- the catalogue ----------------------------------------------------------------------------------

CONTRACT_IDS = {
    "profile.female",
    "profile.male",
    "profile.offline_member",
    "purchase.repeat_buyer",
    "purchase.refunder",
    "engagement.photo_reviewer",
    "dynamic.birthday_this_month",
    *(f"lifecycle.stage_{stage}" for stage in lifecycle.STAGES),
}


def test_the_catalogue_holds_at_least_100_fixed_tags_in_all_five_groups() -> None:
    definitions = built_in()
    assert len(definitions) >= 100
    assert GROUPS == ("profile", "purchase", "engagement", "lifecycle", "dynamic")
    assert {definition.group for definition in definitions} == set(GROUPS)
    for group in GROUPS:
        assert sum(1 for definition in definitions if definition.group == group) >= 10, group


def test_tag_ids_are_unique_and_well_formed() -> None:
    ids = [definition.id for definition in built_in()]
    assert len(ids) == len(set(ids))
    for tag in ids:
        group, _, name = tag.partition(".")
        assert group in GROUPS, tag
        assert re.fullmatch(r"[a-z0-9_]+", name), tag


def test_each_tag_has_a_one_line_description() -> None:
    for definition in catalogue(DEFAULT):
        text = definition.description
        assert text, definition.id
        assert text == text.strip(), definition.id
        assert "\n" not in text, definition.id
        assert len(text) <= 100, definition.id


def test_the_contract_ids_are_in_the_catalogue() -> None:
    assert CONTRACT_IDS - {definition.id for definition in built_in()} == set()


def test_a_shop_catalogue_adds_one_tag_per_tier_and_per_score_band() -> None:
    definitions = catalogue(DEFAULT)
    ids = [definition.id for definition in definitions]
    assert ids == sorted(ids)
    tiers = {f"lifecycle.tier_{code}" for code in ("member", "advanced", "vip", "supreme")}
    bands = {f"engagement.score_{band}" for band in ("basic", "silver", "gold", "diamond")}
    assert set(ids) == {definition.id for definition in built_in()} | tiers | bands
    assert len(ids) == len(set(ids))
    vip = next(definition for definition in definitions if definition.id == "lifecycle.tier_vip")
    assert DEFAULT.tiers[2].name in vip.description


def test_the_edge_tables_cover_every_tag() -> None:
    """A tag added to the catalogue without cases at its edges fails here."""
    covered = {edge.tag for edge in [*EDGES, *DYNAMIC]}
    assert {definition.id for definition in built_in()} - covered == set()
    assert {definition.id for definition in catalogue(DEFAULT)} - covered == set()
    assert "external.vip_club" in covered
    assert any(tag.startswith("purchase.category_") for tag in covered)


def test_a_shop_with_other_tiers_and_bands_gets_their_tags_and_no_others() -> None:
    shop = dataclasses.replace(
        DEFAULT,
        tiers=DEFAULT.tiers[:2],
        score=dataclasses.replace(DEFAULT.score, bands=DEFAULT.score.bands[1:2]),
    )
    generated = {definition.id for definition in catalogue(shop)} - {definition.id for definition in built_in()}
    assert generated == {"lifecycle.tier_member", "lifecycle.tier_advanced", "engagement.score_silver"}


# --- until: the next instant a tag may change with time alone ------------------------------------------


def walk(context: MemberContext, at: datetime, steps: int) -> list[datetime | None]:
    """The instants ``until`` names one after the other, starting at ``at``."""
    found: list[datetime | None] = []
    moment: datetime | None = at
    for _ in range(steps):
        assert moment is not None
        moment = evaluate(context, DEFAULT, moment).until
        found.append(moment)
        if moment is None:
            break
    return found


def test_a_member_with_nothing_time_dependent_never_changes_with_time() -> None:
    context = member_context(member_state(gender="female", tier="vip", province="广东", points_balance=10))
    assert evaluate(context, DEFAULT, local(2025, 6, 11)).until is None


def test_after_an_order_the_tags_change_as_each_recency_band_ends() -> None:
    paid = local(2025, 6, 11, 12)
    member = member_state(last_order_at=paid, first_order_at=paid, paid_orders=1, net_spend=Decimal("100.00"))
    context = member_context(member, counted_order("o-1", paid, "100.00", paid_categories=["shoes"]))
    assert walk(context, paid, 9) == [
        paid + 7 * DAY,
        local(2025, 7, 1),  # ordered this (local) month no longer
        paid + 30 * DAY,
        paid + 90 * DAY,
        paid + 180 * DAY,
        paid + 365 * DAY,  # the last recency band, the category and the season, all at once
        None,
    ]
    assert "purchase.category_shoes" in evaluate(context, DEFAULT, paid + 365 * DAY - EPS).tags
    assert "purchase.category_shoes" not in evaluate(context, DEFAULT, paid + 365 * DAY).tags


@pytest.mark.parametrize("zone", [None, NEW_YORK])
def test_a_birthday_changes_the_tags_at_local_midnights(zone: str | None) -> None:
    tz = zone or DEFAULT.timezone
    context = member_context(member_state(birthday="07-15", timezone=zone))  # 15 July 2025 is a Tuesday
    assert walk(context, local(2025, 6, 11, 12, tz=tz), 8) == [
        local(2025, 7, 1, tz=tz),  # this month, no longer next month
        local(2025, 7, 14, tz=tz),  # the week
        local(2025, 7, 15, tz=tz),  # the day
        local(2025, 7, 16, tz=tz),
        local(2025, 7, 21, tz=tz),
        local(2025, 8, 1, tz=tz),
        local(2026, 6, 1, tz=tz),  # next month again
        local(2026, 7, 1, tz=tz),
    ]


def test_an_age_band_ends_where_the_local_year_begins() -> None:
    shanghai = member_context(member_state(birth_year=2008))
    new_york = member_context(member_state(birth_year=2008, timezone=NEW_YORK))
    at = local(2025, 6, 11)
    assert evaluate(shanghai, DEFAULT, at).until == datetime(2025, 12, 31, 16, 0, tzinfo=UTC)
    assert evaluate(new_york, DEFAULT, at).until == datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
    assert walk(shanghai, at, 3) == [local(2026, 1, 1), local(2033, 1, 1), local(2038, 1, 1)]


def test_expiring_points_change_the_tags_30_and_7_days_before_and_at_the_expiry() -> None:
    expiry = local(2025, 9, 1, 10)
    context = member_context(member_state(points_balance=50, points_expiries=[expiry]))
    assert walk(context, expiry - 40 * DAY, 4) == [expiry - 30 * DAY, expiry - 7 * DAY, expiry, None]


def test_a_join_changes_the_tags_as_the_joining_bands_end_and_the_first_anniversary_nears() -> None:
    join = local(2025, 1, 10, 12)
    context = member_context(member_state(joined_at=join))  # 10 January 2026 is a Saturday
    assert walk(context, join, 6) == [
        join + 7 * DAY,
        join + 30 * DAY,
        join + 90 * DAY,
        local(2026, 1, 1),  # the anniversary month
        local(2026, 1, 5),  # the anniversary week
        local(2026, 1, 10, 12),  # a member for a year
    ]


def test_a_29_february_join_is_a_year_old_on_28_february_local_time_however_it_is_written() -> None:
    join = local(2024, 2, 29, 6)
    for written in (join, join.astimezone(UTC), join.astimezone(ZoneInfo(NEW_YORK))):
        context = member_context(member_state(joined_at=written))
        assert evaluate(context, DEFAULT, local(2025, 2, 25)).until == local(2025, 2, 28, 6)


# --- until as a property: nothing changes before it -----------------------------------------------------

ZONES = (None, "Asia/Shanghai", NEW_YORK, "Europe/London", "Australia/Lord_Howe")
CATEGORIES = ("shoes", "bags", "toys", "food")
START = datetime(2019, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 24 * 3600
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Paid:
    at: datetime
    amount: Decimal
    categories: tuple[str, ...]
    review: datetime | None


@dataclass(frozen=True)
class History:
    """A member's profile and paid orders, with instants in UTC, and a time ``at`` after all its events."""

    zone: str | None
    joined: datetime | None
    birthday: str | None
    birth_year: int | None
    orders: tuple[Paid, ...]
    expiries: tuple[datetime, ...]
    at: datetime

    def context(self, write: Callable[[datetime], datetime] = lambda moment: moment) -> MemberContext:
        """The member, each instant written by ``write`` (the same instant, any offset)."""
        orders = [
            counted_order(
                f"o-{index}",
                write(paid.at),
                str(paid.amount),
                paid_categories=list(paid.categories),
                reviews={"v": posted_review(write(paid.review), photos=1)} if paid.review is not None else {},
            )
            for index, paid in enumerate(self.orders)
        ]
        times = [paid.at for paid in self.orders]
        member = member_state(
            joined_at=write(self.joined) if self.joined is not None else None,
            birthday=self.birthday,
            birth_year=self.birth_year,
            timezone=self.zone,
            paid_orders=len(orders),
            net_spend=sum((paid.amount for paid in self.orders), Decimal("0.00")),
            first_order_at=write(min(times)) if times else None,
            last_order_at=write(max(times)) if times else None,
            points_balance=100 if self.expiries else 0,
            points_expiries=[write(moment) for moment in self.expiries],
        )
        return member_context(member, *orders)


def _seconds(draw: st.DrawFn, low: int, high: int) -> timedelta:
    return timedelta(seconds=draw(st.integers(low, high)))


def _instant_after(draw: st.DrawFn, after: datetime, tz: ZoneInfo) -> datetime:
    """A time after ``after``; often shortly before a local new year, month or week, where tags tend to change."""
    base = after + _seconds(draw, 0, 2 * YEAR_SECONDS) + timedelta(microseconds=draw(st.integers(0, 999_999)))
    day = base.astimezone(tz).date()
    near = draw(st.sampled_from(["anywhere", "year", "month", "week"]))
    if near == "anywhere":
        return base
    if near == "year":
        target = date(day.year + 1, 1, 1)
    elif near == "month":
        target = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    else:
        target = day + timedelta(days=7 - day.weekday())
    moment = datetime.combine(target, time(0), tzinfo=tz) - _seconds(draw, 0, 3 * 86400) - EPS
    return max(moment.astimezone(UTC), after)


@st.composite
def histories(draw: st.DrawFn) -> History:
    joined_at = START + _seconds(draw, 0, 6 * YEAR_SECONDS)
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31))
    birthday = draw(st.sampled_from([None, f"{month:02d}-{day:02d}", f"1990-{month:02d}-{min(day, 28):02d}"]))
    orders = []
    for paid_at in sorted(joined_at + _seconds(draw, 0, 3 * YEAR_SECONDS) for _ in range(draw(st.integers(0, 4)))):
        review = paid_at + _seconds(draw, 3600, 60 * 86400) if draw(st.booleans()) else None
        amount = Decimal(draw(st.integers(1, 100_000))) / 100
        categories = tuple(draw(st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True)))
        orders.append(Paid(paid_at, amount, categories, review))
    events = [joined_at, *(paid.at for paid in orders), *(paid.review for paid in orders if paid.review is not None)]
    zone = draw(st.sampled_from(ZONES))
    at = _instant_after(draw, max(events), ZoneInfo(zone or DEFAULT.timezone))
    expiries = sorted({at + _seconds(draw, -30 * 86400, 400 * 86400) for _ in range(draw(st.integers(0, 3)))})
    return History(
        zone=zone,
        joined=joined_at if draw(st.integers(0, 3)) > 0 else None,  # now and then a member known by orders alone
        birthday=birthday,
        birth_year=draw(st.none() | st.integers(1940, 2020)),
        orders=tuple(orders),
        expiries=tuple(expiries),
        at=at,
    )


@SETTINGS
@given(histories(), st.lists(st.floats(0, 1, exclude_max=True), max_size=4))
def test_the_tags_hold_from_at_until_the_next_change(history: History, fractions: list[float]) -> None:
    context = history.context()
    state = evaluate(context, DEFAULT, history.at)
    assert state.until is None or state.until > history.at
    end = state.until if state.until is not None else history.at + 2 * 365 * DAY
    samples = [history.at, end - EPS, *(history.at + (end - history.at) * fraction for fraction in fractions)]
    for moment in samples:
        if history.at <= moment < end:
            assert evaluate(context, DEFAULT, moment).tags == state.tags, moment


OFFSETS = [timezone(timedelta(hours=hours, minutes=minutes)) for hours, minutes in ((0, 0), (8, 0), (-5, 0), (5, 45))]


@SETTINGS
@given(histories(), st.lists(st.sampled_from(OFFSETS), min_size=1, max_size=4))
def test_the_tags_depend_on_instants_not_on_the_offsets_they_are_written_in(
    history: History, offsets: list[timezone]
) -> None:
    cycle = itertools.cycle(offsets)
    written = history.context(lambda moment: moment.astimezone(next(cycle)))
    assert evaluate(written, DEFAULT, history.at.astimezone(next(cycle))) == evaluate(
        history.context(), DEFAULT, history.at
    )


# --- through the scheduler -----------------------------------------------------------------------------

JOIN = local(2025, 1, 6, 10)  # a Monday
PAY = JOIN + HOUR


def story() -> MemberContext:
    """A member who joined with a birthday on 15 March and paid 120.00 an hour later."""
    return consume([joined(JOIN, birthday="03-15"), order_paid("o-1", "120.00", PAY)])


def assert_current(context: MemberContext, as_of: datetime) -> None:
    """The stored tags are the ones at ``as_of``, and the next due time is the plan's earliest."""
    member = context.member
    state = evaluate(context, DEFAULT, as_of)
    assert (member.tags, member.tags_until) == (state.tags, state.until)
    assert member.next_due_at == min(item.due_at for item in plan(context, DEFAULT))


def test_a_consumed_member_gets_its_tags_as_of_its_latest_event() -> None:
    context = story()
    tags = set(context.member.tags)
    assert {"purchase.first_time_buyer", "dynamic.ordered_last_7_days", "dynamic.joined_last_7_days"} <= tags
    assert {"lifecycle.stage_new", "lifecycle.tier_member", "profile.birthday_known", "dynamic.winter_buyer"} <= tags
    assert "purchase.never_purchased" not in tags
    assert context.member.tags_until == JOIN + 7 * DAY  # joined in the last 7 days ends first
    assert_current(context, PAY)


def test_the_scheduler_drops_ordered_last_7_days_seven_days_after_the_payment() -> None:
    context = story()
    run_due(context, DEFAULT, PAY + 7 * DAY - EPS)
    assert "dynamic.ordered_last_7_days" in context.member.tags
    assert "dynamic.joined_last_7_days" not in context.member.tags
    assert_current(context, PAY + 7 * DAY - EPS)
    run_due(context, DEFAULT, PAY + 7 * DAY)
    assert "dynamic.ordered_last_7_days" not in context.member.tags
    assert "dynamic.ordered_last_30_days" in context.member.tags
    assert_current(context, PAY + 7 * DAY)


def test_the_scheduler_adds_birthday_this_month_when_the_birthday_month_begins() -> None:
    context = story()
    run_due(context, DEFAULT, local(2025, 3, 1) - EPS)
    assert "dynamic.birthday_next_month" in context.member.tags
    assert "dynamic.birthday_this_month" not in context.member.tags
    run_due(context, DEFAULT, local(2025, 3, 1))
    assert "dynamic.birthday_this_month" in context.member.tags
    assert "dynamic.birthday_next_month" not in context.member.tags
    assert_current(context, local(2025, 3, 1))


@pytest.mark.parametrize("days", [0, 7, 30, 45, 100, 200, 365, 400, 800])
def test_after_a_run_the_tags_are_current_and_next_due_at_is_the_plans_earliest(days: int) -> None:
    context = story()
    run_due(context, DEFAULT, PAY + days * DAY)
    assert_current(context, PAY + days * DAY)
    assert context.member.next_due_at is not None
    assert context.member.next_due_at > PAY + days * DAY


@pytest.mark.parametrize(("first", "then"), [(1, 8), (6, 7), (30, 60), (54, 55), (100, 366), (200, 800), (365, 365)])
def test_running_to_a_then_b_gives_the_tags_of_running_straight_to_b(first: int, then: int) -> None:
    stepwise, once = story(), story()
    run_due(stepwise, DEFAULT, PAY + first * DAY)
    run_due(stepwise, DEFAULT, PAY + then * DAY)
    run_due(once, DEFAULT, PAY + then * DAY)
    for context in (stepwise, once):
        assert_current(context, PAY + then * DAY)
    assert stepwise.member.tags == once.member.tags
    assert stepwise.member.tags_until == once.member.tags_until
    assert stepwise.member.next_due_at == once.member.next_due_at


def test_running_the_scheduler_only_when_due_keeps_the_tags_current_in_between() -> None:
    """From one due time to the next, evaluating the member gives the tags the last run stored."""
    context = story()
    at = PAY
    for _ in range(60):
        due = context.member.next_due_at
        assert due is not None
        assert evaluate(context, DEFAULT, due - EPS).tags == context.member.tags, due
        assert evaluate(context, DEFAULT, at + (due - at) / 2).tags == context.member.tags, due
        run_due(context, DEFAULT, due)
        assert_current(context, due)
        at = due
    assert at > PAY + 365 * DAY
