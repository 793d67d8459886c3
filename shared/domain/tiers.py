"""The tier ladder: which tier a member's figures qualify for, and what the next one needs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from shared.domain.model import ZERO, Order
from shared.domain.playbook import ShopPlaybook, TierDefinition


@dataclass(frozen=True, slots=True)
class NextTier:
    """The next rung and what is missing on each path to it (either one suffices)."""

    code: str
    spend_needed: Decimal
    orders_needed: int


def qualifies(playbook: ShopPlaybook, tier: TierDefinition, net_spend: Decimal, paid_orders: int) -> bool:
    """Spend OR orders reach the tier; the base tier (no thresholds) needs a join or an order."""
    if tier.spend_multiple <= 0 and tier.min_orders <= 0:
        return True
    spend_ok = tier.spend_multiple > 0 and net_spend >= playbook.spend_threshold(tier)
    orders_ok = tier.min_orders > 0 and paid_orders >= tier.min_orders
    return spend_ok or orders_ok


def qualifying_tier(playbook: ShopPlaybook, net_spend: Decimal, paid_orders: int) -> TierDefinition | None:
    """The highest tier the figures reach."""
    reached = None
    for tier in playbook.tiers:
        if qualifies(playbook, tier, net_spend, paid_orders):
            reached = tier
    return reached


def next_tier(playbook: ShopPlaybook, current: str | None, net_spend: Decimal, paid_orders: int) -> NextTier | None:
    """The tier above ``current`` with the spend and orders still missing; None at the top."""
    rank = playbook.tier_rank(current)
    if rank + 1 >= len(playbook.tiers):
        return None
    target = playbook.tiers[rank + 1]
    spend_needed = (
        max(Decimal("0.00"), playbook.spend_threshold(target) - net_spend) if target.spend_multiple > 0 else None
    )
    orders_needed = max(0, target.min_orders - paid_orders) if target.min_orders > 0 else None
    return NextTier(
        code=target.code,
        spend_needed=spend_needed if spend_needed is not None else Decimal("0.00"),
        orders_needed=orders_needed if orders_needed is not None else 0,
    )


def figures_as_of(orders: Iterable[Order], at: datetime) -> tuple[Decimal, int]:
    """Net spend and paid orders counting only what had happened by business time ``at``.

    Refunds travel on their own topic and may be consumed before or after a later
    payment; judging a payment on the figures as of its own time makes the decision
    independent of that arrival order.
    """
    net_spend, paid_orders = ZERO, 0
    for order in orders:
        if order.paid_at is None or order.paid_amount is None or order.paid_at > at:
            continue
        refunded = sum(
            (
                refund.applied
                for refund in order.refunds.values()
                if refund.applied is not None and refund.completed_at is not None and refund.completed_at <= at
            ),
            ZERO,
        )
        net_spend += order.paid_amount - refunded
        cancelled = order.cancelled_at is not None and order.cancelled_at <= at
        if not cancelled and refunded < order.paid_amount:
            paid_orders += 1
    return net_spend, paid_orders


def window_figures(orders: Iterable[Order], at: datetime, window: timedelta) -> tuple[Decimal, int]:
    """Net spend and paid orders of the payments in the window (at - window, at], as of ``at``.

    A refund counts against its order's payment once it has completed (by ``at``); a
    payment older than the window no longer counts, nor do its refunds.
    """
    start = at - window
    return figures_as_of((order for order in orders if order.paid_at is not None and order.paid_at > start), at)


Changes = dict[datetime, list[tuple[Decimal, int]]]  # instant -> (net spend, paid orders) deltas


@dataclass(frozen=True, slots=True)
class QualificationPoint:
    """From ``at`` until the next point, the window figures reach the tier of ``rank``."""

    at: datetime
    rank: int


def qualification_timeline(playbook: ShopPlaybook, orders: Iterable[Order]) -> list[QualificationPoint]:
    """The qualifying tier's rank at every instant it can change, oldest first.

    Figures move at payments, completed refunds and cancellations, and when a payment
    leaves the rolling window; between those instants they are constant. Points
    after the known facts describe what time alone will do. One sweep over every
    order's changes: n log n in the member's orders.
    """
    window = timedelta(days=playbook.tier_policy.qualifying_window_days)
    changes: Changes = {}
    for order in orders:
        if order.paid_at is None or order.paid_amount is None:
            continue
        _order_changes(order, order.paid_at, order.paid_amount, window, changes)
    # Thresholds once per call: (rank, spend needed or None, orders needed or None), highest first.
    ladder = [
        (
            rank,
            playbook.spend_threshold(tier) if tier.spend_multiple > 0 else None,
            tier.min_orders if tier.min_orders > 0 else None,
        )
        for rank, tier in reversed(list(enumerate(playbook.tiers)))
    ]
    points = []
    net_spend, paid_orders = ZERO, 0
    for at in sorted(changes):
        for spend, count in changes[at]:
            net_spend += spend
            paid_orders += count
        rank = -1
        for candidate, spend_needed, orders_needed in ladder:
            if (spend_needed is None and orders_needed is None) or (
                (spend_needed is not None and net_spend >= spend_needed)
                or (orders_needed is not None and paid_orders >= orders_needed)
            ):
                rank = candidate
                break
        points.append(QualificationPoint(at, rank))
    return points


def _order_changes(
    order: Order,
    paid_at: datetime,
    paid: Decimal,
    window: timedelta,
    changes: dict[datetime, list[tuple[Decimal, int]]],
) -> None:
    """What one order adds to the window figures at each instant its contribution changes."""
    refunds = sorted(
        (refund.completed_at, refund.applied)
        for refund in order.refunds.values()
        if refund.completed_at is not None and refund.applied is not None
    )
    end = paid_at + window
    moments = {paid_at, end, *(moment for moment, _ in refunds)}
    if order.cancelled_at is not None:
        moments.add(order.cancelled_at)
    previous = (ZERO, 0)
    for at in sorted(moments):
        if paid_at <= at < end:
            refunded = sum((amount for moment, amount in refunds if moment <= at), ZERO)
            cancelled = order.cancelled_at is not None and order.cancelled_at <= at
            current = (paid - refunded, int(not cancelled and refunded < paid))
        else:
            current = (ZERO, 0)
        changes.setdefault(at, []).append((current[0] - previous[0], current[1] - previous[1]))
        previous = current


def best_rank(points: Sequence[QualificationPoint], after: datetime | None, until: datetime | None = None) -> int:
    """The highest rank qualified for at any instant in (after, until]; -1 when none.

    The point in force at ``after`` itself counts: its figures held just after it.
    """
    best = -1
    carried = -1
    for point in points:
        if until is not None and point.at > until:
            break
        if after is not None and point.at <= after:
            carried = point.rank
            continue
        best = max(best, point.rank)
    return max(best, carried)


def reached_at(points: Sequence[QualificationPoint], rank: int, after: datetime | None) -> datetime | None:
    """The start of the first qualifying spell for ``rank`` in force at some instant after ``after``."""
    start: datetime | None = None
    for point in points:
        if after is not None and point.at > after and start is not None:
            return start  # the spell in force at ``after`` still held just after it
        if point.rank >= rank:
            start = start or point.at
            if after is None or point.at > after:
                return start
        else:
            start = None
    return start


def lapses_at(points: Sequence[QualificationPoint], rank: int) -> datetime | None:
    """The instant the member last stopped qualifying for ``rank``; None if never qualified."""
    lapse: datetime | None = None
    qualified = False
    for point in points:
        if point.rank >= rank:
            qualified = True
            lapse = None
        elif qualified and lapse is None:
            lapse = point.at
    return lapse if qualified else None
