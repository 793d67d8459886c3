"""Records the broker accepts but that once stopped the engagement consumer, each beside good
events that must still be processed within seconds: values and keys near the broker's size
limit, times at the edge of what a datetime can hold, a missing dead-letter topic, a member
whose stored state cannot be processed, and a partition that stops moving."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import dead_letters, processed_events, quarantined_members
from tests.builders import Stream
from tests.support import (
    KAFKA,
    ServiceProcess,
    delete_topics,
    end_offsets,
    eventually,
    produce,
    read_to_end,
    wait_until_committed,
    wait_until_processed,
)

pytestmark = pytest.mark.integration

GOOD_WITHIN_S = 30.0  # "within seconds": generous for a loaded CI machine, far from "never"
INPUT_TOPICS = ("TOPIC_MEMBERS", "TOPIC_ORDERS", "TOPIC_SHIPMENTS", "TOPIC_REFUNDS", "TOPIC_REVIEWS")


async def dead_letters_of(service: ServiceProcess, topic_env: dict[str, str], dlq: str | None = None) -> list[Any]:
    """The dead-letter topic read to its end once the service has committed every input record.

    Dead letters are acknowledged by the broker before the offsets behind them are
    committed, so by then every dead letter of what was produced is on the topic.
    """
    inputs = [name for key, name in topic_env.items() if key in INPUT_TOPICS]
    await wait_until_committed(service.env["ENGAGEMENT_GROUP_ID"], await end_offsets(inputs), timeout_s=GOOD_WITHIN_S)
    return await read_to_end(dlq or topic_env["TOPIC_DLQ"])


async def _processed_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set((await connection.execute(select(processed_events.c.event_id))).scalars())


async def _net_spend(engine: AsyncEngine, member: str) -> str | None:
    async with engine.connect() as connection:
        value = await connection.scalar(text("SELECT net_spend FROM members WHERE member_id = :m"), {"m": member})
    return None if value is None else str(value)


async def test_a_value_near_the_broker_limit_is_kept_in_postgresql_and_the_events_behind_it_go_on(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    orders = topic_env["TOPIC_ORDERS"]
    stream = Stream()
    stream.add("order.paid", "m-1", 0, order_id="o-1", amount="10.00", currency="CNY")
    stream.add("order.paid", "m-1", 60, order_id="o-2", amount="20.00", currency="CNY")
    huge = b'{"pad": "' + b"x" * 1_000_000 + b'"}'
    service = start_service("engagement")
    await produce(topic_env, [stream.events[0], (orders, huge, b"shop-1:m-1"), stream.events[1]])

    await wait_until_processed(engine, 2, timeout_s=GOOD_WITHIN_S)
    assert await _net_spend(engine, "m-1") == "30.00"
    [dead] = await dead_letters_of(service, topic_env)
    assert dead["error"].startswith("too_large: ")
    assert dead["value"] is None
    assert base64.b64decode(dead["value_prefix"]) == huge[:1024]
    assert dead["key"] == "shop-1:m-1"
    assert (dead["topic"], isinstance(dead["offset"], int)) == (orders, True)
    stored_id = int(dead["stored_as"].removeprefix("dead_letters/"))
    async with engine.connect() as connection:
        row = (await connection.execute(select(dead_letters).where(dead_letters.c.id == stored_id))).one()
    assert (row.value, row.key, row.topic, row.offset) == (huge, b"shop-1:m-1", orders, dead["offset"])


async def test_a_key_near_the_broker_limit_is_cut_in_the_dead_letter_and_a_valid_event_under_it_is_applied(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    orders = topic_env["TOPIC_ORDERS"]
    huge_key = b"k" * 1_000_000
    stream = Stream()
    stream.add("order.paid", "m-1", 0, order_id="o-1", amount="10.00", currency="CNY")
    valid_under_huge_key = stream.add("order.paid", "m-2", 30, order_id="o-2", amount="15.00", currency="CNY")
    stream.add("order.paid", "m-1", 60, order_id="o-3", amount="20.00", currency="CNY")
    service = start_service("engagement")
    await produce(
        topic_env,
        [
            stream.events[0],
            (orders, b"{not json", huge_key),
            (orders, json.dumps(valid_under_huge_key).encode(), huge_key),
            stream.events[2],
        ],
    )

    await wait_until_processed(engine, 3, timeout_s=GOOD_WITHIN_S)
    assert (await _net_spend(engine, "m-1"), await _net_spend(engine, "m-2")) == ("30.00", "15.00")
    [dead] = await dead_letters_of(service, topic_env)
    assert dead["error"].startswith("invalid_json: ")
    assert dead["key"] == huge_key[:1024].decode()
    assert base64.b64decode(dead["value_prefix"]) == b"{not json"
    async with engine.connect() as connection:
        row = (await connection.execute(select(dead_letters))).one()
    assert (row.key, row.value) == (huge_key, b"{not json")


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+08:00",  # its UTC equivalent lies before year 1
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:00:00-05:00",  # its UTC equivalent lies after year 9999
        "9999-12-31T23:59:59+14:00",
        "1999-12-31T23:59:59Z",  # before the window
        "tomorrow+2",  # more than a day after the wall clock
    ],
)
async def test_a_time_outside_the_business_window_is_dead_lettered_and_the_events_behind_it_go_on(
    moment: str, engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    if moment == "tomorrow+2":
        moment = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    stream = Stream()
    stream.add("order.paid", "m-1", 0, order_id="o-1", amount="10.00", currency="CNY")
    bad = stream.add("order.paid", "m-edge", 10, order_id="o-edge", amount="99.00", currency="CNY")
    bad["time"] = moment
    stream.add("order.paid", "m-1", 60, order_id="o-2", amount="20.00", currency="CNY")
    service = start_service("engagement")
    await produce(topic_env, stream.events)

    await wait_until_processed(engine, 2, timeout_s=GOOD_WITHIN_S)
    assert await _net_spend(engine, "m-1") == "30.00"
    assert await _net_spend(engine, "m-edge") is None
    [dead] = await dead_letters_of(service, topic_env)
    assert dead["error"].startswith("time_out_of_range: time: must lie between 2000-01-01T00:00:00+00:00")
    assert json.loads(base64.b64decode(dead["value"]))["id"] == bad["id"]


async def test_a_missing_dead_letter_topic_is_created_at_start_up(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    absent = f"{topic_env['TOPIC_DLQ']}.{uuid.uuid4().hex[:6]}"
    stream = Stream()
    stream.add("order.paid", "m-1", 0, order_id="o-1", amount="10.00", currency="CNY")
    stream.add("order.paid", "m-1", 60, order_id="o-2", amount="20.00", currency="CNY")
    service = start_service("engagement", TOPIC_DLQ=absent)
    await produce(topic_env, [stream.events[0], (topic_env["TOPIC_ORDERS"], b"{not json", b"shop-1:m-1")])
    await produce(topic_env, [stream.events[1]])
    try:
        await wait_until_processed(engine, 2, timeout_s=GOOD_WITHIN_S)
        [dead] = await dead_letters_of(service, topic_env, absent)
        assert dead["error"].startswith("invalid_json: ")
    finally:
        await delete_topics([absent])


async def _readiness(service: ServiceProcess, port_variable: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{service.env[port_variable]}/readyz")
    return response.status_code, response.json()


async def _metric(service: ServiceProcess, port_variable: str, name: str) -> float | None:
    async with httpx.AsyncClient(timeout=5) as client:
        body = (await client.get(f"http://127.0.0.1:{service.env[port_variable]}/metrics")).text
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_without_leave_to_create_it_a_missing_dead_letter_topic_means_not_ready_until_it_exists(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    absent = f"{topic_env['TOPIC_DLQ']}.{uuid.uuid4().hex[:6]}"
    stream = Stream()
    stream.add("order.paid", "m-1", 0, order_id="o-1", amount="10.00", currency="CNY")
    service = start_service("engagement", TOPIC_DLQ=absent, CREATE_MISSING_TOPICS="false")
    await produce(topic_env, stream.events)

    async def reported_missing() -> bool:
        try:
            status, body = await _readiness(service, "ENGAGEMENT_METRICS_PORT")
        except httpx.HTTPError:
            return False
        return status == 503 and body["checks"]["topics"] is False

    await eventually(reported_missing, timeout_s=GOOD_WITHIN_S)
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(absent, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    try:
        await wait_until_processed(engine, 1, timeout_s=GOOD_WITHIN_S)

        async def ready() -> bool:
            return (await _readiness(service, "ENGAGEMENT_METRICS_PORT"))[0] == 200

        await eventually(ready, timeout_s=GOOD_WITHIN_S)
    finally:
        await delete_topics([absent])


async def test_a_member_whose_stored_state_cannot_be_processed_is_quarantined_and_others_go_on(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    first = Stream()
    first.add("member.joined", "m-bad", 0, channel="online")
    first.add("member.joined", "m-good", 0, channel="online")
    service = start_service("engagement")
    await produce(topic_env, first.events)
    await wait_until_processed(engine, 2, timeout_s=GOOD_WITHIN_S)
    async with engine.begin() as connection:  # what an older release could store from a year-1 event
        await connection.execute(text("UPDATE members SET joined_at = '-infinity' WHERE member_id = 'm-bad'"))

    later = Stream()
    bad_paid = later.add("order.paid", "m-bad", 10, order_id="o-bad", amount="50.00", currency="CNY")
    later.add("order.paid", "m-good", 10, order_id="o-good", amount="40.00", currency="CNY")
    await produce(topic_env, later.events)
    await wait_until_processed(engine, 3, timeout_s=GOOD_WITHIN_S)
    assert await _net_spend(engine, "m-good") == "40.00"

    afterwards = Stream(start=later.start + timedelta(hours=1))
    bad_consent = afterwards.add("member.consent_changed", "m-bad", 0, marketing_consent=False)
    afterwards.add("order.paid", "m-good", 5, order_id="o-good-2", amount="10.00", currency="CNY")["id"] = (
        "order.paid-m-good-2"
    )
    await produce(topic_env, afterwards.events)
    await wait_until_processed(engine, 4, timeout_s=GOOD_WITHIN_S)
    assert await _net_spend(engine, "m-good") == "50.00"

    dead = {json.loads(base64.b64decode(r["value"]))["id"]: r for r in await dead_letters_of(service, topic_env)}
    assert dead[bad_paid["id"]]["error"].startswith("processing_error: TypeError while applying order.paid")
    assert dead[bad_paid["id"]]["error"].endswith("; the member is quarantined")
    assert dead[bad_consent["id"]]["error"].startswith("member_quarantined: ")
    async with engine.connect() as connection:
        row = (await connection.execute(select(quarantined_members))).one()
    assert (row.member_id, row.reason, row.events) == ("m-bad", "processing_error", 1)
    assert "TypeError" in row.detail
    # Neither event counts as processed: once the member is repaired and released, both can be published again.
    assert {bad_paid["id"], bad_consent["id"]}.isdisjoint(await _processed_ids(engine))

    async def quarantine_gauge() -> bool:
        return await _metric(service, "ENGAGEMENT_METRICS_PORT", "engagement_quarantined_members") == 1.0

    await eventually(quarantine_gauge, timeout_s=GOOD_WITHIN_S)

    # The operator's way back: repair the state, release the member, publish its dead letters again.
    api = start_service("api")
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE members SET joined_at = NULL WHERE member_id = 'm-bad'"))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.env['API_PORT']}", timeout=5) as client:
        headers = {"Authorization": f"Bearer {api.env['API_TOKENS']}"}

        async def api_up() -> bool:
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(api_up, timeout_s=GOOD_WITHIN_S)
        listed = (await client.get("/v1/admin/quarantine", headers=headers)).json()["items"]
        assert [(item["member_id"], item["events"]) for item in listed] == [("m-bad", 1)]
        released = await client.delete("/v1/admin/quarantine/shop-1/m-bad", headers=headers)
        assert released.status_code == 200
    await produce(
        topic_env,
        [(record["topic"], base64.b64decode(record["value"]), record["key"].encode()) for record in dead.values()],
    )
    await wait_until_processed(engine, 6, timeout_s=GOOD_WITHIN_S)
    assert await _net_spend(engine, "m-bad") == "50.00"
    async with engine.connect() as connection:
        consent = await connection.scalar(text("SELECT marketing_consent FROM members WHERE member_id = 'm-bad'"))
        assert await connection.scalar(select(func.count()).select_from(quarantined_members)) == 0
    assert consent is False


async def _reports_stalled(service: ServiceProcess, name: str) -> bool:
    """``name`` (engagement, notifier) is not ready because of its partitions, and its gauge says so."""
    port_variable = f"{name.upper()}_METRICS_PORT"
    status, body = await _readiness(service, port_variable)
    stalled = await _metric(service, port_variable, f"{name}_stalled_partitions")
    return status == 503 and body["checks"]["partitions"] is False and (stalled or 0) >= 1


@asynccontextmanager
async def _holding(engine: AsyncEngine, lock: str) -> AsyncIterator[None]:
    """Holds the locks ``lock`` takes, in a transaction of its own, until the block ends."""
    async with engine.connect() as blocker:
        transaction = await blocker.begin()
        await blocker.execute(text(lock))
        try:
            yield
        finally:
            await transaction.rollback()


async def test_a_partition_that_cannot_move_makes_the_service_not_ready_until_it_moves_again(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    stream = Stream()
    stream.add("member.joined", "m-1", 0, channel="online")
    service = start_service("engagement", STALL_AFTER_S="2")
    await produce(topic_env, stream.events)
    await wait_until_processed(engine, 1, timeout_s=GOOD_WITHIN_S)

    async with _holding(engine, "SELECT 1 FROM members WHERE member_id = 'm-1' FOR UPDATE"):
        blocked = Stream(start=stream.start + timedelta(hours=1))
        blocked.add("order.paid", "m-1", 0, order_id="o-1", amount="10.00", currency="CNY")
        await produce(topic_env, blocked.events)
        await eventually(lambda: _reports_stalled(service, "engagement"), timeout_s=GOOD_WITHIN_S)

    await wait_until_processed(engine, 2, timeout_s=GOOD_WITHIN_S)

    async def ready_again() -> bool:
        status, body = await _readiness(service, "ENGAGEMENT_METRICS_PORT")
        return status == 200 and body["checks"]["partitions"] is True

    await eventually(ready_again, timeout_s=GOOD_WITHIN_S)


async def test_a_notifier_partition_that_cannot_move_makes_the_notifier_not_ready_until_it_moves_again(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    stream = Stream()
    stream.add("member.joined", "m-1", 0, channel="online")
    stream.add("order.paid", "m-1", 5, order_id="o-1", amount="10.00", currency="CNY")
    notifier = start_service("notifier", STALL_AFTER_S="2")

    async def ready() -> bool:
        try:
            status, body = await _readiness(notifier, "NOTIFIER_METRICS_PORT")
        except httpx.HTTPError:
            return False
        return status == 200 and body["checks"]["partitions"] is True

    await eventually(ready, timeout_s=GOOD_WITHIN_S)
    async with _holding(engine, "LOCK TABLE deliveries IN EXCLUSIVE MODE"):  # the notifier's claims must wait
        start_service("engagement")  # decides the actions the notifier then cannot store
        await produce(topic_env, stream.events)
        await eventually(lambda: _reports_stalled(notifier, "notifier"), timeout_s=GOOD_WITHIN_S)

    await wait_until_committed(
        notifier.env["NOTIFIER_GROUP_ID"], await end_offsets([topic_env["TOPIC_ACTIONS"]]), timeout_s=GOOD_WITHIN_S
    )
    await eventually(ready, timeout_s=GOOD_WITHIN_S)
