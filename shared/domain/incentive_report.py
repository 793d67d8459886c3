"""What the incentives report says about a rule, from the counts and sums PostgreSQL gathered.

The figures (``RuleFigures``) are counted inside the database by
``shared.audience.incentive_report``; here they become the report's ratios: the
redemption rate, the return on the money given, and the uplift of the treated members'
conversion over the holdout's with its 95 % interval (``shared.domain.stats``).
Ratios are rounded half up to four decimal places, so the same figures always read the
same whatever the client's float formatting (docs/incentives.md, "The incentives report").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from shared.domain.money import money
from shared.domain.stats import newcombe_difference

RATIO_PLACES = Decimal("0.0001")


def ratio(value: Fraction | Decimal | float) -> float:
    """``value`` rounded half up to four decimal places, as a float (never -0.0)."""
    if isinstance(value, Fraction):
        exact = Decimal(value.numerator) / Decimal(value.denominator)
    elif isinstance(value, float):
        exact = Decimal(repr(value))  # the shortest decimal that reads back as the float, not its binary expansion
    else:
        exact = value
    return float(exact.quantize(RATIO_PLACES, rounding=ROUND_HALF_UP)) + 0.0


@dataclass(frozen=True, slots=True)
class Group:
    """One side of the comparison: members counted once each, and how many of them converted."""

    members: int
    converted: int


@dataclass(frozen=True, slots=True)
class Uplift:
    """Treated conversion rate minus holdout rate, and its 95 % interval; None when a group is empty."""

    rate_diff: float | None
    ci95: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class RuleFigures:
    """Everything the report counts for one rule's cohort of decisions."""

    rule: str
    issued: int  # emitted decisions
    issued_value: Decimal  # their value
    coupons: int  # coupons those decisions issued
    redeemed: int  # of which redeemed
    redeemed_value: Decimal  # their face value
    coupons_shared: int  # other members' paid orders that named those coupons
    attributed_orders: int  # distinct orders that redeemed them
    attributed_revenue: Decimal  # those orders' paid amounts
    points_value: Decimal  # value of the emitted decisions of kind points
    treated: Group
    holdout: Group

    @property
    def cost(self) -> Decimal:
        """What the rule's incentives cost the shop: redeemed coupons and the points given."""
        return self.redeemed_value + self.points_value

    @property
    def redemption_rate(self) -> float | None:
        """Redeemed coupons over coupons issued; None when none was issued."""
        return ratio(Fraction(self.redeemed, self.coupons)) if self.coupons else None

    @property
    def roi(self) -> float | None:
        """(attributed revenue - cost) / cost; None when nothing cost anything."""
        cost = self.cost
        if cost == 0:
            return None
        return ratio((self.attributed_revenue - cost) / cost)

    @property
    def uplift(self) -> Uplift:
        """The treated members' conversion rate against the holdout's, with Newcombe's interval."""
        treated, holdout = self.treated, self.holdout
        difference = newcombe_difference(treated.converted, treated.members, holdout.converted, holdout.members)
        if difference is None:
            return Uplift(rate_diff=None, ci95=None)
        exact = Fraction(treated.converted, treated.members) - Fraction(holdout.converted, holdout.members)
        return Uplift(rate_diff=ratio(exact), ci95=(ratio(difference.low), ratio(difference.high)))


def rule_item(figures: RuleFigures) -> dict[str, Any]:
    """One rule's item of the report: its counts, money as text, its ratios and its uplift."""
    uplift = figures.uplift
    return {
        "rule": figures.rule,
        "issued": figures.issued,
        "issued_value": money(figures.issued_value),
        "redeemed": figures.redeemed,
        "redeemed_value": money(figures.redeemed_value),
        "redemption_rate": figures.redemption_rate,
        "coupons_shared": figures.coupons_shared,
        "attributed_orders": figures.attributed_orders,
        "attributed_revenue": money(figures.attributed_revenue),
        "cost": money(figures.cost),
        "roi": figures.roi,
        "treated": {"members": figures.treated.members, "converted": figures.treated.converted},
        "holdout": {"members": figures.holdout.members, "converted": figures.holdout.converted},
        "uplift": {"rate_diff": uplift.rate_diff, "ci95": None if uplift.ci95 is None else list(uplift.ci95)},
    }


def report_document(figures: Sequence[RuleFigures], start: datetime | None, end: datetime) -> dict[str, Any]:
    """The report over [start, end): every rule's item, in the order given (by rule)."""
    return {"from": start, "to": end, "items": [rule_item(rule) for rule in figures]}
