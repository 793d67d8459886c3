"""The HTTP API against the real PostgreSQL and Kafka, through its own lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import ConfigurationError, create_app
from shared.contract.actions import Action, NotificationOutcome
from shared.db.schema import actions, members, notifications
from shared.playbook_file import load_playbook
from shared.settings import Settings
from tests.builders import action_row, care_action, insert_rows, member_row, notification_row
from tests.support import api_in_process

pytestmark = pytest.mark.integration

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHOP = "shop-1"
BASE = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the app with its lifespan running (engine pool and Kafka client open)."""
    async with api_in_process(settings, tokens=(TOKEN, "other-token")) as http:
        yield http


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


async def test_member_routes_need_a_valid_bearer_token(client: httpx.AsyncClient) -> None:
    path = f"/v1/shops/{SHOP}/members/m-1"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.get(path, headers=headers)
        _assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = await client.get(f"{path}/actions", params={"limit": 0})
    _assert_error(response, 401, "unauthorized")


async def test_every_configured_token_is_accepted(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, (members, member_row("m-1")))
    response = await client.get(f"/v1/shops/{SHOP}/members/m-1", headers={"Authorization": "Bearer other-token"})
    assert response.status_code == 200


async def test_health_readiness_and_metrics_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": True, "kafka": True}}
    await client.get(f"/v1/shops/{SHOP}/members/m-1")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'api_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics.text
    assert 'route="/v1/shops/{shop_id}/members/{member_id}",status="401"' in metrics.text
    assert "api_http_request_duration_seconds_bucket" in metrics.text
    assert "m-1" not in metrics.text


async def test_member_status_with_average_and_next_tier(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(
        engine,
        (
            members,
            member_row(
                "m-1",
                joined_at=BASE,
                tier="member",
                tier_since=BASE,
                net_spend=Decimal("250.00"),
                paid_orders=2,
                qualifying_net_spend=Decimal("250.00"),
                qualifying_orders=2,
                first_order_at=BASE + timedelta(days=1),
                last_order_at=BASE + timedelta(days=5),
                last_event_at=BASE + timedelta(days=5),
                stage="new",
                stage_since=BASE + timedelta(days=1),
            ),
        ),
    )
    response = await client.get(f"/v1/shops/{SHOP}/members/m-1", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["shop_id"] == SHOP
    assert body["member_id"] == "m-1"
    assert datetime.fromisoformat(body["joined_at"]) == BASE
    assert body["tier"]["code"] == "member"
    assert body["tier"]["name"] == "普通会员 Member"
    assert datetime.fromisoformat(body["tier"]["since"]) == BASE
    metrics = body["metrics"]
    assert set(metrics) == {"net_spend", "paid_orders", "average_order_value", "first_order_at", "last_order_at"}
    assert (metrics["net_spend"], metrics["paid_orders"], metrics["average_order_value"]) == ("250.00", 2, "125.00")
    # Compared with the orders' own times as stored, not with what the response says.
    assert datetime.fromisoformat(metrics["first_order_at"]) == BASE + timedelta(days=1)
    assert datetime.fromisoformat(metrics["last_order_at"]) == BASE + timedelta(days=5)
    assert body["next_tier"] == {"code": "advanced", "spend_needed": "50.00", "orders_needed": 1}
    assert body["qualifying"] == {"window_days": 365, "net_spend": "250.00", "paid_orders": 2}
    assert body["lifecycle"]["stage"] == "new"
    assert body["points"] == {"balance": 0, "expiring_soon": 0, "next_expiry_at": None}
    assert body["rfm"] is None
    assert datetime.fromisoformat(body["as_of"]) == BASE + timedelta(days=5)
    assert datetime.fromisoformat(body["updated_at"]).tzinfo is not None


async def test_member_status_without_tier_or_orders(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, (members, member_row("m-2")))
    body = (await client.get(f"/v1/shops/{SHOP}/members/m-2", headers=AUTH)).json()
    assert body["tier"] is None
    assert body["joined_at"] is None
    assert body["metrics"]["net_spend"] == "0.00"
    assert body["metrics"]["average_order_value"] is None
    assert body["next_tier"] == {"code": "member", "spend_needed": "0.00", "orders_needed": 0}


async def test_member_status_at_the_top_has_no_next_tier(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, (members, member_row("m-3", tier="supreme", net_spend=Decimal("1000.01"), paid_orders=3)))
    body = (await client.get(f"/v1/shops/{SHOP}/members/m-3", headers=AUTH)).json()
    assert body["tier"]["name"] == "至尊VIP Supreme VIP"
    assert body["metrics"]["average_order_value"] == "333.34"
    assert body["next_tier"] is None


async def test_unknown_member_is_404_everywhere(client: httpx.AsyncClient) -> None:
    for suffix in ("", "/actions", "/notifications"):
        response = await client.get(f"/v1/shops/{SHOP}/members/ghost{suffix}", headers=AUTH)
        _assert_error(response, 404, "member_not_found")


async def test_actions_are_paginated_newest_first(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    # Five actions; two share a timestamp so the seq tie-break matters. Another member's must not leak in.
    stamps = [BASE, BASE + timedelta(hours=1), BASE + timedelta(hours=1), BASE + timedelta(hours=2), BASE]
    stored = [care_action("m-1", number, stamp) for number, stamp in enumerate(stamps)]
    await insert_rows(
        engine, *((actions, action_row(item)) for item in [*stored, care_action("m-9", 99, BASE + timedelta(days=1))])
    )

    expected = [stored[3], stored[2], stored[1], stored[4], stored[0]]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"/v1/shops/{SHOP}/members/m-1/actions", headers=AUTH, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        seen.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [item.model_dump(mode="json") for item in expected]
    assert [Action.model_validate(item) for item in seen] == expected


async def test_actions_default_page_and_exact_fit(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(
        engine,
        *(
            (actions, action_row(item))
            for item in [care_action("m-1", number, BASE + timedelta(minutes=number)) for number in range(3)]
        ),
    )
    body = (await client.get(f"/v1/shops/{SHOP}/members/m-1/actions", headers=AUTH)).json()
    assert [item["action_id"] for item in body["items"]] == ["act-m-1-2", "act-m-1-1", "act-m-1-0"]
    assert body["next_cursor"] is None
    exact = (await client.get(f"/v1/shops/{SHOP}/members/m-1/actions", headers=AUTH, params={"limit": 3})).json()
    assert exact["next_cursor"] is None


async def test_known_member_without_actions_gets_an_empty_page(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, (members, member_row("m-1")))
    for suffix in ("actions", "notifications"):
        response = await client.get(f"/v1/shops/{SHOP}/members/m-1/{suffix}", headers=AUTH)
        assert response.json() == {"items": [], "next_cursor": None}


async def test_invalid_cursor_and_query_parameters_are_422(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(
        engine,
        *(
            (actions, action_row(item))
            for item in [care_action("m-1", number, BASE + timedelta(minutes=number)) for number in range(3)]
        ),
    )
    path = f"/v1/shops/{SHOP}/members/m-1/actions"
    for cursor in ("not-a-cursor!!", "e30", "eyJrIjoibiIsInMiOjF9"):  # garbage, {} and a notifications cursor
        response = await client.get(path, headers=AUTH, params={"cursor": cursor})
        _assert_error(response, 422, "invalid_cursor")
    for limit in ("0", "201", "many"):
        error = _assert_error(await client.get(path, headers=AUTH, params={"limit": limit}), 422, "invalid_request")
        assert "limit" in error["message"]
    first = (await client.get(path, headers=AUTH, params={"limit": 1})).json()
    response = await client.get(
        f"/v1/shops/{SHOP}/members/m-1/notifications", headers=AUTH, params={"cursor": first["next_cursor"]}
    )
    _assert_error(response, 422, "invalid_cursor")


async def test_notifications_are_listed_newest_first(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    outcomes = [
        NotificationOutcome(
            notification_id=f"n-{number}",
            action_id=f"act-m-1-{number}",
            shop_id=SHOP,
            member_id="m-1",
            channel="log",
            status="sent" if number % 2 == 0 else "suppressed",
            reason=None if number % 2 == 0 else "frequency_cap",
            at=BASE + timedelta(minutes=number),
        )
        for number in range(3)
    ]
    await insert_rows(engine, *((notifications, notification_row(item)) for item in outcomes))
    path = f"/v1/shops/{SHOP}/members/m-1/notifications"
    first = (await client.get(path, headers=AUTH, params={"limit": 2})).json()
    assert [item["notification_id"] for item in first["items"]] == ["n-2", "n-1"]
    assert first["items"][1] == outcomes[1].model_dump(mode="json")
    assert first["next_cursor"] is not None
    second = (await client.get(path, headers=AUTH, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert second == {"items": [outcomes[0].model_dump(mode="json")], "next_cursor": None}


async def test_unknown_route_and_wrong_method_have_the_error_shape(client: httpx.AsyncClient) -> None:
    _assert_error(await client.get("/nowhere", headers=AUTH), 404, "not_found")
    _assert_error(await client.get("/v1/shops/s/members/m/elsewhere", headers=AUTH), 404, "not_found")
    response = await client.post("/healthz")
    _assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


async def test_openapi_documents_the_routes(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    assert "/v1/shops/{shop_id}/members/{member_id}/actions" in paths
    assert "bearer" in str(document["components"]["securitySchemes"]).lower()
    assert (await client.get("/docs")).status_code == 200


def test_refuses_to_start_without_tokens(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="API_TOKENS"):
        create_app(settings.model_copy(update={"api_tokens": []}), load_playbook(None))


async def test_readiness_is_503_when_kafka_is_unreachable(engine: AsyncEngine, settings: Settings) -> None:
    settings = settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    app = create_app(settings, load_playbook(None))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http,
    ):
        response = await http.get("/readyz")
        assert (await http.get("/healthz")).status_code == 200
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "checks": {"database": True, "kafka": False}}


async def test_unexpected_errors_are_a_generic_500(
    engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Built at run time: the log keeps stack frames (source lines) but never exception messages.
    leaked = "-".join(("db", "secret", "host"))

    async def broken(*args: object) -> None:
        raise RuntimeError(f"connection to {leaked} failed for member m-1")

    monkeypatch.setattr("services.api.repository.get_member_status", broken)
    app = create_app(settings, load_playbook(None))
    transport = httpx.ASGITransport(app=app)  # raises if the exception escapes the app (and reaches server logs)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api.test") as http,
    ):
        response = await http.get(f"/v1/shops/{SHOP}/members/m-1", headers=AUTH)
        metrics = (await http.get("/metrics")).text
    assert 'route="/v1/shops/{shop_id}/members/{member_id}",status="500"' in metrics
    error = _assert_error(response, 500, "internal_error")
    assert "secret" not in error["message"]
    logged = capsys.readouterr().out
    assert "api.request_failed" in logged
    assert leaked not in logged
