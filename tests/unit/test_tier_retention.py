"""Tiers on a rolling window with retention: upgrades at once, lowering only at the scheduler's review."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from shared.domain.due_rules import plan, run_due
from shared.domain.engagement import MemberContext, apply_event, settle
from shared.domain.membership import tier_timeline
from shared.domain.model import ActionDecision, Event, Member
from shared.domain.tiers import lapses_at, reached_at
from shared.playbook_file import load_playbook
from tests.builders import joined, order_paid, refund

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2024, 3, 1, 10, 0, tzinfo=SHANGHAI)
DEFAULT = load_playbook().default
YEAR = timedelta(days=365)
SECOND = timedelta(seconds=1)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def consume(events: Iterable[Event]) -> tuple[MemberContext, list[ActionDecision]]:
    context = MemberContext(member=Member(shop_id="shop-1", member_id="m-1"))
    actions = [action for item in events for action in apply_event(context, item, DEFAULT).actions]
    settle(context, DEFAULT)
    context.ledger = list(context.new_ledger)
    return context, actions


def tier_actions(actions: Iterable[ActionDecision]) -> list[ActionDecision]:
    return [action for action in actions if action.rule in ("tier_changed", "tier_upgrade_gift")]


def review_due(context: MemberContext) -> list[datetime]:
    return [item.due_at for item in plan(context, DEFAULT) if item.rule == "tier_review"]


# --- upgrades and refunds -------------------------------------------------------------------------


def test_upgrade_happens_at_the_qualifying_payment_with_a_change_and_one_gift() -> None:
    context, actions = consume([joined(at(0)), order_paid("o-1", "300.00", at(5))])
    member = context.member
    assert (member.tier, member.tier_since) == ("advanced", at(5))
    changed, gift = tier_actions(actions)
    assert changed.rule == "tier_changed"
    assert changed.variables["from"] == "member"
    assert (changed.variables["to"], changed.variables["direction"]) == ("advanced", "up")
    assert changed.occurred_at == at(5)
    assert (gift.rule, gift.variables["tier"]) == ("tier_upgrade_gift", "advanced")


def test_skipping_a_tier_gives_the_reached_tier_gift_only_and_never_the_skipped_one_later() -> None:
    context, actions = consume([joined(at(0)), order_paid("o-1", "500.00", at(1))])
    assert context.member.tier == "vip"
    assert [(a.rule, a.variables.get("tier")) for a in tier_actions(actions)] == [
        ("tier_changed", None),
        ("tier_upgrade_gift", "vip"),
    ]
    assert context.member.rewarded_tiers == ["member", "advanced", "vip"]


def test_a_refund_never_lowers_the_tier_at_once() -> None:
    context, actions = consume(
        [joined(at(0)), order_paid("o-1", "300.00", at(1)), refund("o-1", "r-o-1", "300.00", at(2))]
    )
    member = context.member
    assert (member.tier, member.tier_since) == ("advanced", at(1))
    assert (member.net_spend, member.paid_orders) == (Decimal("0.00"), 0)
    assert (member.qualifying_net_spend, member.qualifying_orders) == (Decimal("0.00"), 0)
    assert [a.variables.get("direction") for a in tier_actions(actions) if a.rule == "tier_changed"] == ["up"]


def test_regaining_a_tier_after_a_refund_gives_no_second_gift() -> None:
    _, actions = consume(
        [
            joined(at(0)),
            order_paid("o-1", "300.00", at(1)),
            refund("o-1", "r-o-1", "300.00", at(2)),
            order_paid("o-2", "300.00", at(3)),
        ]
    )
    assert [a.variables["tier"] for a in actions if a.rule == "tier_upgrade_gift"] == ["advanced"]


# --- window drop-out, retention and the review -----------------------------------------------------


def test_the_payment_leaving_the_window_is_the_lapse_and_the_review_falls_365_days_later() -> None:
    context, _ = consume([joined(at(0)), order_paid("o-1", "300.00", at(10))])
    points = tier_timeline(context, DEFAULT)
    assert lapses_at(points, 1) == at(10) + YEAR
    assert review_due(context) == [at(10) + YEAR + YEAR]


def test_a_partial_refund_below_the_threshold_is_the_lapse() -> None:
    context, _ = consume([joined(at(0)), order_paid("o-1", "300.00", at(10)), refund("o-1", "r-o-1", "0.01", at(40))])
    assert context.member.tier == "advanced"
    assert lapses_at(tier_timeline(context, DEFAULT), 1) == at(40)
    assert review_due(context) == [at(40) + YEAR]


def test_the_review_lowers_the_tier_to_the_base_with_a_retention_change() -> None:
    context, _ = consume([joined(at(0)), order_paid("o-1", "300.00", at(10))])
    due = at(10) + 2 * YEAR

    assert [a for a in run_due(context, DEFAULT, due - SECOND) if a.rule == "tier_changed"] == []
    assert context.member.tier == "advanced"
    assert context.member.next_due_at is not None
    assert context.member.next_due_at <= due

    actions = [a for a in run_due(context, DEFAULT, due) if a.rule == "tier_changed"]
    member = context.member
    assert (member.tier, member.tier_since) == ("member", due)
    assert len(actions) == 1
    change = actions[0]
    assert {k: change.variables[k] for k in ("from", "to", "direction", "reason")} == {
        "from": "advanced",
        "to": "member",
        "direction": "down",
        "reason": "retention",
    }
    assert change.occurred_at == due
    assert change.trigger == {"schedule": "tier_changed", "due_at": due.isoformat()}
    assert review_due(context) == []


def test_the_review_lowers_to_the_best_tier_qualified_for_within_the_last_365_days() -> None:
    context, _ = consume([joined(at(0)), order_paid("o-1", "500.00", at(0)), order_paid("o-2", "300.00", at(300))])
    # 800 within a year: vip (supreme needs 1000); at day 365 only o-2 (300) remains: advanced until day 665
    assert context.member.tier == "vip"
    assert review_due(context) == [at(365) + YEAR]
    actions = [a for a in run_due(context, DEFAULT, at(365) + YEAR) if a.rule == "tier_changed"]
    assert context.member.tier == "advanced"
    assert [(a.variables["from"], a.variables["to"], a.variables["direction"]) for a in actions] == [
        ("vip", "advanced", "down")
    ]
    # advanced lapsed at day 665 (o-2 left the window): its own review a year later
    assert review_due(context) == [at(665) + YEAR]
    run_due(context, DEFAULT, at(665) + YEAR)
    assert context.member.tier == "member"


def test_a_member_who_requalified_inside_the_retention_keeps_the_tier() -> None:
    context, _ = consume([joined(at(0)), order_paid("o-1", "300.00", at(10)), order_paid("o-2", "300.00", at(500))])
    first_lapse_review = at(10) + 2 * YEAR
    assert review_due(context) == [at(500) + 2 * YEAR]
    actions = run_due(context, DEFAULT, first_lapse_review)
    assert [a for a in actions if a.rule == "tier_changed"] == []
    assert (context.member.tier, context.member.tier_since) == ("advanced", at(10))


def test_requalifying_after_the_lapse_but_consumed_after_the_scheduler_ran_keeps_the_tier() -> None:
    context, _ = consume([joined(at(0)), order_paid("o-1", "300.00", at(10))])
    run_due(context, DEFAULT, at(500))
    assert context.member.tier == "advanced"
    apply_event(context, order_paid("o-2", "300.00", at(500)), DEFAULT)
    settle(context, DEFAULT)
    run_due(context, DEFAULT, at(10) + 2 * YEAR)
    assert context.member.tier == "advanced"
    assert review_due(context) == [at(500) + 2 * YEAR]


def test_after_a_lowering_a_new_qualification_upgrades_again_without_a_second_gift() -> None:
    context, _ = consume([joined(at(0)), order_paid("o-1", "300.00", at(10))])
    run_due(context, DEFAULT, at(10) + 2 * YEAR)
    assert context.member.tier == "member"
    outcome = apply_event(context, order_paid("o-2", "300.00", at(800)), DEFAULT)
    settle(context, DEFAULT)
    assert (context.member.tier, context.member.tier_since) == ("advanced", at(800))
    assert [a.rule for a in tier_actions(outcome.actions)] == ["tier_changed"]


# --- arrival order ------------------------------------------------------------------------------


def test_payments_in_reverse_order_give_the_same_tier_and_tier_since() -> None:
    history = [
        joined(at(0)),
        order_paid("o-1", "100.00", at(1)),
        order_paid("o-2", "100.00", at(2)),
        order_paid("o-3", "100.00", at(3)),
    ]
    forward, _ = consume(history)
    backward, _ = consume([history[0], *reversed(history[1:])])
    assert (forward.member.tier, forward.member.tier_since) == ("advanced", at(3))
    assert (backward.member.tier, backward.member.tier_since) == ("advanced", at(3))


def test_payments_in_reverse_order_without_a_join_give_the_same_tier_and_tier_since() -> None:
    history = [
        order_paid("o-1", "200.00", at(1)),
        order_paid("o-2", "400.00", at(2)),
        order_paid("o-3", "500.00", at(3)),
    ]
    forward, _ = consume(history)
    backward, _ = consume(list(reversed(history)))
    for context in (forward, backward):
        assert (context.member.tier, context.member.tier_since, context.member.joined_at) == ("supreme", at(3), at(1))
    assert reached_at(tier_timeline(forward, DEFAULT), 2, None) == at(2)


def test_a_refund_consumed_after_a_later_payment_gives_the_in_order_tier_and_since() -> None:
    history = [
        joined(at(0)),
        order_paid("o-1", "300.00", at(1)),
        refund("o-1", "r-o-1", "300.00", at(2)),
        order_paid("o-2", "200.00", at(3)),
    ]
    in_order, _ = consume(history)
    late_refund, _ = consume([history[0], history[1], history[3], history[2]])
    assert (in_order.member.tier, in_order.member.tier_since) == ("advanced", at(1))
    assert (late_refund.member.tier, late_refund.member.tier_since) == ("advanced", at(1))
