"""Whether an incentive is given: the holdout, the budget, lateness; and what it is worth.

Every incentive decision ends in one outcome, kept as a ``Decision``: ``emitted`` (the
action leaves), ``holdout`` (the member is in the rule's comparison group), ``budget_exhausted``
(the period's budget cannot cover it) or ``late_skipped`` (its due item was handled too late
to send anything). Nothing is silently dropped.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

from shared.domain.model import ZERO
from shared.domain.money import round_money
from shared.domain.playbook import IncentiveSpec, ShopPlaybook

__all__ = [
    "BUDGET_EXHAUSTED",
    "EMITTED",
    "HOLDOUT",
    "LATE_SKIPPED",
    "bucket",
    "budgeted_rules",
    "held_out",
    "incentive_value",
    "spoken",
]

EMITTED = "emitted"
HOLDOUT = "holdout"
BUDGET_EXHAUSTED = "budget_exhausted"
LATE_SKIPPED = "late_skipped"

BUCKETS = 10_000  # holdout shares are resolved to a hundredth of a percent


def bucket(*parts: str) -> int:
    """A stable bucket in [0, 10 000) of the parts: the same everywhere, in every process and replay."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def held_out(shop_id: str, member_id: str, rule: str, percent: int) -> bool:
    """Whether the member is in the rule's holdout: a deterministic function of (shop, member, rule)."""
    return percent > 0 and bucket("holdout", shop_id, member_id, rule) < percent * (BUCKETS // 100)


def incentive_value(spec: IncentiveSpec, playbook: ShopPlaybook) -> Decimal:
    """What the incentive costs the budget: a coupon's (or sample's) face value, points at ``value_per_point``."""
    if spec.kind == "points":
        return round_money(Decimal(spec.points or 0) * playbook.points.value_per_point)
    return round_money(spec.value) if spec.value is not None else ZERO


def spoken(span: timedelta) -> str:
    """A duration as people write it in a reason: ``7 days``, ``1 day 12 hours``, ``30 minutes``."""
    minutes = int(span.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    words = [f"{count} {unit}{'s' if count != 1 else ''}" for count, unit in parts if count]
    return " ".join(words) or "0 minutes"


def budgeted_rules(playbook: ShopPlaybook) -> list[str]:
    """The shop's switched-on rules that have a budget: the budgets a batch of the shop must lock."""
    return sorted(name for name, config in playbook.rules.items() if config.enabled and config.budget is not None)
