"""Applying events to a member: metrics, gifts, refunds, parking of early events, member facts."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from shared.domain.engagement import MemberContext, Outcome, apply_event
from shared.domain.model import ActionDecision, Event, Member, Order
from shared.domain.playbook import ShopPlaybook
from shared.playbook_file import load_playbook, parse_playbook
from tests.builders import event, joined, order_cancelled, order_created, order_paid, refund, shipment

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=SHANGHAI)
SHOP = "shop-1"
MEMBER = "m-1"
DEFAULT = load_playbook().default


def at(hours: float) -> datetime:
    """Business time ``hours`` after a fixed start, in Shanghai time."""
    return T0 + timedelta(hours=hours)


def fresh() -> MemberContext:
    return MemberContext(member=Member(shop_id=SHOP, member_id=MEMBER), orders={})


def run(events: Iterable[Event], playbook: ShopPlaybook = DEFAULT) -> tuple[MemberContext, list[Outcome]]:
    context = fresh()
    return context, [apply_event(context, item, playbook) for item in events]


def actions_of(outcomes: Iterable[Outcome]) -> list[ActionDecision]:
    return [action for outcome in outcomes for action in outcome.actions]


def rules_of(outcomes: Iterable[Outcome]) -> list[str]:
    return [action.rule for action in actions_of(outcomes)]


# --- payment, first purchase gift, determinism ---------------------------------------------


def test_first_paid_order_confirms_payment_and_gives_the_first_purchase_gift() -> None:
    context, outcomes = run([order_paid("o-1", "129.00", at(0))])
    assert rules_of(outcomes) == ["payment_confirmation", "first_purchase_gift"]
    member = context.member
    assert (member.net_spend, member.paid_orders) == (Decimal("129.00"), 1)
    assert member.first_order_at == member.last_order_at == at(0)
    assert member.tier == "member"
    confirmation = outcomes[0].actions[0]
    assert confirmation.category == "care"
    assert confirmation.variables == {"order_id": "o-1", "amount": "129.00", "currency": "CNY"}
    assert confirmation.trigger == {"event_id": order_paid("o-1", "129.00", at(0)).id, "event_type": "order.paid"}


def test_first_purchase_gift_once_ever_then_one_repurchase_gift_then_only_confirmations() -> None:
    _, outcomes = run(
        [order_paid("o-1", "50.00", at(0)), order_paid("o-2", "50.00", at(1)), order_paid("o-3", "50.00", at(2))]
    )
    assert [rules_of([outcome]) for outcome in outcomes] == [
        ["payment_confirmation", "first_purchase_gift"],
        ["payment_confirmation", "repurchase_gift"],
        ["payment_confirmation", "tier_changed", "tier_upgrade_gift"],
    ]


def test_first_purchase_gift_is_not_given_again_after_the_first_order_was_fully_refunded() -> None:
    _, outcomes = run(
        [order_paid("o-1", "50.00", at(0)), refund("o-1", "r-1", "50.00", at(1)), order_paid("o-2", "50.00", at(2))]
    )
    assert "first_purchase_gift" not in rules_of(outcomes[2:])


def test_payment_confirmation_is_one_per_order_with_distinct_ids() -> None:
    _, outcomes = run([order_paid("o-1", "50.00", at(0)), order_paid("o-2", "60.00", at(1))])
    confirmations = [a for a in actions_of(outcomes) if a.rule == "payment_confirmation"]
    assert [a.variables["order_id"] for a in confirmations] == ["o-1", "o-2"]
    assert len({a.action_id for a in confirmations}) == 2


def test_a_second_payment_event_for_the_same_order_is_not_a_second_order() -> None:
    again = event("order.paid", at(1), event_id="retry", order_id="o-1", amount=Decimal("50.00"), currency="CNY")
    context, outcomes = run([order_paid("o-1", "50.00", at(0)), again])
    assert (context.member.net_spend, context.member.paid_orders) == (Decimal("50.00"), 1)
    assert outcomes[1].actions == []


def test_replaying_the_same_events_in_a_fresh_context_gives_identical_action_ids_and_state() -> None:
    history = [
        joined(at(0)),
        order_paid("o-1", "120.00", at(1)),
        shipment("o-1", at(2)),
        shipment("o-1", at(3), status="delivered"),
        order_paid("o-2", "200.00", at(4)),
        refund("o-1", "r-1", "20.00", at(5)),
    ]
    first_context, first = run(history)
    second_context, second = run(copy.deepcopy(history))
    assert actions_of(first) == actions_of(second)
    assert [a.action_id for a in actions_of(first)] == [a.action_id for a in actions_of(second)]
    assert first_context.member == second_context.member
    assert first_context.orders == second_context.orders


def test_disabled_first_purchase_gift_gives_none_but_still_confirms_payment() -> None:
    playbook = parse_playbook({"defaults": {"rules": {"first_purchase_gift": {"enabled": False}}}}).default
    context, outcomes = run([order_paid("o-1", "50.00", at(0))], playbook)
    assert rules_of(outcomes) == ["payment_confirmation"]
    assert context.member.first_purchase_rewarded


def test_first_purchase_coupon_is_deterministic_and_expires_valid_days_after_the_payment() -> None:
    _, first = run([order_paid("o-1", "50.00", at(0))])
    _, second = run([order_paid("o-1", "50.00", at(0))])
    gift = actions_of(first)[1]
    assert gift.rule == "first_purchase_gift"
    assert gift.category == "incentive"
    assert gift.occurred_at == at(0)
    assert gift.incentive == actions_of(second)[1].incentive
    assert gift.incentive is not None
    assert gift.incentive["kind"] == "coupon"
    assert gift.incentive["value"] == "10.00"
    assert gift.incentive["min_spend"] == "99.00"
    assert gift.incentive["code"].startswith("C")
    assert len(gift.incentive["code"]) == 13
    assert datetime.fromisoformat(gift.incentive["expires_at"]) == at(0) + timedelta(days=30)


def test_first_purchase_gift_keeps_its_id_whichever_order_comes_first() -> None:
    _, one = run([order_paid("o-1", "50.00", at(0))])
    _, other = run([order_paid("o-9", "80.00", at(5))])
    assert actions_of(one)[1].action_id == actions_of(other)[1].action_id


# --- care notices ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "rule"),
    [
        ("shipped", "shipped_notice"),
        ("delivered", "delivered_notice"),
        ("exception", "logistics_exception_care"),
    ],
)
def test_shipment_events_of_a_paid_order_give_their_care_notice(status: str, rule: str) -> None:
    context, outcomes = run([order_paid("o-1", "50.00", at(0)), shipment("o-1", at(1), status=status)])
    assert rules_of(outcomes[1:]) == [rule]
    assert outcomes[1].actions[0].variables["order_id"] == "o-1"
    assert context.orders["o-1"].shipment_status == status


def test_delivered_notice_carries_the_review_invitation() -> None:
    _, outcomes = run([order_paid("o-1", "50.00", at(0)), shipment("o-1", at(1), status="delivered")])
    assert outcomes[1].actions[0].variables["review_invitation"] is True


def test_in_transit_gives_no_notice() -> None:
    _, outcomes = run([order_paid("o-1", "50.00", at(0)), shipment("o-1", at(1), status="in_transit")])
    assert outcomes[1].actions == []


# --- refunds -----------------------------------------------------------------------------


def test_partial_refund_lowers_net_spend_but_keeps_the_order_counted() -> None:
    context, outcomes = run([order_paid("o-1", "100.00", at(0)), refund("o-1", "r-1", "30.00", at(1))])
    assert (context.member.net_spend, context.member.paid_orders) == (Decimal("70.00"), 1)
    assert rules_of(outcomes[1:]) == ["refund_completed_notice"]


def test_full_refund_uncounts_the_order() -> None:
    context, _ = run([order_paid("o-1", "100.00", at(0)), refund("o-1", "r-1", "100.00", at(1))])
    assert (context.member.net_spend, context.member.paid_orders) == (Decimal("0.00"), 0)


def test_partial_refunds_adding_up_to_the_whole_order_uncount_it() -> None:
    context, _ = run(
        [
            order_paid("o-1", "100.00", at(0)),
            refund("o-1", "r-1", "40.00", at(1)),
            refund("o-1", "r-2", "60.00", at(2)),
        ],
    )
    assert (context.member.net_spend, context.member.paid_orders) == (Decimal("0.00"), 0)


def test_refunds_lower_the_metrics_but_never_the_tier() -> None:
    history = [order_paid(f"o-{n}", "100.00", at(n)) for n in range(3)]
    history += [refund(f"o-{n}", f"r-{n}", "100.00", at(10 + n)) for n in range(3)]
    context, _ = run(history)
    member = context.member
    assert (member.net_spend, member.paid_orders) == (Decimal("0.00"), 0)
    assert member.tier == "advanced"
    assert member.tier_since == at(2)


def test_the_same_refund_completed_twice_counts_once() -> None:
    duplicate = event(
        "refund.completed",
        at(2),
        event_id="dup",
        order_id="o-1",
        refund_id="r-1",
        amount=Decimal("30.00"),
        currency="CNY",
    )
    context, outcomes = run([order_paid("o-1", "100.00", at(0)), refund("o-1", "r-1", "30.00", at(1)), duplicate])
    assert context.member.net_spend == Decimal("70.00")
    assert outcomes[2].actions == []


def test_refund_requested_and_approved_are_acknowledged_but_change_no_figures_until_completed() -> None:
    context, outcomes = run(
        [
            order_paid("o-1", "100.00", at(0)),
            refund("o-1", "r-1", "30.00", at(1), status="requested"),
            refund("o-1", "r-1", "30.00", at(2), status="approved"),
        ]
    )
    assert context.member.net_spend == Decimal("100.00")
    assert [(a.rule, a.category) for a in actions_of(outcomes[1:])] == [
        ("refund_requested_ack", "care"),
        ("refund_approved_notice", "care"),
    ]
    assert context.orders["o-1"].refunds["r-1"].status == "approved"


def test_refund_larger_than_what_remains_is_capped_at_the_remainder() -> None:
    context, _ = run(
        [
            order_paid("o-1", "100.00", at(0)),
            refund("o-1", "r-1", "70.00", at(1)),
            refund("o-1", "r-2", "50.00", at(2)),
        ],
    )
    order = context.orders["o-1"]
    assert order.refunded_amount == Decimal("100.00")
    assert order.refunds["r-2"].applied == Decimal("30.00")
    assert (context.member.net_spend, context.member.paid_orders) == (Decimal("0.00"), 0)


def test_refund_larger_than_the_order_never_makes_net_spend_negative() -> None:
    context, _ = run([order_paid("o-1", "80.00", at(0)), refund("o-1", "r-1", "500.00", at(1))])
    assert context.member.net_spend == Decimal("0.00")


# --- cancellation and ownership ----------------------------------------------------------


def test_cancelling_a_paid_order_uncounts_it_and_keeps_net_spend_and_tier() -> None:
    history = [order_paid(f"o-{n}", "50.00", at(n)) for n in range(3)] + [order_cancelled("o-2", at(5))]
    context, outcomes = run(history)
    member = context.member
    assert (member.paid_orders, member.net_spend) == (2, Decimal("150.00"))
    assert member.tier == "advanced"
    assert context.orders["o-2"].status == "cancelled"
    assert outcomes[-1].actions == []


def test_cancelling_twice_uncounts_once() -> None:
    context, _ = run(
        [
            order_paid("o-1", "50.00", at(0)),
            order_paid("o-2", "50.00", at(1)),
            order_cancelled("o-1", at(2)),
            order_cancelled("o-1", at(3)),
        ],
    )
    assert context.member.paid_orders == 1


@pytest.mark.parametrize(
    "foreign",
    [order_paid("o-1", "50.00", at(0)), refund("o-1", "r-1", "50.00", at(1)), order_cancelled("o-1", at(1))],
    ids=["order_paid", "refund_completed", "order_cancelled"],
)
def test_an_event_naming_another_members_order_is_rejected_not_parked(foreign: Event) -> None:
    context = fresh()
    context.shop_orders["o-1"] = Order(order_id="o-1", member_id="someone-else")
    outcome = apply_event(context, foreign, DEFAULT)
    assert outcome.rejected == "order_member_mismatch"
    assert outcome.actions == []
    assert not outcome.parked
    assert (context.member.net_spend, context.member.paid_orders) == (Decimal("0.00"), 0)
    assert context.pending == []
    assert "o-1" not in context.orders


# --- events arriving before their order --------------------------------------------------


@pytest.mark.parametrize(
    "early",
    [refund("o-1", "r-1", "30.00", at(2)), shipment("o-1", at(1))],
    ids=["refund_completed", "shipment_shipped"],
)
def test_event_before_its_order_is_paid_is_parked_without_actions_or_metric_change(early: Event) -> None:
    context = fresh()
    outcome = apply_event(context, early, DEFAULT)
    assert outcome.parked
    assert outcome.actions == []
    assert outcome.rejected is None
    assert context.pending == [early]
    assert (context.member.net_spend, context.member.paid_orders) == (Decimal("0.00"), 0)
    assert context.member.tier is None


def test_parked_events_are_released_when_the_order_is_paid_in_business_time_order() -> None:
    payment = order_paid("o-1", "100.00", at(0))
    shipped = shipment("o-1", at(1))
    refunded = refund("o-1", "r-1", "30.00", at(2))
    context, outcomes = run([refunded, shipped, payment])
    assert [o.parked for o in outcomes] == [True, True, False]
    assert outcomes[2].released == [shipped, refunded]
    assert rules_of(outcomes) == [
        "payment_confirmation",
        "first_purchase_gift",
        "shipped_notice",
        "refund_completed_notice",
    ]
    assert context.pending == []


def test_out_of_order_run_ends_in_the_same_state_and_actions_as_the_in_order_run() -> None:
    history = [
        order_paid("o-1", "200.00", at(0)),
        shipment("o-1", at(1)),
        refund("o-1", "r-1", "60.00", at(2)),
        order_paid("o-2", "150.00", at(3)),
    ]
    in_order, in_outcomes = run(history)
    shuffled, out_outcomes = run([history[2], history[1], history[0], history[3]])
    assert shuffled.member == in_order.member
    assert shuffled.orders == in_order.orders
    assert shuffled.pending == []
    in_ids = {a.action_id for a in actions_of(in_outcomes)}
    assert {a.action_id for a in actions_of(out_outcomes)} == in_ids


def test_parked_refund_does_not_hide_a_tier_reached_in_business_time_by_another_order() -> None:
    history = [
        order_paid("o-1", "200.00", at(0)),
        order_paid("o-2", "150.00", at(2)),
        refund("o-1", "r-1", "200.00", at(3)),
    ]
    in_order, _ = run(history)
    shuffled, _ = run([history[2], history[0], history[1]])
    assert in_order.member.tier == "advanced"
    assert shuffled.member.tier == in_order.member.tier


def test_payments_arriving_in_reverse_business_time_order_still_reach_the_tier_their_sum_qualifies_for() -> None:
    history = [order_paid("o-1", "200.00", at(0)), order_paid("o-2", "150.00", at(2))]
    in_order, _ = run(history)
    reversed_run, reversed_outcomes = run(reversed(history))
    assert in_order.member.tier == "advanced"
    assert reversed_run.member.net_spend == Decimal("350.00")
    assert reversed_run.member.tier == "advanced"
    assert "tier_upgrade_gift" in rules_of(reversed_outcomes)


def test_event_waits_while_the_order_is_only_created_and_is_released_on_payment() -> None:
    context, outcomes = run(
        [order_created("o-1", "100.00", at(0)), shipment("o-1", at(1)), order_paid("o-1", "100.00", at(0.5))]
    )
    assert outcomes[1].parked
    assert [e.type for e in outcomes[2].released] == ["shipment.shipped"]
    assert context.orders["o-1"].shipment_status == "shipped"


def test_cancellation_of_an_unknown_order_is_parked_until_the_order_is_known() -> None:
    context, outcomes = run([order_cancelled("o-1", at(1)), order_created("o-1", "100.00", at(0))])
    assert outcomes[0].parked
    assert outcomes[1].released == [order_cancelled("o-1", at(1))]
    assert context.orders["o-1"].status == "cancelled"


def test_a_parked_event_is_never_dropped_while_its_order_stays_unpaid() -> None:
    context, _ = run(
        [refund("o-1", "r-1", "30.00", at(2)), order_created("o-1", "100.00", at(0)), order_paid("o-2", "10.00", at(3))]
    )
    assert [e.type for e in context.pending] == ["refund.completed"]


def test_cancellation_arriving_before_the_payment_it_follows_ends_in_the_in_order_state() -> None:
    base = [order_paid("o-1", "10.00", at(0)), order_paid("o-2", "10.00", at(1)), order_created("o-3", "10.00", at(2))]
    in_order, _ = run([*base, order_paid("o-3", "10.00", at(3)), order_cancelled("o-3", at(4))])
    shuffled, _ = run([*base, order_cancelled("o-3", at(4)), order_paid("o-3", "10.00", at(3))])
    assert in_order.member.tier == "advanced"
    assert shuffled.member.tier == in_order.member.tier


# --- member facts ------------------------------------------------------------------------


def test_member_joined_sets_joined_at_base_tier_and_profile() -> None:
    context, outcomes = run([joined(at(0), marketing_consent=False, birthday="02-29", timezone="Europe/Berlin")])
    member = context.member
    assert member.joined_at == at(0)
    assert (member.tier, member.tier_since) == ("member", at(0))
    assert member.marketing_consent is False
    assert (member.birthday, member.timezone, member.channel) == ("02-29", "Europe/Berlin", "app")
    assert outcomes[0].actions == []


def test_joining_gives_consent_by_default() -> None:
    context, _ = run([joined(at(0))])
    assert context.member.marketing_consent is True


def test_joining_then_buying_keeps_joined_at_from_the_join() -> None:
    context, _ = run([joined(at(0)), order_paid("o-1", "50.00", at(5))])
    assert context.member.joined_at == at(0)
    assert context.member.first_order_at == at(5)


def test_order_first_member_keeps_joined_at_from_the_first_order_when_the_join_comes_afterwards() -> None:
    context, _ = run([order_paid("o-1", "50.00", at(0)), joined(at(5), marketing_consent=False)])
    member = context.member
    assert member.joined_at == at(0)
    assert member.tier == "member"
    assert member.marketing_consent is False
    assert member.joined_by_event


def test_a_repeated_join_changes_nothing() -> None:
    context, _ = run(
        [joined(at(0), channel="app"), joined(at(5), event_id="again", channel="web", marketing_consent=False)]
    )
    assert (context.member.channel, context.member.marketing_consent) == ("app", True)


def test_consent_changed_switches_marketing_consent() -> None:
    context, _ = run([joined(at(0)), event("member.consent_changed", at(1), marketing_consent=False)])
    assert context.member.marketing_consent is False
    apply_event(context, event("member.consent_changed", at(2), marketing_consent=True), DEFAULT)
    assert context.member.marketing_consent is True


def test_profile_updated_changes_only_the_given_fields() -> None:
    context, outcomes = run(
        [
            joined(at(0), birthday="05-01", timezone="Asia/Shanghai"),
            event("member.profile_updated", at(1), timezone="UTC"),
        ],
    )
    member = context.member
    assert (member.birthday, member.timezone, member.channel) == ("05-01", "UTC", "app")
    assert member.last_event_at == at(1)
    assert outcomes[1].actions == []


def test_order_first_member_joined_at_is_the_earliest_payment_even_when_payments_arrive_out_of_order() -> None:
    context, _ = run([order_paid("o-2", "50.00", at(5)), order_paid("o-1", "50.00", at(1))])
    assert context.member.first_order_at == at(1)
    assert context.member.joined_at == at(1)


def test_late_arriving_join_with_earlier_business_time_sets_joined_at() -> None:
    context, _ = run([order_paid("o-1", "50.00", at(5)), joined(at(1))])
    assert context.member.joined_at == at(1)


def test_late_arriving_join_does_not_undo_a_later_consent_withdrawal() -> None:
    context, _ = run([event("member.consent_changed", at(5), marketing_consent=False), joined(at(1))])
    assert context.member.marketing_consent is False
