"""The scheduler's pure step: due times and actions of every time-based rule, idempotence, next_due_at."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.domain.due_rules import TAGS, next_due, plan, run_due
from shared.domain.engagement import MemberContext, apply_event, settle
from shared.domain.model import ActionDecision, Event, Member
from shared.playbook_file import parse_playbook
from tests.builders import event, joined, order_completed, order_created, order_paid, refund, review, shipment

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
# The default playbook without the lateness guard: these tests jump far past due times on purpose
# (test_schedule.py::test_a_due_item_handled_too_late_* covers the guard itself).
DEFAULT = parse_playbook({"defaults": {"schedule": {"max_lateness": None}}}).default
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def consume(events: Iterable[Event]) -> MemberContext:
    context = MemberContext(member=Member(shop_id="shop-1", member_id="m-1"))
    for item in events:
        apply_event(context, item, DEFAULT)
    settle(context, DEFAULT)
    context.ledger = list(context.new_ledger)
    return context


def of_rule(actions: Iterable[ActionDecision], rule: str) -> list[ActionDecision]:
    return [action for action in actions if action.rule == rule]


def assert_scheduled(action: ActionDecision, schedule: str, due: datetime) -> None:
    assert action.occurred_at == due
    assert action.trigger["schedule"] == schedule
    assert datetime.fromisoformat(action.trigger["due_at"]) == due
    assert set(action.trigger) == {"schedule", "due_at"}


def local(year: int, month: int, day: int, hour: int = 10, tz: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(year, month, day, hour, 0, tzinfo=tz)


# --- one-month and hundred-day gifts ------------------------------------------------------------

JAN31 = local(2024, 1, 31, 15)


def test_one_month_gift_falls_30_days_after_joining_even_from_a_month_end() -> None:
    context = consume([joined(JAN31)])
    due = JAN31 + 30 * DAY
    assert due == local(2024, 3, 1, 15)
    assert of_rule(run_due(context, DEFAULT, due - SECOND), "one_month_gift") == []
    (gift,) = of_rule(run_due(context, DEFAULT, due), "one_month_gift")
    assert_scheduled(gift, "one_month_gift", due)
    assert gift.category == "incentive"
    assert gift.variables == {"joined_at": JAN31.isoformat()}
    assert gift.incentive is not None
    assert gift.incentive["kind"] == "coupon"
    assert of_rule(run_due(context, DEFAULT, due + 400 * DAY), "one_month_gift") == []


def test_hundred_day_gift_credits_100_points_once() -> None:
    context = consume([joined(JAN31)])
    due = JAN31 + 100 * DAY
    assert of_rule(run_due(context, DEFAULT, due - SECOND), "hundred_day_gift") == []
    assert context.member.points_balance == 0
    (gift,) = of_rule(run_due(context, DEFAULT, due), "hundred_day_gift")
    assert_scheduled(gift, "hundred_day_gift", due)
    assert gift.incentive is not None
    assert gift.incentive["points"] == 100
    lines = [(e.entry_id, e.kind, e.points, e.at) for e in context.new_ledger]
    assert lines == [("hundred_day_gift:once", "gift", 100, due)]
    assert context.member.points_balance == 100
    run_due(context, DEFAULT, due + 200 * DAY)
    assert [e.entry_id for e in context.new_ledger] == ["hundred_day_gift:once"]


# --- anniversaries --------------------------------------------------------------------------------


def test_anniversaries_fall_yearly_at_10_shanghai_on_a_month_end_join_date() -> None:
    context = consume([joined(JAN31)])
    gifts = of_rule(run_due(context, DEFAULT, local(2027, 1, 31, 12)), "anniversary_gift")
    expected = [local(2025, 1, 31), local(2026, 1, 31), local(2027, 1, 31)]
    assert [g.occurred_at for g in gifts] == expected
    assert [g.variables["years"] for g in gifts] == [1, 2, 3]
    for gift, due in zip(gifts, expected, strict=True):
        assert_scheduled(gift, "anniversary_gift", due)
    assert len({g.action_id for g in gifts}) == 3


def test_a_29_february_join_is_celebrated_on_28_february_in_common_years() -> None:
    context = consume([joined(local(2024, 2, 29, 18))])
    gifts = of_rule(run_due(context, DEFAULT, local(2028, 3, 1)), "anniversary_gift")
    assert [g.occurred_at for g in gifts] == [
        local(2025, 2, 28),
        local(2026, 2, 28),
        local(2027, 2, 28),
        local(2028, 2, 29),
    ]
    assert [g.variables["years"] for g in gifts] == [1, 2, 3, 4]


def test_the_anniversary_is_on_the_local_join_date_not_the_utc_one() -> None:
    join = datetime(2024, 1, 31, 20, 0, tzinfo=UTC)  # 1 February 04:00 in Shanghai
    context = consume([joined(join)])
    gifts = of_rule(run_due(context, DEFAULT, local(2025, 2, 2)), "anniversary_gift")
    assert [g.occurred_at for g in gifts] == [local(2025, 2, 1)]


def test_the_anniversary_uses_the_members_time_zone() -> None:
    join = local(2024, 6, 15, 9, NEW_YORK)
    context = consume([joined(join, timezone="America/New_York")])
    (gift,) = of_rule(run_due(context, DEFAULT, local(2025, 6, 16)), "anniversary_gift")
    assert gift.occurred_at == local(2025, 6, 15, 10, NEW_YORK)
    assert gift.occurred_at == datetime(2025, 6, 15, 14, 0, tzinfo=UTC)


# --- birthdays --------------------------------------------------------------------------------------


def test_birthday_gift_at_10_local_in_new_york_follows_the_dst_offset_of_each_year() -> None:
    # 9 March 2024 is still standard time (EST, UTC-5); on 9 March 2025 DST begins at 02:00 (EDT, UTC-4)
    context = consume([joined(local(2024, 1, 1, 12, NEW_YORK), birthday="03-09", timezone="America/New_York")])
    gifts = of_rule(run_due(context, DEFAULT, datetime(2025, 12, 31, tzinfo=UTC)), "birthday_gift")
    assert [g.occurred_at for g in gifts] == [
        datetime(2024, 3, 9, 15, 0, tzinfo=UTC),
        datetime(2025, 3, 9, 14, 0, tzinfo=UTC),
    ]
    assert [g.occurred_at.astimezone(NEW_YORK).hour for g in gifts] == [10, 10]
    assert [g.variables["year"] for g in gifts] == [2024, 2025]
    for gift in gifts:
        assert_scheduled(gift, "birthday_gift", gift.occurred_at)


def test_birthday_after_the_autumn_dst_change_in_new_york() -> None:
    # 3 November 2024 DST ends at 02:00; the 4th is EST. On 3 November 2024 10:00 is already EST.
    context = consume([joined(local(2024, 10, 1, 12, NEW_YORK), birthday="11-03", timezone="America/New_York")])
    (gift,) = of_rule(run_due(context, DEFAULT, datetime(2024, 11, 30, tzinfo=UTC)), "birthday_gift")
    assert gift.occurred_at == datetime(2024, 11, 3, 15, 0, tzinfo=UTC)


def test_birthday_gift_without_a_member_zone_is_at_10_shanghai_and_29_february_falls_on_the_28th() -> None:
    context = consume([joined(local(2024, 3, 5, 12), birthday="2000-02-29")])
    gifts = of_rule(run_due(context, DEFAULT, local(2026, 3, 1)), "birthday_gift")
    assert [g.occurred_at for g in gifts] == [local(2025, 2, 28), local(2026, 2, 28)]


def test_a_birthday_later_on_the_join_day_is_celebrated_that_day() -> None:
    context = consume([joined(local(2024, 5, 20, 9), birthday="05-20")])
    assert context.member.next_due_at == local(2024, 5, 20)
    (gift,) = of_rule(run_due(context, DEFAULT, local(2024, 5, 20)), "birthday_gift")
    assert gift.variables == {"year": 2024}


# --- lifecycle: dormant and churned ------------------------------------------------------------------

PAID_AT = local(2024, 4, 2, 13)


def test_dormant_wake_coupon_when_the_stage_becomes_dormant_180_days_after_the_last_order() -> None:
    context = consume([joined(PAID_AT - DAY), order_paid("o-1", "80.00", PAID_AT)])
    due = PAID_AT + 180 * DAY
    assert of_rule(run_due(context, DEFAULT, due - SECOND), "dormant_wake_coupon") == []
    assert context.member.stage == "at_risk"
    (coupon,) = of_rule(run_due(context, DEFAULT, due), "dormant_wake_coupon")
    assert context.member.stage == "dormant"
    assert coupon.occurred_at == due
    assert coupon.trigger["due_at"] == due.isoformat()
    assert coupon.variables == {"stage": "dormant", "last_order_at": PAID_AT.isoformat()}
    assert coupon.incentive is not None
    assert coupon.incentive["kind"] == "coupon"


def test_churn_win_back_sample_when_churned_365_days_after_the_last_order() -> None:
    context = consume([joined(PAID_AT - DAY), order_paid("o-1", "80.00", PAID_AT)])
    due = PAID_AT + 365 * DAY
    assert of_rule(run_due(context, DEFAULT, due - SECOND), "churn_win_back_sample") == []
    (sample,) = of_rule(run_due(context, DEFAULT, due), "churn_win_back_sample")
    assert context.member.stage == "churned"
    assert sample.occurred_at == due
    assert sample.trigger["due_at"] == due.isoformat()
    assert sample.incentive is not None
    assert sample.incentive["kind"] == "sample"


def test_a_payment_before_the_threshold_moves_the_coupon_to_180_days_after_it() -> None:
    later = PAID_AT + 170 * DAY
    context = consume([joined(PAID_AT - DAY), order_paid("o-1", "80.00", PAID_AT), order_paid("o-2", "80.00", later)])
    coupons = of_rule(run_due(context, DEFAULT, later + 365 * DAY), "dormant_wake_coupon")
    assert [c.occurred_at for c in coupons] == [later + 180 * DAY]


def test_each_dormant_spell_gets_its_own_coupon() -> None:
    back = PAID_AT + 200 * DAY
    context = consume([joined(PAID_AT - DAY), order_paid("o-1", "80.00", PAID_AT), order_paid("o-2", "80.00", back)])
    actions = run_due(context, DEFAULT, back + 400 * DAY)
    assert [c.occurred_at for c in of_rule(actions, "dormant_wake_coupon")] == [PAID_AT + 180 * DAY, back + 180 * DAY]
    assert [c.occurred_at for c in of_rule(actions, "churn_win_back_sample")] == [back + 365 * DAY]


def test_a_prospect_gets_no_dormant_coupon() -> None:
    context = consume([joined(PAID_AT)])
    actions = run_due(context, DEFAULT, PAID_AT + 800 * DAY)
    assert of_rule(actions, "dormant_wake_coupon") == of_rule(actions, "churn_win_back_sample") == []


# --- points expiry and its reminder ------------------------------------------------------------------

LEAP_PAY = local(2024, 2, 29, 12)


def test_points_expire_12_calendar_months_after_earning_with_a_reminder_14_days_before() -> None:
    context = consume([order_paid("o-1", "150.90", LEAP_PAY)])
    assert [(e.entry_id, e.points) for e in context.new_ledger] == [("earn:o-1", 150)]
    expiry = local(2025, 2, 28, 12)
    assert context.new_ledger[0].expires_at == expiry
    reminder_due = expiry - 14 * DAY

    assert of_rule(run_due(context, DEFAULT, reminder_due - SECOND), "points_expiry_reminder") == []
    (reminder,) = of_rule(run_due(context, DEFAULT, reminder_due), "points_expiry_reminder")
    assert_scheduled(reminder, "points_expiry_reminder", reminder_due)
    assert reminder.variables["points"] == 150
    assert reminder.variables["expires_at"] == expiry.isoformat()

    run_due(context, DEFAULT, expiry - SECOND)
    assert not [e for e in context.new_ledger if e.kind == "expire"]
    balance_before = context.member.points_balance
    run_due(context, DEFAULT, expiry)
    (expired,) = [e for e in context.new_ledger if e.kind == "expire"]
    assert (expired.points, expired.at) == (-150, expiry)
    assert context.member.points_balance == balance_before - 150
    assert sum(e.points for e in context.new_ledger) == context.member.points_balance


def test_points_expire_oldest_first_and_each_lot_on_its_own_date() -> None:
    second = LEAP_PAY + 40 * DAY
    context = consume([order_paid("o-1", "100.00", LEAP_PAY), order_paid("o-2", "50.00", second)])
    first_expiry, second_expiry = local(2025, 2, 28, 12), local(2025, 4, 9, 12)
    run_due(context, DEFAULT, first_expiry)
    assert [e.points for e in context.new_ledger if e.kind == "expire"] == [-100]
    run_due(context, DEFAULT, second_expiry)
    assert [(e.points, e.at) for e in context.new_ledger if e.kind == "expire"] == [
        (-100, first_expiry),
        (-50, second_expiry),
    ]
    # the hundred-day gift of 100 points (joined at the first payment) is all that is left
    assert context.member.points_balance == 100
    run_due(context, DEFAULT, local(2026, 1, 1))
    assert context.member.points_balance == 0
    assert sum(e.points for e in context.new_ledger) == 0


def test_points_expiry_needs_the_ledger_loaded() -> None:
    context = consume([order_paid("o-1", "100.00", LEAP_PAY)])
    context.ledger = None
    with pytest.raises(RuntimeError):
        run_due(context, DEFAULT, local(2026, 1, 1))


# --- order journey care -----------------------------------------------------------------------------

CREATED_AT = local(2024, 6, 1, 20)


def test_unpaid_reminder_30_minutes_after_an_unpaid_order() -> None:
    context = consume([joined(CREATED_AT - DAY), order_created("o-1", "99.00", CREATED_AT)])
    due = CREATED_AT + timedelta(minutes=30)
    assert context.member.next_due_at == due
    assert run_due(context, DEFAULT, due - SECOND) == []
    (reminder,) = run_due(context, DEFAULT, due)
    assert reminder.rule == "unpaid_reminder"
    assert reminder.category == "care"
    assert_scheduled(reminder, "unpaid_reminder", due)
    assert reminder.variables == {"order_id": "o-1", "amount": "99.00"}
    # a payment consumed afterwards does not bring it back
    apply_event(context, order_paid("o-1", "99.00", due + SECOND), DEFAULT)
    settle(context, DEFAULT)
    assert of_rule(run_due(context, DEFAULT, due + DAY), "unpaid_reminder") == []


@pytest.mark.parametrize("minutes", [1, 30])
def test_no_unpaid_reminder_when_paid_within_30_minutes(minutes: int) -> None:
    context = consume(
        [order_created("o-1", "99.00", CREATED_AT), order_paid("o-1", "99.00", CREATED_AT + timedelta(minutes=minutes))]
    )
    assert of_rule(run_due(context, DEFAULT, CREATED_AT + DAY), "unpaid_reminder") == []


def test_no_unpaid_reminder_for_an_order_cancelled_before_it_fell_due() -> None:
    context = consume(
        [order_created("o-1", "99.00", CREATED_AT), event("order.cancelled", CREATED_AT + SECOND, order_id="o-1")]
    )
    assert of_rule(run_due(context, DEFAULT, CREATED_AT + DAY), "unpaid_reminder") == []


def test_delivery_delay_care_5_days_after_shipping_without_delivery() -> None:
    ship = CREATED_AT + DAY
    context = consume([order_paid("o-1", "99.00", CREATED_AT), shipment("o-1", ship, shipment_id="s-o-1")])
    due = ship + 5 * DAY
    assert of_rule(run_due(context, DEFAULT, due - SECOND), "delivery_delay_care") == []
    (care,) = of_rule(run_due(context, DEFAULT, due), "delivery_delay_care")
    assert_scheduled(care, "delivery_delay_care", due)
    assert care.variables == {"order_id": "o-1", "shipment_id": "s-o-1", "carrier": "SF"}
    assert of_rule(run_due(context, DEFAULT, due + 30 * DAY), "delivery_delay_care") == []


@pytest.mark.parametrize("delivered_after", [timedelta(hours=1), 5 * DAY - SECOND, 5 * DAY])
def test_no_delivery_delay_care_when_delivered_in_time(delivered_after: timedelta) -> None:
    ship = CREATED_AT + DAY
    context = consume(
        [
            order_paid("o-1", "99.00", CREATED_AT),
            shipment("o-1", ship, shipment_id="s-o-1"),
            shipment("o-1", ship + delivered_after, status="delivered", shipment_id="s-o-1"),
        ]
    )
    assert of_rule(run_due(context, DEFAULT, ship + 10 * DAY), "delivery_delay_care") == []


def test_review_invitation_3_days_after_completion_without_a_review() -> None:
    done = CREATED_AT + 4 * DAY
    context = consume([order_paid("o-1", "99.00", CREATED_AT), order_completed("o-1", done)])
    due = done + 3 * DAY
    assert of_rule(run_due(context, DEFAULT, due - SECOND), "review_invitation") == []
    (invitation,) = of_rule(run_due(context, DEFAULT, due), "review_invitation")
    assert_scheduled(invitation, "review_invitation", due)
    assert invitation.variables == {"order_id": "o-1"}


def test_no_review_invitation_when_the_review_came_first() -> None:
    done = CREATED_AT + 4 * DAY
    context = consume(
        [
            order_paid("o-1", "99.00", CREATED_AT),
            order_completed("o-1", done),
            review("o-1", done + DAY, review_id="rv-o-1"),
        ]
    )
    assert of_rule(run_due(context, DEFAULT, done + 10 * DAY), "review_invitation") == []


# --- idempotence, A then B, next_due_at -----------------------------------------------------------

RICH_START = local(2024, 1, 31, 11)


def rich_history() -> list[Event]:
    start = RICH_START
    return [
        joined(start, birthday="02-29", timezone="America/New_York"),
        order_created("o-1", "320.00", start + timedelta(hours=1)),
        order_paid("o-1", "320.00", start + timedelta(hours=2)),
        shipment("o-1", start + DAY, shipment_id="s-o-1"),
        order_created("o-2", "60.00", start + 20 * DAY),
        order_paid("o-2", "60.00", start + 20 * DAY + timedelta(minutes=45)),
        shipment("o-2", start + 21 * DAY, shipment_id="s-o-2"),
        shipment("o-2", start + 23 * DAY, status="delivered", shipment_id="s-o-2"),
        order_completed("o-2", start + 24 * DAY),
        refund("o-1", "rf-1", "100.00", start + 30 * DAY),
        review("o-2", start + 40 * DAY, review_id="rv-o-2"),
        order_created("o-3", "10.00", start + 50 * DAY),
    ]


def snapshot(context: MemberContext) -> tuple[Any, ...]:
    return (
        dataclasses.asdict(context.member),
        {key: dataclasses.asdict(order) for key, order in context.orders.items()},
        sorted(context.new_ledger, key=lambda e: (e.at, e.entry_id)),
    )


@pytest.mark.parametrize("as_of_days", [0, 10, 45, 120, 400, 1100])
def test_run_due_twice_with_the_same_as_of_emits_nothing_the_second_time(as_of_days: int) -> None:
    context = consume(rich_history())
    as_of = RICH_START + as_of_days * DAY
    run_due(context, DEFAULT, as_of)
    state = copy.deepcopy(snapshot(context))
    assert run_due(context, DEFAULT, as_of) == []
    assert snapshot(context) == state


@pytest.mark.parametrize(
    ("first_days", "then_days"),
    [(0, 1100), (30, 100), (100, 366), (200, 700), (365, 731), (380, 380), (500, 1100), (1, 2)],
)
def test_run_due_at_a_then_b_equals_run_due_at_b_once(first_days: int, then_days: int) -> None:
    stepwise, once = consume(rich_history()), consume(rich_history())
    first, then = RICH_START + first_days * DAY, RICH_START + then_days * DAY
    stepwise_actions = run_due(stepwise, DEFAULT, first) + run_due(stepwise, DEFAULT, then)
    once_actions = run_due(once, DEFAULT, then)
    assert stepwise_actions == once_actions
    assert snapshot(stepwise) == snapshot(once)


def test_every_scheduled_action_happens_at_its_due_time_in_due_order() -> None:
    context = consume(rich_history())
    actions = run_due(context, DEFAULT, RICH_START + 1100 * DAY)
    assert [a.occurred_at for a in actions] == sorted(a.occurred_at for a in actions)
    for action in actions:
        assert datetime.fromisoformat(action.trigger["due_at"]) == action.occurred_at
    assert len({a.action_id for a in actions}) == len(actions)
    rules = {a.rule for a in actions}
    assert {"one_month_gift", "hundred_day_gift", "anniversary_gift", "birthday_gift", "unpaid_reminder"} <= rules
    assert {"delivery_delay_care", "review_invitation", "dormant_wake_coupon", "churn_win_back_sample"} <= rules
    assert "points_expiry_reminder" in rules
    assert "review_invitation" not in {a.rule for a in actions if a.variables.get("order_id") == "o-1"}


def _next_rule_due(context: MemberContext) -> datetime:
    """The earliest due item other than a tag change."""
    return min(item.due_at for item in plan(context, DEFAULT) if item.rule != TAGS)


def test_next_due_at_is_the_earliest_pending_due_time() -> None:
    context = consume([joined(JAN31)])
    assert _next_rule_due(context) == JAN31 + 30 * DAY
    # "joined in the last 7 days" ends first: the tags are evaluated again then
    assert context.member.next_due_at == context.member.tags_until == JAN31 + 7 * DAY
    run_due(context, DEFAULT, JAN31 + 30 * DAY)
    assert _next_rule_due(context) == JAN31 + 100 * DAY
    assert context.member.next_due_at == min(JAN31 + 100 * DAY, context.member.tags_until or JAN31 + 100 * DAY)
    run_due(context, DEFAULT, JAN31 + 100 * DAY)
    # the hundred-day points expire a year later with a reminder 14 days before; the anniversary comes first
    assert _next_rule_due(context) == local(2025, 1, 31)
    assert context.member.next_due_at == min(item.due_at for item in plan(context, DEFAULT))


@pytest.mark.parametrize("as_of_days", [0, 1, 21, 45, 101, 370, 700])
def test_next_due_at_matches_the_plan_and_lies_after_as_of(as_of_days: int) -> None:
    context = consume(rich_history())
    assert context.member.next_due_at == next_due(context, DEFAULT) == min(i.due_at for i in plan(context, DEFAULT))
    as_of = RICH_START + as_of_days * DAY
    run_due(context, DEFAULT, as_of)
    pending = plan(context, DEFAULT)
    assert context.member.next_due_at == min(i.due_at for i in pending)
    assert context.member.next_due_at > as_of


# --- the lateness guard ---------------------------------------------------------------------------

GUARDED = parse_playbook({}).default  # the shipped default: max_lateness P7D


def test_a_due_item_handled_too_late_moves_state_on_but_sends_and_gives_nothing() -> None:
    context = consume([joined(JAN31), order_paid("o-1", "120.00", JAN31 + HOUR)])
    # A first run two years on (say, right after the service was deployed over old history).
    late = run_due(context, GUARDED, JAN31 + 730 * DAY)
    assert late == []
    member = context.member
    assert member.stage == "churned"
    assert {"one_month_gift", "hundred_day_gift", "anniversary_gift"} <= set(member.schedule_marks)
    assert sorted(set(context.late)) == [
        "anniversary_gift",
        "churn_win_back_sample",
        "dormant_wake_coupon",
        "hundred_day_gift",
        "one_month_gift",
        "points_expiry_reminder",
    ]
    # Each incentive not given is on record as late_skipped, never dropped silently.
    skipped = {d.rule for d in context.decisions if d.outcome == "late_skipped"}
    assert skipped == {"anniversary_gift", "churn_win_back_sample", "dormant_wake_coupon", "hundred_day_gift"} | {
        "one_month_gift"
    }
    # The hundred-day points were not given; the earned points still expired on time.
    assert [line.entry_id.split(":")[0] for line in context.new_ledger] == ["earn", "expire"]
    assert member.points_balance == 0
    assert member.next_due_at is not None
    assert member.next_due_at > JAN31 + 730 * DAY


def test_a_due_item_within_the_lateness_is_still_sent() -> None:
    context = consume([joined(JAN31)])
    due = JAN31 + 30 * DAY
    (gift,) = of_rule(run_due(context, GUARDED, due + 7 * DAY), "one_month_gift")
    assert_scheduled(gift, "one_month_gift", due)
    assert context.late == []
