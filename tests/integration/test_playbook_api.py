"""The playbook routes over HTTP on the real database: reading, storing versions, validation, tokens."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from services.api.dependencies import ApiState
from shared.db.schema import playbook_versions
from shared.playbook_file import load_playbook
from shared.settings import Settings
from tests.support import eventually

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READER = {"Authorization": "Bearer reader-token"}
SHOP = "shop-1"
URL = f"/v1/shops/{SHOP}/playbook"
PLAYBOOK_FILE = """
shops:
  shop-hk:
    currency: HKD
    timezone: Asia/Hong_Kong
    rules:
      repurchase_gift: {enabled: false}
"""
HOLDOUT = {"rules": {"first_purchase_gift": {"holdout_percent": 50, "budget": {"amount": "50.00", "period": "P1M"}}}}


@pytest_asyncio.fixture
async def app(engine: AsyncEngine, settings: Settings, tmp_path: Path) -> AsyncIterator[FastAPI]:
    path = tmp_path / "playbook.yaml"
    path.write_text(PLAYBOOK_FILE, encoding="utf-8")
    settings = settings.model_copy(
        update={
            "api_tokens": [SecretStr(TOKEN)],
            "api_read_tokens": [SecretStr("reader-token")],
            "playbook_path": path,
            "playbook_refresh_seconds": 0.2,
        }
    )
    app = create_app(settings, load_playbook(path))
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH
    ) as http:
        yield http


def _state(app: FastAPI) -> ApiState:
    state = app.state.api
    assert isinstance(state, ApiState)
    return state


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    return message


async def _put(client: httpx.AsyncClient, overrides: Any, shop: str = SHOP) -> dict[str, Any]:
    response = await client.put(f"/v1/shops/{shop}/playbook", json=overrides)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_tokens_are_needed_and_storing_needs_a_full_one(client: httpx.AsyncClient) -> None:
    calls = [("GET", URL, None), ("GET", f"{URL}/versions", None), ("PUT", URL, HOLDOUT)]
    for method, path, body in calls:
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
            response = await client.request(method, path, json=body, headers=headers)
            _error(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"] == "Bearer"
    _error(await client.put(URL, json=HOLDOUT, headers=READER), 403, "forbidden")
    assert (await client.get(URL, headers=READER)).status_code == 200
    assert (await client.get(f"{URL}/versions", headers=READER)).status_code == 200
    assert (await client.get(f"{URL}/versions")).json() == {"items": [], "next_cursor": None}  # nothing stored


async def test_a_shop_without_versions_shows_the_file_layers(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/shops/shop-hk/playbook")).json()
    assert listed["version"] == 0
    assert (listed["overrides"], listed["created_at"], listed["created_by"]) == ({}, None, None)
    playbook = listed["playbook"]
    assert (playbook["currency"], playbook["timezone"]) == ("HKD", "Asia/Hong_Kong")
    assert playbook["rules"]["repurchase_gift"]["enabled"] is False
    assert playbook["rules"]["payment_confirmation"]["enabled"] is True
    assert playbook["reference_order_value"] == "100"
    assert playbook["rules"]["unpaid_reminder"]["delay"] == "PT30M"
    assert "version" not in playbook
    unlisted = (await client.get("/v1/shops/shop-elsewhere/playbook")).json()
    assert (unlisted["version"], unlisted["playbook"]["currency"]) == (0, "CNY")


async def test_versions_count_up_and_each_stays_readable(client: httpx.AsyncClient, app: FastAPI) -> None:
    first = await _put(client, HOLDOUT)
    second = await _put(client, {"rules": {"payment_confirmation": {"enabled": False}}})
    third = await _put(client, {"contact": {"frequency_cap": 5}})
    assert [first["version"], second["version"], third["version"]] == [1, 2, 3]
    identity = "token:" + hashlib.sha256(TOKEN.encode()).hexdigest()[:12]
    assert third["created_by"] == identity
    assert TOKEN not in str(third)

    # A PUT replaces the whole document: version 3 no longer holds version 2's switch.
    current = (await client.get(URL)).json()
    assert current == third
    assert current["version"] == 3
    assert current["overrides"] == {"contact": {"frequency_cap": 5}}
    assert current["playbook"]["contact"]["frequency_cap"] == 5
    assert current["playbook"]["rules"]["payment_confirmation"]["enabled"] is True
    assert current["playbook"]["rules"]["first_purchase_gift"]["holdout_percent"] == 0

    older = (await client.get(URL, params={"version": 1})).json()
    assert older == first
    assert older["overrides"] == HOLDOUT
    gift = older["playbook"]["rules"]["first_purchase_gift"]
    assert (gift["holdout_percent"], gift["budget"]) == (50, {"amount": "50.00", "period": "P1M"})
    assert gift["incentive"]["value"] == "10.00"  # the rest of the rule from the file
    file_alone = (await client.get(URL, params={"version": 0})).json()
    assert (file_alone["version"], file_alone["overrides"]) == (0, {})

    listed = (await client.get(f"{URL}/versions")).json()
    assert [item["version"] for item in listed["items"]] == [3, 2, 1]
    assert {item["created_by"] for item in listed["items"]} == {identity}
    times = [datetime.fromisoformat(item["created_at"]) for item in listed["items"]]
    assert times == sorted(times, reverse=True)
    assert listed["next_cursor"] is None
    assert (await client.get("/v1/shops/shop-hk/playbook/versions")).json()["items"] == []  # per shop

    # The app's own playbook has the version in force shortly after (the PUT wakes its refresher).
    async def installed() -> bool:
        return _state(app).playbook.for_shop(SHOP).version == 3

    await eventually(installed, timeout_s=10, interval_s=0.05)
    assert _state(app).playbook.for_shop(SHOP).contact.frequency_cap == 5


async def test_versions_are_paged_newest_first(client: httpx.AsyncClient) -> None:
    for cap in range(1, 6):
        await _put(client, {"contact": {"frequency_cap": cap}})
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{URL}/versions", params=params)).json()
        seen += [item["version"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [5, 4, 3, 2, 1]
    _error(await client.get(f"{URL}/versions", params={"cursor": "bm90IGEgY3Vyc29y"}), 422, "invalid_cursor")


async def test_an_unknown_version_is_404(client: httpx.AsyncClient) -> None:
    message = _error(await client.get(URL, params={"version": 1}), 404, "playbook_version_not_found")
    assert "version 1" in message
    await _put(client, HOLDOUT)
    _error(await client.get(URL, params={"version": 2}), 404, "playbook_version_not_found")
    _error(await client.get(URL, params={"version": -1}), 422, "invalid_request")


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"rules": {"first_purchase_gift": {"holdout_percent": 51}}}, "rules.first_purchase_gift.holdout_percent"),
        ({"rules": {"first_purchase_gift": {"holdout_percnt": 5}}}, "rules.first_purchase_gift.holdout_percnt"),
        ({"rules": {"first_purchase_gift": {"budget": {"amount": "0.00"}}}}, "rules.first_purchase_gift.budget.amount"),
        ({"rules": {"first_purchase_gift": {"budget": {"amount": "5", "period": "P2M"}}}},
         "rules.first_purchase_gift.budget.period"),
        ({"rules": {"unpaid_reminder": {"delay": "soon"}}}, "rules.unpaid_reminder.delay"),
        ({"contact": {"frequency_cap": "many"}}, "contact.frequency_cap"),
        ({"rules": {"no_such_rule": {"enabled": True}}}, "rules.no_such_rule"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
    ],
)  # fmt: skip
async def test_invalid_overrides_are_422_naming_the_path_and_nothing_is_stored(
    client: httpx.AsyncClient, overrides: dict[str, Any], path: str
) -> None:
    message = _error(await client.put(URL, json=overrides), 422, "invalid_playbook")
    assert message.startswith(f"{path}: "), message
    assert (await client.get(f"{URL}/versions")).json()["items"] == []
    assert (await client.get(URL)).json()["version"] == 0


async def test_a_body_that_is_not_an_object_is_refused(client: httpx.AsyncClient) -> None:
    _error(await client.put(URL, json=["rules"]), 422, "invalid_request")
    _error(await client.put(URL, content=b"{", headers={"Content-Type": "application/json"}), 422, "invalid_json")
    _error(await client.put(URL, json={"currency": "a\u0000b"}), 422, "invalid_text")


async def test_concurrent_puts_get_distinct_consecutive_versions(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(_put(client, {"contact": {"frequency_cap": cap}}) for cap in range(1, 13)))
    assert sorted(answer["version"] for answer in answers) == list(range(1, 13))
    for answer in answers:  # each answer is the document it stored
        assert answer["playbook"]["contact"]["frequency_cap"] == answer["overrides"]["contact"]["frequency_cap"]
    listed = (await client.get(f"{URL}/versions", params={"limit": 200})).json()["items"]
    assert [item["version"] for item in listed] == list(range(12, 0, -1))
    times = [datetime.fromisoformat(item["created_at"]) for item in listed]
    assert times == sorted(times, reverse=True)  # numbered and stamped under one lock


async def test_stored_overrides_lie_over_the_files_shop_entry(client: httpx.AsyncClient) -> None:
    stored = await _put(
        client, {"timezone": "Asia/Macau", "rules": {"payment_confirmation": {"enabled": False}}}, "shop-hk"
    )
    playbook = stored["playbook"]
    assert (playbook["currency"], playbook["timezone"]) == ("HKD", "Asia/Macau")
    assert playbook["rules"]["repurchase_gift"]["enabled"] is False  # the file's entry still holds
    assert playbook["rules"]["payment_confirmation"]["enabled"] is False
    # The whole effective playbook is valid overrides as it is.
    again = await _put(client, playbook, "shop-hk")
    assert again["playbook"] == playbook
    assert again["version"] == 2


async def test_a_stored_version_the_file_no_longer_accepts_is_409_and_the_app_keeps_the_previous(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine
) -> None:
    await _put(client, {"contact": {"frequency_cap": 7}})

    async def installed() -> bool:
        return _state(app).playbook.for_shop(SHOP).version == 1

    await eventually(installed, timeout_s=10, interval_s=0.05)
    async with engine.begin() as connection:  # as if written before a release that tightened a value
        await connection.execute(
            insert(playbook_versions).values(
                shop_id=SHOP, version=2, overrides={"contact": {"frequency_cap": "seven"}}, created_by="operator"
            )
        )
    message = _error(await client.get(URL), 409, "stored_playbook_invalid")
    assert "contact.frequency_cap" in message
    assert (await client.get(URL, params={"version": 1})).json()["version"] == 1
    await asyncio.sleep(1)  # several refresh intervals
    assert _state(app).playbook.for_shop(SHOP).version == 1
    assert _state(app).playbook.for_shop(SHOP).contact.frequency_cap == 7
