"""The segment routes over HTTP on the real database: saving, versions, archive, sizes, pages, exports, preview.

Hostile text (SQL fragments, quotes, backslashes, NUL) goes into every field that reaches
SQL; each answer is a 4xx or a correct result, and the members table is still there.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import member_manual_tags, members, segment_versions, segments
from shared.settings import Settings
from tests.support import api_in_process

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer test-token"}
READER = {"Authorization": "Bearer reader-token"}
SHOP = "shop-1"
BASE = f"/v1/shops/{SHOP}/segments"
NOW = datetime.now(UTC)
INJECTION = "'; DROP TABLE members; --"
HOSTILE = [INJECTION, "O'Brien", 'say "hi"', "back\\slash", "a,b", "%", "_", "$1", "\\x00"]
VIP = {"field": "tier", "op": ">=", "value": "vip"}
BIG = "<a number too large for a float>"


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_in_process(settings, read_tokens=("reader-token",), headers=AUTH) as http:
        yield http


async def _members(engine: AsyncEngine, *rows: dict[str, Any], shop: str = SHOP) -> None:
    """Rows of members; each row may name its own columns."""
    async with engine.begin() as connection:
        for row in rows:
            await connection.execute(insert(members).values(shop_id=shop, **row))


async def _member_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(members)) or 0)


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    return message


async def _create(client: httpx.AsyncClient, definition: Any, name: str = "VIPs", **extra: Any) -> dict[str, Any]:
    response = await client.post(BASE, json={"name": name, "definition": definition, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- saving, reading, versions, archive -----------------------------------------------------------


async def test_create_read_revise_and_archive(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _members(
        engine,
        {"member_id": "m-1", "tier": "vip"},
        {"member_id": "m-2", "tier": "supreme"},
        {"member_id": "m-3", "tier": "member"},
        {"member_id": "m-4"},
    )
    created = await _create(client, VIP, description="Top of the ladder")
    assert re.fullmatch(r"seg_[0-9a-f]{24}", created["segment_id"])
    assert created["name"] == "VIPs"
    assert created["description"] == "Top of the ladder"
    assert created["definition"] == VIP
    assert created["version"] == created["latest_version"] == 1
    assert created["archived_at"] is None
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None
    segment = f"{BASE}/{created['segment_id']}"

    detail = (await client.get(segment, headers=READER)).json()  # a read-only token may read
    assert detail == {**created, "size": 2}

    # A new version; the first stays readable as stored.
    revised_definition = {"any": [VIP, {"field": "tier", "op": "=", "value": "member"}]}
    response = await client.put(segment, json={"name": "VIPs and members", "definition": revised_definition})
    assert response.status_code == 200, response.text
    revised = response.json()
    assert (revised["version"], revised["latest_version"], revised["name"]) == (2, 2, "VIPs and members")
    assert revised["description"] is None  # PUT replaces: an omitted description is none
    assert revised["created_at"] == created["created_at"]
    assert (await client.get(segment)).json()["size"] == 3
    first = (await client.get(segment, params={"version": 1})).json()
    assert (first["version"], first["latest_version"], first["definition"], first["name"]) == (1, 2, VIP, "VIPs")
    assert first["size"] == 2  # that version's definition, evaluated now
    _error(await client.get(segment, params={"version": 3}), 404, "segment_version_not_found")
    _error(await client.get(segment, params={"version": 0}), 422, "invalid_request")

    listed = (await client.get(BASE)).json()
    assert [item["segment_id"] for item in listed["items"]] == [created["segment_id"]]
    assert listed["items"][0]["version"] == 2
    assert "size" not in listed["items"][0]

    # Archive: still readable, out of the default list, no longer changes; archiving again is a no-op.
    response = await client.delete(segment)
    assert (response.status_code, response.content) == (204, b"")
    archived = (await client.get(segment)).json()
    assert archived["archived_at"] is not None
    assert (archived["version"], archived["size"]) == (2, 3)
    assert (await client.delete(segment)).status_code == 204
    assert (await client.get(segment)).json()["archived_at"] == archived["archived_at"]
    assert (await client.get(BASE)).json() == {"items": [], "next_cursor": None}
    everything = (await client.get(BASE, params={"include_archived": "true"})).json()["items"]
    assert [item["archived_at"] for item in everything] == [archived["archived_at"]]
    _error(await client.put(segment, json={"name": "x", "definition": VIP}), 409, "segment_archived")
    assert (await client.get(f"{segment}/members")).status_code == 200

    async with engine.connect() as connection:
        stored = (await connection.execute(select(segment_versions.c.version, segment_versions.c.definition))).all()
    assert sorted(stored) == [(1, VIP), (2, revised_definition)]


async def test_unknown_segments_answer_404(client: httpx.AsyncClient) -> None:
    missing = f"{BASE}/seg_000000000000000000000000"
    for response in (
        await client.get(missing),
        await client.get(f"{missing}/members"),
        await client.get(f"{missing}/export"),
        await client.put(missing, json={"name": "x", "definition": VIP}),
        await client.delete(missing),
    ):
        _error(response, 404, "segment_not_found")
    # Another shop's segment is unknown here.
    created = await _create(client, VIP)
    _error(await client.get(f"/v1/shops/shop-2/segments/{created['segment_id']}"), 404, "segment_not_found")
    assert (await client.get("/v1/shops/shop-2/segments")).json()["items"] == []


async def test_the_list_pages_oldest_first(client: httpx.AsyncClient) -> None:
    ids = [(await _create(client, VIP, name=f"s{number}"))["segment_id"] for number in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await client.get(BASE, params=params, headers=READER)).json()
        seen += [item["segment_id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (ids, 3)


# --- auth ------------------------------------------------------------------------------------------


async def test_every_route_needs_a_token_and_writes_a_full_one(client: httpx.AsyncClient) -> None:
    segment = f"{BASE}/{(await _create(client, VIP))['segment_id']}"
    body = {"name": "x", "definition": VIP}
    calls: list[tuple[str, str, Any]] = [
        ("GET", BASE, None),
        ("GET", segment, None),
        ("GET", f"{segment}/members", None),
        ("GET", f"{segment}/export", None),
        ("POST", BASE, body),
        ("POST", f"{BASE}/preview", {"definition": VIP}),
        ("PUT", segment, body),
        ("DELETE", segment, None),
    ]
    for method, path, payload in calls:
        response = await client.request(method, path, json=payload, headers={"Authorization": ""})
        _error(response, 401, "unauthorized")
        response = await client.request(method, path, json=payload, headers={"Authorization": "Bearer wrong"})
        _error(response, 401, "unauthorized")
        response = await client.request(method, path, json=payload, headers=READER)
        if method == "GET":
            assert response.status_code == 200, (path, response.text)
        else:
            _error(response, 403, "forbidden")


# --- invalid bodies ---------------------------------------------------------------------------------


async def test_bodies_that_do_not_fit_answer_422_with_a_code(client: httpx.AsyncClient) -> None:
    segment = f"{BASE}/{(await _create(client, VIP))['segment_id']}"
    deep: dict[str, Any] = VIP
    for _ in range(32):
        deep = {"not": deep}
    cases: list[tuple[Any, str, str | None]] = [
        ({"name": "x", "definition": {"field": "height", "op": "=", "value": 1}}, "invalid_definition", "field"),
        (
            {"name": "x", "definition": {"all": [VIP, VIP, {"any": [{"field": "score", "op": ">", "value": "1"}]}]}},
            "invalid_definition",
            "definition.all[2].any[0].value",
        ),
        ({"name": "x", "definition": {"field": "tier", "op": "=", "value": "gold"}}, "invalid_definition", "value"),
        ({"name": "x", "definition": {"tag": "secret.x"}}, "invalid_definition", "definition.tag"),
        ({"name": "x", "definition": deep}, "invalid_definition", "deeper than 32"),
        (
            {"name": "x", "definition": {"any": [{"tag": f"external.t{n:06d}"} for n in range(3000)]}},
            "invalid_definition",
            "64 KB",
        ),
        ({"name": "x", "definition": {"field": "score", "op": "=", "value": BIG}}, "invalid_definition", "value"),
        ({"name": "x", "definition": []}, "invalid_request", "body.definition"),
        ({"definition": VIP}, "invalid_request", "body.name"),
        ({"name": "", "definition": VIP}, "invalid_request", "body.name"),
        ({"name": 5, "definition": VIP}, "invalid_request", "body.name"),
        ({"name": "x" * 201, "definition": VIP}, "invalid_request", "body.name"),
        ({"name": "x", "description": "d" * 2001, "definition": VIP}, "invalid_request", "body.description"),
        ({"name": "a\u0000b", "definition": VIP}, "invalid_text", "body.name"),
        ({"name": "x", "definition": {"field": "city", "op": "=", "value": "\u0000"}}, "invalid_text", None),
    ]
    json_type = {"Content-Type": "application/json"}
    for payload, code, where in cases:
        for method, path in (("POST", BASE), ("PUT", segment)):
            content = json.dumps(payload).replace(f'"{BIG}"', "1e400")  # parsed as an infinite float
            response = await client.request(method, path, content=content, headers=json_type)
            message = _error(response, 422, code)
            if where is not None:
                assert where in message, (payload, message)
        if code != "invalid_request" and "body.name" not in (where or ""):
            content = json.dumps({"definition": payload["definition"]}).replace(f'"{BIG}"', "1e400")
            _error(await client.post(f"{BASE}/preview", content=content, headers=json_type), 422, code)
    _error(
        await client.post(BASE, content=b"{not json", headers={"Content-Type": "application/json"}), 422, "invalid_json"
    )
    # Nothing was saved but the first segment.
    assert len((await client.get(BASE)).json()["items"]) == 1


# --- members, pages, exports -----------------------------------------------------------------------

ODD_IDS = ["m-1", "m,2", 'm"3', "m\n4", "m\\5", "m'6", "m 7", "m-ü8"]


async def _seed_odd_members(engine: AsyncEngine) -> None:
    rows = [
        {
            "member_id": member_id,
            "tier": "vip",
            "stage": "active",
            "net_spend": Decimal("1234.5"),
            "paid_orders": 3,
            "points_balance": 40,
            "score": 700,
            "marketing_consent": number % 2 == 0,
            "joined_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            "last_order_at": None if number % 3 else datetime(2025, 6, 1, 8, 0, 0, 250000, tzinfo=UTC),
            "tags": ["external.crm_vip", "profile.female"] if number % 2 else [],
        }
        for number, member_id in enumerate(ODD_IDS)
    ]
    await _members(engine, *rows, {"member_id": "m-out", "tier": "member"})
    await _members(engine, {"member_id": "m-other-shop", "tier": "vip"}, shop="shop-2")


async def test_members_page_by_member_id_with_their_figures(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _seed_odd_members(engine)
    segment = f"{BASE}/{(await _create(client, VIP))['segment_id']}"
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"{segment}/members", params=params, headers=READER)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [item["member_id"] for item in seen] == sorted(ODD_IDS)  # C collation: code point order
    first = next(item for item in seen if item["member_id"] == "m-1")
    assert first == {
        "member_id": "m-1",
        "tier": "vip",
        "stage": "active",
        "net_spend": "1234.50",
        "paid_orders": 3,
        "points_balance": 40,
        "score": 700,
        "marketing_consent": True,
        "joined_at": "2025-01-02T03:04:05Z",
        "last_order_at": "2025-06-01T08:00:00.250000Z",
        "tags": [],
    }
    fourth = next(item for item in seen if item["member_id"] == "m\n4")
    assert (fourth["marketing_consent"], fourth["tags"]) == (False, ["external.crm_vip", "profile.female"])


async def test_a_cursor_not_issued_for_this_segment_is_refused(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _seed_odd_members(engine)
    first = f"{BASE}/{(await _create(client, VIP))['segment_id']}"
    second = f"{BASE}/{(await _create(client, VIP))['segment_id']}"
    cursor = (await client.get(f"{first}/members", params={"limit": 1})).json()["next_cursor"]
    assert cursor
    _error(await client.get(f"{second}/members", params={"cursor": cursor}), 422, "invalid_cursor")
    list_cursor = base64.urlsafe_b64encode(b'{"k":"g","t":"2025-01-01T00:00:00+00:00","i":"x"}').decode()
    for bad in ("garbage", list_cursor, "x" * 5000, base64.urlsafe_b64encode(INJECTION.encode()).decode()):
        _error(await client.get(f"{first}/members", params={"cursor": bad}), 422, "invalid_cursor")
    _error(await client.get(BASE, params={"cursor": cursor}), 422, "invalid_cursor")


async def test_exports_stream_every_member_as_csv_and_jsonl(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _seed_odd_members(engine)
    # More members than one chunk of the cursor.
    await _members(engine, *({"member_id": f"bulk-{n:05d}", "tier": "supreme"} for n in range(2500)))
    segment_id = (await _create(client, VIP))["segment_id"]
    expected = sorted([*ODD_IDS, *(f"bulk-{n:05d}" for n in range(2500))])

    response = await client.get(f"{BASE}/{segment_id}/export", params={"format": "csv"}, headers=READER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{segment_id}.csv"'
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8"), newline="")))
    assert table[0] == [
        "member_id",
        "tier",
        "stage",
        "net_spend",
        "paid_orders",
        "points_balance",
        "score",
        "marketing_consent",
        "joined_at",
        "last_order_at",
        "tags",
    ]
    assert [row[0] for row in table[1:]] == expected
    by_id = {row[0]: row for row in table[1:]}
    assert by_id["m\n4"] == [
        "m\n4",
        "vip",
        "active",
        "1234.50",
        "3",
        "40",
        "700",
        "false",
        "2025-01-02T03:04:05Z",
        "2025-06-01T08:00:00.250000Z",
        "external.crm_vip profile.female",
    ]
    assert by_id['m"3'][7:] == ["true", "2025-01-02T03:04:05Z", "", ""]
    assert b'"m""3"' in response.content  # quoted as RFC 4180 asks
    assert b'"m,2"' in response.content
    assert by_id["bulk-00000"][1:] == ["supreme", "", "0.00", "0", "0", "0", "true", "", "", ""]

    response = await client.get(f"{BASE}/{segment_id}/export", params={"format": "jsonl"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.content.decode("utf-8").split("\n")
    assert lines[-1] == ""
    items = [json.loads(line) for line in lines[:-1]]
    assert [item["member_id"] for item in items] == expected
    page = (await client.get(f"{BASE}/{segment_id}/members", params={"limit": 200})).json()["items"]
    assert items[:200] == page  # the same items as the members route

    assert (await client.get(f"{BASE}/{segment_id}/export")).headers["content-type"].startswith("text/csv")
    _error(await client.get(f"{BASE}/{segment_id}/export", params={"format": "xml"}), 422, "invalid_request")


async def test_preview_gives_the_size_and_the_first_member_ids(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _members(engine, *({"member_id": f"m-{n:02d}", "tier": "vip" if n % 2 else "member"} for n in range(50)))
    response = await client.post(f"{BASE}/preview", json={"definition": VIP})
    assert response.status_code == 200, response.text
    assert response.json() == {"size": 25, "sample": [f"m-{n:02d}" for n in range(1, 41, 2)]}
    nobody = await client.post(f"{BASE}/preview", json={"definition": {"tag": "manual.nobody"}})
    assert nobody.json() == {"size": 0, "sample": []}
    assert (await client.get(BASE)).json()["items"] == []  # nothing saved


async def test_manual_tags_and_time_relative_fields_count_at_the_wall_clock(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _members(
        engine,
        {"member_id": "m-1", "last_order_at": NOW - timedelta(days=10, hours=1)},
        {"member_id": "m-2", "last_order_at": NOW - timedelta(days=40)},
        {"member_id": "m-3"},
    )
    async with engine.begin() as connection:
        await connection.execute(
            insert(member_manual_tags),
            [
                {"shop_id": SHOP, "member_id": "m-1", "tag": "manual.vip", "expires_at": None},
                {"shop_id": SHOP, "member_id": "m-2", "tag": "manual.vip", "expires_at": NOW - timedelta(minutes=1)},
                {"shop_id": SHOP, "member_id": "m-3", "tag": "manual.vip", "expires_at": NOW + timedelta(days=1)},
            ],
        )

    async def preview(definition: dict[str, Any]) -> list[str]:
        sample: list[str] = (await client.post(f"{BASE}/preview", json={"definition": definition})).json()["sample"]
        return sample

    assert await preview({"tag": "manual.vip"}) == ["m-1", "m-3"]
    assert await preview({"field": "days_since_last_order", "op": "between", "value": [10, 30]}) == ["m-1"]
    assert await preview({"not": {"field": "days_since_last_order", "op": "<", "value": 30}}) == ["m-2", "m-3"]


# --- hostile text -----------------------------------------------------------------------------------


async def test_hostile_text_never_reaches_sql_as_sql(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _members(engine, *({"member_id": f"m-{n}", "city": text} for n, text in enumerate(HOSTILE)))
    before = await _member_count(engine)
    # Values: compared as text, each matching exactly its own member.
    for number, text in enumerate(HOSTILE):
        for definition in (
            {"field": "city", "op": "=", "value": text},
            {"field": "city", "op": "in", "value": [text, "nowhere"]},
        ):
            response = await client.post(f"{BASE}/preview", json={"definition": definition})
            assert response.json() == {"size": 1, "sample": [f"m-{number}"]}, (text, response.text)
    # Names and descriptions: stored and answered verbatim.
    for text in HOSTILE:
        created = await _create(client, {"field": "city", "op": "=", "value": text}, name=text, description=text)
        assert (created["name"], created["description"]) == (text, text)
        assert (await client.get(f"{BASE}/{created['segment_id']}")).json()["size"] == 1
    # Tag ids, field names, operators and groups: refused as definitions.
    for text in HOSTILE:
        tags: list[dict[str, Any]] = [] if text == "_" else [{"tag": f"profile.{text}"}, {"tag": f"manual.{text}"}]
        for definition in (
            {"tag": text},
            *tags,
            {"field": text, "op": "=", "value": 1},
            {"field": "city", "op": text, "value": "x"},
            {"field": "tier", "op": "=", "value": text},
            {"field": "joined_at", "op": ">", "value": text},
            {"field": "net_spend", "op": ">", "value": text},
        ):
            _error(await client.post(f"{BASE}/preview", json={"definition": definition}), 422, "invalid_definition")
    for tag in ("profile._", "manual._"):  # well-formed names: nobody carries them
        response = await client.post(f"{BASE}/preview", json={"definition": {"tag": tag}})
        assert response.json() == {"size": 0, "sample": []}
    # Ids in paths, shops and cursors: unknown, or not a cursor issued here.
    for text in HOSTILE:
        for path in (f"{BASE}/{text}", f"{BASE}/{text}/members", f"{BASE}/{text}/export"):
            response = await client.get(path, params={"format": "jsonl"})
            assert response.status_code in (404, 422), (path, response.text)
        _error(await client.delete(f"{BASE}/{text}"), 404, "segment_not_found")
        _error(await client.put(f"{BASE}/{text}", json={"name": "x", "definition": VIP}), 404, "segment_not_found")
        _error(await client.get(BASE, params={"cursor": text}), 422, "invalid_cursor")
        forged = base64.urlsafe_b64encode(json.dumps({"k": "g", "t": text, "i": text}).encode()).decode()
        _error(await client.get(BASE, params={"cursor": forged}), 422, "invalid_cursor")
        response = await client.get(f"/v1/shops/{text}/segments")
        assert response.json() == {"items": [], "next_cursor": None} or response.status_code == 404, response.text
    # NUL anywhere is refused before any SQL.
    _error(await client.get(f"{BASE}/seg%00x"), 422, "invalid_text")
    _error(await client.get(BASE, params={"cursor": "a\u0000"}), 422, "invalid_text")
    _error(await client.post(BASE, json={"name": "x\u0000", "definition": VIP}), 422, "invalid_text")
    _error(await client.post(f"{BASE}/preview", json={"definition": {"tag": "manual.\u0000"}}), 422, "invalid_text")

    assert await _member_count(engine) == before
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(segments)) == len(HOSTILE)
