"""The one rounding rule for money: two decimal places, halves rounded up (away from zero).

Actions, stored refund shares, tier thresholds and the API's figures all go through it,
so a figure is rounded the same way wherever it is shown (docs/api.md: "rounded half-up
to 0.01").
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def round_money(value: Decimal) -> Decimal:
    """``value`` to the cent, halves up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    """``value`` to the cent as a decimal string ("129.00"), the form money travels in."""
    return str(round_money(value))
