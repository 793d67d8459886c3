"""The tier ladder: which tier a member's figures qualify for, and what the next one needs."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

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
