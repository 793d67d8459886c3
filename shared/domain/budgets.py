"""Incentive budgets: value issued per scope (a rule, or a campaign) and calendar period of business time.

A budget is spent by the face value of the coupons issued under it plus the points given
at the playbook's ``value_per_point``. An incentive is issued while its period's spend plus
its own value stays within the amount; otherwise it is not issued, and its decision says so.
The book holds the spend of the periods a batch can touch, loaded and locked by the store
before the batch is decided, so two transactions never spend the same money twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from shared.domain.playbook import Budget

__all__ = ["TOTAL", "BudgetBook", "BudgetKey", "SpendRow", "period_start"]

TOTAL = "total"  # a campaign's budget: one period for the campaign's whole life
_EPOCH = date(1970, 1, 1)

BudgetKey = tuple[str, str, date]  # shop, scope, first day of the period


def period_start(period: str, at: datetime, tz: ZoneInfo) -> date:
    """The first local day of the calendar period ``at`` falls in: the day, the week from Monday, the month."""
    local = at.astimezone(tz).date()
    if period == "P1D":
        return local
    if period == "P1W":
        return local - timedelta(days=local.weekday())
    if period == "P1M":
        return local.replace(day=1)
    if period == TOTAL:
        return _EPOCH
    raise ValueError(f"unknown budget period {period!r}")


@dataclass(slots=True)
class SpendRow:
    spent: Decimal = Decimal("0.00")
    issued: int = 0


@dataclass(slots=True)
class BudgetBook:
    """The spend of the budget periods a batch may touch; ``since`` is the earliest period loaded per scope.

    ``changed`` names the periods this batch spent in, for the store to write back.
    """

    spend: dict[BudgetKey, SpendRow] = field(default_factory=dict)
    since: dict[tuple[str, str], date] = field(default_factory=dict)
    changed: set[BudgetKey] = field(default_factory=set)

    def spend_within(self, shop: str, scope: str, budget: Budget, at: datetime, tz: ZoneInfo, value: Decimal) -> bool:
        """Spends ``value`` in the period of ``at`` if it fits in ``budget.amount``; whether it did."""
        start = period_start(budget.period, at, tz)
        loaded = self.since.get((shop, scope))
        if loaded is None or start < loaded:
            raise RuntimeError(f"the budget of {scope} was not loaded for the period from {start.isoformat()}")
        return self._spend((shop, scope, start), budget.amount, value)

    def spend_total_within(self, shop: str, scope: str, amount: Decimal, value: Decimal) -> bool:
        """Spends ``value`` of a budget over the scope's whole life (a campaign's) if it fits in ``amount``."""
        if (shop, scope) not in self.since:
            raise RuntimeError(f"the budget of {scope} was not loaded")
        return self._spend((shop, scope, _EPOCH), amount, value)

    def total_spent(self, shop: str, scope: str) -> Decimal:
        row = self.spend.get((shop, scope, _EPOCH))
        return row.spent if row is not None else Decimal("0.00")

    def _spend(self, key: BudgetKey, amount: Decimal, value: Decimal) -> bool:
        row = self.spend.setdefault(key, SpendRow())
        if row.spent + value > amount:
            return False
        row.spent += value
        row.issued += 1
        self.changed.add(key)
        return True

    def spent(self, shop: str, scope: str, budget: Budget, at: datetime, tz: ZoneInfo) -> Decimal:
        row = self.spend.get((shop, scope, period_start(budget.period, at, tz)))
        return row.spent if row is not None else Decimal("0.00")
