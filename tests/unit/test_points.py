"""The points ledger's arithmetic: rounding, proportional reversal, debits, FIFO lots and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.model import LedgerEntry, LedgerKind
from shared.domain.points import (
    Lot,
    balance,
    credit,
    debit,
    expiring_at,
    expiring_within,
    next_expiry,
    open_lots,
    points_for,
    reversal_target,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


# --- earning and reversal --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "per_unit", "expected"),
    [
        ("99.99", "1", 99),
        ("100.00", "1", 100),
        ("0.99", "1", 0),
        ("19.90", "0.5", 9),
        ("10.00", "1.5", 15),
        ("33.33", "3", 99),
        ("0", "1", 0),
        ("-50.00", "1", 0),
        ("50.00", "-1", 0),
        ("50.00", "0", 0),
        ("NaN", "1", 0),
        ("Infinity", "1", 0),
    ],
)
def test_points_for_rounds_down_and_is_never_negative(amount: str, per_unit: str, expected: int) -> None:
    assert points_for(Decimal(amount), Decimal(per_unit)) == expected


@pytest.mark.parametrize(
    ("earned", "paid", "refunded", "expected"),
    [
        (100, "100.00", "0", 0),
        (100, "100.00", "100.00", 100),
        (100, "100.00", "33.33", 33),
        (100, "200.00", "1.00", 1),  # 0.5 rounds half up
        (100, "200.00", "0.99", 0),  # 0.495 rounds down
        (99, "100.00", "50.00", 50),  # 49.5 rounds half up
        (3, "3.00", "1.50", 2),  # 1.5 -> 2
        (100, "100.00", "150.00", 100),  # refunds above paid clamp to earned
        (100, "100.00", "-5.00", 0),
        (100, "0", "10.00", 0),
        (100, "-1.00", "10.00", 0),
        (0, "100.00", "100.00", 0),
        (-5, "100.00", "100.00", 0),
        (100, "NaN", "10.00", 0),
        (100, "100.00", "NaN", 0),
    ],
)
def test_reversal_target(earned: int, paid: str, refunded: str, expected: int) -> None:
    assert reversal_target(earned, Decimal(paid), Decimal(refunded)) == expected


def test_reversal_half_up_is_exact_for_large_figures() -> None:
    # A cent below half of a huge order is below half: no float rounding turns it into 0.5.
    paid = Decimal("20000000000000000000.00")
    assert reversal_target(1, paid, paid / 2) == 1
    assert reversal_target(1, paid, paid / 2 - Decimal("0.01")) == 0


def test_partial_refunds_reverse_the_same_as_one_full_refund() -> None:
    earned, paid = 99, Decimal("99.99")
    booked, refunded = 0, Decimal("0")
    for part in ("33.33", "33.33", "0.01", "33.32"):
        refunded += Decimal(part)
        target = reversal_target(earned, paid, refunded)
        assert target >= booked
        booked += target - booked
    assert refunded == paid
    assert booked == reversal_target(earned, paid, paid) == earned


@given(
    earned=st.integers(min_value=0, max_value=100_000),
    paid_cents=st.integers(min_value=1, max_value=10_000_000),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000_000), max_size=8),
)
def test_partial_refunds_never_drift_from_one_full_refund(earned: int, paid_cents: int, cuts: list[int]) -> None:
    paid = Decimal(paid_cents) / 100
    points = sorted({min(c, paid_cents) for c in cuts} | {paid_cents})
    booked, previous = 0, 0
    for cents in points:
        target = reversal_target(earned, paid, Decimal(cents) / 100)
        assert target >= previous  # more refunded never gives points back
        booked += target - previous
        previous = target
    assert booked == earned


# --- credits and debits ----------------------------------------------------------------------------------


def test_credit_builds_a_credit_line() -> None:
    entry = credit("earn:o-1", "earn", 120, T0, T0 + YEAR)
    assert entry == LedgerEntry("earn:o-1", "earn", 120, T0, T0 + YEAR, 0)


@pytest.mark.parametrize(("kind", "points"), [("earn", 0), ("gift", -5), ("redeem", 10), ("expire", 10)])
def test_credit_rejects_non_positive_points_and_debit_kinds(kind: LedgerKind, points: int) -> None:
    with pytest.raises(ValueError, match="credit"):
        credit("x", kind, points, T0, T0 + YEAR)


def test_debit_takes_what_the_balance_allows_and_records_the_shortfall() -> None:
    assert debit(100, "redeem:k1", "redeem", 30, T0) == LedgerEntry("redeem:k1", "redeem", -30, T0, None, 0)
    assert debit(20, "reverse:r1", "reverse", 30, T0) == LedgerEntry("reverse:r1", "reverse", -20, T0, None, 10)
    assert debit(0, "reverse:r2", "reverse", 30, T0) == LedgerEntry("reverse:r2", "reverse", 0, T0, None, 30)
    assert debit(-7, "reverse:r3", "reverse", 5, T0).points == 0  # an inconsistent balance takes nothing
    assert debit(50, "redeem:k2", "redeem", 0, T0) == LedgerEntry("redeem:k2", "redeem", 0, T0, None, 0)


@pytest.mark.parametrize(("kind", "wanted"), [("redeem", -1), ("earn", 10), ("gift", 10)])
def test_debit_rejects_negative_amounts_and_credit_kinds(kind: LedgerKind, wanted: int) -> None:
    with pytest.raises(ValueError, match="debit"):
        debit(100, "x", kind, wanted, T0)


# --- lots, FIFO and expiry -------------------------------------------------------------------------------


def three_credits() -> list[LedgerEntry]:
    return [
        credit("earn:o-1", "earn", 100, day(0), day(0) + YEAR),
        credit("earn:o-2", "earn", 50, day(10), day(10) + YEAR),
        credit("gift:welcome", "gift", 30, day(20), day(20) + YEAR),
    ]


def test_every_credit_opens_a_lot_oldest_first_whatever_the_input_order() -> None:
    entries = three_credits()
    assert open_lots(reversed(entries)) == [
        Lot(day(0), day(0) + YEAR, 100),
        Lot(day(10), day(10) + YEAR, 50),
        Lot(day(20), day(20) + YEAR, 30),
    ]
    assert balance(entries) == 180


def test_redeem_takes_the_oldest_lot_first_so_the_next_expiry_moves_on() -> None:
    entries = three_credits()
    assert next_expiry(entries) == day(0) + YEAR
    entries.append(debit(balance(entries), "redeem:k1", "redeem", 120, day(30)))
    assert open_lots(entries) == [Lot(day(10), day(10) + YEAR, 30), Lot(day(20), day(20) + YEAR, 30)]
    assert next_expiry(entries) == day(10) + YEAR
    assert balance(entries) == 60


def test_reversal_also_consumes_fifo() -> None:
    entries = [*three_credits(), debit(180, "reverse:r1", "reverse", 100, day(30))]
    assert [lot.remaining for lot in open_lots(entries)] == [50, 30]


def test_same_instant_entries_replay_by_entry_id() -> None:
    entries = [
        credit("earn:b", "earn", 10, T0, T0 + YEAR),
        credit("earn:a", "earn", 20, T0, T0 + 2 * YEAR),
    ]
    assert [lot.remaining for lot in open_lots(entries)] == [20, 10]


def test_expiry_takes_only_the_lots_that_are_due() -> None:
    entries = three_credits()
    at = day(10) + YEAR
    assert expiring_at(entries, at - timedelta(seconds=1)) == 100
    assert expiring_at(entries, at) == 150
    entries.append(debit(balance(entries), "expire:1", "expire", expiring_at(entries, at), at))
    assert open_lots(entries) == [Lot(day(20), day(20) + YEAR, 30)]
    assert balance(entries) == 30
    assert next_expiry(entries) == day(20) + YEAR
    assert expiring_at(entries, at) == 0


def test_expiry_after_a_partial_redeem_takes_what_is_left_of_the_lot() -> None:
    entries = [*three_credits(), debit(180, "redeem:k1", "redeem", 40, day(30))]
    at = day(0) + YEAR
    assert expiring_at(entries, at) == 60
    entries.append(debit(balance(entries), "expire:1", "expire", 60, at))
    assert sum(lot.remaining for lot in open_lots(entries)) == balance(entries) == 80


def test_expiry_skips_a_newer_lot_that_expires_sooner() -> None:
    entries = [
        credit("earn:o-1", "earn", 100, day(0), day(0) + YEAR),
        credit("gift:short", "gift", 20, day(5), day(35)),
    ]
    assert next_expiry(entries) == day(35)
    entries.append(debit(120, "expire:1", "expire", expiring_at(entries, day(35)), day(35)))
    assert open_lots(entries) == [Lot(day(0), day(0) + YEAR, 100)]


def test_expiring_within_is_open_below_and_closed_above() -> None:
    entries = three_credits()
    start = day(0) + YEAR
    assert expiring_within(entries, start, day(10) + YEAR) == 50
    assert expiring_within(entries, start - timedelta(seconds=1), day(20) + YEAR) == 180
    assert expiring_within(entries, start, start) == 0


def test_inconsistent_input_empties_the_lots_without_raising() -> None:
    entries = [
        *three_credits(),
        LedgerEntry("redeem:big", "redeem", -1000, day(30)),
        credit("earn:o-3", "earn", 10, day(40), day(40) + YEAR),
        LedgerEntry("expire:big", "expire", -500, day(40) + YEAR),
        LedgerEntry("earn:no-expiry", "earn", 5, day(50)),
    ]
    assert open_lots(entries) == [Lot(day(50), datetime.max.replace(tzinfo=UTC), 5)]
    assert next_expiry(entries) is None
    assert balance(entries) == 180 - 1000 + 10 - 500 + 5


def test_empty_ledger() -> None:
    assert open_lots([]) == []
    assert balance([]) == 0
    assert next_expiry([]) is None
    assert expiring_at([], T0) == 0
    assert expiring_within([], T0, T0 + YEAR) == 0


# --- properties ------------------------------------------------------------------------------------------

operation = st.one_of(
    st.tuples(st.just("credit"), st.integers(min_value=1, max_value=500), st.integers(min_value=1, max_value=400)),
    st.tuples(st.sampled_from(["redeem", "reverse"]), st.integers(min_value=0, max_value=800), st.just(0)),
    st.tuples(st.just("expire"), st.just(0), st.just(0)),
)


@given(
    ops=st.lists(operation, max_size=40),
    steps=st.lists(st.integers(min_value=1, max_value=120), min_size=40, max_size=40),
)
def test_ledger_properties(ops: list[tuple[str, int, int]], steps: list[int]) -> None:
    entries: list[LedgerEntry] = []
    at = T0
    for index, ((op, amount, lifetime), step) in enumerate(zip(ops, steps, strict=False)):
        at += timedelta(days=step)
        entry_id = f"{op}:{index:03d}"
        if op == "credit":
            entries.append(credit(entry_id, "earn", amount, at, at + timedelta(days=lifetime)))
        else:
            kind: LedgerKind = "expire" if op == "expire" else ("redeem" if op == "redeem" else "reverse")
            wanted = expiring_at(entries, at) if kind == "expire" else amount
            entry = debit(balance(entries), entry_id, kind, wanted, at)
            assert entry.points <= 0
            assert entry.shortfall >= 0
            assert -entry.points + entry.shortfall == wanted  # taken + shortfall; shortfall is positive
            entries.append(entry)
            if kind == "expire":
                assert expiring_at(entries, at) == 0  # every due lot is gone
        assert balance(entries) >= 0
        lots = open_lots(entries)
        assert all(lot.remaining > 0 for lot in lots)
        assert sum(lot.remaining for lot in lots) == balance(entries)
        assert [lot.earned_at for lot in lots] == sorted(lot.earned_at for lot in lots)
        expiry = next_expiry(entries)
        assert (expiry is None) == (not lots)


@given(
    balance_=st.integers(min_value=-100, max_value=1000),
    wanted=st.integers(min_value=0, max_value=1000),
    kind=st.sampled_from(["reverse", "redeem", "expire"]),
)
def test_debit_taken_plus_shortfall_is_wanted(balance_: int, wanted: int, kind: LedgerKind) -> None:
    entry = debit(balance_, "d", kind, wanted, T0)
    assert -entry.points + entry.shortfall == wanted  # taken + shortfall; shortfall is positive
    assert 0 <= -entry.points <= max(0, balance_)
    assert entry.shortfall >= 0
