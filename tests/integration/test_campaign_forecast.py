"""The campaign forecast over HTTP on the real database, against a generated history of known response rates.

2,000 past coupon decisions per stage convert at a true 30 % (active) and 10 % (dormant); the
forecast's per-stage rates and expected conversions must hold those truths inside their
intervals, and a budget must go to the stage that responds best.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import campaigns, deliveries, members, orders
from shared.domain.campaign_forecast import PRIOR_RATE
from shared.playbook_file import layers_of
from shared.settings import Settings
from tests.builders import decision_row, order_row
from tests.support import api_in_process

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer test-token"}
READER = {"Authorization": "Bearer reader-token"}
SHOP = "shop-1"
BASE = f"/v1/shops/{SHOP}/campaigns"
NOW = datetime.now(UTC)
DAY = timedelta(days=1)
PAST = NOW - 60 * DAY
TRUE_RATES = {"active": 0.30, "dormant": 0.10}
PER_STAGE = 2_000
EVERYONE = {"field": "paid_orders", "op": ">=", "value": 0}


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_in_process(
        settings, read_tokens=("reader-token",), layers=layers_of({"shops": {SHOP: {}}}), headers=AUTH
    ) as http:
        yield http


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Win back",
        "definition": EVERYONE,
        "strategies": [
            {
                "code": "ten_off",
                "weight": 1,
                "template": "winback_coupon",
                "incentive": {"kind": "coupon", "value": "10.00", "min_spend": "50.00"},
            }
        ],
        "holdout_percent": 10,
        "waves": [{"at": (NOW + DAY).isoformat(), "audience": "all"}],
        "attribution_window": "P14D",
    }
    body.update(changes)
    return body


async def _bulk(engine: AsyncEngine, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        async with engine.begin() as connection:
            await connection.execute(insert(table), rows)


async def _history(engine: AsyncEngine) -> dict[str, int]:
    """The generated history; the number of reachable members per stage."""
    draw = random.Random(20260301)
    member_rows: list[dict[str, Any]] = []
    decision_rows: list[dict[str, Any]] = []
    order_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    for stage, rate in TRUE_RATES.items():
        for index in range(PER_STAGE):
            member = f"{stage}-{index}"
            member_rows.append(
                {
                    "shop_id": SHOP,
                    "member_id": member,
                    "stage": stage,
                    "marketing_consent": stage != "active" or index >= 10,
                }
            )
            at = PAST + timedelta(minutes=index)
            decision_rows.append(decision_row(f"d-{member}", member, "winback", "emitted", at, value="10.00")[1])
            if draw.random() < rate:
                order_rows.append(order_row(f"o-{member}", member, at + 3 * DAY, "80.00")[1])
            else:  # an order after the window converts nothing
                order_rows.append(order_row(f"late-{member}", member, at + 20 * DAY, "80.00")[1])
            # Points are another kind: every dormant member converted after them, and nothing changes.
            earlier = PAST - 100 * DAY + timedelta(minutes=index)
            points = decision_row(f"p-{member}", member, "points_gift", "emitted", earlier, kind="points")[1]
            decision_rows.append(points)
            order_rows.append(order_row(f"p-{member}", member, earlier + DAY, "500.00")[1])
    # A decision whose window has not closed is not history yet.
    decision_rows.append(decision_row("d-recent", "dormant-500", "winback", "emitted", NOW - 3 * DAY)[1])
    # The frequency cap (3 in 24 h): active-10..14 had three incentive messages; active-15 had three, one suppressed.
    for index in range(10, 16):
        for number in range(3):
            suppressed = index == 15 and number == 0
            delivery_rows.append(
                {
                    "action_id": f"a-{index}-{number}",
                    "channel": "sms",
                    "shop_id": SHOP,
                    "member_id": f"active-{index}",
                    "rule": "winback",
                    "category": "incentive",
                    "status": "suppressed" if suppressed else "sent",
                    "occurred_at": NOW - timedelta(hours=1 + number),
                    "action": {},
                }
            )
    await _bulk(engine, members, member_rows)
    await _bulk(engine, decision_row("x", "x", "x", "emitted", NOW)[0], decision_rows)
    await _bulk(engine, orders, order_rows)
    await _bulk(engine, deliveries, delivery_rows)
    return {"active": PER_STAGE - 10 - 5, "dormant": PER_STAGE}


async def test_the_forecast_recovers_known_response_rates(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    reachable = await _history(engine)
    response = await client.post(f"{BASE}/forecast", json=_body(budget="900.00"))
    assert response.status_code == 200, response.text
    forecast = response.json()
    assert forecast["audience"] == 2 * PER_STAGE
    assert forecast["reachable"] == sum(reachable.values())
    stages = {stage["stage"]: stage for stage in forecast["stages"]}
    assert set(stages) == set(TRUE_RATES)
    for stage, rate in TRUE_RATES.items():
        found = stages[stage]
        assert found["reachable"] == reachable[stage]
        assert found["history"]["decisions"] == PER_STAGE  # neither the points nor the open decision
        assert found["rate"]["low"] <= rate <= found["rate"]["high"], found
        assert abs(found["rate"]["value"] - rate) < 0.03
    truth = sum(reachable[stage] * 0.9 * rate for stage, rate in TRUE_RATES.items())
    expected = forecast["expected_conversions"]
    assert expected["low"] <= truth <= expected["high"], expected
    assert expected["low"] < expected["value"] < expected["high"]
    assert forecast["revenue_per_conversion"] == "80.00"
    revenue = Decimal(str(expected["value"])) * 80
    assert Decimal(forecast["expected_revenue"]) == pytest.approx(revenue, abs=Decimal(1))
    # A coupon costs its face value once redeemed: one per conversion.
    assert Decimal(forecast["expected_cost"]) == pytest.approx(Decimal(str(expected["value"])) * 10, abs=Decimal(1))
    # 900.00 at 10.00 a treated member (9.00 an audience member, the holdout given nothing): 100 actives.
    assert forecast["members_within_budget"] == 100
    assert stages["active"]["members_within_budget"] == 100
    assert stages["dormant"]["members_within_budget"] == 0
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(campaigns)) == 0


async def test_without_history_the_prior_applies(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _bulk(
        engine,
        members,
        [{"shop_id": SHOP, "member_id": f"m-{index}", "stage": "new"} for index in range(40)],
    )
    await _bulk(engine, orders, [order_row("o-1", "m-0", NOW - 30 * DAY, "60.00")[1]])
    response = await client.post(
        f"{BASE}/forecast", json=_body(strategies=[{"code": "hi", "weight": 1, "template": "t"}])
    )
    assert response.status_code == 200, response.text
    forecast = response.json()
    assert (forecast["audience"], forecast["reachable"], forecast["members_within_budget"]) == (40, 40, None)
    assert forecast["stages"][0]["rate"]["value"] == PRIOR_RATE
    assert forecast["expected_conversions"]["value"] == pytest.approx(36 * PRIOR_RATE)
    assert forecast["revenue_per_conversion"] == "60.00"  # the shop's average paid order of the year
    assert forecast["expected_cost"] == "0.00"


async def test_the_forecast_validates_the_plan_as_creating_it_would(client: httpx.AsyncClient) -> None:
    def refused(response: httpx.Response, code: str) -> str:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == code
        message: str = response.json()["error"]["message"]
        return message

    bad_weight = _body(strategies=[{"code": "a", "weight": 0, "template": "t"}])
    assert refused(await client.post(f"{BASE}/forecast", json=bad_weight), "invalid_campaign").startswith(
        "body.strategies[0].weight"
    )
    unknown = _body(definition=None, segment_id="seg_missing")
    assert "segment_id" in refused(await client.post(f"{BASE}/forecast", json=unknown), "invalid_campaign")
    far = _body(waves=[{"at": (NOW + 800 * DAY).isoformat()}])
    refused(await client.post(f"{BASE}/forecast", json=far), "time_out_of_range")
    anonymous = await client.post(f"{BASE}/forecast", json=_body(), headers={"Authorization": ""})
    assert anonymous.status_code == 401
    # It writes nothing, but read-only tokens have the GET routes only, as for a segment's preview.
    reader = await client.post(f"{BASE}/forecast", json=_body(), headers=READER)
    assert reader.status_code == 403
    assert reader.json()["error"]["code"] == "forbidden"


async def test_a_saved_segment_is_forecast_by_its_current_definition(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _bulk(
        engine,
        members,
        [{"shop_id": SHOP, "member_id": f"m-{index}", "stage": "active", "paid_orders": index} for index in range(10)],
    )
    segment = await client.post(
        f"/v1/shops/{SHOP}/segments",
        json={"name": "Buyers", "definition": {"field": "paid_orders", "op": ">=", "value": 4}},
    )
    assert segment.status_code == 201, segment.text
    body = _body(definition=None, segment_id=segment.json()["segment_id"])
    response = await client.post(f"{BASE}/forecast", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["audience"] == 6
