"""The engagement score: its parts, caps, refund penalty, bands and the business-time window."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.model import Order, RefundRecord
from shared.domain.playbook import ScoreBand
from shared.domain.score import Score, ScoreFacts, engagement_score, refund_penalty, score_band, score_facts
from shared.playbook_file import load_playbook
from tests.builders import completed_refund, paid_order, posted_review

POLICY = load_playbook().default.score
R = Decimal("100")
AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = 365
NOTHING = ScoreFacts(
    window_net_spend=Decimal("0"),
    window_orders=0,
    window_paid=Decimal("0"),
    window_refunded=Decimal("0"),
    reviews=0,
    photo_reviews=0,
    appended_reviews=0,
    membership_days=0,
    tier_rank=-1,
)


def score(**changes: Any) -> Score:
    return engagement_score(replace(NOTHING, **changes), POLICY, R)


def facts(orders: list[Order], joined_at: datetime | None = None, tier_rank: int = -1) -> ScoreFacts:
    return score_facts(orders, joined_at, tier_rank, AS_OF, WINDOW)


# Bands


@pytest.mark.parametrize(
    ("value", "band"),
    [(0, "basic"), (299, "basic"), (300, "silver"), (999, "silver"), (1000, "gold"), (2499, "gold"), (2500, "diamond")],
)
def test_default_band_edges(value: int, band: str) -> None:
    assert score_band(value, POLICY) == band


def test_bands_may_be_listed_in_any_order() -> None:
    shuffled = replace(POLICY, bands=(ScoreBand("gold", 1000), ScoreBand("basic", 0), ScoreBand("silver", 300)))
    assert [score_band(v, shuffled) for v in (0, 300, 5000)] == ["basic", "silver", "gold"]


def test_a_value_below_every_band_falls_in_the_lowest() -> None:
    assert score_band(10, replace(POLICY, bands=(ScoreBand("high", 500), ScoreBand("low", 100)))) == "low"


def test_the_band_is_reported_with_the_score() -> None:
    # base 100 + 2 orders (100) + 1.00 x R spend (100) = 300: silver exactly.
    result = score(window_net_spend=Decimal("100"), window_paid=Decimal("100"), window_orders=2)
    assert (result.value, result.band) == (300, "silver")


# Each part alone


def test_a_member_with_nothing_has_only_the_base() -> None:
    assert score() == Score(100, "basic", {"purchase": 0, "interaction": 0, "base": 100})


def test_purchase_part_counts_spend_per_reference_order_rounded_down_and_orders() -> None:
    result = score(window_net_spend=Decimal("259.99"), window_paid=Decimal("259.99"), window_orders=3)
    assert result.parts == {"purchase": 259 + 150, "interaction": 0, "base": 100}
    assert result.value == 509


def test_purchase_part_uses_the_reference_order_value() -> None:
    facts = replace(NOTHING, window_net_spend=Decimal("1000"), window_paid=Decimal("1000"))
    assert engagement_score(facts, POLICY, Decimal("400")).parts["purchase"] == 250


def test_negative_net_spend_gives_no_purchase_points() -> None:
    assert score(window_net_spend=Decimal("-50"), window_refunded=Decimal("50")).parts["purchase"] == 0


def test_interaction_part_counts_reviews_photo_reviews_and_appended_reviews() -> None:
    assert score(reviews=3, photo_reviews=2, appended_reviews=1).parts["interaction"] == 30 + 40 + 10


def test_base_part_counts_full_membership_months_and_tier_rungs() -> None:
    assert score(membership_days=59).parts["base"] == 100 + 10
    assert score(membership_days=60).parts["base"] == 100 + 20
    assert score(tier_rank=0).parts["base"] == 100
    assert score(tier_rank=2).parts["base"] == 100 + 100


# Caps


def test_spend_and_orders_caps() -> None:
    result = score(window_net_spend=Decimal("100000"), window_paid=Decimal("100000"), window_orders=40)
    assert result.parts["purchase"] == POLICY.spend_cap + POLICY.orders_cap


def test_interaction_cap() -> None:
    assert score(reviews=100, photo_reviews=100, appended_reviews=100).parts["interaction"] == POLICY.interaction_cap


def test_membership_cap() -> None:
    assert score(membership_days=10 * 365).parts["base"] == 100 + POLICY.membership_cap


def test_the_highest_possible_score_is_diamond() -> None:
    top = score(
        window_net_spend=Decimal("100000"),
        window_paid=Decimal("100000"),
        window_orders=40,
        reviews=100,
        photo_reviews=100,
        membership_days=3650,
        tier_rank=3,
    )
    assert top.value == 1500 + 500 + 500 + 100 + 240 + 150
    assert top.band == "diamond"


# Refund penalty


@pytest.mark.parametrize(
    ("refunded", "penalty"),
    [
        ("0", 0),
        ("20", 0),  # exactly at the threshold
        ("30", 38),  # (0.3 - 0.2) / 0.8 x 300 = 37.5, rounded half up
        ("60", 150),
        ("100", 300),
        ("150", 300),  # refunds of earlier orders can push the rate above 1
    ],
)
def test_refund_penalty_grows_linearly_above_the_threshold(refunded: str, penalty: int) -> None:
    facts = replace(NOTHING, window_paid=Decimal("100"), window_refunded=Decimal(refunded))
    assert refund_penalty(facts, POLICY) == penalty


def test_refund_penalty_lowers_only_the_base_and_never_below_zero() -> None:
    heavy = score(
        window_net_spend=Decimal("40"),
        window_paid=Decimal("100"),
        window_refunded=Decimal("60"),
        window_orders=1,
        membership_days=300,
    )
    assert heavy.parts == {"purchase": 40 + 50, "interaction": 0, "base": 100 + 100 - 150}
    full = score(window_paid=Decimal("100"), window_refunded=Decimal("100"))
    assert full.parts["base"] == 0


def test_refunds_with_nothing_paid_in_the_window_count_as_a_full_refund_rate() -> None:
    assert refund_penalty(replace(NOTHING, window_refunded=Decimal("10")), POLICY) == 300


def test_reference_order_value_must_be_positive() -> None:
    with pytest.raises(ValueError, match="reference_order_value"):
        engagement_score(NOTHING, POLICY, Decimal("0"))


# Facts from orders and the window


def test_facts_from_orders() -> None:
    day = timedelta(days=1)
    refunded = paid_order("o2", AS_OF - 20 * day, "50.00")
    refunded.refunds["r1"] = completed_refund("50.00", AS_OF - 10 * day)
    partly = paid_order("o3", AS_OF - 30 * day, "80.00")
    partly.refunds["r2"] = completed_refund("30.00", AS_OF - 25 * day)
    partly.refunds["r3"] = RefundRecord(status="requested", amount=Decimal("10.00"))
    cancelled = paid_order("o4", AS_OF - 5 * day, "10.00", cancelled_at=AS_OF - 4 * day)
    reviewed = paid_order("o1", AS_OF - 40 * day, "120.00")
    reviewed.reviews["v1"] = posted_review(AS_OF - 30 * day, photos=2, appended=(AS_OF - 3 * day,))
    reviewed.reviews["v2"] = posted_review(AS_OF - 29 * day, videos=1)
    reviewed.reviews["v3"] = posted_review(AS_OF - 28 * day)
    unpaid = Order(order_id="o5", member_id="m1", amount=Decimal("99.00"))

    result = facts([reviewed, refunded, partly, cancelled, unpaid], joined_at=AS_OF - 95 * day, tier_rank=1)

    assert result == ScoreFacts(
        window_net_spend=Decimal("180.00"),
        window_orders=2,  # o1 and the partly refunded o3
        window_paid=Decimal("260.00"),
        window_refunded=Decimal("80.00"),
        reviews=3,
        photo_reviews=2,
        appended_reviews=1,
        membership_days=95,
        tier_rank=1,
    )


def test_a_payment_366_days_before_as_of_does_not_count() -> None:
    old = paid_order("o1", AS_OF - timedelta(days=366), "100.00")
    edge = paid_order("o2", AS_OF - timedelta(days=365), "100.00")  # the window's open end
    inside = paid_order("o3", AS_OF - timedelta(days=365) + timedelta(seconds=1), "100.00")
    assert facts([old, edge]).window_paid == 0
    assert facts([old, edge, inside]).window_paid == Decimal("100.00")
    assert facts([paid_order("o4", AS_OF, "5.00")]).window_orders == 1  # the closed end


def test_a_refund_completed_after_as_of_does_not_count() -> None:
    order = paid_order("o1", AS_OF - timedelta(days=10), "100.00")
    order.refunds["r1"] = completed_refund("100.00", AS_OF + timedelta(hours=1))
    assert facts([order]) == replace(
        NOTHING, window_net_spend=Decimal("100.00"), window_paid=Decimal("100.00"), window_orders=1
    )


def test_a_refund_in_the_window_of_an_order_paid_before_it_lowers_net_spend() -> None:
    order = paid_order("o1", AS_OF - timedelta(days=400), "100.00")
    order.refunds["r1"] = completed_refund("40.00", AS_OF - timedelta(days=10))
    result = facts([order])
    assert (result.window_net_spend, result.window_refunded, result.window_orders) == (
        Decimal("-40.00"),
        Decimal("40.00"),
        0,
    )


def test_a_review_after_as_of_does_not_count() -> None:
    order = paid_order("o1", AS_OF - timedelta(days=10), "100.00")
    order.reviews["v1"] = posted_review(AS_OF + timedelta(minutes=1), photos=1)
    order.reviews["v2"] = posted_review(
        AS_OF - timedelta(days=400), appended=(AS_OF - timedelta(days=1), AS_OF + timedelta(days=1))
    )
    result = facts([order])
    assert (result.reviews, result.photo_reviews, result.appended_reviews) == (0, 0, 1)


def test_anything_after_as_of_is_ignored() -> None:
    later = paid_order("o1", AS_OF + timedelta(seconds=1), "100.00")
    assert facts([later], joined_at=AS_OF + timedelta(days=3)) == NOTHING


def test_orders_cancelled_or_fully_refunded_after_as_of_still_count() -> None:
    order = paid_order("o1", AS_OF - timedelta(days=2), "100.00", cancelled_at=AS_OF + timedelta(days=1))
    order.refunds["r1"] = completed_refund("100.00", AS_OF + timedelta(days=1))
    assert facts([order]).window_orders == 1


def test_membership_days_are_whole_days_and_zero_when_unknown() -> None:
    assert facts([], joined_at=AS_OF - timedelta(days=30, hours=23)).membership_days == 30
    assert facts([], joined_at=None).membership_days == 0


# Properties

_days_ago = st.integers(min_value=0, max_value=500 * 24).map(lambda hours: AS_OF - timedelta(hours=hours))
_money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2)


@st.composite
def _orders(draw: st.DrawFn) -> list[Order]:
    orders: list[Order] = []
    for index in range(draw(st.integers(min_value=0, max_value=6))):
        paid_at = draw(_days_ago)
        amount = draw(_money)
        order = paid_order(f"o{index}", paid_at, str(amount))
        if draw(st.booleans()):
            refunded = min(amount, draw(_money))
            refund_at = paid_at + timedelta(hours=draw(st.integers(min_value=0, max_value=2000)))
            order.refunds["r"] = completed_refund(str(refunded), refund_at)
        if draw(st.booleans()):
            order.cancelled_at = paid_at + timedelta(hours=draw(st.integers(min_value=0, max_value=2000)))
        for number in range(draw(st.integers(min_value=0, max_value=3))):
            order.reviews[f"v{number}"] = posted_review(
                draw(_days_ago), photos=draw(st.integers(0, 2)), appended=tuple(draw(st.lists(_days_ago, max_size=2)))
            )
        orders.append(order)
    return orders


@given(
    orders=_orders(),
    joined_days=st.integers(min_value=-10, max_value=3000),
    tier_rank=st.integers(min_value=-1, max_value=4),
    new_paid_at=st.integers(min_value=0, max_value=365 * 24 - 1).map(lambda hours: AS_OF - timedelta(hours=hours)),
    new_amount=_money,
)
def test_parts_add_up_are_never_negative_and_a_payment_never_lowers_the_score(
    orders: list[Order], joined_days: int, tier_rank: int, new_paid_at: datetime, new_amount: Decimal
) -> None:
    joined_at = AS_OF - timedelta(days=joined_days)
    before = engagement_score(score_facts(orders, joined_at, tier_rank, AS_OF, WINDOW), POLICY, R)
    assert set(before.parts) == {"purchase", "interaction", "base"}
    assert before.value == sum(before.parts.values())
    assert all(part >= 0 for part in before.parts.values())

    more = [*orders, paid_order("new", new_paid_at, str(new_amount))]
    after = engagement_score(score_facts(more, joined_at, tier_rank, AS_OF, WINDOW), POLICY, R)
    assert after.value == sum(after.parts.values())
    assert after.value >= before.value
