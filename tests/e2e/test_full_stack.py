"""The whole service as it runs in production: engagement, notifier and API as three processes
on the real broker and database. Shop events go in on the commerce topics; what comes out is
checked where a client sees it: over HTTP, on ``member.actions`` and on ``member.notifications``.

Expected values are worked out by hand from docs/events.md and docs/notifier.md with the
default playbook: R = 100; advanced at 300.00 or 3 orders, vip at 500.00 or 5, supreme at
1000.00 or 10; first purchase gift a 10.00 coupon (min spend 99.00, 30 days); quiet hours
22:00-08:00 Asia/Shanghai; at most 3 incentive messages per member in 24 hours.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import SHANGHAI, Stream
from tests.support import ServiceProcess, eventually, produce, read_to_end, wait_until_outbox_empty

pytestmark = pytest.mark.integration

SHOP = "shop-1"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A Monday in the past, so the end of every quiet window is already behind the wall clock.
DAY_ONE = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)

Json = dict[str, Any]


def at(day: int, hour: int, minute: int) -> datetime:
    """A business time in Asia/Shanghai, ``day`` days after DAY_ONE."""
    return (DAY_ONE + timedelta(days=day)).replace(hour=hour, minute=minute)


def minutes(moment: datetime) -> float:
    return (moment - DAY_ONE).total_seconds() / 60


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass
class Stack:
    """The three processes of one test and an HTTP client on the API."""

    client: httpx.AsyncClient
    topics: dict[str, str]
    log_path: Path

    async def get(self, path: str, **params: Any) -> Json:
        response = await self.client.get(path, params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    async def member(self, member: str) -> Json:
        return await self.get(f"/v1/shops/{SHOP}/members/{member}")

    async def pages(self, member: str, kind: str, limit: int = 50) -> list[list[Json]]:
        """Every page of a member's ``actions`` or ``notifications``, following ``next_cursor``."""
        pages: list[list[Json]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            body = await self.get(f"/v1/shops/{SHOP}/members/{member}/{kind}", **params)
            pages.append(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                return pages
            assert len(pages) < 100, "pagination does not end"

    async def listing(self, member: str, kind: str) -> list[Json]:
        return [item for page in await self.pages(member, kind) for item in page]


async def start_stack(start_service: Callable[..., ServiceProcess], tmp_path: Path) -> Stack:
    log_path = tmp_path / "deliveries.jsonl"
    engagement = start_service("engagement")
    start_service("notifier", NOTIFIER_LOG_PATH=str(log_path), NOTIFIER_DEFERRED_POLL_MS="200")
    api = start_service("api")
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.env['API_PORT']}", timeout=5.0)

    async def ready() -> bool:
        try:
            return (await client.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, timeout_s=30)
    topics = {key: value for key, value in engagement.env.items() if key.startswith("TOPIC_")}
    return Stack(client, topics, log_path)


async def settled(stack: Stack, expected: dict[str, int]) -> dict[str, list[Json]]:
    """Waits until each member has the expected number of notification outcomes; returns them."""

    found: dict[str, list[Json]] = {}

    async def check() -> bool:
        for member in expected:
            response = await stack.client.get(
                f"/v1/shops/{SHOP}/members/{member}/notifications", params={"limit": 200}, headers=AUTH
            )
            found[member] = response.json()["items"] if response.status_code == 200 else []
        return {member: len(items) for member, items in found.items()} == expected

    try:
        await eventually(check, timeout_s=45)
    except AssertionError as error:
        seen = {
            member: [(o["action_id"][:8], o["status"], o["reason"]) for o in items] for member, items in found.items()
        }
        raise AssertionError(f"outcomes never settled to {expected}; last seen: {seen}") from error
    return found


def outcomes_by_rule(actions: list[Json], notifications: list[Json]) -> dict[str, list[tuple[str, str | None]]]:
    """rule -> [(status, reason), ...] in the notifications list order (newest first)."""
    rule_of = {action["action_id"]: action["rule"] for action in actions}
    grouped: dict[str, list[tuple[str, str | None]]] = {}
    for outcome in notifications:
        grouped.setdefault(rule_of[outcome["action_id"]], []).append((outcome["status"], outcome["reason"]))
    return grouped


def four_members() -> tuple[Stream, dict[str, Json]]:
    """A day and a half of a shop with four members; returns the stream and its key events by name."""
    stream = Stream(start=DAY_ONE, shop=SHOP)
    named: dict[str, Json] = {}

    def add(name: str, event_type: str, member: str, moment: datetime, **data: Any) -> None:
        named[name] = stream.add(event_type, member, minutes(moment), **data)

    money = {"currency": "CNY"}
    # A: three orders of 120.00, one shipped and delivered, 20.00 of another refunded.
    add("a_join", "member.joined", "m-a", at(0, 9, 0), channel="app", timezone="Asia/Shanghai", marketing_consent=True)
    # B: no marketing consent, one order of exactly the first gift's minimum spend.
    add("b_join", "member.joined", "m-b", at(0, 9, 5), channel="web", marketing_consent=False)
    add("b_paid", "order.paid", "m-b", at(0, 9, 20), order_id="o-b1", amount="99.00", **money)
    add("a_created1", "order.created", "m-a", at(0, 9, 25), order_id="o-a1", amount="120.00", channel="app", **money)
    add("a_paid1", "order.paid", "m-a", at(0, 9, 30), order_id="o-a1", amount="120.00", **money)
    # C: never joined; one order of 1,000.00 makes them supreme at once.
    add("c_paid", "order.paid", "m-c", at(0, 9, 40), order_id="o-c1", amount="1000.00", **money)
    add("a_paid2", "order.paid", "m-a", at(0, 10, 0), order_id="o-a2", amount="120.00", **money)
    add("a_paid3", "order.paid", "m-a", at(0, 10, 30), order_id="o-a3", amount="120.00", **money)
    shipment = {"order_id": "o-a1", "shipment_id": "s-a1", "carrier": "SF Express", "tracking_no": "SF100200300"}
    add("a_shipped", "shipment.shipped", "m-a", at(0, 14, 0), **shipment)
    add("a_in_transit", "shipment.in_transit", "m-a", at(0, 20, 0), **shipment)
    # D: joins and pays late in the evening, inside quiet hours.
    add("d_join", "member.joined", "m-d", at(0, 23, 10), channel="mini_program", marketing_consent=True)
    add("d_paid", "order.paid", "m-d", at(0, 23, 15), order_id="o-d1", amount="88.00", **money)
    add("a_delivered", "shipment.delivered", "m-a", at(1, 9, 0), **shipment)
    refund = {"order_id": "o-a2", "refund_id": "r-a1", "amount": "20.00", "reason": "damaged lid", **money}
    add("a_refund_requested", "refund.requested", "m-a", at(1, 10, 0), **refund)
    add("a_refund_completed", "refund.completed", "m-a", at(1, 11, 0), **refund)
    add("a_completed", "order.completed", "m-a", at(1, 12, 0), order_id="o-a1")
    return stream, named


@dataclass
class FourMembers:
    events: dict[str, Json]
    status: dict[str, Json]
    actions: dict[str, list[Json]]
    action_pages: dict[str, list[list[Json]]]
    notifications: dict[str, list[Json]]
    published_actions: list[Json]
    published_outcomes: list[Json]
    delivery_log: list[Json]
    stack: Stack


MEMBERS = ("m-a", "m-b", "m-c", "m-d")
EXPECTED_ACTIONS = {"m-a": 11, "m-b": 2, "m-c": 4, "m-d": 2}
# One outcome per action on the log channel, plus D's interim `deferred`.
EXPECTED_OUTCOMES = {"m-a": 11, "m-b": 2, "m-c": 4, "m-d": 3}


@pytest.fixture
async def four_member_run(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> AsyncIterator[FourMembers]:
    stack = await start_stack(start_service, tmp_path)
    try:
        stream, named = four_members()
        await produce(stack.topics, stream.events)
        notifications = await settled(stack, EXPECTED_OUTCOMES)
        actions = {member: await stack.listing(member, "actions") for member in MEMBERS}
        assert {m: len(items) for m, items in actions.items()} == EXPECTED_ACTIONS
        await wait_until_outbox_empty(engine)  # every action and outcome stored is on its topic
        yield FourMembers(
            events=named,
            status={member: await stack.member(member) for member in MEMBERS},
            actions=actions,
            action_pages={member: await stack.pages(member, "actions", limit=2) for member in MEMBERS},
            notifications=notifications,
            published_actions=await read_to_end(stack.topics["TOPIC_ACTIONS"]),
            published_outcomes=await read_to_end(stack.topics["TOPIC_NOTIFICATIONS"]),
            delivery_log=[json.loads(line) for line in stack.log_path.read_text().splitlines() if line.strip()],
            stack=stack,
        )
    finally:
        await stack.client.aclose()


async def test_member_status_over_http_shows_tier_spend_and_what_the_next_tier_needs(
    four_member_run: FourMembers,
) -> None:
    run = four_member_run
    a, b, c, d = (run.status[m] for m in MEMBERS)

    # A: 3 x 120.00 - 20.00 refunded = 340.00 over 3 orders; advanced by 3 orders (and 360.00 >= 300.00)
    # on the third payment; vip needs 500.00 - 340.00 = 160.00 more or 2 more orders.
    assert (a["shop_id"], a["member_id"]) == (SHOP, "m-a")
    assert a["metrics"]["net_spend"] == "340.00"
    assert a["metrics"]["paid_orders"] == 3
    assert a["metrics"]["average_order_value"] == "113.33"
    assert instant(a["metrics"]["first_order_at"]) == at(0, 9, 30)
    assert instant(a["metrics"]["last_order_at"]) == at(0, 10, 30)
    assert instant(a["joined_at"]) == at(0, 9, 0)
    assert a["tier"]["code"] == "advanced"
    assert a["tier"]["name"] == "高级会员 Advanced"
    assert instant(a["tier"]["since"]) == at(0, 10, 30)
    assert a["next_tier"] == {"code": "vip", "spend_needed": "160.00", "orders_needed": 2}

    # B: one order of 99.00; still on the base tier, dated from the join.
    assert (b["metrics"]["net_spend"], b["metrics"]["paid_orders"], b["metrics"]["average_order_value"]) == (
        "99.00",
        1,
        "99.00",
    )
    assert instant(b["metrics"]["first_order_at"]) == instant(b["metrics"]["last_order_at"]) == at(0, 9, 20)
    assert instant(b["joined_at"]) == at(0, 9, 5)
    assert (b["tier"]["code"], b["tier"]["name"]) == ("member", "普通会员 Member")
    assert instant(b["tier"]["since"]) == at(0, 9, 5)
    assert b["next_tier"] == {"code": "advanced", "spend_needed": "201.00", "orders_needed": 2}

    # C: no join; the 1,000.00 payment is the join and reaches the top at once.
    assert c["metrics"]["net_spend"] == "1000.00"
    assert c["metrics"]["paid_orders"] == 1
    assert c["metrics"]["average_order_value"] == "1000.00"
    assert instant(c["joined_at"]) == at(0, 9, 40)
    assert (c["tier"]["code"], c["tier"]["name"]) == ("supreme", "至尊VIP Supreme VIP")
    assert instant(c["tier"]["since"]) == at(0, 9, 40)
    assert c["next_tier"] is None

    # D: 88.00 late in the evening.
    assert d["metrics"]["net_spend"] == "88.00"
    assert d["metrics"]["average_order_value"] == "88.00"
    assert instant(d["joined_at"]) == at(0, 23, 10)
    assert instant(d["metrics"]["first_order_at"]) == at(0, 23, 15)
    assert d["tier"]["code"] == "member"
    assert d["next_tier"] == {"code": "advanced", "spend_needed": "212.00", "orders_needed": 2}

    # Datetimes are RFC 3339 with an offset, UTC ones with "Z" (docs/api.md conventions).
    for status in run.status.values():
        for value in (status["joined_at"], status["tier"]["since"], status["updated_at"]):
            assert value.endswith("Z"), value


async def test_actions_over_http_carry_each_members_rules_newest_first_and_page_through_all(
    four_member_run: FourMembers,
) -> None:
    run = four_member_run
    events = run.events

    def triggers(member: str) -> Counter[tuple[str, str]]:
        return Counter((item["rule"], item["trigger"]["event_id"]) for item in run.actions[member])

    assert triggers("m-a") == {
        ("payment_confirmation", events["a_paid1"]["id"]): 1,
        ("first_purchase_gift", events["a_paid1"]["id"]): 1,
        ("payment_confirmation", events["a_paid2"]["id"]): 1,
        ("repurchase_gift", events["a_paid2"]["id"]): 1,
        ("payment_confirmation", events["a_paid3"]["id"]): 1,
        ("tier_changed", events["a_paid3"]["id"]): 1,
        ("tier_upgrade_gift", events["a_paid3"]["id"]): 1,
        ("shipped_notice", events["a_shipped"]["id"]): 1,
        ("delivered_notice", events["a_delivered"]["id"]): 1,
        ("refund_requested_ack", events["a_refund_requested"]["id"]): 1,
        ("refund_completed_notice", events["a_refund_completed"]["id"]): 1,
    }
    assert triggers("m-b") == {
        ("payment_confirmation", events["b_paid"]["id"]): 1,
        ("first_purchase_gift", events["b_paid"]["id"]): 1,
    }
    assert triggers("m-c") == {
        ("payment_confirmation", events["c_paid"]["id"]): 1,
        ("first_purchase_gift", events["c_paid"]["id"]): 1,
        ("tier_changed", events["c_paid"]["id"]): 1,
        ("tier_upgrade_gift", events["c_paid"]["id"]): 1,
    }
    assert triggers("m-d") == {
        ("payment_confirmation", events["d_paid"]["id"]): 1,
        ("first_purchase_gift", events["d_paid"]["id"]): 1,
    }

    for member, items in run.actions.items():
        # Newest first in business time; each action's occurred_at is its trigger's time.
        moments = [instant(item["occurred_at"]) for item in items]
        assert moments == sorted(moments, reverse=True), member
        by_id = {event["id"]: event for event in events.values()}
        for item in items:
            assert (item["shop_id"], item["member_id"]) == (SHOP, member)
            assert instant(item["occurred_at"]) == instant(by_id[item["trigger"]["event_id"]]["time"])
            assert item["category"] == ("incentive" if item["rule"].endswith("_gift") else "care")
            assert item["message"]["template"] == item["rule"]
        # limit=2 pages reach every action exactly once, in the same order as one big page.
        pages = run.action_pages[member]
        assert all(len(page) == 2 for page in pages[:-1])
        assert 1 <= len(pages[-1]) <= 2
        assert [item["action_id"] for page in pages for item in page] == [item["action_id"] for item in items]
    assert len(run.action_pages["m-a"]) == 6

    a = {item["rule"] + "|" + item["trigger"]["event_id"]: item for item in run.actions["m-a"]}
    assert a["payment_confirmation|" + events["a_paid2"]["id"]]["message"]["variables"] == {
        "order_id": "o-a2",
        "amount": "120.00",
        "currency": "CNY",
    }
    first_gift = a["first_purchase_gift|" + events["a_paid1"]["id"]]
    assert first_gift["message"]["variables"] == {"order_id": "o-a1"}
    assert {k: first_gift["incentive"][k] for k in ("kind", "value", "min_spend")} == {
        "kind": "coupon",
        "value": "10.00",
        "min_spend": "99.00",
    }
    assert first_gift["incentive"]["code"].startswith("C")
    assert instant(first_gift["incentive"]["expires_at"]) == at(30, 9, 30)
    upgrade = a["tier_upgrade_gift|" + events["a_paid3"]["id"]]
    assert upgrade["message"]["variables"] == {"tier": "advanced", "tier_name": "高级会员 Advanced"}
    assert (upgrade["incentive"]["value"], upgrade["incentive"]["min_spend"]) == ("20.00", "199.00")
    shipped = a["shipped_notice|" + events["a_shipped"]["id"]]["message"]["variables"]
    assert shipped == {"order_id": "o-a1", "shipment_id": "s-a1", "carrier": "SF Express", "tracking_no": "SF100200300"}
    delivered = a["delivered_notice|" + events["a_delivered"]["id"]]["message"]["variables"]
    assert delivered == {**shipped, "review_invitation": True}
    refunded = a["refund_completed_notice|" + events["a_refund_completed"]["id"]]["message"]["variables"]
    # The refund's free-text reason stays out of the message: it may hold what a buyer typed.
    assert refunded == {"order_id": "o-a2", "refund_id": "r-a1", "amount": "20.00", "currency": "CNY"}
    for item in run.actions["m-a"]:
        if item["category"] == "care":
            assert item.get("incentive") is None

    supreme = next(item for item in run.actions["m-c"] if item["rule"] == "tier_upgrade_gift")
    assert supreme["message"]["variables"] == {"tier": "supreme", "tier_name": "至尊VIP Supreme VIP"}
    assert (supreme["incentive"]["value"], supreme["incentive"]["min_spend"]) == ("100.00", "699.00")
    assert instant(supreme["incentive"]["expires_at"]) == at(60, 9, 40)


async def test_the_actions_topic_carries_exactly_the_actions_the_api_lists(four_member_run: FourMembers) -> None:
    run = four_member_run
    published: dict[str, Json] = {}
    for record in run.published_actions:
        published.setdefault(record["action_id"], record)
    listed = {item["action_id"]: item for items in run.actions.values() for item in items}
    assert set(published) == set(listed)
    # The API returns the stored documents exactly as they were published.
    for action_id, item in listed.items():
        assert published[action_id] == item


async def test_notification_outcomes_follow_consent_and_quiet_hours_and_match_the_topic(
    four_member_run: FourMembers,
) -> None:
    run = four_member_run
    by_rule = {member: outcomes_by_rule(run.actions[member], run.notifications[member]) for member in MEMBERS}
    sent = ("sent", None)

    # A: every message goes out; three incentives in a day stay within the cap of 3.
    assert by_rule["m-a"] == {
        "payment_confirmation": [sent] * 3,
        "first_purchase_gift": [sent],
        "repurchase_gift": [sent],
        "tier_changed": [sent],
        "tier_upgrade_gift": [sent],
        "shipped_notice": [sent],
        "delivered_notice": [sent],
        "refund_requested_ack": [sent],
        "refund_completed_notice": [sent],
    }
    # B: no marketing consent: the gift is suppressed, the care message is sent.
    assert by_rule["m-b"] == {"payment_confirmation": [sent], "first_purchase_gift": [("suppressed", "no_consent")]}
    # C: never joined, so consent defaults to true: both gifts go out.
    assert by_rule["m-c"] == {
        "payment_confirmation": [sent],
        "first_purchase_gift": [sent],
        "tier_changed": [sent],
        "tier_upgrade_gift": [sent],
    }
    # D: paid at 23:15 local: the gift waits for 08:00, long past on the wall clock, then goes out;
    # the payment confirmation is care and goes out at once. Newest first: `sent` above `deferred`.
    assert by_rule["m-d"] == {
        "payment_confirmation": [sent],
        "first_purchase_gift": [sent, ("deferred", "quiet_hours")],
    }

    for member, outcomes in run.notifications.items():
        for outcome in outcomes:
            assert (outcome["shop_id"], outcome["member_id"], outcome["channel"]) == (SHOP, member, "log")
        assert len({outcome["notification_id"] for outcome in outcomes}) == len(outcomes)

    published: dict[str, Json] = {}
    for record in run.published_outcomes:
        published.setdefault(record["notification_id"], record)
    listed = {outcome["notification_id"]: outcome for outcomes in run.notifications.values() for outcome in outcomes}
    assert set(published) == set(listed)
    for notification_id, outcome in listed.items():
        assert {k: v for k, v in published[notification_id].items() if k != "at"} == {
            k: v for k, v in outcome.items() if k != "at"
        }
        assert instant(published[notification_id]["at"]) == instant(outcome["at"])

    # The log channel wrote one line per sent message, identifiers only.
    sent_outcomes = {o["action_id"]: o["notification_id"] for o in listed.values() if o["status"] == "sent"}
    assert len(sent_outcomes) == 18
    assert {line["action_id"]: line["notification_id"] for line in run.delivery_log} == sent_outcomes
    assert len(run.delivery_log) == len(sent_outcomes)
    for line in run.delivery_log:
        assert set(line) == {"notification_id", "action_id", "shop_id", "member_id", "rule", "template", "channel"}


async def test_the_api_answers_unknown_members_with_404_and_callers_without_a_token_with_401(
    four_member_run: FourMembers,
) -> None:
    client = four_member_run.stack.client
    for suffix in ("", "/actions", "/notifications"):
        response = await client.get(f"/v1/shops/{SHOP}/members/m-nobody{suffix}", headers=AUTH)
        assert response.status_code == 404
        body = response.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message"}
        assert body["error"]["code"] == "member_not_found"
        assert "m-nobody" in body["error"]["message"]
    # Another shop does not see this shop's members.
    response = await client.get("/v1/shops/shop-2/members/m-a", headers=AUTH)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "member_not_found")

    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
        for suffix in ("", "/actions", "/notifications"):
            response = await client.get(f"/v1/shops/{SHOP}/members/m-a{suffix}", headers=headers)
            assert response.status_code == 401, (headers, suffix)
            assert response.json()["error"]["code"] == "unauthorized"
            assert set(response.json()) == {"error"}
            assert response.headers["WWW-Authenticate"] == "Bearer"
    # The token is checked before anything else, even for an unknown member.
    response = await client.get(f"/v1/shops/{SHOP}/members/m-nobody")
    assert response.status_code == 401


async def test_the_fourth_incentive_within_24_hours_is_suppressed_by_the_frequency_cap_while_care_goes_out(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    stack = await start_stack(start_service, tmp_path)
    try:
        stream = Stream(start=DAY_ONE, shop=SHOP)
        money = {"currency": "CNY"}
        stream.add("member.joined", "m-f", minutes(at(0, 10, 0)), channel="app", marketing_consent=True)
        # 300.00: first purchase gift and advanced; +200.00 = 500.00: vip; +500.00 = 1,000.00: supreme.
        stream.add("order.paid", "m-f", minutes(at(0, 10, 10)), order_id="o-f1", amount="300.00", **money)
        stream.add("order.paid", "m-f", minutes(at(0, 10, 20)), order_id="o-f2", amount="200.00", **money)
        stream.add("order.paid", "m-f", minutes(at(0, 10, 30)), order_id="o-f3", amount="500.00", **money)
        stream.add("shipment.shipped", "m-f", minutes(at(0, 11, 0)), order_id="o-f3", shipment_id="s-f3", carrier="EMS")
        await produce(stack.topics, stream.events)

        notifications = (await settled(stack, {"m-f": 12}))["m-f"]
        actions = await stack.listing("m-f", "actions")
        status = await stack.member("m-f")
    finally:
        await stack.client.aclose()

    assert status["tier"]["code"] == "supreme"
    assert status["metrics"]["net_spend"] == "1000.00"
    assert len(actions) == 12
    by_id = {action["action_id"]: action for action in actions}
    outcome_of = {outcome["action_id"]: (outcome["status"], outcome["reason"]) for outcome in notifications}
    assert set(outcome_of) == set(by_id)

    # Five incentives in 20 minutes: the first purchase and advanced gifts (10:10), the repurchase
    # and vip gifts (10:20), the supreme gift (10:30). The cap of 3 lets the first three out.
    incentives: dict[str, list[tuple[str, str | None]]] = {}
    for action in actions:
        if action["category"] == "incentive":
            label = action["rule"] + (
                "/" + action["message"]["variables"]["tier"] if "tier" in action["message"]["variables"] else ""
            )
            incentives[label] = [outcome_of[action["action_id"]]]
    assert set(incentives) == {
        "first_purchase_gift",
        "tier_upgrade_gift/advanced",
        "repurchase_gift",
        "tier_upgrade_gift/vip",
        "tier_upgrade_gift/supreme",
    }
    assert incentives["first_purchase_gift"] == incentives["tier_upgrade_gift/advanced"] == [("sent", None)]
    assert sorted(incentives["repurchase_gift"] + incentives["tier_upgrade_gift/vip"]) == [
        ("sent", None),
        ("suppressed", "frequency_cap"),
    ]
    assert incentives["tier_upgrade_gift/supreme"] == [("suppressed", "frequency_cap")]
    care = [action for action in actions if action["category"] == "care"]
    assert Counter(action["rule"] for action in care) == {
        "payment_confirmation": 3,
        "tier_changed": 3,
        "shipped_notice": 1,
    }
    assert all(outcome_of[action["action_id"]] == ("sent", None) for action in care)
