"""Smoke: one member's order journey through the real engagement process."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import members
from tests.builders import Stream
from tests.support import ServiceProcess, eventually, produce, read_to_end, wait_until_processed

pytestmark = pytest.mark.integration


async def test_first_paid_order_yields_confirmation_and_first_purchase_gift(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    stream = Stream()
    stream.add("member.joined", "m-1", 0, channel="online")
    stream.add("order.paid", "m-1", 5, order_id="o-1", amount="129.00", currency="CNY")
    start_service("engagement")
    await produce(topic_env, stream.events)

    await wait_until_processed(engine, 2)  # both events applied, every action published
    actions = await read_to_end(topic_env["TOPIC_ACTIONS"])
    assert sorted(a["rule"] for a in actions) == ["first_purchase_gift", "payment_confirmation"]

    async def member_row() -> object:
        async with engine.connect() as connection:
            return (await connection.execute(select(members).where(members.c.member_id == "m-1"))).first()

    row = await eventually(member_row)
    assert str(row.net_spend) == "129.00"
    assert row.paid_orders == 1
    assert row.tier == "member"
