"""Points redemption: the rules in the domain, and the use case booking through a unit of work."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.model import LedgerEntry, Member
from shared.domain.playbook import ShopPlaybook
from shared.domain.redemption import RedemptionRefusedError, entry_id, redeem
from shared.usecases.points_redemption import redeem_points
from tests.fakes import InMemoryStore

AT = datetime(2026, 5, 1, tzinfo=UTC)
KEY = ("shop-1", "m-1")


def test_a_redemption_takes_the_points_off_the_balance_with_a_line_named_by_the_key() -> None:
    done = redeem(500, "k-1", 200, AT, booked=None)

    assert (done.balance, done.replayed) == (300, False)
    assert done.entry == LedgerEntry(entry_id="redeem:k-1", kind="redeem", points=-200, at=AT)


def test_a_repeated_key_answers_the_first_booking_and_books_nothing() -> None:
    first = LedgerEntry(entry_id=entry_id("k-1"), kind="redeem", points=-200, at=AT)

    done = redeem(300, "k-1", 200, AT, booked=first)

    assert (done.entry, done.balance, done.replayed) == (first, 300, True)


def test_a_key_reused_for_another_amount_is_refused() -> None:
    first = LedgerEntry(entry_id=entry_id("k-1"), kind="redeem", points=-200, at=AT)

    with pytest.raises(RedemptionRefusedError) as refused:
        redeem(300, "k-1", 150, AT, booked=first)

    assert refused.value.code == "idempotency_key_reused"


@pytest.mark.parametrize(("balance", "wanted"), [(0, 1), (199, 200)])
def test_a_short_balance_is_refused(balance: int, wanted: int) -> None:
    with pytest.raises(RedemptionRefusedError) as refused:
        redeem(balance, "k-1", wanted, AT, booked=None)

    assert refused.value.code == "insufficient_points"


async def test_the_use_case_books_once_and_keeps_the_ledger_and_the_balance_in_step() -> None:
    store = InMemoryStore()
    store.members[KEY] = Member(shop_id=KEY[0], member_id=KEY[1], points_balance=500, last_event_at=AT)

    first = await redeem_points(store.units(), ShopPlaybook(), KEY, "k-1", 200, AT)
    again = await redeem_points(store.units(), ShopPlaybook(), KEY, "k-1", 200, AT)

    assert (first.balance, first.replayed, again.balance, again.replayed) == (300, False, 300, True)
    assert store.members[KEY].points_balance == 300
    assert [line.points for line in store.ledgers[KEY]] == [-200]
    assert "engagement.points_holder" in store.members[KEY].tags


async def test_redeeming_the_whole_balance_moves_the_members_points_tags() -> None:
    store = InMemoryStore()
    store.members[KEY] = Member(shop_id=KEY[0], member_id=KEY[1], points_balance=1200, last_event_at=AT)

    await redeem_points(store.units(), ShopPlaybook(), KEY, "k-1", 1200, AT)

    tags = store.members[KEY].tags
    assert "engagement.points_none" in tags
    assert not {"engagement.points_holder", "engagement.points_1000_plus"} & set(tags)


async def test_the_use_case_refuses_an_unknown_member_without_creating_it() -> None:
    store = InMemoryStore()

    with pytest.raises(RedemptionRefusedError) as refused:
        await redeem_points(store.units(), ShopPlaybook(), KEY, "k-1", 1, AT)

    assert refused.value.code == "member_not_found"
    assert store.members == {}
