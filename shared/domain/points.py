"""The points ledger's arithmetic: earning, proportional reversal, FIFO lots and their expiry."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from math import floor

from shared.domain.model import LedgerEntry, LedgerKind

CREDIT_KINDS: frozenset[LedgerKind] = frozenset({"earn", "review_reward", "gift"})
DEBIT_KINDS: frozenset[LedgerKind] = frozenset({"reverse", "redeem", "expire"})

# A credit replayed without expires_at (inconsistent input) never expires rather than breaking the replay.
_NEVER = datetime.max.replace(tzinfo=UTC)


def points_for(amount: Decimal, per_unit: Decimal) -> int:
    """Points earned on a paid amount; rounded down so a shop never gives more than its rate promises."""
    earned = amount * per_unit
    if not earned.is_finite() or earned <= 0:
        return 0
    return int(earned.to_integral_value(rounding=ROUND_FLOOR))


def reversal_target(earned: int, paid: Decimal, refunded: Decimal) -> int:
    """Cumulative points to take back once ``refunded`` of ``paid`` is refunded, rounded half up.

    A cumulative target (callers book the difference to the previous one) keeps several partial refunds
    equal to one full refund; exact fractions keep the half-up boundary exact.
    """
    if earned <= 0 or not paid.is_finite() or not refunded.is_finite() or paid <= 0:
        return 0
    share = Fraction(earned) * Fraction(refunded) / Fraction(paid)
    return min(earned, max(0, floor(share + Fraction(1, 2))))


def credit(entry_id: str, kind: LedgerKind, points: int, at: datetime, expires_at: datetime) -> LedgerEntry:
    """A credit line; zero or negative points and debit kinds are caller bugs, so they raise ValueError."""
    if kind not in CREDIT_KINDS:
        raise ValueError(f"{kind!r} is not a credit kind")
    if points <= 0:
        raise ValueError(f"a credit needs positive points, got {points}")
    return LedgerEntry(entry_id=entry_id, kind=kind, points=points, at=at, expires_at=expires_at)


def debit(balance: int, entry_id: str, kind: LedgerKind, wanted: int, at: datetime) -> LedgerEntry:
    """A debit line that takes what the balance allows; the rest is recorded as ``shortfall``, not owed.

    The balance never goes negative, and the shortfall tells the caller (refund, redemption) what was missing.
    """
    if kind not in DEBIT_KINDS:
        raise ValueError(f"{kind!r} is not a debit kind")
    if wanted < 0:
        raise ValueError(f"a debit needs non-negative points, got {wanted}")
    taken = max(0, min(wanted, balance))
    return LedgerEntry(entry_id=entry_id, kind=kind, points=-taken, at=at, shortfall=wanted - taken)


@dataclass(frozen=True, slots=True)
class Lot:
    """Points of one credit still open, so expiry takes exactly what is old enough."""

    earned_at: datetime
    expires_at: datetime
    remaining: int


@dataclass(slots=True)
class _OpenLot:
    earned_at: datetime
    expires_at: datetime
    remaining: int


def _consume(lots: list[_OpenLot], amount: int, due_by: datetime | None = None) -> None:
    for lot in lots:
        if amount <= 0:
            return
        if due_by is not None and lot.expires_at > due_by:
            continue
        taken = min(lot.remaining, amount)
        lot.remaining -= taken
        amount -= taken


def open_lots(entries: Iterable[LedgerEntry]) -> list[Lot]:
    """The credits still open after replaying the ledger in (at, entry_id) order, oldest first.

    FIFO: reversals and redemptions take the oldest points first, so the soonest-expiring points are used
    before they are lost; an expiry only takes lots due by its time. Inconsistent input (a debit larger than
    what is open) empties the lots instead of raising, because the ledger is history and must replay.
    """
    lots: list[_OpenLot] = []
    for entry in sorted(entries, key=lambda e: (e.at, e.entry_id)):
        if entry.points > 0:
            lots.append(_OpenLot(entry.at, entry.expires_at or _NEVER, entry.points))
        elif entry.points < 0:
            _consume(lots, -entry.points, entry.at if entry.kind == "expire" else None)
            lots = [lot for lot in lots if lot.remaining > 0]
    return [Lot(lot.earned_at, lot.expires_at, lot.remaining) for lot in lots]


def expiring_at(entries: Iterable[LedgerEntry], at: datetime) -> int:
    """Points an expiry booked at ``at`` would take: open lots with expires_at <= at (all entries replayed)."""
    return sum(lot.remaining for lot in open_lots(entries) if lot.expires_at <= at)


def next_expiry(entries: Iterable[LedgerEntry]) -> datetime | None:
    """When the next open points expire, to schedule the expiry run; None when nothing will expire."""
    due = [lot.expires_at for lot in open_lots(entries) if lot.expires_at != _NEVER]
    return min(due) if due else None


def expiring_within(entries: Iterable[LedgerEntry], start: datetime, end: datetime) -> int:
    """Open points with start < expires_at <= end, for "points about to expire" reminders."""
    return sum(lot.remaining for lot in open_lots(entries) if start < lot.expires_at <= end)


def balance(entries: Iterable[LedgerEntry]) -> int:
    """The member's balance: every line's signed points."""
    return sum(entry.points for entry in entries)
