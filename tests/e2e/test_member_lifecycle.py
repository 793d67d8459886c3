"""A member's first year and an order's whole journey, with business time driven by the scheduler route.

Two engagement instances consume the shop's events; the API runs the scheduler as of
chosen business times, twice each and two calls at once, and the test checks what a
client sees: the member's actions (exactly once each), status and points ledger, and
what was published on ``member.actions``.

Expected values follow the default playbook (shared/playbook_default.yaml): one-month
gift at join + 30 days, hundred-day gift (100 points) at join + 100 days, dormant after
180 days without a paid order, anniversary at 10:00 local time, 1 point per 1.00 paid,
20 points for a review with a photo and 30+ characters, points expire after 12 months
with a reminder 14 days before, unpaid reminder after 30 minutes, delivery delay after
5 days, review invitation 3 days after completion. Each run comes within the playbook's
7-day lateness of what it is expected to send, as a scheduler running every minute would.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import SHANGHAI, envelope
from tests.support import ServiceProcess, eventually, produce, read_to_end, wait_until_processed

pytestmark = pytest.mark.integration

SHOP = "shop-1"
AUTH = {"Authorization": "Bearer test-token"}
JOINED = datetime(2025, 1, 10, 9, 0, tzinfo=SHANGHAI)
Json = dict[str, Any]


class Shop:
    """Two engagement instances and the API on the test's topics and database."""

    def __init__(self, start_service: Callable[..., ServiceProcess], engine: AsyncEngine) -> None:
        first = start_service("engagement")
        start_service("engagement")
        api = start_service("api")
        self.topics = {key: value for key, value in first.env.items() if key.startswith("TOPIC_")}
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.env['API_PORT']}", headers=AUTH, timeout=60)
        self.engine = engine
        self.sent = 0

    async def ready(self) -> None:
        async def up() -> bool:
            try:
                return (await self.client.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(up, timeout_s=30)

    async def send(self, *events: Json) -> None:
        """Publishes the events and waits until both instances have applied them and published the actions."""
        await produce(self.topics, events)
        self.sent += len(events)
        await wait_until_processed(self.engine, self.sent, timeout_s=60)

    async def schedule(self, as_of: datetime) -> Json:
        response = await self.client.post("/v1/admin/scheduler/run", json={"as_of": as_of.isoformat()})
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    async def get(self, path: str) -> Json:
        response = await self.client.get(f"/v1/shops/{SHOP}/members/{path}")
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    async def actions(self, member: str) -> list[Json]:
        return list((await self.get(f"{member}/actions?limit=200"))["items"])


def event(kind: str, member: str, at: datetime, number: int, **data: Any) -> Json:
    return envelope(kind, data, event_id=f"{member}-{number}-{kind}", at=at, member=member, shop=SHOP, source="test")


def day(days: float, hours: float = 0) -> datetime:
    return JOINED + timedelta(days=days, hours=hours)


async def test_a_members_first_year_gives_each_action_exactly_once(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess]
) -> None:
    shop = Shop(start_service, engine)
    await shop.ready()
    m, cny = "m-year", {"currency": "CNY"}
    await shop.send(
        event("member.joined", m, JOINED, 1, channel="app", marketing_consent=True),
        event("order.created", m, day(0, 1), 2, order_id="y-1", amount="120.00", **cny),
        event("order.paid", m, day(0, 1.1), 3, order_id="y-1", amount="120.00", **cny),
        event("shipment.shipped", m, day(1), 4, order_id="y-1", shipment_id="ys-1", carrier="SF"),
        event("shipment.delivered", m, day(2), 5, order_id="y-1", shipment_id="ys-1"),
        event("order.completed", m, day(3), 6, order_id="y-1"),
        event("review.posted", m, day(4), 7, order_id="y-1", review_id="yr-1", rating=5, text_length=80, photo_count=2),
    )
    first = await shop.schedule(day(35))
    assert first["actions_by_rule"] == {"one_month_gift": 1}
    await shop.send(
        event("order.created", m, day(40), 8, order_id="y-2", amount="80.00", **cny),
        event("order.paid", m, day(40, 0.05), 9, order_id="y-2", amount="80.00", **cny),
    )
    assert (await shop.schedule(day(105)))["actions_by_rule"] == {"hundred_day_gift": 1}
    assert (await shop.schedule(day(225)))["actions_by_rule"] == {"dormant_wake_coupon": 1}
    dormant = await shop.get(m)
    assert dormant["lifecycle"]["stage"] == "dormant"
    await shop.send(
        event("order.created", m, day(250), 10, order_id="y-3", amount="50.00", **cny),
        event("order.paid", m, day(250, 0.05), 11, order_id="y-3", amount="50.00", **cny),
    )
    # Reminders 14 days before each of the two expiries on 10 and 14 January.
    assert (await shop.schedule(datetime(2025, 12, 28, 12, tzinfo=SHANGHAI)))["actions_by_rule"] == {
        "points_expiry_reminder": 1
    }
    assert (await shop.schedule(datetime(2026, 1, 1, 10, tzinfo=SHANGHAI)))["actions_by_rule"] == {
        "points_expiry_reminder": 1
    }
    year_end = day(366)
    both = await asyncio.gather(shop.schedule(year_end), shop.schedule(year_end))
    merged: Counter[str] = Counter()
    for report in both:
        merged.update(report["actions_by_rule"])
    assert merged == {"anniversary_gift": 1}
    assert (await shop.schedule(year_end))["actions"] == 0
    await wait_until_processed(engine, shop.sent, timeout_s=60)

    actions = await shop.actions(m)
    assert Counter(action["rule"] for action in actions) == {
        "payment_confirmation": 3,
        "first_purchase_gift": 1,
        "shipped_notice": 1,
        "delivered_notice": 1,
        "review_reward": 1,
        "one_month_gift": 1,
        "repurchase_gift": 1,
        "hundred_day_gift": 1,
        "dormant_wake_coupon": 1,
        "tier_changed": 1,
        "tier_upgrade_gift": 1,
        "points_expiry_reminder": 2,
        "anniversary_gift": 1,
    }
    by_rule = {action["rule"]: action for action in actions}
    one_month = by_rule["one_month_gift"]
    assert one_month["category"] == "incentive"
    assert one_month["trigger"]["schedule"] == "one_month_gift"
    assert datetime.fromisoformat(one_month["trigger"]["due_at"]) == day(30)
    assert datetime.fromisoformat(one_month["occurred_at"]) == day(30)
    assert datetime.fromisoformat(by_rule["hundred_day_gift"]["occurred_at"]) == day(100)
    assert by_rule["hundred_day_gift"]["incentive"]["points"] == 100
    assert datetime.fromisoformat(by_rule["dormant_wake_coupon"]["occurred_at"]) == day(40, 0.05) + timedelta(days=180)
    anniversary = by_rule["anniversary_gift"]
    assert datetime.fromisoformat(anniversary["occurred_at"]) == datetime(2026, 1, 10, 10, 0, tzinfo=SHANGHAI)
    assert anniversary["message"]["variables"] == {"years": 1}
    assert by_rule["review_reward"]["incentive"] == {
        "kind": "points",
        "points": 20,
        "expires_at": day(4).replace(year=2026).isoformat(),
    }
    assert by_rule["tier_changed"]["category"] == "care"
    assert by_rule["tier_changed"]["message"]["variables"]["to"] == "advanced"

    published = await read_to_end(shop.topics["TOPIC_ACTIONS"])  # the outbox is drained (wait_until_processed)
    assert sorted(a["action_id"] for a in published) == sorted(a["action_id"] for a in actions)

    status = await shop.get(m)
    # At risk 90 days after the last paid order (y-3), won back once (y-3 after dormancy).
    lifecycle = status["lifecycle"]
    assert {**lifecycle, "since": datetime.fromisoformat(lifecycle["since"])} == {
        "stage": "at_risk",
        "since": day(250, 0.05) + timedelta(days=90),
        "win_backs": 1,
    }
    assert status["tier"]["code"] == "advanced"
    # Earned 120 + 20 + 80 + 100 + 50; the first order's 120 expired after 12 months.
    assert status["points"]["balance"] == 250
    assert datetime.fromisoformat(status["points"]["next_expiry_at"]) == day(4).replace(year=2026)
    assert status["points"]["expiring_soon"] == 20
    assert status["qualifying"] == {"window_days": 365, "net_spend": "130.00", "paid_orders": 2}
    assert status["score"]["value"] == sum(status["score"]["parts"].values())
    assert status["rfm"] is not None
    assert 1 <= status["rfm"]["r"] <= 5
    ledger = (await shop.get(f"{m}/points/ledger?limit=200"))["items"]
    assert sum(line["points"] for line in ledger) == 250
    assert {line["entry_id"] for line in ledger} == {
        "earn:y-1",
        "review_reward:y-1",
        "earn:y-2",
        "hundred_day_gift:once",
        "earn:y-3",
        f"expire:{(day(0, 1.1).replace(year=2026)).isoformat()}",
    }


async def test_every_node_of_an_order_journey_gets_its_care_message(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess]
) -> None:
    shop = Shop(start_service, engine)
    await shop.ready()
    cny = {"currency": "CNY"}
    start = datetime(2026, 4, 1, 10, 0, tzinfo=SHANGHAI)

    def t(hours: float) -> datetime:
        return start + timedelta(hours=hours)

    shipment = {"order_id": "j-1", "shipment_id": "js-1", "carrier": "SF", "tracking_no": "SF1"}
    refund = {"order_id": "j-1", "amount": "30.00", **cny}
    await shop.send(
        # Never paid: reminded 30 minutes later.
        event("order.created", "m-unpaid", t(0), 1, order_id="u-1", amount="59.00", **cny),
        # Paid within the 30 minutes: never reminded.
        event("order.created", "m-journey", t(0), 2, order_id="j-1", amount="200.00", **cny),
        event("order.paid", "m-journey", t(0.2), 3, order_id="j-1", amount="200.00", **cny),
        event("shipment.shipped", "m-journey", t(2), 4, **shipment),
        event("shipment.in_transit", "m-journey", t(20), 5, **shipment),
        event("shipment.exception", "m-journey", t(30), 6, reason="weather", **shipment),
        event("refund.requested", "m-journey", t(40), 7, refund_id="jr-1", **refund),
        event("refund.rejected", "m-journey", t(41), 8, refund_id="jr-1", **refund),
        event("refund.requested", "m-journey", t(42), 9, refund_id="jr-2", **refund),
        event("refund.approved", "m-journey", t(43), 10, refund_id="jr-2", **refund),
        event("refund.completed", "m-journey", t(44), 11, refund_id="jr-2", **refund),
    )
    # Shipped at t(2) and not delivered five days later; the unpaid order reminded at t(0.5).
    report = await shop.schedule(t(2 + 5 * 24 + 1))
    assert report["actions_by_rule"] == {"unpaid_reminder": 1, "delivery_delay_care": 1}
    await shop.send(
        event("shipment.out_for_delivery", "m-journey", t(130), 12, **shipment),
        event("shipment.delivered", "m-journey", t(134), 13, **shipment),
        event("order.completed", "m-journey", t(140), 14, order_id="j-1"),
    )
    # No review three days after completion: invited.
    assert (await shop.schedule(t(140 + 72 + 1)))["actions_by_rule"] == {"review_invitation": 1}
    assert (await shop.schedule(t(140 + 72 + 1)))["actions"] == 0

    unpaid = await shop.actions("m-unpaid")
    assert [(a["rule"], a["category"]) for a in unpaid] == [("unpaid_reminder", "care")]
    assert datetime.fromisoformat(unpaid[0]["occurred_at"]) == t(0.5)
    journey = await shop.actions("m-journey")
    rules = Counter(action["rule"] for action in journey)
    assert rules == {
        "payment_confirmation": 1,
        "first_purchase_gift": 1,
        "shipped_notice": 1,
        "logistics_exception_care": 1,
        "refund_requested_ack": 2,
        "refund_rejected_notice": 1,
        "refund_approved_notice": 1,
        "refund_completed_notice": 1,
        "delivery_delay_care": 1,
        "out_for_delivery_notice": 1,
        "delivered_notice": 1,
        "review_invitation": 1,
    }
    care = {a["rule"] for a in journey if a["category"] == "care"}
    assert care == set(rules) - {"first_purchase_gift"}
    delay = next(a for a in journey if a["rule"] == "delivery_delay_care")
    assert {**delay["trigger"], "due_at": datetime.fromisoformat(delay["trigger"]["due_at"])} == {
        "schedule": "delivery_delay_care",
        "due_at": t(2 + 5 * 24),
    }
    assert delay["message"]["variables"] == {
        "order_id": "j-1",
        "shipment_id": "js-1",
        "carrier": "SF",
        "tracking_no": "SF1",
    }
    status = await shop.get("m-journey")
    # 200 points earned, 30 of them taken back with the 30.00 refund.
    assert status["points"]["balance"] == 170
    assert status["metrics"]["net_spend"] == "170.00"


async def test_the_engagement_service_runs_the_scheduler_on_the_wall_clock_in_the_background(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess]
) -> None:
    start_service("engagement", SCHEDULER_INTERVAL_S="0.5")
    api = start_service("api")
    topics = {key: value for key, value in api.env.items() if key.startswith("TOPIC_")}
    created = datetime.now(SHANGHAI) - timedelta(minutes=31)
    # Not paid 31 minutes later on the wall clock: the background run reminds the member.
    await produce(
        topics, [event("order.created", "m-late", created, 1, order_id="l-1", amount="10.00", currency="CNY")]
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.env['API_PORT']}", headers=AUTH) as client:

        async def reminded() -> list[Json] | None:
            try:
                response = await client.get(f"/v1/shops/{SHOP}/members/m-late/actions")
            except httpx.TransportError:
                return None
            items: list[Json] = response.json().get("items", []) if response.status_code == 200 else []
            return items or None

        actions = await eventually(reminded, timeout_s=30)
    assert [action["rule"] for action in actions] == ["unpaid_reminder"]
    assert datetime.fromisoformat(actions[0]["trigger"]["due_at"]) == created + timedelta(minutes=30)
