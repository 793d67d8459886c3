"""The pure incentive decisions: holdout, budgets, the coupon wallet (issue, redemption, sharing, expiry)."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.domain.budgets import BudgetBook, period_start
from shared.domain.coupon_expiry import run_coupon
from shared.domain.decisions import MemberContext
from shared.domain.engagement import apply_event, settle
from shared.domain.incentives import held_out, incentive_value, spoken
from shared.domain.model import Coupon, CouponChange, Event, Member
from shared.domain.playbook import Budget, IncentiveSpec, ShopPlaybook
from shared.playbook_file import parse_playbook
from tests.builders import SHANGHAI, SHOP, joined, order_paid

DAY = timedelta(days=1)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)  # a Monday
FIRST_PURCHASE_CODE_LEN = 13


def shop_playbook(rules: dict[str, Any] | None = None, **defaults: Any) -> ShopPlaybook:
    document: dict[str, Any] = {"schedule": {"max_lateness": None}, **defaults}
    if rules:
        document["rules"] = rules
    return parse_playbook({"defaults": document}).default


def consume(
    events: list[Event], playbook: ShopPlaybook, *, member: str = "m-1", book: BudgetBook | None = None
) -> MemberContext:
    context = MemberContext(member=Member(shop_id=SHOP, member_id=member), budgets=book)
    for item in events:
        apply_event(context, item, playbook)
    settle(context, playbook)
    context.ledger = list(context.new_ledger)
    return context


def book_for(*rules: str, since: date = date(2026, 1, 1)) -> BudgetBook:
    return BudgetBook(since={(SHOP, rule): since for rule in rules})


# --- holdout --------------------------------------------------------------------------------------


def test_holdout_membership_is_a_function_of_shop_member_and_rule() -> None:
    first = [held_out(SHOP, f"m-{i}", "first_purchase_gift", 30) for i in range(2_000)]
    again = [held_out(SHOP, f"m-{i}", "first_purchase_gift", 30) for i in range(2_000)]
    assert first == again
    other_rule = [held_out(SHOP, f"m-{i}", "repurchase_gift", 30) for i in range(2_000)]
    other_shop = [held_out("shop-2", f"m-{i}", "first_purchase_gift", 30) for i in range(2_000)]
    assert first != other_rule
    assert first != other_shop


@pytest.mark.parametrize("percent", [1, 10, 25, 50])
def test_the_holdout_share_is_within_binomial_bounds(percent: int) -> None:
    n = 20_000
    held = sum(held_out(SHOP, f"member-{i}", "one_month_gift", percent) for i in range(n))
    p = percent / 100
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(held - n * p) < 4 * sigma  # four standard deviations: fails about once in 16 000 runs at most


def test_no_holdout_holds_nobody_out() -> None:
    assert not any(held_out(SHOP, f"m-{i}", "r", 0) for i in range(1_000))


def test_a_held_out_member_gets_no_action_no_coupon_and_a_holdout_decision() -> None:
    playbook = shop_playbook({"first_purchase_gift": {"holdout_percent": 50}})
    members = [f"m-{i}" for i in range(40)]
    outcomes = {}
    for member in members:
        context = consume([order_paid("o-1", "120.00", T0, member=member)], playbook, member=member)
        (decision,) = [d for d in context.decisions if d.rule == "first_purchase_gift"]
        outcomes[member] = decision.outcome
        gifts = [c for c in context.new_coupons if c.rule == "first_purchase_gift"]
        if decision.outcome == "holdout":
            assert gifts == []
            assert decision.action_id is None
            assert context.member.first_purchase_rewarded  # decided once: a later order does not give it
            assert "50 % holdout" in decision.reason
        else:
            assert decision.outcome == "emitted"
            assert decision.action_id is not None
            assert [c.action_id for c in gifts] == [decision.action_id]
        assert held_out(SHOP, member, "first_purchase_gift", 50) == (decision.outcome == "holdout")
    assert set(outcomes.values()) == {"holdout", "emitted"}


# --- budgets --------------------------------------------------------------------------------------


def test_period_starts_are_calendar_periods_of_the_shops_local_time() -> None:
    late_sunday = datetime(2026, 3, 8, 23, 30, tzinfo=SHANGHAI)  # 15:30 UTC, still Sunday in Shanghai
    assert period_start("P1D", late_sunday, SHANGHAI) == date(2026, 3, 8)
    assert period_start("P1W", late_sunday, SHANGHAI) == date(2026, 3, 2)  # from Monday
    assert period_start("P1W", late_sunday + timedelta(minutes=30), SHANGHAI) == date(2026, 3, 9)
    assert period_start("P1M", datetime(2026, 2, 28, 23, 59, tzinfo=SHANGHAI), SHANGHAI) == date(2026, 2, 1)
    # 16:30 UTC on 28 February is already 1 March in Shanghai
    utc_evening = datetime(2026, 2, 28, 16, 30, tzinfo=ZoneInfo("UTC"))
    assert period_start("P1M", utc_evening, SHANGHAI) == date(2026, 3, 1)
    assert period_start("P1M", utc_evening, ZoneInfo("UTC")) == date(2026, 2, 1)


def test_a_budget_issues_while_the_periods_spend_plus_the_incentive_stays_within_the_amount() -> None:
    book = book_for("r")
    budget = Budget(Decimal("30.00"), "P1D")
    spend = [
        book.spend_within(SHOP, "r", budget, T0 + i * timedelta(minutes=1), SHANGHAI, Decimal("10.00"))
        for i in range(4)
    ]
    assert spend == [True, True, True, False]  # 30.00 exactly fits; 40.00 does not
    assert book.spent(SHOP, "r", budget, T0, SHANGHAI) == Decimal("30.00")
    # a smaller incentive still fits what is left only if it fits: nothing is left
    assert not book.spend_within(SHOP, "r", budget, T0, SHANGHAI, Decimal("0.01"))
    # the next local day is a new period
    assert book.spend_within(SHOP, "r", budget, datetime(2026, 3, 3, 0, 0, tzinfo=SHANGHAI), SHANGHAI, Decimal("10.00"))


def test_a_budget_period_that_was_not_loaded_is_an_error_not_a_fresh_budget() -> None:
    book = book_for("r", since=date(2026, 3, 1))
    with pytest.raises(RuntimeError, match="not loaded"):
        book.spend_within(
            SHOP, "r", Budget(Decimal("1"), "P1M"), datetime(2026, 2, 27, tzinfo=SHANGHAI), SHANGHAI, Decimal("1")
        )


def test_the_budget_runs_out_and_later_members_get_a_budget_exhausted_decision() -> None:
    playbook = shop_playbook({"first_purchase_gift": {"budget": {"amount": "25.00", "period": "P1M"}}})
    book = book_for("first_purchase_gift")
    outcomes = []
    for i in range(4):
        member = f"m-{i}"
        context = consume(
            [order_paid("o-1", "120.00", T0 + i * DAY, member=member)], playbook, member=member, book=book
        )
        (decision,) = [d for d in context.decisions if d.rule == "first_purchase_gift"]
        outcomes.append(decision.outcome)
        if decision.outcome == "budget_exhausted":
            assert not [c for c in context.new_coupons if c.rule == "first_purchase_gift"]
            assert decision.reason == "20.00 of the P1M budget of 25.00 spent; this incentive is 10.00"
    assert outcomes == ["emitted", "emitted", "budget_exhausted", "budget_exhausted"]
    # April is a new period
    context = consume(
        [order_paid("o-1", "120.00", datetime(2026, 4, 1, 0, 0, tzinfo=SHANGHAI), member="m-9")],
        playbook,
        member="m-9",
        book=book,
    )
    assert [d.outcome for d in context.decisions] == ["emitted"]


def test_points_cost_the_budget_at_the_value_per_point() -> None:
    playbook = shop_playbook(
        {"review_reward": {"budget": {"amount": "1.00", "period": "P1D"}}}, points={"value_per_point": "0.02"}
    )
    assert incentive_value(IncentiveSpec(kind="points", points=20), playbook) == Decimal("0.40")
    assert incentive_value(IncentiveSpec(kind="coupon", value=Decimal("15")), playbook) == Decimal("15.00")
    assert incentive_value(IncentiveSpec(kind="sample"), playbook) == Decimal("0.00")


def test_a_holdout_is_decided_before_the_budget_and_spends_nothing() -> None:
    rules = {"first_purchase_gift": {"holdout_percent": 50, "budget": {"amount": "10.00", "period": "P1M"}}}
    playbook = shop_playbook(rules)
    held = next(f"m-{i}" for i in range(100) if held_out(SHOP, f"m-{i}", "first_purchase_gift", 50))
    given = next(f"m-{i}" for i in range(100) if not held_out(SHOP, f"m-{i}", "first_purchase_gift", 50))
    book = book_for("first_purchase_gift")
    first = consume([order_paid("o-1", "120.00", T0, member=held)], playbook, member=held, book=book)
    second = consume([order_paid("o-1", "120.00", T0, member=given)], playbook, member=given, book=book)
    assert [d.outcome for d in first.decisions] == ["holdout"]
    assert [d.outcome for d in second.decisions] == ["emitted"]


def test_every_decision_records_the_playbook_version_and_the_triggering_order() -> None:
    playbook = shop_playbook()
    versioned = ShopPlaybook(**{**{f: getattr(playbook, f) for f in playbook.__dataclass_fields__}, "version": 7})
    context = consume([order_paid("o-1", "120.00", T0)], versioned)
    (decision,) = context.decisions
    assert (decision.playbook_version, decision.order_id, decision.kind, decision.value) == (
        7,
        "o-1",
        "coupon",
        Decimal("10.00"),
    )
    assert [
        a.playbook_version for a in apply_event(context, order_paid("o-2", "50.00", T0 + DAY), versioned).actions
    ] == [7, 7]


# --- the wallet -----------------------------------------------------------------------------------

# Only the first-purchase coupon: the other gifts would put coupons of their own in the wallet.
ONE_COUPON = {rule: {"enabled": False} for rule in ("repurchase_gift", "one_month_gift", "hundred_day_gift")}


def first_coupon(context: MemberContext) -> Coupon:
    (coupon,) = [c for c in context.new_coupons if c.rule == "first_purchase_gift"]
    return coupon


def stored(coupon: Coupon, **changes: Any) -> Coupon:
    """The coupon as a later batch reads it back from the wallet table."""
    return dataclasses.replace(coupon, **changes)


def test_a_coupon_incentive_is_a_wallet_entry_bound_to_its_member_under_its_actions_code() -> None:
    playbook = shop_playbook(ONE_COUPON)
    context = MemberContext(member=Member(shop_id=SHOP, member_id="m-1"))
    actions = apply_event(context, joined(T0 - DAY), playbook).actions
    actions += apply_event(context, order_paid("o-1", "120.00", T0), playbook).actions
    coupon = first_coupon(context)
    (action,) = [a for a in actions if a.rule == "first_purchase_gift"]
    assert action.incentive is not None
    assert action.incentive["code"] == coupon.code
    assert coupon.action_id == action.action_id
    assert coupon.member_id == "m-1"
    assert coupon.status == "issued"
    assert (coupon.value, coupon.min_spend) == (Decimal("10.00"), Decimal("99.00"))
    assert coupon.expires_at == T0 + 30 * DAY
    assert coupon.reminded_at is None
    assert len(coupon.code) == FIRST_PURCHASE_CODE_LEN


def pay_with(coupon: Coupon, at: datetime, *, member: str = "m-1", order: str = "o-2") -> MemberContext:
    """A later batch: ``member`` pays ``order`` at ``at`` naming the coupon, as the wallet table holds it."""
    playbook = shop_playbook(ONE_COUPON)
    context = consume([order_paid("o-0", "50.00", T0 - DAY, member=member)], playbook, member=member)
    context.new_coupons.clear()
    context.shop_coupons = {coupon.code: coupon}
    apply_event(context, order_paid(order, "130.00", at, member=member, coupon_codes=(coupon.code,)), playbook)
    return context


def issued(member: str = "m-1") -> Coupon:
    context = consume([order_paid("o-1", "120.00", T0, member=member)], shop_playbook(ONE_COUPON), member=member)
    return stored(first_coupon(context))


def test_a_coupon_redeems_up_to_just_before_its_expiry_instant() -> None:
    coupon = issued()
    just_before = pay_with(coupon, T0 + 30 * DAY - timedelta(microseconds=1))
    assert [(c.code, c.status, c.order_id) for c in just_before.coupon_changes] == [(coupon.code, "redeemed", "o-2")]
    at_expiry = pay_with(stored(coupon), T0 + 30 * DAY)
    assert at_expiry.coupon_changes == []  # expired at that very instant: not redeemed
    assert [c.code for c in at_expiry.unredeemed] == [coupon.code]


def test_a_coupon_issued_and_named_in_one_batch_redeems() -> None:
    playbook = shop_playbook(ONE_COUPON)
    context = consume([order_paid("o-1", "120.00", T0)], playbook)
    code = first_coupon(context).code
    apply_event(context, order_paid("o-2", "130.00", T0 + DAY, coupon_codes=(code,)), playbook)
    assert [(c.code, c.status, c.order_id) for c in context.coupon_changes] == [(code, "redeemed", "o-2")]


def test_the_scheduler_expires_an_unredeemed_coupon_at_the_exact_instant() -> None:
    playbook = shop_playbook(ONE_COUPON)
    coupon = stored(issued(), reminded_at=T0 + 27 * DAY)
    assert run_coupon(coupon, playbook, coupon.expires_at - timedelta(microseconds=1)).change is None
    done = run_coupon(coupon, playbook, coupon.expires_at)
    assert done.change == CouponChange(coupon.code, "expired", reminded_at=T0 + 27 * DAY)
    assert done.expired
    assert done.reminder is None


def test_a_reminder_goes_three_days_before_expiry_without_an_incentive_of_its_own() -> None:
    playbook = shop_playbook(ONE_COUPON)
    coupon = issued()
    assert run_coupon(coupon, playbook, coupon.expires_at - 3 * DAY - timedelta(microseconds=1)).change is None
    done = run_coupon(coupon, playbook, coupon.expires_at - DAY)
    reminder = done.reminder
    assert reminder is not None
    assert reminder.category == "incentive"
    assert reminder.incentive is None
    assert reminder.occurred_at == coupon.expires_at - 3 * DAY
    assert reminder.trigger == {"schedule": "coupon_expiry_reminder", "due_at": reminder.occurred_at.isoformat()}
    assert reminder.variables == {
        "code": coupon.code,
        "rule": "first_purchase_gift",
        "value": "10.00",
        "expires_at": coupon.expires_at.isoformat(),
    }
    assert done.change == CouponChange(coupon.code, "issued", reminded_at=coupon.expires_at - 3 * DAY)
    # reminded once: the next run finds nothing to say
    assert (
        run_coupon(stored(coupon, reminded_at=reminder.occurred_at), playbook, coupon.expires_at - DAY).change is None
    )


def test_a_reminder_and_the_expiry_both_due_in_one_run_are_both_applied() -> None:
    done = run_coupon(issued(), shop_playbook(ONE_COUPON), T0 + 31 * DAY)
    assert done.reminder is not None
    assert done.expired


def test_a_reminder_handled_too_late_is_not_sent_and_a_lead_before_the_issue_is_none() -> None:
    guarded = parse_playbook({"defaults": {"rules": ONE_COUPON}}).default  # max_lateness P7D
    late = run_coupon(issued(), guarded, T0 + 60 * DAY)
    assert (late.reminder, late.late, late.expired) == (None, True, True)
    short = stored(issued(), expires_at=T0 + 2 * DAY)  # valid for less than the lead
    done = run_coupon(short, guarded, T0 + DAY)
    assert done.reminder is None
    assert done.change == CouponChange(short.code, "issued", reminded_at=short.issued_at)
    off = shop_playbook({**ONE_COUPON, "coupon_expiry_reminder": {"enabled": False}})
    assert run_coupon(issued(), off, T0 + 29 * DAY).change is None


def test_redemption_after_expiry_does_not_redeem() -> None:
    coupon = stored(issued(), status="expired")
    context = pay_with(coupon, T0 + 31 * DAY)
    assert context.coupon_changes == []


def test_a_redeemed_coupon_is_not_redeemed_again_nor_expired() -> None:
    coupon = stored(issued(), status="redeemed", order_id="o-2", redeemed_at=T0 + DAY)
    assert pay_with(coupon, T0 + 2 * DAY, order="o-3").coupon_changes == []
    assert run_coupon(coupon, shop_playbook(ONE_COUPON), T0 + 40 * DAY).change is None


def test_a_payment_before_expiry_that_arrives_after_the_scheduler_expired_the_coupon_still_redeems() -> None:
    coupon = stored(issued(), status="expired")
    context = pay_with(coupon, T0 + 29 * DAY)
    assert [(c.status, c.order_id) for c in context.coupon_changes] == [("redeemed", "o-2")]


def test_another_members_code_is_counted_as_shared_and_not_redeemed() -> None:
    coupon = issued(member="m-owner")
    friend = pay_with(coupon, T0 + DAY, member="m-friend", order="o-10")
    assert [(s.code, s.order_id, s.member_id) for s in friend.unredeemed] == [(coupon.code, "o-10", "m-friend")]
    assert friend.shared_seen == 1
    assert friend.coupon_changes == []
    assert coupon.status == "issued"  # the owner's wallet keeps it issued


def test_a_code_no_wallet_holds_redeems_nothing_and_a_code_redeems_once() -> None:
    playbook = shop_playbook(ONE_COUPON)
    context = consume([order_paid("o-1", "120.00", T0)], playbook)
    code = first_coupon(context).code
    apply_event(context, order_paid("o-2", "130.00", T0 + DAY, coupon_codes=("SHOPWIDE10", code, code)), playbook)
    apply_event(context, order_paid("o-3", "140.00", T0 + 2 * DAY, coupon_codes=(code,)), playbook)
    assert [(c.code, c.order_id) for c in context.coupon_changes] == [(code, "o-2")]
    # the shop's own code and the second naming of the redeemed one are kept as unredeemed, not shared
    assert [(c.code, c.order_id) for c in context.unredeemed] == [("SHOPWIDE10", "o-2"), (code, "o-3")]
    assert context.shared_seen == 0


def test_a_payment_event_seen_twice_redeems_once() -> None:
    playbook = shop_playbook(ONE_COUPON)
    context = consume([order_paid("o-1", "120.00", T0)], playbook)
    code = first_coupon(context).code
    paid = order_paid("o-2", "130.00", T0 + DAY, coupon_codes=(code,))
    apply_event(context, paid, playbook)
    apply_event(context, paid, playbook)
    assert len(context.coupon_changes) == 1


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(days=7), "7 days"),
        (timedelta(days=1, hours=12), "1 day 12 hours"),
        (timedelta(minutes=30), "30 minutes"),
        (timedelta(seconds=20), "0 minutes"),
    ],
)
def test_a_lateness_is_spoken_as_people_write_it(span: timedelta, words: str) -> None:
    assert spoken(span) == words
