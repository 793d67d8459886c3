"""The forecast's arithmetic against hand-computed cases: shrinkage, intervals, cost and the budget's fill."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from shared.domain.campaign_forecast import (
    PRIOR_RATE,
    PRIOR_STRENGTH,
    KindHistory,
    StageAudience,
    forecast,
    forecast_document,
    plan_kinds,
    shrunk,
)
from shared.domain.campaigns import CampaignPlan, parse_plan
from shared.domain.stats import Z95

COUPON: dict[str, Any] = {"kind": "coupon", "value": "10.00"}
POINTS: dict[str, Any] = {"kind": "points", "points": 200}
VPP = Decimal("0.01")


def plan(*strategies: tuple[int, dict[str, Any] | None], holdout: int = 0, budget: str | None = None) -> CampaignPlan:
    body: dict[str, Any] = {
        "name": "Forecast",
        "definition": {"field": "paid_orders", "op": ">=", "value": 0},
        "strategies": [
            {"code": f"s{index}", "weight": weight, "template": "t", **({"incentive": incentive} if incentive else {})}
            for index, (weight, incentive) in enumerate(strategies)
        ],
        "holdout_percent": holdout,
        "waves": [{"at": "2026-03-02T09:00:00+01:00"}],
        "attribution_window": "P14D",
    }
    if budget is not None:
        body["budget"] = budget
    return parse_plan(body)


def test_plan_kinds_sum_the_weights_of_strategies_sharing_a_kind() -> None:
    shares = plan_kinds(plan((2, COUPON), (1, POINTS), (1, None)))
    assert shares == {"coupon": 0.5, "points": 0.25, "message": 0.25}


def test_shrinkage_is_the_beta_binomial_posterior_mean() -> None:
    rate, variance = shrunk(36, 180, 0.185)
    assert rate == pytest.approx((36 + 20 * 0.185) / 200)
    assert variance == pytest.approx(rate * (1 - rate) / 201)
    assert shrunk(0, 0, PRIOR_RATE)[0] == pytest.approx(PRIOR_RATE)


def test_without_history_the_prior_rate_applies_with_a_wide_interval() -> None:
    result = forecast(plan((1, COUPON)), [StageAudience("active", 100, 80)], [], Decimal("50.00"), VPP)
    assert (result.members, result.reachable) == (100, 80)
    assert result.expected == pytest.approx(4.0)
    variance = 80 * 0.05 * 0.95 + 80 * 80 * (0.05 * 0.95 / (PRIOR_STRENGTH + 1))
    assert result.low == 0.0
    assert result.high == pytest.approx(round(4.0 + Z95 * math.sqrt(variance), 2))
    assert result.revenue == Decimal("200.00")
    assert result.cost == Decimal("40.00")  # a coupon costs its face value when redeemed: 4 conversions
    assert result.within_budget is None
    assert result.stages[0].rate == 0.05


def test_a_stage_shrinks_toward_the_shops_rate_for_the_kind() -> None:
    history = [KindHistory("coupon", "active", 180, 36), KindHistory("points", "active", 1000, 900)]
    audience = [StageAudience("active", 10, 10), StageAudience("at_risk", 10, 10)]
    result = forecast(plan((1, COUPON)), audience, history, Decimal(0), VPP)
    kind = (36 + 20 * 0.05) / 200  # the points history is another kind: not used
    active, at_risk = result.stages
    assert active.rate == round((36 + 20 * kind) / 200, 4)
    assert at_risk.rate == round(kind, 4)
    assert (active.decisions, active.converted, at_risk.decisions) == (180, 36, 0)
    assert active.low < active.rate < active.high
    assert result.expected == pytest.approx(round(10 * (36 + 20 * kind) / 200 + 10 * kind, 2))


def test_the_holdout_and_unreachable_members_are_not_expected_to_convert() -> None:
    history = [KindHistory("coupon", "active", 10_000, 2_000)]
    result = forecast(plan((1, COUPON), holdout=10), [StageAudience("active", 500, 100)], history, Decimal(0), VPP)
    rate = (2_000 + 20 * ((2_000 + 1) / 10_020)) / 10_020
    assert result.expected == pytest.approx(round(90 * rate, 2))
    assert result.high <= 90


def test_points_cost_every_treated_member_and_coupons_only_the_converted() -> None:
    history = [KindHistory("coupon", None, 1_000_000, 100_000), KindHistory("points", None, 1_000_000, 300_000)]
    the_plan = plan((1, COUPON), (1, POINTS), holdout=10)
    result = forecast(the_plan, [StageAudience(None, 200, 200)], history, Decimal("80.00"), VPP)
    coupon_rate = shrunk(100_000, 1_000_000, shrunk(100_000, 1_000_000, PRIOR_RATE)[0])[0]
    points_rate = shrunk(300_000, 1_000_000, shrunk(300_000, 1_000_000, PRIOR_RATE)[0])[0]
    assert result.expected == pytest.approx(round(90 * coupon_rate + 90 * points_rate, 2))
    # 90 coupons handed out, about 9 redeemed at 10.00; 90 members given 200 points at 0.01.
    assert result.cost == (Decimal(repr(round(90 * coupon_rate, 6))) * 10 + 90 * 2).quantize(Decimal("0.01"))
    assert result.revenue == (Decimal(repr(round(result.expected, 6))) * 80).quantize(Decimal("0.01"))


def test_the_budget_fills_the_best_stages_first_at_the_issued_value() -> None:
    history = [KindHistory("coupon", "active", 2_000, 600), KindHistory("coupon", "dormant", 2_000, 200)]
    audience = [StageAudience("active", 5, 5), StageAudience("dormant", 50, 50)]
    result = forecast(plan((1, COUPON), holdout=10, budget="100.00"), audience, history, Decimal(0), VPP)
    # A member costs 10.00 x 0.9 (the holdout is given nothing): 5 actives for 45.00, then 6 dormants.
    by_stage = {stage.stage: stage.within_budget for stage in result.stages}
    assert by_stage == {"active": 5, "dormant": 6}
    assert result.within_budget == 11


def test_a_budget_covers_every_reachable_member_when_nothing_is_issued() -> None:
    result = forecast(plan((1, None), budget="1.00"), [StageAudience("new", 9, 7)], [], Decimal(0), VPP)
    assert result.within_budget == 7
    assert result.cost == Decimal("0.00")


def test_the_document_carries_money_as_strings_and_rates_to_four_decimals() -> None:
    result = forecast(plan((1, COUPON), budget="30.00"), [StageAudience("active", 3, 3)], [], Decimal("12.5"), VPP)
    document = forecast_document(result, Decimal("12.50"))
    assert document["audience"] == 3
    assert document["members_within_budget"] == 3
    assert document["expected_revenue"] == "1.88"
    assert document["stages"][0]["rate"]["value"] == 0.05
    assert document["prior"] == {"rate": PRIOR_RATE, "strength": PRIOR_STRENGTH}
