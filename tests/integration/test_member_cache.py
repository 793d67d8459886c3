"""Members kept in memory between batches are never staler than the database, nor changed by a rollback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.engagement.processor import BatchProcessor
from shared.db.schema import members
from shared.domain.playbook import ShopPlaybook
from shared.store.member_cache import MemberCache
from shared.store.unit_of_work import SqlUnitOfWork
from shared.usecases.points_redemption import redeem_points
from tests.builders import Stream, consumer_records, first_order
from tests.unit.test_batch_processor import PLAYBOOK

pytestmark = pytest.mark.integration

KEY = ("shop-1", "m-1")


def cached_processor(engine: AsyncEngine, cache: MemberCache) -> BatchProcessor:
    return BatchProcessor(SqlUnitOfWork.factory(engine, cache), PLAYBOOK, max_record_bytes=1 << 20)


async def stored(engine: AsyncEngine, column: str) -> object:
    async with engine.connect() as connection:
        return await connection.scalar(
            select(members.c[column]).where(members.c.shop_id == KEY[0], members.c.member_id == KEY[1])
        )


async def test_a_member_written_by_this_process_is_served_from_memory_the_next_batch(engine: AsyncEngine) -> None:
    cache = MemberCache(100)
    processor = cached_processor(engine, cache)
    stream = Stream()
    first_order(stream, "m-1")
    await processor.process(consumer_records(stream.events[:2]))
    assert (len(cache), cache.hits) == (1, 0)

    await processor.process(consumer_records(stream.events[2:]))

    assert cache.hits == 1
    assert await stored(engine, "paid_orders") == 1


async def test_a_change_by_another_writer_is_seen_by_the_next_batch(engine: AsyncEngine) -> None:
    cache = MemberCache(100)
    processor = cached_processor(engine, cache)
    stream = Stream()
    first_order(stream, "m-1")
    await processor.process(consumer_records(stream.events))
    balance = int(await stored(engine, "points_balance"))  # type: ignore[call-overload]
    assert balance > 10
    await redeem_points(SqlUnitOfWork.factory(engine), ShopPlaybook(), KEY, "k-1", 10, datetime(2026, 3, 2, tzinfo=UTC))
    async with engine.begin() as connection:  # an operator's repair, outside the service
        await connection.execute(text("UPDATE members SET channel = 'sms' WHERE member_id = 'm-1'"))

    later = Stream()
    later.add("order.paid", "m-1", 60 * 24, order_id="m-1-o2", amount="50.00", currency="CNY")
    await processor.process(consumer_records(later.events))

    assert cache.hits == 0
    assert await stored(engine, "channel") == "sms"  # not overwritten by a stale copy
    assert await stored(engine, "points_balance") == balance - 10 + 50


async def test_a_batch_that_rolls_back_leaves_nothing_of_its_changes_in_memory(engine: AsyncEngine) -> None:
    cache = MemberCache(100)
    processor = cached_processor(engine, cache)
    stream = Stream()
    first_order(stream, "m-1")
    await processor.process(consumer_records(stream.events))
    failing = Stream()
    failing.add("order.paid", "m-1", 60 * 24, order_id="m-1-o2", amount="50.00", currency="CNY")

    async with SqlUnitOfWork(engine, cache) as uow:  # a batch that applies the payment, then fails
        loaded = await uow.load_members([KEY])
        loaded.contexts[KEY].member.paid_orders += 1
        uow.save(loaded.contexts.values())
    assert len(cache) == 0  # taken out while in use, not put back without a commit

    await processor.process(consumer_records(failing.events))

    assert await stored(engine, "paid_orders") == 2
