"""The engagement score: purchase + interaction + base parts over a rolling window of business time.

Everything is computed as of a business time ``as_of`` from what had happened in the window
(as_of - window_days, as_of], so recomputing on replayed history gives the same score.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from shared.domain.model import ZERO, Order, ReviewRecord
from shared.domain.playbook import ScorePolicy

_ONE = Decimal(1)
_MEMBERSHIP_MONTH_DAYS = 30


@dataclass(frozen=True, slots=True)
class ScoreFacts:
    """The member's figures the score depends on, already cut to the window."""

    window_net_spend: Decimal
    window_orders: int
    window_paid: Decimal
    window_refunded: Decimal
    reviews: int
    photo_reviews: int
    appended_reviews: int
    membership_days: int
    tier_rank: int  # 0 = base tier, -1 = no tier


@dataclass(frozen=True, slots=True)
class Score:
    """The score with its parts ("purchase", "interaction", "base"), so merchants can see why."""

    value: int
    band: str
    parts: dict[str, int]


def _in_window(at: datetime, start: datetime, as_of: datetime) -> bool:
    return start < at <= as_of


def _completed_refunds(order: Order, as_of: datetime) -> list[tuple[datetime, Decimal]]:
    """(completed_at, applied) of the order's refunds completed by ``as_of``; later ones have not happened yet."""
    done: list[tuple[datetime, Decimal]] = []
    for refund in order.refunds.values():
        if refund.applied is not None and refund.completed_at is not None and refund.completed_at <= as_of:
            done.append((refund.completed_at, refund.applied))
    return done


def score_facts(
    orders: Iterable[Order], joined_at: datetime | None, tier_rank: int, as_of: datetime, window_days: int
) -> ScoreFacts:
    """The window's figures as of business time ``as_of``; anything later is ignored.

    Refunds completed in the window count even when the order was paid before it (the
    purchase part clamps a negative net spend at 0). An order counts when it was paid in
    the window and, by ``as_of``, neither cancelled nor fully refunded.
    """
    start = as_of - timedelta(days=window_days)
    paid, refunded = ZERO, ZERO
    window_orders = reviews = photo_reviews = appended_reviews = 0
    for order in orders:
        refunds = _completed_refunds(order, as_of)
        refunded += sum((amount for at, amount in refunds if _in_window(at, start, as_of)), ZERO)
        if order.paid_at is not None and order.paid_amount is not None and _in_window(order.paid_at, start, as_of):
            paid += order.paid_amount
            cancelled = order.cancelled_at is not None and order.cancelled_at <= as_of
            fully_refunded = sum((amount for _, amount in refunds), ZERO) >= order.paid_amount
            if not cancelled and not fully_refunded:
                window_orders += 1
        for review in order.reviews.values():
            r, p, a = _review_counts(review, start, as_of)
            reviews, photo_reviews, appended_reviews = reviews + r, photo_reviews + p, appended_reviews + a
    membership_days = max(0, (as_of - joined_at).days) if joined_at is not None else 0
    return ScoreFacts(
        window_net_spend=paid - refunded,
        window_orders=window_orders,
        window_paid=paid,
        window_refunded=refunded,
        reviews=reviews,
        photo_reviews=photo_reviews,
        appended_reviews=appended_reviews,
        membership_days=membership_days,
        tier_rank=tier_rank,
    )


def _review_counts(review: ReviewRecord, start: datetime, as_of: datetime) -> tuple[int, int, int]:
    """(posted, posted with photos or video, appended) in the window for one review."""
    posted = photo = 0
    if review.at is not None and _in_window(review.at, start, as_of):
        posted = 1
        photo = 1 if (review.photos or 0) > 0 or (review.videos or 0) > 0 else 0
    appended = sum(1 for when in review.appended if _in_window(when, start, as_of))
    return posted, photo, appended


def refund_penalty(facts: ScoreFacts, policy: ScorePolicy) -> int:
    """What a high refund rate takes off the base part, growing linearly from the threshold to a rate of 1.

    With nothing paid in the window, any refund counts as a rate of 1: otherwise a first small
    payment could turn an undefined rate into a huge one and lower the score.
    """
    if facts.window_refunded <= 0:
        return 0
    rate = facts.window_refunded / facts.window_paid if facts.window_paid > 0 else _ONE
    threshold = policy.refund_rate_threshold
    if rate <= threshold:
        return 0
    share = min(_ONE, (rate - threshold) / (_ONE - threshold)) if threshold < _ONE else _ONE
    return int((policy.refund_penalty * share).to_integral_value(rounding=ROUND_HALF_UP))


def score_band(value: int, policy: ScorePolicy) -> str:
    """The highest band reached; the lowest band when none is (bands may be listed in any order)."""
    if not policy.bands:
        raise ValueError("the score policy has no bands")
    ordered = sorted(policy.bands, key=lambda band: band.min)
    name = ordered[0].name
    for band in ordered:
        if band.min <= value:
            name = band.name
    return name


def engagement_score(facts: ScoreFacts, policy: ScorePolicy, reference_order_value: Decimal) -> Score:
    """The score from the window's facts; Decimal and int arithmetic only, so it is exact and repeatable."""
    if reference_order_value <= 0:
        raise ValueError("reference_order_value must be positive")
    spend = max(ZERO, facts.window_net_spend)
    spend_points = int((policy.per_reference_order * spend / reference_order_value).to_integral_value(ROUND_FLOOR))
    purchase = min(policy.spend_cap, spend_points) + min(policy.orders_cap, policy.per_order * facts.window_orders)
    interaction = min(
        policy.interaction_cap,
        policy.per_review * facts.reviews
        + policy.per_photo_review * facts.photo_reviews
        + policy.per_appended_review * facts.appended_reviews,
    )
    months = max(0, facts.membership_days) // _MEMBERSHIP_MONTH_DAYS
    base = (
        policy.base
        + min(policy.membership_cap, policy.per_membership_month * months)
        + policy.per_tier_rank * max(0, facts.tier_rank)
    )
    base = max(0, base - refund_penalty(facts, policy))
    value = purchase + interaction + base
    return Score(
        value=value,
        band=score_band(value, policy),
        parts={"purchase": purchase, "interaction": interaction, "base": base},
    )
