"""What the campaign report says per strategy, for the holdout and per wave, from the figures PostgreSQL counted.

A strategy's members are the distinct members it reached; the holdout's, the distinct members
held out. A member converted when they paid an order after the ``at`` of their first wave in the
campaign (for the holdout, the first wave that would have reached them) and no later than that
``at`` plus the attribution window; revenue sums those orders' paid amounts. Cost and ROI are as
in the incentives report; uplift is each strategy's conversion rate minus the holdout's, with
Newcombe's 95 % interval (docs/campaigns.md, "The report").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from shared.domain.incentive_report import Group, Uplift, ratio
from shared.domain.money import money
from shared.domain.stats import newcombe_difference

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """A strategy's or the holdout's counts: members, conversions, revenue, and what its actions became."""

    members: int = 0
    converted: int = 0
    revenue: Decimal = ZERO
    sent: int = 0  # actions the notifier sent on at least one channel
    suppressed: int = 0  # actions suppressed (consent, cap) and sent on no channel
    coupons_redeemed: int = 0
    redeemed_value: Decimal = ZERO
    points_value: Decimal = ZERO

    @property
    def cost(self) -> Decimal:
        return self.redeemed_value + self.points_value

    def conversion_rate(self) -> float | None:
        return ratio(Fraction(self.converted, self.members)) if self.members else None

    def revenue_per_member(self) -> str | None:
        return money(self.revenue / self.members) if self.members else None

    def roi(self) -> float | None:
        """(revenue - cost) / cost; None when nothing cost anything."""
        return ratio((self.revenue - self.cost) / self.cost) if self.cost else None

    def uplift(self, holdout: GroupFigures) -> Uplift:
        difference = newcombe_difference(self.converted, self.members, holdout.converted, holdout.members)
        if difference is None:
            return Uplift(rate_diff=None, ci95=None)
        exact = Fraction(self.converted, self.members) - Fraction(holdout.converted, holdout.members)
        return Uplift(rate_diff=ratio(exact), ci95=(ratio(difference.low), ratio(difference.high)))

    @property
    def group(self) -> Group:
        return Group(self.members, self.converted)


@dataclass(frozen=True, slots=True)
class WaveFigures:
    wave: int
    at: datetime
    members: int  # distinct members who got an action in the wave


def report_document(
    strategies: Sequence[tuple[str, GroupFigures]], holdout: GroupFigures, waves: Sequence[WaveFigures]
) -> dict[str, Any]:
    """The report's JSON: strategies in the plan's order, the holdout, the waves."""
    items = []
    for code, figures in strategies:
        uplift = figures.uplift(holdout)
        items.append(
            {
                "code": code,
                "members": figures.members,
                "sent": figures.sent,
                "suppressed": figures.suppressed,
                "converted": figures.converted,
                "conversion_rate": figures.conversion_rate(),
                "revenue": money(figures.revenue),
                "revenue_per_member": figures.revenue_per_member(),
                "coupons_redeemed": figures.coupons_redeemed,
                "cost": money(figures.cost),
                "roi": figures.roi(),
                "uplift": {"rate_diff": uplift.rate_diff, "ci95": list(uplift.ci95) if uplift.ci95 else None},
            }
        )
    return {
        "strategies": items,
        "holdout": {
            "members": holdout.members,
            "converted": holdout.converted,
            "conversion_rate": holdout.conversion_rate(),
            "revenue_per_member": holdout.revenue_per_member(),
        },
        "waves": [{"wave": w.wave, "at": w.at.isoformat(), "members": w.members} for w in waves],
    }


CSV_COLUMNS = (
    "section",
    "code",
    "wave",
    "at",
    "members",
    "sent",
    "suppressed",
    "converted",
    "conversion_rate",
    "revenue",
    "revenue_per_member",
    "coupons_redeemed",
    "cost",
    "roi",
    "uplift_rate_diff",
    "uplift_ci95_low",
    "uplift_ci95_high",
)


def report_rows(document: dict[str, Any]) -> list[list[object]]:
    """The report as spreadsheet rows (``CSV_COLUMNS``): a row per strategy, the holdout, a row per wave."""
    rows: list[list[object]] = []
    for item in document["strategies"]:
        ci95 = item["uplift"]["ci95"] or [None, None]
        rows.append(
            [
                "strategy",
                item["code"],
                None,
                None,
                item["members"],
                item["sent"],
                item["suppressed"],
                item["converted"],
                item["conversion_rate"],
                item["revenue"],
                item["revenue_per_member"],
                item["coupons_redeemed"],
                item["cost"],
                item["roi"],
                item["uplift"]["rate_diff"],
                *ci95,
            ]
        )
    held = document["holdout"]
    rows.append(["holdout", None, None, None, held["members"], None, None, held["converted"]]
                + [held["conversion_rate"], None, held["revenue_per_member"]] + [None] * 6)  # fmt: skip
    for wave in document["waves"]:
        rows.append(["wave", None, wave["wave"], wave["at"], wave["members"]] + [None] * 12)
    return rows
