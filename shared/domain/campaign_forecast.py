"""The campaign forecast: what a plan may yield, estimated from the shop's own history.

Pure arithmetic over counts gathered in PostgreSQL (``shared.audience.campaign_forecast``):
the audience and its reachable members per lifecycle stage, and the shop's past emitted
decisions per incentive kind and stage with how many were followed by a paid order within
the plan's attribution window. The model and its assumptions are in docs/campaigns.md,
"The forecast"; in short:

- a response rate per (stage, kind) shrunk toward the shop's rate for the kind, itself
  shrunk toward ``PRIOR_RATE`` (beta-binomial pseudo-counts, ``PRIOR_STRENGTH`` each), so a
  stage with little history leans on the kind's rate and a shop with none on the prior;
- expected conversions are the reachable, non-holdout members times the rate of their
  stage for the plan's mix of strategies; the interval adds the binomial spread of the
  outcome and the rates' own uncertainty (a normal approximation);
- revenue is conversions times the history's revenue per conversion; cost is what the
  strategies give (coupons only when redeemed, taken as one per conversion);
- within a budget, stages are filled best rate first at the issued value per member.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from shared.domain.campaigns import CampaignIncentive, CampaignPlan
from shared.domain.money import money, round_money
from shared.domain.stats import Z95

__all__ = [
    "MESSAGE",
    "PRIOR_RATE",
    "PRIOR_STRENGTH",
    "Forecast",
    "KindHistory",
    "StageAudience",
    "StageForecast",
    "forecast",
    "forecast_document",
    "issued_value",
    "plan_kinds",
]

MESSAGE = "message"  # the kind of a strategy without an incentive (decisions with kind NULL)
PRIOR_RATE = 0.05  # the response rate assumed for a kind the shop has no history of
PRIOR_STRENGTH = 20.0  # pseudo-decisions the prior (or the kind's rate) weighs, against a stage's own
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class StageAudience:
    """Members of the audience in one lifecycle stage (None: no stage yet) and of them the reachable."""

    stage: str | None
    members: int
    reachable: int


@dataclass(frozen=True, slots=True)
class KindHistory:
    """Past emitted decisions of one incentive kind for members now in ``stage``, and the converted ones."""

    kind: str
    stage: str | None
    decisions: int
    converted: int


@dataclass(frozen=True, slots=True)
class StageForecast:
    stage: str | None
    members: int
    reachable: int
    decisions: int  # history of the plan's kinds for the stage
    converted: int
    rate: float  # the plan's mix of strategies
    low: float
    high: float
    expected_conversions: float
    within_budget: int | None


@dataclass(frozen=True, slots=True)
class Forecast:
    members: int
    reachable: int
    expected: float
    low: float
    high: float
    revenue: Decimal
    cost: Decimal
    within_budget: int | None
    stages: tuple[StageForecast, ...]


def kind_of(incentive: CampaignIncentive | None) -> str:
    return MESSAGE if incentive is None else incentive.kind


def plan_kinds(plan: CampaignPlan) -> dict[str, float]:
    """Each incentive kind of the plan and its share of the treated members (weights summed per kind)."""
    total = sum(strategy.weight for strategy in plan.strategies)
    shares: dict[str, float] = {}
    for strategy in plan.strategies:
        kind = kind_of(strategy.incentive)
        shares[kind] = shares.get(kind, 0.0) + float(strategy.weight / total)
    return shares


def issued_value(incentive: CampaignIncentive | None, value_per_point: Decimal) -> Decimal:
    """What giving the incentive counts against a campaign budget: face value, or points at their value."""
    if incentive is None:
        return ZERO
    if incentive.kind == "points":
        return round_money(Decimal(incentive.points or 0) * value_per_point)
    return round_money(incentive.value) if incentive.value is not None else ZERO


def shrunk(converted: int, decisions: int, prior: float, strength: float = PRIOR_STRENGTH) -> tuple[float, float]:
    """The beta-binomial posterior mean of a rate and its variance, with ``strength`` pseudo-trials at ``prior``."""
    weight = decisions + strength
    rate = (converted + strength * prior) / weight
    return rate, rate * (1.0 - rate) / (weight + 1.0)


def _decimal(number: float) -> Decimal:
    return Decimal(repr(round(number, 6)))


def forecast(
    plan: CampaignPlan,
    audience: Sequence[StageAudience],
    history: Sequence[KindHistory],
    revenue_per_conversion: Decimal,
    value_per_point: Decimal,
) -> Forecast:
    """The forecast of ``plan`` for ``audience`` from the shop's ``history`` (see the module's docstring)."""
    shares = plan_kinds(plan)
    treated = (100 - plan.holdout_percent) / 100
    by_cell = {(row.kind, row.stage): row for row in history}
    kind_rate: dict[str, float] = {}
    for kind in shares:
        rows = [row for row in history if row.kind == kind]
        kind_rate[kind] = shrunk(sum(row.converted for row in rows), sum(row.decisions for row in rows), PRIOR_RATE)[0]

    # What each strategy gives per treated member, by whether it costs only on conversion (coupons).
    total_weight = sum(strategy.weight for strategy in plan.strategies)
    per_member = ZERO  # issued value, the budget's measure
    given = ZERO  # cost of points and samples, given to every treated member
    coupons = ZERO  # face value of coupons per treated member, paid only when redeemed
    for strategy in plan.strategies:
        part = strategy.weight / total_weight
        value = issued_value(strategy.incentive, value_per_point)
        per_member += part * value
        if kind_of(strategy.incentive) == "coupon":
            coupons += part * value
        else:
            given += part * value

    stages: list[tuple[StageAudience, float, float, float, float, int, int]] = []
    expected = variance = 0.0
    cost = ZERO
    for group in audience:
        members = group.reachable * treated
        rate = rate_variance = stage_expected = 0.0
        decisions = converted = 0
        for kind, share in shares.items():
            cell = by_cell.get((kind, group.stage))
            n, k = (cell.decisions, cell.converted) if cell is not None else (0, 0)
            decisions, converted = decisions + n, converted + k
            cell_rate, cell_variance = shrunk(k, n, kind_rate[kind])
            rate += share * cell_rate
            rate_variance += share * share * cell_variance
            cell_members = members * share
            stage_expected += cell_members * cell_rate
            variance += cell_members * cell_rate * (1.0 - cell_rate) + cell_members * cell_members * cell_variance
            if kind == "coupon":
                cost += _decimal(members * cell_rate) * coupons
        cost += _decimal(members) * given
        expected += stage_expected
        spread = Z95 * math.sqrt(rate_variance)
        stages.append(
            (group, rate, max(0.0, rate - spread), min(1.0, rate + spread), stage_expected, decisions, converted)
        )

    spread = Z95 * math.sqrt(variance)
    ceiling = sum(group.reachable for group in audience) * treated
    within = _within_budget(plan.budget, per_member * Decimal(repr(treated)), [(s[0], s[1]) for s in stages])
    return Forecast(
        members=sum(group.members for group in audience),
        reachable=sum(group.reachable for group in audience),
        expected=round(expected, 2),
        low=round(max(0.0, expected - spread), 2),
        high=round(min(ceiling, expected + spread), 2),
        revenue=round_money(_decimal(expected) * revenue_per_conversion),
        cost=round_money(cost),
        within_budget=None if within is None else sum(within.values()),
        stages=tuple(
            StageForecast(
                stage=group.stage,
                members=group.members,
                reachable=group.reachable,
                decisions=decisions,
                converted=converted,
                rate=round(rate, 4),
                low=round(low, 4),
                high=round(high, 4),
                expected_conversions=round(stage_expected, 2),
                within_budget=None if within is None else within[group.stage],
            )
            for group, rate, low, high, stage_expected, decisions, converted in stages
        ),
    )


def _within_budget(
    budget: Decimal | None, per_member: Decimal, stages: Sequence[tuple[StageAudience, float]]
) -> Mapping[str | None, int] | None:
    """Reachable members per stage that the budget covers, best predicted rate first; None without a budget.

    ``per_member`` is the issued value an audience member costs on average (the holdout costs
    nothing); with nothing issued, every reachable member fits.
    """
    if budget is None:
        return None
    fits: dict[str | None, int] = {}
    remaining = budget
    for group, _rate in sorted(stages, key=lambda item: (-item[1], item[0].stage or "")):
        if per_member <= 0:
            fits[group.stage] = group.reachable
            continue
        count = min(group.reachable, int((remaining / per_member).to_integral_value(ROUND_FLOOR)))
        fits[group.stage] = count
        remaining -= count * per_member
    return fits


def forecast_document(result: Forecast, revenue_per_conversion: Decimal) -> dict[str, Any]:
    """The forecast as the API answers it: counts as integers, money as strings, rates to 4 decimals."""
    return {
        "audience": result.members,
        "reachable": result.reachable,
        "expected_conversions": {"value": result.expected, "low": result.low, "high": result.high},
        "expected_revenue": money(result.revenue),
        "expected_cost": money(result.cost),
        "members_within_budget": result.within_budget,
        "revenue_per_conversion": money(revenue_per_conversion),
        "prior": {"rate": PRIOR_RATE, "strength": PRIOR_STRENGTH},
        "stages": [
            {
                "stage": stage.stage,
                "audience": stage.members,
                "reachable": stage.reachable,
                "history": {"decisions": stage.decisions, "conversions": stage.converted},
                "rate": {"value": stage.rate, "low": stage.low, "high": stage.high},
                "expected_conversions": stage.expected_conversions,
                "members_within_budget": stage.within_budget,
            }
            for stage in result.stages
        ],
    }
