"""Events of one order consumed out of business-time order: each case the contract settles.

The promise (docs/events.md, "Out-of-order events"): whatever the arrival order, the state is
the business-time state and each stage's care action is decided once, dated at its own event.
test_member_properties.py checks it on random histories; these are the cases it found, one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from shared.domain.engagement import MemberContext
from shared.domain.model import ActionDecision, Event
from tests.builders import event, order_created, order_paid, refund
from tests.unit.test_engagement_domain import actions_of, at, run


def consumed(events: Sequence[Event]) -> tuple[MemberContext, list[ActionDecision]]:
    context, outcomes = run(events)
    assert context.pending == []
    return context, actions_of(outcomes)


def care_by_rule(actions: Sequence[ActionDecision]) -> dict[str, tuple[str, object]]:
    """rule -> (the triggering event id, occurred_at) of each care action, failing on a rule decided twice."""
    found: dict[str, tuple[str, object]] = {}
    for action in actions:
        if action.category == "care":
            assert action.rule not in found, f"{action.rule} decided twice"
            found[action.rule] = (action.trigger["event_id"], action.occurred_at)
    return found


# --- refunds ---------------------------------------------------------------------------------


def test_a_refund_request_consumed_after_its_completion_is_still_acknowledged_at_its_own_time() -> None:
    requested = refund("o-1", "r-1", "30.00", at(1), status="requested")
    approved = refund("o-1", "r-1", "30.00", at(2), status="approved")
    completed = refund("o-1", "r-1", "30.00", at(3))
    in_order, in_order_actions = consumed([order_paid("o-1", "100.00", at(0)), requested, approved, completed])
    late, late_actions = consumed([order_paid("o-1", "100.00", at(0)), completed, approved, requested])

    assert care_by_rule(late_actions) == care_by_rule(in_order_actions)
    assert care_by_rule(late_actions)["refund_requested_ack"] == (requested.id, at(1))
    assert care_by_rule(late_actions)["refund_approved_notice"] == (approved.id, at(2))
    assert late.orders["o-1"].refunds == in_order.orders["o-1"].refunds
    assert late.orders["o-1"].refunds["r-1"].status == "completed"
    assert late.member.net_spend == in_order.member.net_spend == Decimal("70.00")


def test_a_refund_stage_dated_after_the_completion_is_ignored_when_consumed_after_it() -> None:
    completed = refund("o-1", "r-1", "30.00", at(3))
    rejected_later = refund("o-1", "r-1", "30.00", at(4), status="rejected")
    context, actions = consumed([order_paid("o-1", "100.00", at(0)), completed, rejected_later])
    assert "refund_rejected_notice" not in care_by_rule(actions)
    assert context.orders["o-1"].refunds["r-1"].status == "completed"


def test_a_refund_stage_dated_after_the_completion_but_consumed_first_was_sent_yet_the_refund_ends_completed() -> None:
    """The one arrival-dependent outcome: a notice already decided cannot be taken back."""
    completed = refund("o-1", "r-1", "30.00", at(3))
    rejected_later = refund("o-1", "r-1", "30.00", at(4), status="rejected")
    in_order, _ = consumed([order_paid("o-1", "100.00", at(0)), completed, rejected_later])
    early, actions = consumed([order_paid("o-1", "100.00", at(0)), rejected_later, completed])
    assert "refund_rejected_notice" in care_by_rule(actions)
    assert early.orders["o-1"].refunds["r-1"].status == "completed"
    assert early.member.net_spend == in_order.member.net_spend == Decimal("70.00")


def test_refund_stages_consumed_out_of_order_leave_the_status_of_the_latest_stage() -> None:
    requested = refund("o-1", "r-1", "30.00", at(1), status="requested")
    approved = refund("o-1", "r-1", "30.00", at(2), status="approved")
    in_order, in_order_actions = consumed([order_paid("o-1", "100.00", at(0)), requested, approved])
    late, late_actions = consumed([order_paid("o-1", "100.00", at(0)), approved, requested])
    assert late.orders["o-1"].refunds["r-1"].status == "approved"
    assert late.orders["o-1"].refunds == in_order.orders["o-1"].refunds
    assert care_by_rule(late_actions) == care_by_rule(in_order_actions)


def test_refunds_completed_out_of_order_share_the_order_in_business_time_order() -> None:
    """70.00 then 50.00 of a 100.00 order: the first completed gets 70.00, the second what is left.

    The points reversed add up the same, but each reversal line is booked when its refund is
    consumed, so the split between the two lines follows arrival (docs/events.md).
    """
    first = refund("o-1", "r-1", "70.00", at(1))
    second = refund("o-1", "r-2", "50.00", at(2))
    in_order, _ = consumed([order_paid("o-1", "100.00", at(0)), first, second])
    late, _ = consumed([order_paid("o-1", "100.00", at(0)), second, first])

    assert {r: e.applied for r, e in late.orders["o-1"].refunds.items()} == {
        "r-1": Decimal("70.00"),
        "r-2": Decimal("30.00"),
    }
    assert late.orders["o-1"] == in_order.orders["o-1"]
    assert late.member == in_order.member
    assert sum(line.points for line in late.new_ledger) == sum(line.points for line in in_order.new_ledger) == 0
    assert {line.entry_id: line.points for line in in_order.new_ledger if line.kind == "reverse"} == {
        "reverse:r-1": -70,
        "reverse:r-2": -30,
    }
    assert {line.entry_id: line.points for line in late.new_ledger if line.kind == "reverse"} == {
        "reverse:r-2": -50,
        "reverse:r-1": -50,
    }


# --- orders ----------------------------------------------------------------------------------


def test_an_order_created_consumed_after_its_payment_still_gives_the_order_its_created_amount() -> None:
    creation = order_created("o-1", "120.00", at(0))
    payment = order_paid("o-1", "110.00", at(0.2))  # a 10.00 coupon
    in_order, _ = consumed([creation, payment])
    late, _ = consumed([payment, creation])
    assert late.orders["o-1"].amount == in_order.orders["o-1"].amount == Decimal("120.00")
    assert late.orders["o-1"] == in_order.orders["o-1"]
    assert late.member.net_spend == Decimal("110.00")


# --- shipments -------------------------------------------------------------------------------


def test_shipment_stages_consumed_out_of_order_leave_the_latest_stage_and_each_notice_once() -> None:
    shipped = event("shipment.shipped", at(1), order_id="o-1", shipment_id="s-1", carrier="SF", tracking_no="SF1")
    relabelled = event("shipment.in_transit", at(2), order_id="o-1", shipment_id="s-1", carrier="EMS", tracking_no="E1")
    delivered = event("shipment.delivered", at(3), order_id="o-1", shipment_id="s-1")  # names no carrier
    history = [order_paid("o-1", "50.00", at(0)), shipped, relabelled, delivered]
    in_order, in_order_actions = consumed(history)
    late, late_actions = consumed([history[0], delivered, relabelled, shipped])

    order = late.orders["o-1"]
    assert order.shipment_status == "delivered"
    assert {k: getattr(order.shipments["s-1"], k) for k in ("status", "carrier", "tracking_no")} == {
        "status": "delivered",
        "carrier": "EMS",
        "tracking_no": "E1",
    }
    assert order == in_order.orders["o-1"]
    assert care_by_rule(late_actions) == care_by_rule(in_order_actions)
    assert care_by_rule(late_actions)["shipped_notice"] == (shipped.id, at(1))


# --- reviews ---------------------------------------------------------------------------------


def test_appended_reviews_consumed_out_of_order_are_kept_in_business_time_order() -> None:
    review: dict[str, Any] = {"review_id": "rv-1", "rating": 5, "text_length": 40, "photo_count": 1}
    posted = event("review.posted", at(1), order_id="o-1", **review)
    first = event("review.appended", at(2), order_id="o-1", **review)
    second = event("review.appended", at(3), order_id="o-1", **review)
    in_order, _ = consumed([order_paid("o-1", "50.00", at(0)), posted, first, second])
    late, _ = consumed([order_paid("o-1", "50.00", at(0)), second, first, posted])
    assert late.orders["o-1"].reviews == in_order.orders["o-1"].reviews
    assert late.orders["o-1"].reviews["rv-1"].appended == [at(2), at(3)]
