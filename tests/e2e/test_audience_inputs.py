"""The inputs audiences read, through the real engagement process into the members and orders rows."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import members, orders
from shared.domain.model import ExternalTag
from shared.store.member_documents import records_from_json
from tests.builders import Stream
from tests.e2e.test_poison_records import dead_letters_of
from tests.support import ServiceProcess, produce

pytestmark = pytest.mark.integration


def line(sku: str, category: str | None = None) -> dict[str, object]:
    return {"sku": sku, "quantity": 1, "unit_price": "10.00", **({"category": category} if category else {})}


async def test_profile_attributes_categories_and_external_tags_reach_the_rows_and_a_foreign_tag_is_dead_lettered(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    stream = Stream()
    stream.add("member.joined", "m-1", 0, channel="app", gender="unknown", city="Hangzhou")
    stream.add(
        "member.profile_updated",
        "m-1",
        1,
        gender="female",
        birth_year=1990,
        province="Zhejiang",
        city="Ningbo",
        store_id="store-nb-01",
    )
    # o-1: the payment names its items, so its categories win; o-2: the creation's stand.
    stream.add("order.created", "m-1", 2, order_id="o-1", amount="20.00", currency="CNY", items=[line("a", "Cups")])
    paid_items = [line("a", "Tea Ware"), line("b", "tea-ware"), line("c")]
    stream.add("order.paid", "m-1", 3, order_id="o-1", amount="20.00", currency="CNY", items=paid_items)
    created_items = [line("d", "Tea & Cups"), line("e", "Gifts")]
    stream.add("order.created", "m-1", 4, order_id="o-2", amount="20.00", currency="CNY", items=created_items)
    stream.add("order.paid", "m-1", 5, order_id="o-2", amount="20.00", currency="CNY")
    # The removal is consumed before the older addition it follows in business time.
    stream.add("member.tags_changed", "m-1", 7, remove=["external.newsletter"])
    stream.add("member.tags_changed", "m-1", 6, add=["external.vip_club", "external.newsletter"])
    foreign = stream.add("member.tags_changed", "m-1", 8, add=["manual.vip"])
    service = start_service("engagement")
    await produce(topic_env, stream.events)

    [dead] = await dead_letters_of(service, topic_env)  # every input record committed: the rows are written
    assert json.loads(base64.b64decode(dead["value"]))["id"] == foreign["id"]
    assert dead["topic"] == topic_env["TOPIC_MEMBERS"]
    assert dead["error"].startswith("invalid_payload: data.add.0: String should match pattern")
    assert "manual.vip" not in dead["error"]

    async with engine.connect() as connection:
        member = (await connection.execute(select(members).where(members.c.member_id == "m-1"))).one()
        by_order = {row.order_id: row for row in await connection.execute(select(orders))}
    profile = (member.gender, member.birth_year, member.province, member.city, member.store_id)
    assert profile == ("female", 1990, "Zhejiang", "Ningbo", "store-nb-01")
    six, seven = (stream.start + timedelta(minutes=minutes) for minutes in (6, 7))
    assert records_from_json(ExternalTag, member.external_tags) == {
        "external.vip_club": ExternalTag(True, six),
        "external.newsletter": ExternalTag(False, seven),
    }
    assert member.last_event_at == seven
    assert (by_order["o-1"].created_categories, by_order["o-1"].paid_categories) == (["cups"], ["tea_ware"])
    assert (by_order["o-2"].created_categories, by_order["o-2"].paid_categories) == (["gifts", "tea___cups"], None)
