"""Tags follow a member's events and the passage of business time, through Kafka, the engagement service,
the scheduler route and the member status, as a client sees them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import SHANGHAI
from tests.e2e.test_member_lifecycle import Shop, event
from tests.support import ServiceProcess

pytestmark = pytest.mark.integration

JOINED = datetime(2025, 1, 10, 9, 0, tzinfo=SHANGHAI)
MEMBER = "m-tags"


def day(days: float) -> datetime:
    return JOINED + timedelta(days=days)


async def _tags(shop: Shop) -> set[str]:
    return set((await shop.get(MEMBER))["tags"])


async def test_tags_follow_events_and_the_scheduler(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess]
) -> None:
    shop = Shop(start_service, engine)
    await shop.ready()
    cny = {"currency": "CNY"}
    await shop.send(
        event("member.joined", MEMBER, JOINED, 1, channel="offline", birthday="02-20", marketing_consent=True),
        event("order.created", MEMBER, day(0.1), 2, order_id="t-1", amount="120.00", **cny),
        event("order.paid", MEMBER, day(0.11), 3, order_id="t-1", amount="120.00", **cny),
        event("review.posted", MEMBER, day(2), 4, order_id="t-1", review_id="r-1", rating=5, text_length=120,
              photo_count=1),
    )  # fmt: skip
    tags = await _tags(shop)
    assert {
        "profile.offline_member",
        "purchase.first_time_buyer",
        "purchase.spend_1r_to_3r",
        "engagement.photo_reviewer",
        "engagement.five_star_reviewer",
        "dynamic.ordered_last_7_days",
        "dynamic.joined_last_7_days",
        "dynamic.birthday_next_month",
        "lifecycle.stage_new",
        "lifecycle.tier_member",
    } <= tags
    assert not {"purchase.repeat_buyer", "dynamic.birthday_this_month", "profile.online_member"} & tags

    # Time alone: a week on, the 7-day bands have ended; the 30-day ones hold.
    await shop.schedule(day(10))
    tags = await _tags(shop)
    assert {"dynamic.ordered_last_30_days", "dynamic.joined_last_30_days", "dynamic.birthday_next_month"} <= tags
    assert not {"dynamic.ordered_last_7_days", "dynamic.joined_last_7_days"} & tags

    # 1 February, local time: the birthday month has begun.
    await shop.schedule(datetime(2025, 2, 1, 0, 30, tzinfo=SHANGHAI))
    tags = await _tags(shop)
    assert "dynamic.birthday_this_month" in tags
    assert "dynamic.birthday_next_month" not in tags

    # A second order moves the purchase tags at once, on the event path.
    await shop.send(
        event("order.created", MEMBER, day(25), 5, order_id="t-2", amount="200.00", **cny),
        event("order.paid", MEMBER, day(25.01), 6, order_id="t-2", amount="200.00", **cny),
    )
    tags = await _tags(shop)
    assert {"purchase.repeat_buyer", "purchase.spend_3r_to_5r", "purchase.repurchase_within_30_days"} <= tags
    assert not {"purchase.first_time_buyer", "purchase.spend_1r_to_3r"} & tags

    # A manual tag shows in the status next to the computed ones; the stored column holds the computed ones.
    put = await shop.client.put(f"/v1/shops/shop-1/members/{MEMBER}/tags/manual.store_event")
    assert put.status_code == 200, put.text
    tags = await _tags(shop)
    async with engine.connect() as connection:
        stored = (
            await connection.execute(text("SELECT tags FROM members WHERE member_id = :m"), {"m": MEMBER})
        ).scalar_one()
    assert tags == {*stored, "manual.store_event"}
    assert list(stored) == sorted(stored)
