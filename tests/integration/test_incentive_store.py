"""The wallet, decisions and budgets as the event path and the scheduler write them to PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.engagement.processor import BatchProcessor
from shared.db.schema import budget_spend, coupons, decisions, outbox, unredeemed_codes
from shared.domain.playbook import Playbook
from shared.playbook_file import parse_playbook
from shared.store.unit_of_work import SqlUnitOfWork
from shared.usecases.scheduler_run import Scheduler
from tests.builders import Stream, consumer_records
from tests.workload import first_purchase_code

pytestmark = pytest.mark.integration

ONE_COUPON = {rule: {"enabled": False} for rule in ("repurchase_gift", "one_month_gift", "hundred_day_gift")}


def playbook(rules: dict[str, Any] | None = None) -> Playbook:
    return parse_playbook({"defaults": {"rules": {**ONE_COUPON, **(rules or {})}}})


def processor(engine: AsyncEngine, book: Playbook, lanes: int = 1) -> BatchProcessor:
    return BatchProcessor(SqlUnitOfWork.factory(engine), book, max_record_bytes=1 << 20, lanes=lanes)


async def rows(engine: AsyncEngine, query: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(query)).all())


def paid(stream: Stream, member: str, order: str, minutes: float, amount: str = "120.00", **data: Any) -> None:
    stream.add("order.paid", member, minutes, order_id=order, amount=amount, currency="CNY", **data)


async def test_a_coupon_is_issued_redeemed_by_its_member_and_counted_as_shared_by_another(engine: AsyncEngine) -> None:
    book = playbook()
    stream = Stream()
    paid(stream, "m-1", "o-1", 0)
    await processor(engine, book).process(consumer_records(stream.events))
    ((code, status, value, action_id),) = await rows(
        engine, select(coupons.c.code, coupons.c.status, coupons.c.value, coupons.c.action_id)
    )
    assert (status, value) == ("issued", Decimal("10.00"))
    ((outcome, decided_action, version),) = await rows(
        engine, select(decisions.c.outcome, decisions.c.action_id, decisions.c.playbook_version)
    )
    assert (outcome, decided_action, version) == ("emitted", action_id, 0)

    later = Stream()
    paid(later, "m-2", "o-2", 60, coupon_codes=[code])  # another member's code
    paid(later, "m-1", "o-3", 120, amount="150.00", coupon_codes=[code])
    records = consumer_records(later.events)
    await processor(engine, book).process(records)
    await processor(engine, book).process(records)  # delivered again: nothing doubles

    redeemed = select(coupons.c.status, coupons.c.order_id, coupons.c.member_id).where(coupons.c.code == code)
    assert await rows(engine, redeemed) == [("redeemed", "o-3", "m-1")]
    named = select(unredeemed_codes.c.code, unredeemed_codes.c.order_id, unredeemed_codes.c.member_id)
    assert await rows(engine, named) == [(code, "o-2", "m-2")]
    counted = await rows(engine, select(decisions.c.member_id, func.count()).group_by(decisions.c.member_id))
    assert sorted(counted) == [("m-1", 1), ("m-2", 1)]


async def test_a_budget_runs_out_across_lanes_and_batches_and_never_overspends(engine: AsyncEngine) -> None:
    book = playbook({"first_purchase_gift": {"budget": {"amount": "50.00", "period": "P1M"}}})
    members = [f"m-{i}" for i in range(12)]
    first, second = Stream(), Stream()
    for i, member in enumerate(members[:6]):
        paid(first, member, f"o-{member}", i)
    for i, member in enumerate(members[6:]):
        paid(second, member, f"o-{member}", 10 + i)
    # Two processors (as two service instances would) with two lanes each, at the same time.
    await asyncio.gather(
        processor(engine, book, lanes=2).process(consumer_records(first.events)),
        processor(engine, book, lanes=2).process(consumer_records(second.events, topic="commerce.other")),
    )
    outcomes = dict(await rows(engine, select(decisions.c.outcome, func.count()).group_by(decisions.c.outcome)))
    assert outcomes == {"emitted": 5, "budget_exhausted": 7}
    assert await rows(engine, select(budget_spend.c.scope, budget_spend.c.spent, budget_spend.c.issued)) == [
        ("first_purchase_gift", Decimal("50.00"), 5)
    ]
    assert len(await rows(engine, select(coupons.c.code))) == 5
    reasons = await rows(engine, select(decisions.c.reason).where(decisions.c.outcome == "budget_exhausted"))
    assert {reason for (reason,) in reasons} == {"50.00 of the P1M budget of 50.00 spent; this incentive is 10.00"}


async def test_the_scheduler_reminds_of_and_expires_an_unredeemed_coupon(engine: AsyncEngine) -> None:
    book = playbook()
    stream = Stream()
    paid(stream, "m-1", "o-1", 0)
    await processor(engine, book).process(consumer_records(stream.events))
    ((expires_at,),) = await rows(engine, select(coupons.c.expires_at))
    assert expires_at == stream.start + timedelta(days=30)
    scheduler = Scheduler(SqlUnitOfWork.factory(engine), book)

    await scheduler.run(expires_at - timedelta(days=3))
    reminders = await rows(
        engine, select(outbox.c.payload).where(text("payload::jsonb->>'rule' = 'coupon_expiry_reminder'"))
    )
    assert len(reminders) == 1
    assert await rows(engine, select(coupons.c.status)) == [("issued",)]

    await scheduler.run(expires_at)
    assert await rows(engine, select(coupons.c.status)) == [("expired",)]
    again = await scheduler.run(expires_at + timedelta(days=1))
    assert again.by_rule["coupon_expiry_reminder"] == 0


async def test_a_held_out_member_is_recorded_and_gets_nothing(engine: AsyncEngine) -> None:
    book = playbook({"first_purchase_gift": {"holdout_percent": 50}})
    stream = Stream()
    for i in range(20):
        paid(stream, f"m-{i}", f"o-{i}", i)
    await processor(engine, book).process(consumer_records(stream.events))
    outcomes = dict(await rows(engine, select(decisions.c.outcome, func.count()).group_by(decisions.c.outcome)))
    assert set(outcomes) == {"emitted", "holdout"}
    assert len(await rows(engine, select(coupons.c.code))) == outcomes["emitted"]
    gifts = await rows(engine, select(outbox.c.key).where(text("payload::jsonb->>'rule' = 'first_purchase_gift'")))
    assert len(gifts) == outcomes["emitted"]


async def test_a_coupon_issued_and_redeemed_in_one_batch_is_written_redeemed(engine: AsyncEngine) -> None:
    """A batch's writes travel in one statement whose parts do not see each other's rows."""
    book = playbook()
    stream = Stream()
    paid(stream, "m-1", "o-1", 0)
    code = first_purchase_code(stream.shop, "m-1")  # the code the first order's gift will have
    paid(stream, "m-1", "o-2", 60, amount="150.00", coupon_codes=[code])
    await processor(engine, book).process(consumer_records(stream.events))
    assert await rows(engine, select(coupons.c.code, coupons.c.status, coupons.c.order_id)) == [
        (code, "redeemed", "o-2")
    ]
    assert await rows(engine, select(unredeemed_codes.c.code)) == []
