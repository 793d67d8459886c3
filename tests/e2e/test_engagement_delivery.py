"""Delivery guarantees of the engagement process on the real broker and database:
duplicates change nothing, bad records go to the dead-letter topic without stalling,
a SIGKILL mid-stream loses and doubles nothing, two instances equal one."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import actions, metadata, processed_events
from tests.builders import Stream
from tests.support import (
    GroupMember,
    ServiceProcess,
    committed_offsets,
    create_topic,
    delete_topics,
    end_offsets,
    eventually,
    group_members,
    metric_total,
    produce,
    read_to_end,
    snapshot,
    wait_until_committed,
    wait_until_outbox_empty,
    wait_until_processed,
)
from tests.workload import workload

pytestmark = pytest.mark.integration

INPUT_TOPICS = ("TOPIC_MEMBERS", "TOPIC_ORDERS", "TOPIC_SHIPMENTS", "TOPIC_REFUNDS", "TOPIC_REVIEWS")


async def _all_input_read_and_committed(service: ServiceProcess) -> None:
    """Until the service's consumer group has committed past every record on its input topics."""
    inputs = [service.env[name] for name in INPUT_TOPICS]
    await wait_until_committed(service.env["ENGAGEMENT_GROUP_ID"], await end_offsets(inputs))


def _metric(service: ServiceProcess, name: str) -> float:
    return metric_total(service.env["ENGAGEMENT_METRICS_PORT"], name)


async def _count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


async def _truncate(engine: AsyncEngine) -> None:
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))


def _distinct_action_ids(records: list[dict[str, Any]]) -> set[str]:
    return {record["action_id"] for record in records}


async def test_a_redelivered_event_changes_nothing_and_emits_nothing(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    stream = Stream()
    stream.add("member.joined", "m-1", 0, channel="online")
    paid = stream.add("order.paid", "m-1", 5, order_id="o-1", amount="300.00", currency="CNY")
    service = start_service("engagement")
    await produce(topic_env, stream.events)
    await wait_until_processed(engine, 2)
    before = await snapshot(engine)

    await produce(topic_env, [paid, paid])
    # The group has read and committed past both copies, and counted them as duplicates.
    await _all_input_read_and_committed(service)

    async def duplicates_counted() -> float:
        return _metric(service, "engagement_duplicate_events")

    assert await eventually(duplicates_counted, timeout_s=10) == 2
    await wait_until_outbox_empty(engine)
    assert await snapshot(engine) == before
    published = await read_to_end(topic_env["TOPIC_ACTIONS"])
    assert Counter(r["rule"] for r in published) == {
        "payment_confirmation": 1,
        "first_purchase_gift": 1,
        "tier_changed": 1,
        "tier_upgrade_gift": 1,
    }


async def test_each_kind_of_bad_record_goes_to_the_dead_letter_topic_and_the_stream_goes_on(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    orders = topic_env["TOPIC_ORDERS"]
    good = Stream()
    first = good.add("order.paid", "m-1", 0, order_id="o-1", amount="10.00", currency="CNY")
    last = good.add("order.paid", "m-1", 60, order_id="o-2", amount="20.00", currency="CNY")
    template = dict(first)

    def variant(**changes: Any) -> bytes:
        event = {**template, "id": f"bad-{uuid.uuid4().hex[:6]}", **changes}
        return json.dumps(event).encode()

    bad: dict[str, bytes] = {
        "invalid_json": b"{not json",
        "invalid_envelope": variant(specversion="0.3"),
        "unknown_type": variant(type="order.teleported"),
        "invalid_payload": variant(data={"order_id": "o-9", "amount": "1.234", "currency": "CNY"}),
        "wrong_currency": variant(data={"order_id": "o-9", "amount": "1.00", "currency": "USD"}),
        "too_large": variant(data={"order_id": "o-9", "amount": "1.00", "currency": "CNY", "pad": "x" * 70000}),
    }
    service = start_service("engagement")
    await produce(
        topic_env,
        [first, *[(orders, value, b"shop-1:m-1") for value in bad.values()], last],
    )

    # Dead letters are published before the batch's offsets are committed.
    await _all_input_read_and_committed(service)
    dead = await read_to_end(topic_env["TOPIC_DLQ"])
    assert sorted(record["error"].split(":", 1)[0] for record in dead) == sorted(bad)
    for record in dead:
        reason = record["error"].split(":", 1)[0]
        assert base64.b64decode(record["value"]) == bad[reason]
        assert record["topic"] == orders
        assert record["key"] == "shop-1:m-1"
        assert isinstance(record["offset"], int)
        assert record["received_at"]
    await wait_until_processed(engine, 2)
    state = await snapshot(engine)
    assert [str(m["net_spend"]) for m in state["members"]] == ["30.00"]


async def _run_to_end(
    engine: AsyncEngine,
    start_service: Callable[..., ServiceProcess],
    events: list[dict[str, Any]],
    **env: str,
) -> dict[str, Any]:
    """Runs one engagement instance over ``events`` and stops it, so it cannot touch the next run."""
    service = start_service("engagement", **env)
    await wait_until_processed(engine, len(events))
    service.stop()
    return await snapshot(engine)


async def test_sigkill_mid_stream_then_restart_gives_the_state_and_actions_of_an_uninterrupted_run(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    events = workload(250, seed=11)
    await produce(topic_env, events)
    reference = await _run_to_end(engine, start_service, events)
    assert reference["actions"], "the workload should yield actions"

    await _truncate(engine)
    actions_topic = await create_topic(topic_env["TOPIC_ACTIONS"] + ".rerun")
    env = {
        "ENGAGEMENT_GROUP_ID": f"crash-{uuid.uuid4().hex[:6]}",
        "TOPIC_ACTIONS": actions_topic,
        "ENGAGEMENT_BATCH_MAX_RECORDS": "200",
    }
    victim = start_service("engagement", **env)

    async def partly_done() -> bool:
        return 0 < await _count(engine, processed_events) < len(events) // 2 or await _count(engine, actions) > 50

    await eventually(partly_done, timeout_s=60, interval_s=0.05)
    victim.kill()
    assert await _count(engine, processed_events) < len(events), "the kill should land mid-stream"

    after = await _run_to_end(engine, start_service, events, **env)
    assert after == reference
    published = await read_to_end(actions_topic)  # _run_to_end waited for the outbox to drain
    await delete_topics([actions_topic])
    assert _distinct_action_ids(published) == {action_id for action_id, _ in reference["actions"]}


async def test_two_instances_in_one_group_share_the_partitions_each_commits_its_own_and_end_with_the_state_of_one(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    events = workload(250, seed=23)
    await produce(topic_env, events)
    reference = await _run_to_end(engine, start_service, events)

    await _truncate(engine)
    # Fresh input topics, empty until both instances have joined the group and own partitions,
    # so neither can read everything before the other one is in.
    fresh = {name: await create_topic(f"{topic_env[name]}.pair") for name in INPUT_TOPICS}
    group = f"pair-{uuid.uuid4().hex[:6]}"
    env = {"ENGAGEMENT_GROUP_ID": group, "ENGAGEMENT_BATCH_MAX_RECORDS": "100", **fresh}
    try:
        instances = {name: start_service("engagement", KAFKA_CLIENT_ID=name, **env) for name in ("pair-a", "pair-b")}

        async def both_own_partitions() -> dict[str, GroupMember] | None:
            members = {
                name: member
                for member in await group_members(group)
                for name in instances
                if member.client_id.startswith(f"{name}-") and member.partitions
            }
            return members if len(members) == 2 else None

        owners: dict[str, GroupMember] = await eventually(both_own_partitions, timeout_s=60)
        await produce({**topic_env, **fresh}, events)
        ends = await end_offsets(fresh.values())
        await wait_until_committed(group, ends)
        await wait_until_processed(engine, len(events))

        assert await both_own_partitions() == owners, "the group rebalanced meanwhile"
        committed = await committed_offsets(group, fresh.values())
        consumed = {name: _metric(service, "engagement_records_consumed") for name, service in instances.items()}
        for name, member in owners.items():
            with_records = {partition for partition in member.partitions if ends[partition] > 0}
            assert with_records, f"{name} owns only empty partitions"
            assert {p: committed.get(p) for p in with_records} == {p: ends[p] for p in with_records}, name
            assert consumed[name] == sum(ends[p] for p in member.partitions), (name, consumed)
    finally:
        await delete_topics(fresh.values())
    assert await snapshot(engine) == reference


async def test_a_record_the_database_refuses_goes_to_the_dead_letter_topic_alone(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    """Two maximal payments overflow net_spend's column: only the second one is refused."""
    stream = Stream()
    stream.add("order.paid", "m-big", 0, order_id="o-1", amount="999999999999.99", currency="CNY")
    refused = stream.add("order.paid", "m-big", 1, order_id="o-2", amount="999999999999.99", currency="CNY")
    stream.add("order.paid", "m-small", 2, order_id="o-3", amount="10.00", currency="CNY")
    service = start_service("engagement", ENGAGEMENT_BATCH_TIMEOUT_MS="500")
    await produce(topic_env, stream.events)

    await _all_input_read_and_committed(service)
    dead = await read_to_end(topic_env["TOPIC_DLQ"])
    assert [record["error"].split(":", 1)[0] for record in dead] == ["processing_error"]
    assert json.loads(base64.b64decode(dead[0]["value"]))["id"] == refused["id"]
    state = await snapshot(engine)
    assert {m["member_id"]: str(m["net_spend"]) for m in state["members"]} == {
        "m-big": "999999999999.99",
        "m-small": "10.00",
    }


async def test_database_connections_dropped_mid_stream_lose_and_double_nothing(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    events = workload(150, seed=31)
    await produce(topic_env, events)
    reference = await _run_to_end(engine, start_service, events)

    await _truncate(engine)
    env = {
        "ENGAGEMENT_GROUP_ID": f"outage-{uuid.uuid4().hex[:6]}",
        "ENGAGEMENT_BATCH_MAX_RECORDS": "150",
        "KAFKA_CLIENT_ID": "engagement-under-fire",
    }
    service = start_service("engagement", **env)
    kills = 0
    async with engine.connect() as connection:
        await connection.execute(text("SET application_name = 'test-observer'"))
        while await _count(engine, processed_events) < len(events) and kills < 60:
            await asyncio.sleep(0.05)
            result = await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'engagement-under-fire' AND datname = current_database()"
                )
            )
            kills += int(result.scalar() or 0)
            await connection.commit()
    assert kills > 0, "the test should have cut some of the service's connections"
    await wait_until_processed(engine, len(events))
    service.stop()
    assert await snapshot(engine) == reference
