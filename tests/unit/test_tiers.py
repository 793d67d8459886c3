"""The tier ladder: thresholds by spend and by orders, the next rung, and tier upgrade gifts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.engagement import MemberContext, Outcome, apply_event
from shared.domain.model import ActionDecision, Event, Member, Order
from shared.domain.playbook import ShopPlaybook
from shared.domain.tiers import NextTier, next_tier, qualification_timeline, qualifying_tier, window_figures
from shared.playbook_file import load_playbook, parse_playbook
from tests.builders import completed_refund, order_paid, refund

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=SHANGHAI)
DEFAULT = load_playbook().default
SHOP_R150 = parse_playbook({"shops": {"shop-150": {"reference_order_value": "150"}}}).for_shop("shop-150")


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def run(events: Iterable[Event], playbook: ShopPlaybook = DEFAULT) -> tuple[Member, list[Outcome]]:
    context = MemberContext(member=Member(shop_id="shop-1", member_id="m-1"), orders={})
    return context.member, [apply_event(context, item, playbook) for item in events]


def gifts(outcomes: Iterable[Outcome]) -> list[ActionDecision]:
    return [a for outcome in outcomes for a in outcome.actions if a.rule == "tier_upgrade_gift"]


def tier_code(playbook: ShopPlaybook, net_spend: str, paid_orders: int) -> str | None:
    tier = qualifying_tier(playbook, Decimal(net_spend), paid_orders)
    return tier.code if tier is not None else None


# --- thresholds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net_spend", "tier"),
    [
        ("0.00", "member"),
        ("299.99", "member"),
        ("300.00", "advanced"),
        ("499.99", "advanced"),
        ("500.00", "vip"),
        ("999.99", "vip"),
        ("1000.00", "supreme"),
        ("25000.00", "supreme"),
    ],
)
def test_tier_by_net_spend_with_one_order_and_reference_value_100(net_spend: str, tier: str) -> None:
    assert tier_code(DEFAULT, net_spend, 1) == tier


@pytest.mark.parametrize(
    ("paid_orders", "tier"),
    [(0, "member"), (2, "member"), (3, "advanced"), (4, "advanced"), (5, "vip"), (9, "vip"), (10, "supreme")],
)
def test_tier_by_paid_orders_with_little_spend(paid_orders: int, tier: str) -> None:
    assert tier_code(DEFAULT, "1.00", paid_orders) == tier


def test_reaches_advanced_at_exactly_three_times_the_reference_value() -> None:
    member, _ = run([order_paid("o-1", "300.00", at(0))])
    assert (member.tier, member.paid_orders) == ("advanced", 1)


def test_stays_member_one_cent_below_three_times_the_reference_value() -> None:
    member, _ = run([order_paid("o-1", "299.99", at(0))])
    assert member.tier == "member"


def test_reaches_advanced_on_the_third_paid_order_whatever_the_spend() -> None:
    member, outcomes = run([order_paid(f"o-{n}", "1.00", at(n)) for n in range(3)])
    assert member.tier == "advanced"
    assert member.tier_since == at(2)
    assert [g.variables["tier"] for g in gifts(outcomes)] == ["advanced"]


@pytest.mark.parametrize(
    ("net_spend", "paid_orders", "tier"),
    [
        ("449.99", 1, "member"),
        ("450.00", 1, "advanced"),
        ("749.99", 1, "advanced"),
        ("750.00", 1, "vip"),
        ("1499.99", 1, "vip"),
        ("1500.00", 1, "supreme"),
        ("300.00", 2, "member"),
        ("1.00", 3, "advanced"),
        ("1.00", 5, "vip"),
        ("1.00", 10, "supreme"),
    ],
)
def test_shop_with_reference_value_150_scales_spend_thresholds_but_not_order_counts(
    net_spend: str, paid_orders: int, tier: str
) -> None:
    assert SHOP_R150.reference_order_value == Decimal("150")
    assert tier_code(SHOP_R150, net_spend, paid_orders) == tier


def test_shop_with_reference_value_150_upgrades_at_450_through_the_engine() -> None:
    member, outcomes = run([order_paid("o-1", "449.99", at(0))], SHOP_R150)
    assert member.tier == "member"
    member, outcomes = run([order_paid("o-1", "450.00", at(0))], SHOP_R150)
    assert member.tier == "advanced"
    assert [g.variables["tier"] for g in gifts(outcomes)] == ["advanced"]


# --- next tier ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "net_spend", "paid_orders", "expected"),
    [
        (None, "0.00", 0, NextTier("member", Decimal("0.00"), 0)),
        ("member", "120.00", 1, NextTier("advanced", Decimal("180.00"), 2)),
        ("member", "299.99", 2, NextTier("advanced", Decimal("0.01"), 1)),
        ("advanced", "350.00", 3, NextTier("vip", Decimal("150.00"), 2)),
        ("advanced", "20.00", 0, NextTier("vip", Decimal("480.00"), 5)),
        ("vip", "999.99", 9, NextTier("supreme", Decimal("0.01"), 1)),
        ("vip", "1200.00", 12, NextTier("supreme", Decimal("0.00"), 0)),
    ],
)
def test_next_tier_tells_what_is_missing_on_each_path(
    current: str | None, net_spend: str, paid_orders: int, expected: NextTier
) -> None:
    assert next_tier(DEFAULT, current, Decimal(net_spend), paid_orders) == expected


def test_next_tier_is_none_at_the_top() -> None:
    assert next_tier(DEFAULT, "supreme", Decimal("5000.00"), 50) is None


def test_next_tier_scales_with_the_shops_reference_value() -> None:
    assert next_tier(SHOP_R150, "member", Decimal("100.00"), 1) == NextTier("advanced", Decimal("350.00"), 2)


# --- upgrades and gifts ------------------------------------------------------------------


def test_entering_the_base_tier_gives_no_upgrade_gift() -> None:
    member, outcomes = run([order_paid("o-1", "50.00", at(0))])
    assert member.tier == "member"
    assert gifts(outcomes) == []


def test_each_tier_gives_its_gift_once_when_first_reached() -> None:
    member, outcomes = run([order_paid(f"o-{n}", "10.00", at(n)) for n in range(12)])
    reached = [(g.variables["tier"], g.occurred_at) for g in gifts(outcomes)]
    assert reached == [("advanced", at(2)), ("vip", at(4)), ("supreme", at(9))]
    assert member.tier == "supreme"
    assert member.rewarded_tiers == ["member", "advanced", "vip", "supreme"]


def test_tier_gift_carries_the_tiers_coupon() -> None:
    _, outcomes = run([order_paid("o-1", "1000.00", at(0))])
    (gift,) = gifts(outcomes)
    assert gift.category == "incentive"
    assert gift.variables == {"tier": "supreme", "tier_name": "至尊VIP Supreme VIP"}
    assert gift.incentive is not None
    assert (gift.incentive["value"], gift.incentive["min_spend"]) == ("100.00", "699.00")
    assert datetime.fromisoformat(gift.incentive["expires_at"]) == at(0) + timedelta(days=60)


def test_jumping_two_tiers_at_once_gives_one_gift_for_the_tier_reached() -> None:
    member, outcomes = run([order_paid("o-1", "100.00", at(0)), order_paid("o-2", "420.00", at(1))])
    assert member.tier == "vip"
    assert member.tier_since == at(1)
    assert [g.variables["tier"] for g in gifts(outcomes)] == ["vip"]
    assert member.rewarded_tiers == ["member", "advanced", "vip"]


def test_a_skipped_tier_never_gives_its_gift_later() -> None:
    history = [order_paid("o-1", "600.00", at(0)), refund("o-1", "r-o-1", "600.00", at(1))]
    history += [order_paid(f"o-{n}", "10.00", at(n)) for n in range(2, 6)]
    member, outcomes = run(history)
    assert (member.net_spend, member.paid_orders) == (Decimal("40.00"), 4)
    assert member.tier == "vip"
    assert [g.variables["tier"] for g in gifts(outcomes)] == ["vip"]


def test_staying_in_a_tier_gives_no_further_gift_and_keeps_the_tier_since() -> None:
    member, outcomes = run([order_paid("o-1", "300.00", at(0)), order_paid("o-2", "50.00", at(1))])
    assert [g.variables["tier"] for g in gifts(outcomes)] == ["advanced"]
    assert member.tier_since == at(0)


def test_the_same_tier_gift_has_the_same_action_id_whatever_triggered_it() -> None:
    _, by_spend = run([order_paid("o-1", "300.00", at(0))])
    _, by_orders = run([order_paid(f"o-{n}", "1.00", at(n)) for n in range(3)])
    assert gifts(by_spend)[0].action_id == gifts(by_orders)[0].action_id


def test_disabled_tier_upgrade_gift_still_upgrades_without_a_gift() -> None:
    playbook = parse_playbook({"defaults": {"rules": {"tier_upgrade_gift": {"enabled": False}}}}).default
    member, outcomes = run([order_paid("o-1", "500.00", at(0))], playbook)
    assert member.tier == "vip"
    assert gifts(outcomes) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 800),  # paid, days after T0
            st.integers(1, 500),  # amount
            st.one_of(st.none(), st.integers(0, 500)),  # refunded amount, capped at the payment
            st.integers(0, 400),  # refund completes this many days after payment
            st.one_of(st.none(), st.integers(0, 400)),  # cancelled this many days after payment
        ),
        max_size=8,
    )
)
def test_the_timeline_sweep_agrees_with_the_window_figures_at_every_point(
    specs: list[tuple[int, int, int | None, int, int | None]],
) -> None:
    orders = []
    for number, (paid_day, amount, refunded, refund_after, cancel_after) in enumerate(specs):
        paid_at = at(24 * paid_day)
        order = Order(order_id=f"o-{number}", member_id="m-1", paid_at=paid_at, paid_amount=Decimal(amount))
        if refunded is not None:
            applied = Decimal(min(refunded, amount))
            completed = paid_at + timedelta(days=refund_after)
            order.refunds["r"] = completed_refund(str(applied), completed)
        if cancel_after is not None:
            order.cancelled_at = paid_at + timedelta(days=cancel_after)
        orders.append(order)
    window = timedelta(days=DEFAULT.tier_policy.qualifying_window_days)
    for point in qualification_timeline(DEFAULT, orders):
        reached = qualifying_tier(DEFAULT, *window_figures(orders, point.at, window))
        assert point.rank == (DEFAULT.tier_rank(reached.code) if reached is not None else -1)
