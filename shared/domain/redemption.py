"""Points redemption: once per idempotency key, never beyond the balance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.domain import points
from shared.domain.model import LedgerEntry


class RedemptionRefusedError(Exception):
    """A redemption that cannot be booked; ``code`` says why, the message says it to a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Redemption:
    entry: LedgerEntry
    balance: int
    replayed: bool  # the key was seen before: this is the first booking, nothing new was booked


def entry_id(idempotency_key: str) -> str:
    """The ledger line a key books: the key names the business fact, so it is booked at most once."""
    return f"redeem:{idempotency_key}"


def redeem(balance: int, idempotency_key: str, wanted: int, at: datetime, booked: LedgerEntry | None) -> Redemption:
    """Books ``wanted`` points off ``balance``, or replays ``booked``, the key's earlier line.

    Reusing a key for another number of points, or asking for more than the balance,
    raises ``RedemptionRefusedError``.
    """
    if booked is not None:
        if -booked.points != wanted:
            raise RedemptionRefusedError(
                "idempotency_key_reused", f"Key {idempotency_key!r} already redeemed {-booked.points} points"
            )
        return Redemption(entry=booked, balance=balance, replayed=True)
    if balance < wanted:
        raise RedemptionRefusedError("insufficient_points", f"The balance is {balance} points; {wanted} were asked for")
    entry = points.debit(balance, entry_id(idempotency_key), "redeem", wanted, at)
    return Redemption(entry=entry, balance=balance + entry.points, replayed=False)
