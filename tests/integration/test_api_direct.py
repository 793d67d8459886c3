"""Read routes answer the same whether their endpoint is called directly or through FastAPI's binding.

``services.api.direct`` calls a read route's endpoint straight from the request when every
parameter is plainly valid, and leaves everything else to the framework. Here the same
requests, valid and not, go to two apps on the same data: one as served, one with the
direct calls off (any dependency override turns them off); status, headers and bytes
must be equal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from pydantic import SecretStr
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from services.api.dependencies import get_state
from services.api.direct import Binding
from shared.db.schema import actions, members, notifications, points_ledger, quarantined_members
from shared.playbook_file import load_playbook
from shared.settings import Settings

pytestmark = pytest.mark.integration

FULL = {"Authorization": "Bearer test-token"}
READER = {"Authorization": "Bearer reader-token"}
SHOP = "shop-1"
AT = datetime(2025, 3, 6, 10, 0, tzinfo=UTC)
LONGEST = "m" * 200

Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]


def _app(settings: Settings) -> FastAPI:
    settings = settings.model_copy(
        update={"api_tokens": [SecretStr("test-token")], "api_read_tokens": [SecretStr("reader-token")]}
    )
    return create_app(settings, load_playbook(None))


@pytest_asyncio.fixture
async def clients(engine: AsyncEngine, settings: Settings) -> AsyncIterator[Clients]:
    served, framework = _app(settings), _app(settings)
    framework.dependency_overrides[get_state] = get_state  # the same state, through FastAPI's binding
    async with (
        served.router.lifespan_context(served),
        framework.router.lifespan_context(framework),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://api.test") as direct,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=framework), base_url="http://api.test") as bound,
    ):
        yield direct, bound


async def _population(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for member_id in ("m-1", LONGEST):
            await connection.execute(insert(members).values(shop_id=SHOP, member_id=member_id, joined_at=AT))
        for number in range(7):
            occurred_at = AT + timedelta(hours=number // 2)  # pairs share a time: the cursor's seq decides
            action_id = f"act-{number}"
            await connection.execute(
                insert(actions).values(
                    action_id=action_id,
                    shop_id=SHOP,
                    member_id="m-1",
                    rule="payment_confirmation",
                    category="care",
                    occurred_at=occurred_at,
                    created_at=occurred_at,
                    payload={"action_id": action_id, "shop_id": SHOP, "member_id": "m-1", "n": number},
                )
            )
            await connection.execute(
                insert(notifications).values(
                    notification_id=f"n-{number}",
                    action_id=action_id,
                    channel="log",
                    shop_id=SHOP,
                    member_id="m-1",
                    status="sent",
                    at=occurred_at,
                    payload={"notification_id": f"n-{number}", "status": "sent"},
                )
            )
            await connection.execute(
                insert(points_ledger).values(
                    shop_id=SHOP,
                    member_id="m-1",
                    entry_id=f"earn:{number}",
                    kind="earn",
                    points=10 + number,
                    at=occurred_at,
                    expires_at=occurred_at + timedelta(days=365),
                )
            )
        for number in range(3):
            await connection.execute(
                insert(quarantined_members).values(
                    shop_id=SHOP,
                    member_id=f"q-{number}",
                    reason="processing_error",
                    detail="ValueError",
                    events=number,
                    quarantined_at=AT + timedelta(minutes=number),
                )
            )


LIMITS = ["", "1", "2", "200", "201", "0", "-1", "007", "+5", " 5", "5.0", "1e1", "abc", "99999999999999999999999"]
CURSORS = ["", "garbage", "eyJrIjoiYSJ9", "%00", "%ED%A0%80"]


def _requests() -> list[tuple[str, dict[str, str]]]:
    member = f"/v1/shops/{SHOP}/members/m-1"
    paths = [
        member,
        f"/v1/shops/{SHOP}/members/nobody",
        f"/v1/shops/{SHOP}/members/{LONGEST}",
        f"/v1/shops/{SHOP}/members/{LONGEST}m",
        f"/v1/shops/{'s' * 201}/members/m-1",
        f"/v1/shops/{SHOP}/members/%C3%A9t%C3%A9",
        f"/v1/shops/{SHOP}/members/m%00",
    ]
    for suffix in ("/actions", "/notifications", "/points/ledger", "/coupons", "/decisions"):
        paths += [f"{member}{suffix}", f"/v1/shops/{SHOP}/members/nobody{suffix}", f"{member}{suffix}?unknown=1"]
        paths += [f"{member}{suffix}?limit={limit}" for limit in LIMITS]
        paths += [f"{member}{suffix}?cursor={cursor}" for cursor in CURSORS]
        paths += [f"{member}{suffix}?limit=1&limit=2", f"{member}{suffix}?cursor=a&cursor=b"]
    paths += ["/v1/admin/quarantine", "/v1/admin/quarantine?limit=1", "/v1/admin/quarantine?limit=0"]
    paths += ["/v1/admin/quarantine?cursor=x", "/v1/admin/quarantine?limit=2&cursor="]
    requests = [(path, FULL) for path in paths]
    requests += [(member, READER), (member, {}), (member, {"Authorization": "Bearer nope"}), (f"{member}/actions", {})]
    return requests


def _same(direct: httpx.Response, bound: httpx.Response) -> None:
    assert (direct.status_code, direct.headers.multi_items(), direct.content) == (
        bound.status_code,
        bound.headers.multi_items(),
        bound.content,
    )


async def test_every_read_answers_the_same_with_or_without_direct_calls(
    clients: Clients, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _population(engine)
    direct, bound = clients
    taken = {"direct": 0, "framework": 0, "with overrides": 0}
    arguments = Binding.arguments

    def counted(binding: Binding, request: Request) -> dict[str, Any] | None:
        found = arguments(binding, request)
        taken["framework" if found is None else "direct"] += 1
        taken["with overrides"] += bool(request.app.dependency_overrides)
        return found

    monkeypatch.setattr(Binding, "arguments", counted)
    statuses = set()
    for path, headers in _requests():
        answers = await direct.get(path, headers=headers), await bound.get(path, headers=headers)
        _same(*answers)
        statuses.add(answers[0].status_code)
    assert statuses == {200, 401, 404, 422}
    # The served app took both ways; the app with an override never asked for a direct binding.
    assert taken["direct"] >= 20
    assert taken["framework"] >= 20
    assert taken["with overrides"] == 0


async def test_pages_followed_by_cursor_are_the_same(clients: Clients, engine: AsyncEngine) -> None:
    await _population(engine)
    direct, bound = clients
    for path in (
        f"/v1/shops/{SHOP}/members/m-1/actions",
        f"/v1/shops/{SHOP}/members/m-1/notifications",
        f"/v1/shops/{SHOP}/members/m-1/points/ledger",
        "/v1/admin/quarantine",
    ):
        pages = 0
        params: dict[str, str | int] = {"limit": 2}
        while True:
            answers = (
                await direct.get(path, params=params, headers=FULL),
                await bound.get(path, params=params, headers=FULL),
            )
            _same(*answers)
            pages += 1
            cursor = answers[0].json()["next_cursor"]
            if cursor is None:
                break
            params = {"limit": 2, "cursor": cursor}
        assert pages >= 2
