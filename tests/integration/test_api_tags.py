"""Tag routes over HTTP on the real database: the catalogue, a shop's counts, and manual tags with expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import member_manual_tags, members
from shared.domain import tags
from shared.playbook_file import load_playbook
from shared.settings import Settings
from tests.builders import SHOP, joined_member_row
from tests.support import api_in_process

pytestmark = pytest.mark.integration

FULL = {"Authorization": "Bearer test-token"}
READ = {"Authorization": "Bearer reader-token"}
AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
INJECTIONS = ["'; DROP TABLE members; --", "manual.x'; DROP TABLE members; --", 'manual."x"', "manual.x\\", "manual.Ä"]


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_in_process(settings, read_tokens=("reader-token",), playbook=load_playbook(None)) as http:
        yield http


async def _members(engine: AsyncEngine, *rows: dict[str, Any]) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(members), list(rows))


async def _status_tags(client: httpx.AsyncClient, member: str) -> list[str]:
    answer = await client.get(f"/v1/shops/{SHOP}/members/{member}", headers=READ)
    assert answer.status_code == 200, answer.text
    found: list[str] = answer.json()["tags"]
    return found


def _error(answer: httpx.Response) -> str:
    code: str = answer.json()["error"]["code"]
    return code


async def test_the_catalogue_lists_every_built_in_tag_with_its_group(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/tags", headers=READ)
    assert answer.status_code == 200
    body = answer.json()
    ids = [item["id"] for item in body["items"]]
    assert body["next_cursor"] is None
    assert len(ids) == len(set(ids)) >= 100
    assert {d.id for d in tags.built_in()} <= set(ids)
    assert {"lifecycle.tier_vip", "engagement.score_gold", "profile.female", "dynamic.birthday_this_month"} <= set(ids)
    assert all(item["group"] == item["id"].split(".")[0] and item["description"] for item in body["items"])
    assert (await client.get("/v1/tags")).status_code == 401


async def test_a_shop_lists_its_members_tags_with_counts(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _members(
        engine,
        joined_member_row("m-1", AT, tags=["profile.female", "purchase.category_shoes", "external.crm_vip"]),
        joined_member_row("m-2", AT, tags=["profile.female"]),
        joined_member_row("m-3", AT, shop="shop-2", tags=["profile.female"]),
    )
    async with engine.begin() as connection:
        await connection.execute(
            insert(member_manual_tags),
            [
                {"shop_id": SHOP, "member_id": "m-1", "tag": "manual.gala", "expires_at": None},
                {"shop_id": SHOP, "member_id": "m-2", "tag": "manual.gala", "expires_at": AT},  # expired
            ],
        )
    answer = await client.get(f"/v1/shops/{SHOP}/tags", headers=READ)
    assert answer.status_code == 200
    counts = {item["id"]: item["members"] for item in answer.json()["items"]}
    assert counts["profile.female"] == 2  # the other shop's member is not counted
    assert counts["profile.male"] == 0  # catalogue tags nobody carries are listed with 0
    assert (counts["purchase.category_shoes"], counts["external.crm_vip"], counts["manual.gala"]) == (1, 1, 1)
    described = {item["id"]: item["description"] for item in answer.json()["items"]}
    assert "shoes" in described["purchase.category_shoes"]


async def test_a_manual_tag_is_set_shown_counted_and_removed(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _members(engine, joined_member_row("m-1", AT, tags=["profile.female"]))
    expires = datetime.now(UTC) + timedelta(days=30)
    path = f"/v1/shops/{SHOP}/members/m-1/tags/manual.vip_gala"

    answer = await client.put(path, json={"expires_at": expires.isoformat()}, headers=FULL)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["tag"], datetime.fromisoformat(body["expires_at"])) == ("manual.vip_gala", expires)
    assert await _status_tags(client, "m-1") == ["manual.vip_gala", "profile.female"]

    again = await client.put(path, headers=FULL)  # no body: the tag no longer expires
    assert (again.status_code, again.json()["expires_at"]) == (200, None)
    async with engine.connect() as connection:
        stored = (await connection.execute(text("SELECT count(*), max(expires_at) FROM member_manual_tags"))).one()
    assert tuple(stored) == (1, None)

    assert (await client.delete(path, headers=FULL)).status_code == 204
    assert await _status_tags(client, "m-1") == ["profile.female"]
    assert (await client.delete(path, headers=FULL)).status_code == 204  # removing it again changes nothing


async def test_an_expired_manual_tag_stops_counting(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _members(engine, joined_member_row("m-1", AT))
    async with engine.begin() as connection:
        await connection.execute(
            insert(member_manual_tags),
            [
                {"shop_id": SHOP, "member_id": "m-1", "tag": "manual.old", "expires_at": datetime.now(UTC)},
                {"shop_id": SHOP, "member_id": "m-1", "tag": "manual.open", "expires_at": None},
            ],
        )
    assert await _status_tags(client, "m-1") == ["manual.open"]


@pytest.mark.parametrize(
    ("tag", "body", "status", "code"),
    [
        ("profile.female", None, 422, "invalid_tag"),
        ("external.crm_vip", None, 422, "invalid_tag"),
        ("manual.", None, 422, "invalid_tag"),
        ("manual.UPPER", None, 422, "invalid_tag"),
        ("manual." + "x" * 65, None, 422, "invalid_tag"),
        *((injection, None, 422, "invalid_tag") for injection in INJECTIONS),
        ("manual.ok", {"expires_at": "2020-01-01T00:00:00Z"}, 422, "time_out_of_range"),
        ("manual.ok", {"expires_at": "1999-01-01T00:00:00Z"}, 422, "time_out_of_range"),
        ("manual.ok", {"expires_at": "next week"}, 422, "invalid_request"),
        ("manual.ok", {"expires_at": "2030-01-01T00:00:00"}, 422, "invalid_request"),  # no offset
    ],
)
async def test_bad_manual_tags_are_refused_with_a_code(
    client: httpx.AsyncClient, engine: AsyncEngine, tag: str, body: dict[str, str] | None, status: int, code: str
) -> None:
    await _members(engine, joined_member_row("m-1", AT))
    answer = await client.put(f"/v1/shops/{SHOP}/members/m-1/tags/{tag}", json=body, headers=FULL)
    assert (answer.status_code, _error(answer)) == (status, code), answer.text
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM members")) == 1  # the table is still there
        assert await connection.scalar(text("SELECT count(*) FROM member_manual_tags")) == 0


async def test_manual_tags_need_a_known_member_and_a_full_token(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _members(engine, joined_member_row("m-1", AT))
    unknown = await client.put(f"/v1/shops/{SHOP}/members/m-404/tags/manual.x", headers=FULL)
    assert (unknown.status_code, _error(unknown)) == (404, "member_not_found")
    gone = await client.delete(f"/v1/shops/{SHOP}/members/m-404/tags/manual.x", headers=FULL)
    assert (gone.status_code, _error(gone)) == (404, "member_not_found")
    read_only = await client.put(f"/v1/shops/{SHOP}/members/m-1/tags/manual.x", headers=READ)
    assert (read_only.status_code, _error(read_only)) == (403, "forbidden")
    anonymous = await client.delete(f"/v1/shops/{SHOP}/members/m-1/tags/manual.x")
    assert (anonymous.status_code, _error(anonymous)) == (401, "unauthorized")
    shop_list = await client.get(f"/v1/shops/{SHOP}/tags")
    assert shop_list.status_code == 401
