"""The operators' quarantine routes over HTTP on the real database: listing, paging and releasing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import members, quarantined_members
from shared.settings import Settings
from tests.builders import insert_rows, quarantined_member_rows
from tests.support import api_in_process

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer test-token"}
READER = {"Authorization": "Bearer reader-token"}
BASE = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
LIST = "/v1/admin/quarantine"


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_in_process(settings, read_tokens=("reader-token",), headers=AUTH) as http:
        yield http


async def test_the_list_is_oldest_first_then_by_key_and_pages_with_a_cursor(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # Two members quarantined at the same instant are ordered by (shop, member).
    await insert_rows(engine, *quarantined_member_rows("m-1", BASE + timedelta(hours=2), joined_at=BASE, shop="shop-b"))
    await insert_rows(engine, *quarantined_member_rows("m-9", BASE, joined_at=BASE, shop="shop-a"))
    await insert_rows(engine, *quarantined_member_rows("m-0", BASE + timedelta(hours=1), joined_at=BASE, shop="shop-b"))
    await insert_rows(engine, *quarantined_member_rows("m-2", BASE + timedelta(hours=1), joined_at=BASE, shop="shop-a"))
    await insert_rows(
        engine,
        *quarantined_member_rows(
            "m-ü",
            BASE + timedelta(hours=3),
            joined_at=BASE,
            shop="shop-c",
            events=4,
            last_event_at=BASE + timedelta(hours=5),
        ),
    )
    seen: list[tuple[str, str]] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get(LIST, params=params, headers=READER)  # a read-only token may list
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [(item["shop_id"], item["member_id"]) for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [("shop-a", "m-9"), ("shop-a", "m-2"), ("shop-b", "m-0"), ("shop-b", "m-1"), ("shop-c", "m-ü")]
    assert pages == 3
    last = (await client.get(LIST, params={"limit": 200})).json()["items"][-1]
    assert last == {
        "shop_id": "shop-c",
        "member_id": "m-ü",
        "reason": "processing_error",
        "detail": "ValueError while settling the member's stored state",
        "events": 4,
        "quarantined_at": last["quarantined_at"],
        "last_event_at": last["last_event_at"],
    }
    assert datetime.fromisoformat(last["quarantined_at"]) == BASE + timedelta(hours=3)
    assert datetime.fromisoformat(last["last_event_at"]) == BASE + timedelta(hours=5)


async def test_an_empty_quarantine_is_an_empty_page(client: httpx.AsyncClient) -> None:
    assert (await client.get(LIST)).json() == {"items": [], "next_cursor": None}


async def test_release_deletes_the_row_and_makes_the_member_due_in_one_go(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await insert_rows(
        engine,
        *quarantined_member_rows(
            "m-1", BASE, joined_at=BASE, shop="shop-a", events=2, detail="KeyError while settling"
        ),
    )
    await insert_rows(engine, *quarantined_member_rows("m-2", BASE, joined_at=BASE, shop="shop-a"))
    async with engine.connect() as connection:
        before = await connection.scalar(select(func.now()))
    response = await client.delete("/v1/admin/quarantine/shop-a/m-1")
    assert response.status_code == 200, response.text
    released = response.json()
    assert {k: released[k] for k in ("shop_id", "member_id", "reason", "detail", "events", "last_event_at")} == {
        "shop_id": "shop-a",
        "member_id": "m-1",
        "reason": "processing_error",
        "detail": "KeyError while settling",
        "events": 2,
        "last_event_at": None,
    }
    assert datetime.fromisoformat(released["quarantined_at"]) == BASE
    async with engine.connect() as connection:
        after = await connection.scalar(select(func.now()))
        left = (await connection.execute(select(quarantined_members.c.member_id))).scalars().all()
        rows = await connection.execute(select(members.c.member_id, members.c.next_due_at))
        due = {row.member_id: row.next_due_at for row in rows}
    assert left == ["m-2"]
    assert due["m-2"] is None  # the other member stays off the schedule
    assert due["m-1"] is not None
    assert before <= due["m-1"] <= after

    again = await client.delete("/v1/admin/quarantine/shop-a/m-1")
    assert (again.status_code, again.json()["error"]["code"]) == (404, "not_quarantined")
    unknown = await client.delete("/v1/admin/quarantine/shop-z/nobody")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_quarantined")


async def test_releasing_needs_a_full_token(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, *quarantined_member_rows("m-1", BASE, joined_at=BASE, shop="shop-a"))
    refused = await client.delete("/v1/admin/quarantine/shop-a/m-1", headers=READER)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
        assert (await client.delete("/v1/admin/quarantine/shop-a/m-1", headers=headers)).status_code == 401
        assert (await client.get(LIST, headers=headers)).status_code == 401
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(quarantined_members)) == 1
