"""The campaign resource over HTTP on the real database: create, read, list, cancel.

Waves are moved by hand here (the scheduler's part is tested with the scheduler) to see the
campaign's status follow them and cancelling leave started waves alone.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import campaign_members, campaign_sends, campaign_waves, campaigns, deliveries
from shared.domain.stats import newcombe_difference
from shared.playbook_file import layers_of
from shared.settings import Settings
from tests.builders import coupon_row, decision_row, insert_rows, order_row
from tests.support import api_in_process

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer test-token"}
READER = {"Authorization": "Bearer reader-token"}
SHOP = "shop-1"
BASE = f"/v1/shops/{SHOP}/campaigns"
SEGMENTS = f"/v1/shops/{SHOP}/segments"
NOW = datetime.now(UTC)
DAY = timedelta(days=1)
PLAYBOOK: dict[str, Any] = {"shops": {SHOP: {}}}
VIP = {"field": "tier", "op": ">=", "value": "vip"}
MEMBERS = {"field": "tier", "op": "=", "value": "member"}
IDENTITY = "token:" + hashlib.sha256(b"test-token").hexdigest()[:12]


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_in_process(
        settings, read_tokens=("reader-token",), layers=layers_of(PLAYBOOK), headers=AUTH
    ) as http:
        yield http


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    return message


def _body(**changes: Any) -> dict[str, Any]:
    """A valid plan with a definition and two waves, a day and eight days ahead."""
    body: dict[str, Any] = {
        "name": "Win back VIPs",
        "definition": VIP,
        "strategies": [
            {
                "code": "ten_off",
                "weight": 2,
                "template": "winback_coupon",
                "variables": {"headline": "We miss you"},
                "incentive": {"kind": "coupon", "value": "10.00", "min_spend": "50.00", "valid_for": "P30D"},
            },
            {
                "code": "points",
                "weight": "1.5",
                "template": "winback_points",
                "incentive": {"kind": "points", "points": 200},
            },
            {"code": "plain", "weight": 1, "template": "winback_plain"},
        ],
        "holdout_percent": 10,
        "waves": [
            {"at": (NOW + DAY).isoformat(), "audience": "all"},
            {"at": (NOW + 8 * DAY).isoformat(), "audience": "not_converted"},
        ],
        "attribution_window": "P14D",
        "budget": "500.00",
    }
    body.update(changes)
    return body


async def _create(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post(BASE, json=_body(**changes))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _set_waves(engine: AsyncEngine, campaign_id: str, **statuses: str) -> None:
    """Moves waves by number (``w1="done"``) as the scheduler would."""
    async with engine.begin() as connection:
        for name, wave_status in statuses.items():
            await connection.execute(
                update(campaign_waves)
                .where(campaign_waves.c.campaign_id == campaign_id, campaign_waves.c.wave == int(name[1:]))
                .values(
                    status=wave_status,
                    members=7 if wave_status == "done" else 0,
                    ran_at=NOW if wave_status == "done" else None,
                )
            )


# --- creating and reading -------------------------------------------------------------------------


async def test_create_with_a_definition_and_read_it(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    created = await _create(client)
    uuid.UUID(created["campaign_id"])
    assert created["status"] == "scheduled"
    assert created["name"] == "Win back VIPs"
    assert (created["segment_id"], created["segment_version"]) == (None, None)
    assert created["definition"] == VIP
    assert [strategy["code"] for strategy in created["strategies"]] == ["ten_off", "points", "plain"]
    assert [strategy["weight"] for strategy in created["strategies"]] == ["2", "1.5", "1"]
    assert created["strategies"][0]["incentive"] == {
        "kind": "coupon",
        "value": "10.00",
        "min_spend": "50.00",
        "valid_for": "P30D",
    }
    assert created["strategies"][0]["variables"] == {"headline": "We miss you"}
    assert created["strategies"][1]["incentive"] == {"kind": "points", "points": 200}
    assert created["strategies"][2]["incentive"] is None
    assert (created["holdout_percent"], created["attribution_window"], created["budget"]) == (10, "P14D", "500.00")
    assert [
        (wave["wave"], wave["audience"], wave["status"], wave["members"], wave["ran_at"]) for wave in created["waves"]
    ] == [
        (1, "all", "pending", 0, None),
        (2, "not_converted", "pending", 0, None),
    ]
    assert datetime.fromisoformat(created["waves"][0]["at"]) == datetime.fromisoformat(_body()["waves"][0]["at"])
    assert created["created_by"] == IDENTITY
    assert created["cancelled_at"] is None
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None

    read = await client.get(f"{BASE}/{created['campaign_id']}", headers=READER)  # a read-only token may read
    assert read.status_code == 200, read.text
    assert read.json() == created

    async with engine.connect() as connection:
        row = (await connection.execute(select(campaigns))).one()
        waves = (await connection.execute(select(campaign_waves).order_by(campaign_waves.c.wave))).all()
    assert (row.shop_id, row.status, row.created_by, row.plan["definition"]) == (SHOP, "scheduled", IDENTITY, VIP)
    assert [(wave.wave, wave.status) for wave in waves] == [(1, "pending"), (2, "pending")]


async def test_a_wave_time_already_past_is_accepted(client: httpx.AsyncClient) -> None:
    created = await _create(client, waves=[{"at": (NOW - DAY).isoformat()}])
    assert [(wave["wave"], wave["audience"], wave["status"]) for wave in created["waves"]] == [(1, "all", "pending")]
    # Optional fields: no budget, the default attribution window, no holdout.
    body = _body()
    for optional in ("budget", "attribution_window", "holdout_percent"):
        del body[optional]
    response = await client.post(BASE, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["budget"], created["attribution_window"], created["holdout_percent"]) == (None, "P14D", 0)


async def test_a_segment_is_copied_in_when_the_campaign_is_created(client: httpx.AsyncClient) -> None:
    response = await client.post(SEGMENTS, json={"name": "VIPs", "definition": VIP})
    assert response.status_code == 201, response.text
    segment_id = response.json()["segment_id"]
    body = _body(segment_id=segment_id)
    del body["definition"]
    response = await client.post(BASE, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["segment_id"], created["segment_version"], created["definition"]) == (segment_id, 1, VIP)

    # A later version of the segment leaves the campaign as it was; a new campaign takes the new one.
    revised = await client.put(f"{SEGMENTS}/{segment_id}", json={"name": "Members", "definition": MEMBERS})
    assert revised.status_code == 200, revised.text
    read = (await client.get(f"{BASE}/{created['campaign_id']}")).json()
    assert (read["segment_version"], read["definition"]) == (1, VIP)
    second = (await client.post(BASE, json=body)).json()
    assert (second["segment_version"], second["definition"]) == (2, MEMBERS)

    # Archived: no new campaign from it, and the existing ones keep their copy.
    assert (await client.delete(f"{SEGMENTS}/{segment_id}")).status_code == 204
    message = _error(await client.post(BASE, json=body), 422, "invalid_campaign")
    assert message.startswith("body.segment_id: ")
    assert (await client.get(f"{BASE}/{created['campaign_id']}")).json()["definition"] == VIP

    unknown = {**body, "segment_id": "seg_000000000000000000000000"}
    assert _error(await client.post(BASE, json=unknown), 422, "invalid_campaign").startswith("body.segment_id: ")


async def test_a_segment_of_another_shop_is_unknown(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/shops/shop-2/segments", json={"name": "VIPs", "definition": VIP})
    body = _body(segment_id=response.json()["segment_id"])
    del body["definition"]
    assert _error(await client.post(BASE, json=body), 422, "invalid_campaign").startswith("body.segment_id: ")


# --- refusals -------------------------------------------------------------------------------------


def _strategy(**changes: Any) -> list[dict[str, Any]]:
    strategies: list[dict[str, Any]] = _body()["strategies"]
    strategies[1] = {**strategies[1], **changes}
    return strategies


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"holdout_percent": 51}, "body.holdout_percent: must be an integer from 0 to 50"),
    ({"holdout_percent": -1}, "body.holdout_percent: "),
    ({"strategies": _strategy(weight=0)}, "body.strategies[1].weight: must be more than 0"),
    ({"strategies": _strategy(weight=-2)}, "body.strategies[1].weight: must be more than 0"),
    ({"strategies": _strategy(weight="heavy")}, "body.strategies[1].weight: must be a number"),
    ({"strategies": _strategy(incentive={"kind": "voucher"})}, "body.strategies[1].incentive.kind: must be one of"),
    ({"strategies": _strategy(code="ten_off")}, "body.strategies[1].code: "),
    ({"strategies": _strategy(code="holdout")}, "body.strategies[1].code: "),
    ({"strategies": _strategy(template="")}, "body.strategies[1].template: "),
    ({"strategies": []}, "body.strategies: must be a non-empty list"),
    (
        {"waves": [{"at": (NOW + 2 * DAY).isoformat()}, {"at": (NOW + DAY).isoformat()}]},
        "body.waves[1].at: must be later than the wave before it",
    ),
    ({"waves": [{"at": "2026-03-02T09:00:00"}]}, "body.waves[0].at: must be an RFC 3339 time with an offset"),
    ({"waves": [{"at": (NOW + DAY).isoformat(), "audience": "everyone"}]}, "body.waves[0].audience: "),
    ({"waves": [{"at": (NOW + DAY).isoformat(), "audience": "not_converted"}]}, "body.waves[0].audience: "),
    ({"waves": []}, "body.waves: must be a non-empty list"),
    ({"definition": {"field": "tier", "op": "=", "value": "platinum"}}, "body.definition"),
    ({"definition": {"field": "shoe_size", "op": "=", "value": 42}}, "body.definition"),
    ({"segment_id": "seg_000000000000000000000000"}, "body.segment_id: give exactly one of"),
    ({"definition": None}, "body.segment_id: give exactly one of"),
    ({"name": ""}, "body.name: "),
    ({"attribution_window": "14 days"}, "body.attribution_window: "),
    ({"budget": "-5.00"}, "body.budget: "),
    ({"budget": 500}, "body.budget: "),
    ({"strategies": _strategy(variables={"n": 2**63})}, "body.strategies[1].variables.n: must be a number from"),
    ({"strategies": _strategy(variables={"n": [10**120]})}, "body.strategies[1].variables.n[0]: "),
]


@pytest.mark.parametrize(("changes", "start"), INVALID)
async def test_an_invalid_plan_is_refused_naming_its_path(
    client: httpx.AsyncClient, engine: AsyncEngine, changes: dict[str, Any], start: str
) -> None:
    message = _error(await client.post(BASE, json=_body(**changes)), 422, "invalid_campaign")
    assert message.startswith(start), message
    async with engine.connect() as connection:
        assert (await connection.execute(select(campaigns))).first() is None


async def test_wave_times_must_lie_in_the_business_time_window(client: httpx.AsyncClient) -> None:
    too_far = [{"at": (NOW + DAY).isoformat()}, {"at": (NOW + 367 * DAY).isoformat()}]
    message = _error(await client.post(BASE, json=_body(waves=too_far)), 422, "time_out_of_range")
    assert message.startswith("body.waves[1].at ")
    too_early = [{"at": "1999-12-31T00:00:00Z"}]
    _error(await client.post(BASE, json=_body(waves=too_early)), 422, "time_out_of_range")


async def test_bodies_that_are_not_a_plan(client: httpx.AsyncClient) -> None:
    _error(await client.post(BASE, json=[1, 2]), 422, "invalid_request")
    response = await client.post(BASE, content=b"{not json", headers={"Content-Type": "application/json"})
    _error(response, 422, "invalid_json")


async def test_tokens(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    campaign = f"{BASE}/{created['campaign_id']}"
    anonymous = {"Authorization": ""}
    for response in (
        await client.post(BASE, json=_body(), headers=anonymous),
        await client.get(BASE, headers=anonymous),
        await client.get(campaign, headers={"Authorization": "Bearer wrong"}),
        await client.post(f"{campaign}/cancel", headers=anonymous),
    ):
        _error(response, 401, "unauthorized")
    _error(await client.post(BASE, json=_body(), headers=READER), 403, "forbidden")
    _error(await client.post(f"{campaign}/cancel", headers=READER), 403, "forbidden")
    assert (await client.get(BASE, headers=READER)).status_code == 200
    assert (await client.get(campaign, headers=READER)).json()["status"] == "scheduled"


async def test_unknown_campaigns(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    _error(await client.get(f"{BASE}/{uuid.uuid4()}"), 404, "campaign_not_found")
    _error(await client.post(f"{BASE}/{uuid.uuid4()}/cancel"), 404, "campaign_not_found")
    other = f"/v1/shops/shop-2/campaigns/{created['campaign_id']}"  # another shop's id is unknown here
    _error(await client.get(other), 404, "campaign_not_found")
    _error(await client.post(f"{other}/cancel"), 404, "campaign_not_found")
    assert (await client.get("/v1/shops/shop-2/campaigns")).json() == {"items": [], "next_cursor": None}


# --- listing and status ---------------------------------------------------------------------------


async def test_list_newest_first_a_page_at_a_time_and_by_status(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    ids = [(await _create(client, name=f"campaign {index}"))["campaign_id"] for index in range(5)]
    newest_first = list(reversed(ids))

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(BASE, params=params, headers=READER)).json()
        seen += [item["campaign_id"] for item in page["items"]]
        assert len(page["items"]) <= 2
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first
    first = (await client.get(BASE)).json()
    assert first["items"][0] == (await client.get(f"{BASE}/{ids[-1]}")).json()

    # ids[0]: first wave running -> running; ids[1]: every wave done -> completed; ids[2]: cancelled.
    await _set_waves(engine, ids[0], w1="running")
    await _set_waves(engine, ids[1], w1="done", w2="done")
    assert (await client.post(f"{BASE}/{ids[2]}/cancel")).status_code == 200
    expected = {
        "scheduled": [ids[4], ids[3]],
        "running": [ids[0]],
        "completed": [ids[1]],
        "cancelled": [ids[2]],
    }
    for wanted, campaign_ids in expected.items():
        listed = (await client.get(BASE, params={"status": wanted})).json()
        assert [item["campaign_id"] for item in listed["items"]] == campaign_ids, wanted
        assert {item["status"] for item in listed["items"]} == {wanted}
    completed = (await client.get(f"{BASE}/{ids[1]}")).json()
    assert [(wave["status"], wave["members"]) for wave in completed["waves"]] == [("done", 7), ("done", 7)]
    assert all(wave["ran_at"] is not None for wave in completed["waves"])

    # A filtered page goes on with the same filter.
    page = (await client.get(BASE, params={"status": "scheduled", "limit": 1})).json()
    assert [item["campaign_id"] for item in page["items"]] == [ids[4]]
    rest = (await client.get(BASE, params={"status": "scheduled", "cursor": page["next_cursor"]})).json()
    assert ([item["campaign_id"] for item in rest["items"]], rest["next_cursor"]) == ([ids[3]], None)

    _error(await client.get(BASE, params={"status": "paused"}), 422, "invalid_request")
    _error(await client.get(BASE, params={"cursor": "not-a-cursor"}), 422, "invalid_cursor")
    _error(await client.get(BASE, params={"cursor": "eyJrIjoiZyJ9"}), 422, "invalid_cursor")  # a segments cursor


# --- cancelling -----------------------------------------------------------------------------------


async def test_cancel_stops_the_waves_not_yet_started(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    created = await _create(
        client,
        waves=[
            {"at": (NOW - DAY).isoformat()},
            {"at": NOW.isoformat(), "audience": "not_converted"},
            {"at": (NOW + DAY).isoformat(), "audience": "not_converted"},
        ],
    )
    campaign = f"{BASE}/{created['campaign_id']}"
    await _set_waves(engine, created["campaign_id"], w1="done", w2="running")
    assert (await client.get(campaign)).json()["status"] == "running"

    response = await client.post(f"{campaign}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert datetime.fromisoformat(cancelled["cancelled_at"]) >= NOW
    assert [wave["status"] for wave in cancelled["waves"]] == ["done", "running", "cancelled"]
    assert (await client.get(campaign)).json() == cancelled

    # Again: the same document, the first cancelled_at.
    again = await client.post(f"{campaign}/cancel")
    assert again.status_code == 200, again.text
    assert again.json() == cancelled
    # The running wave finishing later leaves the campaign cancelled.
    await _set_waves(engine, created["campaign_id"], w2="done")
    assert (await client.get(campaign)).json()["status"] == "cancelled"


async def test_cancel_a_scheduled_campaign_and_a_completed_one(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    scheduled = await _create(client)
    cancelled = (await client.post(f"{BASE}/{scheduled['campaign_id']}/cancel")).json()
    assert [wave["status"] for wave in cancelled["waves"]] == ["cancelled", "cancelled"]
    async with engine.connect() as connection:
        row = (await connection.execute(select(campaigns.c.status, campaigns.c.cancelled_at))).one()
    assert row.status == "cancelled"
    assert row.cancelled_at is not None

    completed = await _create(client)
    await _set_waves(engine, completed["campaign_id"], w1="done", w2="done")
    message = _error(await client.post(f"{BASE}/{completed['campaign_id']}/cancel"), 409, "campaign_not_cancellable")
    assert completed["campaign_id"] in message
    read = (await client.get(f"{BASE}/{completed['campaign_id']}")).json()
    assert (read["status"], read["cancelled_at"]) == ("completed", None)


# --- the report ------------------------------------------------------------------------------------


def _delivery(
    action_id: str, member_id: str, status: str, channel: str = "log", campaign_id: str = ""
) -> tuple[Table, dict[str, Any]]:
    return deliveries, {
        "action_id": action_id,
        "channel": channel,
        "shop_id": SHOP,
        "member_id": member_id,
        "rule": "campaign",
        "category": "incentive",
        "status": status,
        "occurred_at": NOW,
        "action": {"campaign": {"campaign_id": campaign_id, "wave": 1, "strategy": "s"}},
    }


def _reached(campaign_id: str, member_id: str, grp: str, wave: int, at: datetime) -> tuple[Table, dict[str, Any]]:
    """A member the campaign reached, as the first wave to reach it records it."""
    row = {"campaign_id": campaign_id, "member_id": member_id, "grp": grp, "first_wave": wave, "first_at": at}
    return campaign_members, {"shop_id": SHOP, **row}


def _sent(campaign_id: str, wave: int, strategy: str, members: int, points: str = "0") -> tuple[Table, dict[str, Any]]:
    """A wave's sends of one strategy, as its batches add them up."""
    row = {"campaign_id": campaign_id, "wave": wave, "strategy": strategy, "members": members, "points_value": points}
    return campaign_sends, {"shop_id": SHOP, **row}


async def test_the_report_counts_each_strategy_the_holdout_and_each_wave(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    created = await _create(client)
    cid = created["campaign_id"]
    t1, t2 = (datetime.fromisoformat(wave["at"]) for wave in created["waves"])

    def decided(ident: str, member: str, wave: int, strategy: str | None, outcome: str = "emitted", **kw: Any) -> Any:
        at = t1 if wave == 1 else t2
        return decision_row(ident, member, "campaign", outcome, at, campaign_id=cid, wave=wave, strategy=strategy, **kw)

    await insert_rows(
        engine,
        # ten_off: m1 redeems its coupon 2 days after wave 1 (120.00); m2, reached in both waves, pays exactly
        # 14 days after its first wave (80.00, counts); m3, first reached in wave 2, pays a day too late.
        decided("a1", "m1", 1, "ten_off", value="10.00"),
        coupon_row("CA", "m1", "campaign", "a1", "10.00", t1, status="redeemed", order_id="o1", campaign_id=cid),
        order_row("o1", "m1", t1 + 2 * DAY, "120.00"),
        decided("a2", "m2", 1, "ten_off", value="10.00"),
        coupon_row("CB", "m2", "campaign", "a2", "10.00", t1, campaign_id=cid),
        decided("a2b", "m2", 2, "ten_off", value="10.00"),
        coupon_row("CB2", "m2", "campaign", "a2b", "10.00", t2, campaign_id=cid),
        order_row("o2", "m2", t1 + 14 * DAY, "80.00"),
        decided("a3", "m3", 2, "ten_off", value="10.00"),
        coupon_row("CC", "m3", "campaign", "a3", "10.00", t2, campaign_id=cid),
        order_row("o3", "m3", t2 + 15 * DAY, "70.00"),
        _delivery("a1", "m1", "sent", campaign_id=cid),
        _delivery("a2", "m2", "suppressed", campaign_id=cid),
        _delivery("a2b", "m2", "sent", campaign_id=cid),
        _delivery("a2b", "m2", "suppressed", channel="webhook", campaign_id=cid),  # sent on one channel: sent
        _delivery("a3", "m3", "deferred", campaign_id=cid),
        # points: m4, 200 points worth 2.00, no order.
        decided("p1", "m4", 1, "points", kind="points", value="2.00", points=200),
        _delivery("p1", "m4", "sent", campaign_id=cid),
        # the holdout: h1 converts (50.00); h2, first held out in wave 1, pays 20 days on; h3, first held
        # out in wave 2, converts (30.00).
        decided("h1", "h1", 1, None, "holdout"),
        order_row("oh1", "h1", t1 + DAY, "50.00"),
        decided("h2", "h2", 1, None, "holdout"),
        decided("h2b", "h2", 2, None, "holdout"),
        order_row("oh2", "h2", t1 + 20 * DAY, "40.00"),
        decided("h3", "h3", 2, None, "holdout"),
        order_row("oh3", "h3", t2 + 3 * DAY, "30.00"),
        # Neither group: a member left out by the not_converted filter, and another campaign's decision.
        decided("f1", "m5", 2, "plain", "not_converted_filter"),
        decision_row("x1", "m1", "campaign", "emitted", t1, campaign_id="another", wave=1, strategy="ten_off"),
        _delivery("x1", "m1", "sent", campaign_id="another"),
        # What the waves recorded with those decisions: each member's group and first reaching wave,
        # and each wave's sends per strategy.
        _reached(cid, "m1", "ten_off", 1, t1),
        _reached(cid, "m2", "ten_off", 1, t1),
        _reached(cid, "m3", "ten_off", 2, t2),
        _reached(cid, "m4", "points", 1, t1),
        _reached(cid, "h1", "holdout", 1, t1),
        _reached(cid, "h2", "holdout", 1, t1),
        _reached(cid, "h3", "holdout", 2, t2),
        _reached("another", "m1", "ten_off", 1, t1),
        _sent(cid, 1, "ten_off", 2),
        _sent(cid, 1, "points", 1, "2.00"),
        _sent(cid, 2, "ten_off", 2),
        _sent("another", 1, "ten_off", 1),
    )

    report = (await client.get(f"{BASE}/{cid}/report", headers=READER)).json()
    ten_off_uplift = newcombe_difference(2, 3, 2, 3)
    points_uplift = newcombe_difference(0, 1, 2, 3)
    assert ten_off_uplift is not None
    assert points_uplift is not None
    assert report == {
        "strategies": [
            {
                "code": "ten_off",
                "members": 3,
                "sent": 2,
                "suppressed": 1,
                "converted": 2,
                "conversion_rate": 0.6667,
                "revenue": "200.00",
                "revenue_per_member": "66.67",
                "coupons_redeemed": 1,
                "cost": "10.00",
                "roi": 19.0,
                "uplift": {
                    "rate_diff": 0.0,
                    "ci95": [round(ten_off_uplift.low, 4), round(ten_off_uplift.high, 4)],
                },
            },
            {
                "code": "points",
                "members": 1,
                "sent": 1,
                "suppressed": 0,
                "converted": 0,
                "conversion_rate": 0.0,
                "revenue": "0.00",
                "revenue_per_member": "0.00",
                "coupons_redeemed": 0,
                "cost": "2.00",
                "roi": -1.0,
                "uplift": {
                    "rate_diff": -0.6667,
                    "ci95": [round(points_uplift.low, 4), round(points_uplift.high, 4)],
                },
            },
            {
                "code": "plain",
                "members": 0,
                "sent": 0,
                "suppressed": 0,
                "converted": 0,
                "conversion_rate": None,
                "revenue": "0.00",
                "revenue_per_member": None,
                "coupons_redeemed": 0,
                "cost": "0.00",
                "roi": None,
                "uplift": {"rate_diff": None, "ci95": None},
            },
        ],
        "holdout": {"members": 3, "converted": 2, "conversion_rate": 0.6667, "revenue_per_member": "26.67"},
        "waves": [
            {"wave": 1, "at": t1.astimezone(UTC).isoformat(), "members": 3},
            {"wave": 2, "at": t2.astimezone(UTC).isoformat(), "members": 2},
        ],
    }

    csv_response = await client.get(f"{BASE}/{cid}/report", params={"format": "csv"}, headers=READER)
    assert csv_response.status_code == 200
    assert csv_response.headers["content-type"] == "text/csv; charset=utf-8"
    lines = list(csv.reader(io.StringIO(csv_response.text)))
    assert lines[0][:5] == ["section", "code", "wave", "at", "members"]
    assert [line[:2] for line in lines[1:]] == [
        ["strategy", "ten_off"],
        ["strategy", "points"],
        ["strategy", "plain"],
        ["holdout", ""],
        ["wave", ""],
        ["wave", ""],
    ]
    assert lines[1][9] == "200.00"
    _error(await client.get(f"{BASE}/nope/report"), 404, "campaign_not_found")
    wrong = {"Authorization": "Bearer not-a-configured-token"}
    assert (await client.get(f"{BASE}/{cid}/report", headers=wrong)).status_code == 401
