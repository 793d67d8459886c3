"""Incentives through the running services: a budget set over the API runs out, a coupon is issued,
redeemed by a later order and reported, another member's code counts as shared, and the scheduler
expires what is left, with every decision readable per member."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import SHANGHAI, envelope
from tests.support import ServiceProcess, eventually, produce, wait_until_processed

pytestmark = pytest.mark.integration

SHOP = "shop-1"
AUTH = {"Authorization": "Bearer test-token"}
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
DAY = timedelta(days=1)
# Only the first-purchase coupon, on a budget of two coupons a month.
OVERRIDES = {
    "rules": {
        "first_purchase_gift": {"budget": {"amount": "20.00", "period": "P1M"}},
        "repurchase_gift": {"enabled": False},
        "one_month_gift": {"enabled": False},
        "hundred_day_gift": {"enabled": False},
        "tier_upgrade_gift": {"enabled": False},
    }
}
Json = dict[str, Any]


def paid(member: str, number: int, order_id: str, at: datetime, amount: str, *codes: str) -> Json:
    data: Json = {"order_id": order_id, "amount": amount, "currency": "CNY"}
    if codes:
        data["coupon_codes"] = list(codes)
    return envelope("order.paid", data, event_id=f"{member}-{number}", at=at, member=member, shop=SHOP, source="t")


async def metric_value(client: httpx.AsyncClient, url: str, name: str, **labels: str) -> float:
    text = (await client.get(url)).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_a_coupon_is_issued_redeemed_reported_and_a_budget_runs_out(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess]
) -> None:
    engagement = start_service("engagement")
    api = start_service("api")
    topics = {key: value for key, value in engagement.env.items() if key.startswith("TOPIC_")}
    engagement_metrics = f"http://127.0.0.1:{engagement.env['ENGAGEMENT_METRICS_PORT']}/metrics"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api.env['API_PORT']}", headers=AUTH, timeout=30
    ) as client:

        async def ready() -> bool:
            try:
                return (await client.get("/readyz")).status_code == 200 and (
                    await client.get(engagement_metrics.replace("/metrics", "/readyz"))
                ).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout_s=60)
        stored = await client.put(f"/v1/shops/{SHOP}/playbook", json=OVERRIDES)
        assert stored.status_code == 200, stored.text

        async def installed() -> bool:
            return await metric_value(client, engagement_metrics, "playbook_version", shop_id=SHOP) == 1

        await eventually(installed, timeout_s=15, interval_s=0.05)

        async def get(path: str, **params: Any) -> Json:
            response = await client.get(f"/v1/shops/{SHOP}/{path}", params=params)
            assert response.status_code == 200, response.text
            body: Json = response.json()
            return body

        # Three first orders in March: the budget covers two coupons of 10.00.
        await produce(
            topics,
            [
                paid("m-a", 1, "a-1", T0, "120.00"),
                paid("m-b", 1, "b-1", T0 + timedelta(hours=1), "130.00"),
                paid("m-c", 1, "c-1", T0 + timedelta(hours=2), "140.00"),
            ],
        )
        await wait_until_processed(engine, 3, timeout_s=60)
        wallets = {m: (await get(f"members/{m}/coupons"))["items"] for m in ("m-a", "m-b", "m-c")}
        # Which two of the three get the budget follows the order the partitions were consumed in.
        given_to = sorted(m for m, coupons in wallets.items() if coupons)
        assert len(given_to) == 2
        buyer, keeper = given_to
        (sharer,) = {"m-a", "m-b", "m-c"} - set(given_to)
        code, kept = wallets[buyer][0]["code"], wallets[keeper][0]["code"]
        first_paid = {"m-a": T0, "m-b": T0 + timedelta(hours=1), "m-c": T0 + timedelta(hours=2)}
        assert wallets[buyer][0]["status"] == "issued"
        assert datetime.fromisoformat(wallets[buyer][0]["expires_at"]) == first_paid[buyer] + 30 * DAY
        (exhausted,) = (await get(f"members/{sharer}/decisions"))["items"]
        assert exhausted["outcome"] == "budget_exhausted"
        assert exhausted["action_id"] is None
        assert exhausted["playbook_version"] == 1
        assert exhausted["reason"] == "20.00 of the P1M budget of 20.00 spent; this incentive is 10.00"
        (given,) = (await get(f"members/{buyer}/decisions"))["items"]
        assert (given["outcome"], given["playbook_version"]) == ("emitted", 1)
        actions = (await get(f"members/{buyer}/actions"))["items"]
        gift = next(a for a in actions if a["rule"] == "first_purchase_gift")
        assert gift["action_id"] == given["action_id"]
        assert gift["incentive"]["code"] == code
        assert gift["playbook_version"] == 1

        # The buyer redeems its coupon with a second order; the third member pays with the keeper's
        # code: shared, not redeemed.
        await produce(
            topics,
            [
                paid(buyer, 2, f"{buyer}-2", T0 + 5 * DAY, "250.00", code),
                paid(sharer, 2, f"{sharer}-2", T0 + 6 * DAY, "99.00", kept),
            ],
        )
        await wait_until_processed(engine, 5, timeout_s=60)
        (redeemed,) = (await get(f"members/{buyer}/coupons", status="redeemed"))["items"]
        assert (redeemed["code"], redeemed["order_id"]) == (code, f"{buyer}-2")
        assert datetime.fromisoformat(redeemed["redeemed_at"]) == T0 + 5 * DAY
        assert (await get(f"members/{keeper}/coupons"))["items"][0]["status"] == "issued"
        assert await metric_value(client, engagement_metrics, "engagement_coupons_redeemed_total") == 1
        assert await metric_value(client, engagement_metrics, "engagement_coupons_shared_total") == 1

        # The scheduler reminds the keeper three days before its coupon expires, then expires it.
        expiry = first_paid[keeper] + 30 * DAY
        run = await client.post("/v1/admin/scheduler/run", json={"as_of": (expiry - 3 * DAY).isoformat()})
        assert run.status_code == 200, run.text
        assert run.json()["actions_by_rule"] == {"coupon_expiry_reminder": 1}
        run = await client.post("/v1/admin/scheduler/run", json={"as_of": expiry.isoformat()})
        assert run.json()["coupons_expired"] == 1
        assert (await get(f"members/{keeper}/coupons"))["items"][0]["status"] == "expired"

        report = await get("incentives/report", **{"from": T0.isoformat(), "to": (T0 + 60 * DAY).isoformat()})
        (row,) = report["items"]
        assert row == {
            "rule": "first_purchase_gift",
            "issued": 2,
            "issued_value": "20.00",
            "redeemed": 1,
            "redeemed_value": "10.00",
            "redemption_rate": 0.5,
            "coupons_shared": 1,
            "attributed_orders": 1,
            "attributed_revenue": "250.00",
            "cost": "10.00",
            "roi": float((Decimal("250.00") - Decimal("10.00")) / Decimal("10.00")),
            # the buyer bought again within 14 days (its triggering order does not count); the keeper did not.
            "treated": {"members": 2, "converted": 1},
            "holdout": {"members": 0, "converted": 0},
            "uplift": {"rate_diff": None, "ci95": None},
        }
