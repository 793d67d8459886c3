"""The report's ratios from a rule's figures: rounding, the null cases, and the uplift with its interval."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest

from shared.domain.incentive_report import Group, RuleFigures, ratio

FIGURES = RuleFigures(
    rule="gift",
    issued=70,
    issued_value=Decimal("700.00"),
    coupons=60,
    redeemed=15,
    redeemed_value=Decimal("150.00"),
    coupons_shared=2,
    attributed_orders=14,
    attributed_revenue=Decimal("1800.00"),
    points_value=Decimal("50.00"),
    treated=Group(members=70, converted=56),
    holdout=Group(members=80, converted=48),
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(1, 8), 0.125),
        (Fraction(1, 3), 0.3333),
        (Fraction(2, 3), 0.6667),
        (Fraction(1, 20000), 0.0001),  # 0.00005: halves round up
        (Fraction(-1, 20000), -0.0001),  # and away from zero
        (Fraction(-1, 30000), 0.0),  # -0.0000333 rounds to 0, never to -0.0
        (Decimal("6.33335"), 6.3334),
        (0.20000000000000007, 0.2),
        (-0.6191104558112618, -0.6191),
    ],
)
def test_ratios_are_rounded_half_up_to_four_places(value: Fraction | Decimal | float, expected: float) -> None:
    rounded = ratio(value)
    assert rounded == expected
    assert str(rounded) != "-0.0"


def test_cost_redemption_rate_and_roi() -> None:
    # cost = 150.00 redeemed + 50.00 of points = 200.00; roi = (1800 - 200) / 200 = 8; rate = 15/60 = 0.25.
    assert FIGURES.cost == Decimal("200.00")
    assert FIGURES.redemption_rate == 0.25
    assert FIGURES.roi == 8.0


def test_no_coupon_has_no_redemption_rate_and_no_cost_no_roi() -> None:
    nothing = replace(FIGURES, coupons=0, redeemed=0, redeemed_value=Decimal(0), points_value=Decimal(0))
    assert (nothing.redemption_rate, nothing.roi, nothing.cost) == (None, None, Decimal(0))


def test_a_loss_has_a_negative_roi() -> None:
    # (100 - 300) / 300 = -0.66667
    assert replace(FIGURES, attributed_revenue=Decimal("100.00"), points_value=Decimal("150.00")).roi == -0.6667


def test_uplift_is_newcombes_interval_of_the_rate_difference() -> None:
    # 56/70 - 48/80 = 0.2, method 10 of Newcombe (1998): (0.0524, 0.3339).
    uplift = FIGURES.uplift
    assert (uplift.rate_diff, uplift.ci95) == (0.2, (0.0524, 0.3339))


def test_uplift_is_null_when_a_group_has_no_members() -> None:
    nobody = Group(members=0, converted=0)
    for figures in (replace(FIGURES, treated=nobody), replace(FIGURES, holdout=nobody)):
        assert (figures.uplift.rate_diff, figures.uplift.ci95) == (None, None)
