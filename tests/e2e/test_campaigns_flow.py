"""Campaigns through the running services: two waves with conversions between them and the report
checked exactly; and an engagement process SIGKILLed in the middle of a large wave, after which
every member of the wave is reached exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import actions, campaign_waves, decisions
from shared.domain.campaigns import HOLDOUT, assign, parse_plan
from shared.domain.decisions import action_id, incentive_code
from shared.domain.stats import newcombe_difference
from tests.builders import SHANGHAI, envelope
from tests.support import (
    ServiceProcess,
    eventually,
    produce,
    read_to_end,
    wait_until_outbox_empty,
    wait_until_processed,
)

pytestmark = pytest.mark.integration

SHOP = "shop-1"
AUTH = {"Authorization": "Bearer test-token"}
DAY = timedelta(days=1)
Json = dict[str, Any]


def joined(member: str, at: datetime, channel: str) -> Json:
    data = {"channel": channel, "marketing_consent": True}
    return envelope("member.joined", data, event_id=f"{member}-joined", at=at, member=member, shop=SHOP, source="t")


def paid(member: str, order: str, at: datetime, amount: str, *codes: str) -> Json:
    data: Json = {"order_id": order, "amount": amount, "currency": "CNY"}
    if codes:
        data["coupon_codes"] = list(codes)
    return envelope("order.paid", data, event_id=f"{order}-paid", at=at, member=member, shop=SHOP, source="t")


def local_morning(days_ago: int) -> datetime:
    today = datetime.now(SHANGHAI).replace(hour=10, minute=0, second=0, microsecond=0)
    return today - days_ago * DAY


def api_of(api: ServiceProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.env['API_PORT']}", headers=AUTH, timeout=60)


async def _ready(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_two_waves_with_conversions_between_them_and_the_report_checked_exactly(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess]
) -> None:
    engagement = start_service("engagement")
    api = start_service("api")
    topics = {key: value for key, value in engagement.env.items() if key.startswith("TOPIC_")}
    t0 = local_morning(60)
    w1, w2 = t0 + 10 * DAY, t0 + 20 * DAY
    # Enough members that each group (the holdout takes 20 %) has the four the test picks from:
    # with 80, fewer than four held out happens for about 3 campaign ids in 100,000 (binomial).
    members = [f"c-{i:02d}" for i in range(80)]
    body = {
        "name": "Spring re-engagement",
        "definition": {"field": "channel", "op": "=", "value": "app"},
        "strategies": [
            {"code": "coupon", "weight": 1, "template": "spring_coupon",
             "incentive": {"kind": "coupon", "value": "10.00", "min_spend": "50.00", "valid_for": "P30D"}},
            {"code": "plain", "weight": 1, "template": "spring_plain", "variables": {"headline": "春天"}},
        ],
        "holdout_percent": 20,
        "waves": [{"at": w1.isoformat(), "audience": "all"}, {"at": w2.isoformat(), "audience": "not_converted"}],
        "attribution_window": "P7D",
    }  # fmt: skip
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api.env['API_PORT']}", headers=AUTH, timeout=60
    ) as api_client:
        await eventually(lambda: _ready(api_client), timeout_s=60)
        await produce(topics, [joined(m, t0 + timedelta(minutes=i), "app") for i, m in enumerate(members)])
        await wait_until_processed(engine, len(members), timeout_s=60)
        created = await api_client.post(f"/v1/shops/{SHOP}/campaigns", json=body)
        assert created.status_code == 201, created.text
        cid = created.json()["campaign_id"]
        strategies = parse_plan(body).strategies
        group = {m: assign(cid, m, strategies, 20) for m in members}
        by_group: dict[str, list[str]] = {"coupon": [], "plain": [], HOLDOUT: []}
        for member in members:
            by_group[group[member]].append(member)
        assert all(len(found) >= 4 for found in by_group.values()), Counter(group.values())

        run = await api_client.post("/v1/admin/scheduler/run", json={"as_of": w1.isoformat()})
        assert run.status_code == 200, run.text
        assert run.json()["actions_by_rule"].get("campaign") == len(by_group["coupon"]) + len(by_group["plain"])

        # Between the waves: three coupon members convert (one redeeming its campaign coupon), two plain
        # members and one held-out member convert; one more coupon member pays after its window.
        coupon, plain, held = by_group["coupon"], by_group["plain"], by_group[HOLDOUT]
        code = incentive_code("coupon", action_id(SHOP, coupon[0], "campaign", f"{cid}|1"))
        orders = [
            paid(coupon[0], "o-c0", w1 + 2 * DAY, "120.00", code),
            paid(coupon[1], "o-c1", w1 + 3 * DAY, "80.00"),
            paid(coupon[2], "o-c2", w1 + 7 * DAY, "60.00"),  # at the window's very end: counts
            paid(coupon[3], "o-c3", w1 + 7 * DAY + timedelta(seconds=1), "99.00"),  # a second late: does not
            paid(plain[0], "o-p0", w1 + DAY, "50.00"),
            paid(plain[1], "o-p1", w1 + 4 * DAY, "70.00"),
            paid(held[0], "o-h0", w1 + 5 * DAY, "40.00"),
        ]
        await produce(topics, orders)
        await wait_until_processed(engine, len(members) + len(orders), timeout_s=60)

        run = await api_client.post("/v1/admin/scheduler/run", json={"as_of": w2.isoformat()})
        assert run.status_code == 200, run.text
        reached_twice = len(coupon) + len(plain) - 5  # the five converted members are left out of wave 2
        assert run.json()["actions_by_rule"].get("campaign") == reached_twice

        async with engine.connect() as connection:
            outcomes: dict[str, int] = dict(
                (
                    await connection.execute(
                        select(decisions.c.outcome, func.count())
                        .where(decisions.c.campaign_id == cid, decisions.c.wave == 2)
                        .group_by(decisions.c.outcome)
                    )
                ).all()
            )
        assert outcomes == {"emitted": reached_twice, "not_converted_filter": 5, "holdout": len(held)}

        report = (await api_client.get(f"/v1/shops/{SHOP}/campaigns/{cid}/report")).json()
        campaign = (await api_client.get(f"/v1/shops/{SHOP}/campaigns/{cid}")).json()

    def uplift(converted: int, members_: int) -> Json:
        found = newcombe_difference(converted, members_, 1, len(held))
        assert found is not None
        rate = Decimal(converted) / members_ - Decimal(1) / len(held)
        return {"rate_diff": float(round(rate, 4)), "ci95": [round(found.low, 4), round(found.high, 4)]}

    def per_member(total: str, count: int) -> str:
        return str((Decimal(total) / count).quantize(Decimal("0.01")))

    revenue_coupon = Decimal("120.00") + Decimal("80.00") + Decimal("60.00")
    assert report == {
        "strategies": [
            {
                "code": "coupon",
                "members": len(coupon),
                "sent": 0,  # no notifier runs here
                "suppressed": 0,
                "converted": 3,
                "conversion_rate": float(round(Decimal(3) / len(coupon), 4)),
                "revenue": str(revenue_coupon),
                "revenue_per_member": per_member(str(revenue_coupon), len(coupon)),
                "coupons_redeemed": 1,
                "cost": "10.00",
                "roi": float(round((revenue_coupon - 10) / 10, 4)),
                "uplift": uplift(3, len(coupon)),
            },
            {
                "code": "plain",
                "members": len(plain),
                "sent": 0,
                "suppressed": 0,
                "converted": 2,
                "conversion_rate": float(round(Decimal(2) / len(plain), 4)),
                "revenue": "120.00",
                "revenue_per_member": per_member("120.00", len(plain)),
                "coupons_redeemed": 0,
                "cost": "0.00",
                "roi": None,
                "uplift": uplift(2, len(plain)),
            },
        ],
        "holdout": {
            "members": len(held),
            "converted": 1,
            "conversion_rate": float(round(Decimal(1) / len(held), 4)),
            "revenue_per_member": per_member("40.00", len(held)),
        },
        "waves": [
            {"wave": 1, "at": w1.astimezone(UTC).isoformat(), "members": len(coupon) + len(plain)},
            {"wave": 2, "at": w2.astimezone(UTC).isoformat(), "members": reached_twice},
        ],
    }
    assert campaign["status"] == "completed"
    assert [(w["status"], w["members"]) for w in campaign["waves"]] == [
        ("done", len(coupon) + len(plain)),
        ("done", reached_twice),
    ]


async def test_a_wave_interrupted_by_sigkill_reaches_every_member_exactly_once(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess]
) -> None:
    members = [f"k-{i:04d}" for i in range(1_500)]
    background = {"SCHEDULER_INTERVAL_S": "0.2", "CAMPAIGN_BATCH_SIZE": "10"}
    engagement = start_service("engagement", **background)
    api = start_service("api")
    topics = {key: value for key, value in engagement.env.items() if key.startswith("TOPIC_")}
    start = datetime.now(UTC) - timedelta(hours=1)
    await produce(topics, [joined(m, start + timedelta(seconds=i), "bulk") for i, m in enumerate(members)])
    await wait_until_processed(engine, len(members), timeout_s=120)
    body = {
        "name": "Flash sale",
        "definition": {"field": "channel", "op": "=", "value": "bulk"},
        "strategies": [{"code": "notice", "weight": 1, "template": "flash_sale"}],
        "holdout_percent": 0,
        "waves": [{"at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(), "audience": "all"}],
        "attribution_window": "P3D",
    }
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api.env['API_PORT']}", headers=AUTH, timeout=60
    ) as api_client:
        await eventually(lambda: _ready(api_client), timeout_s=60)
        created = await api_client.post(f"/v1/shops/{SHOP}/campaigns", json=body)
        assert created.status_code == 201, created.text
        cid = created.json()["campaign_id"]

    async def decided() -> int:
        async with engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(decisions).where(decisions.c.campaign_id == cid)
            )
        return int(count or 0)

    # The background scheduler starts the wave; kill the process in the middle of it.
    await eventually(decided, timeout_s=60, interval_s=0.02)
    engagement.kill()
    interrupted = await decided()
    assert 0 < interrupted < len(members), interrupted

    start_service("engagement", **background)

    async def wave_done() -> bool:
        async with engine.connect() as connection:
            found = await connection.scalar(select(campaign_waves.c.status).where(campaign_waves.c.campaign_id == cid))
        return found == "done"

    await eventually(wave_done, timeout_s=120, interval_s=0.2)
    await wait_until_outbox_empty(engine, timeout_s=60)
    async with engine.connect() as connection:
        per_member = (
            await connection.execute(
                select(actions.c.member_id, func.count())
                .where(actions.c.rule == "campaign", text("payload->'campaign'->>'campaign_id' = :cid"))
                .params(cid=cid)
                .group_by(actions.c.member_id)
            )
        ).all()
    assert dict(per_member) == dict.fromkeys(members, 1)
    assert await decided() == len(members)
    published = [a for a in await read_to_end(topics["TOPIC_ACTIONS"]) if a["rule"] == "campaign"]
    assert {a["member_id"]: a["action_id"] for a in published} == {
        m: action_id(SHOP, m, "campaign", f"{cid}|1") for m in members
    }
