"""Engagement throughput benchmark: ``make bench`` (``BENCH_EVENTS`` events, default 200,000).

Runs the real engagement process against the local Kafka and PostgreSQL, on fresh
topics and a fresh database, and prints one line:

* end-to-end events/s: from the first record produced to the last event committed;
* p50/p99 event-to-action latency: from an input record's produce timestamp to the
  timestamp of the action it triggered on ``member.actions``, both for the saturating
  run (queueing included) and for a second, steady stream at half the measured capacity;
* the raw aiokafka consume rate of the same input topics (no processing), so the
  ratio shows how close the service comes to what the client alone can read.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.db.schema import actions, outbox
from tests.support import KAFKA, ROOT, TOPIC_OF_FAMILY, ServiceProcess, topic_for
from tests.workload import workload

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:55432/postgres")
EVENTS_PER_MEMBER = 16.3
PARTITIONS = 6


async def _admin_sql(statement: str) -> None:
    engine = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


async def _create_topics(names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names])
    finally:
        await admin.close()


async def _produce(topics: dict[str, str], events: list[dict[str, Any]], rate: float | None = None) -> dict[str, int]:
    """Produces every event, as fast as possible or at ``rate`` events/s; returns produce timestamps (ms) by id."""
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=262144
    )
    await producer.start()
    stamps: dict[str, int] = {}
    try:
        pending = []
        started = time.perf_counter()
        for index, event in enumerate(events):
            if rate is not None and index % 50 == 0:
                await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
            now_ms = int(time.time() * 1000)
            stamps[event["id"]] = now_ms
            pending.append(
                await producer.send(
                    topic_for(event, topics),
                    value=json.dumps(event).encode(),
                    key=f"{event['shopid']}:{event['memberid']}".encode(),
                    timestamp_ms=now_ms,
                )
            )
            if len(pending) >= 5000 or (rate is not None and index % 50 == 49):
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return stamps


async def _raw_consume_rate(topic_names: list[str], expected: int) -> float:
    """Events/s that aiokafka alone reads from the same topics, with a fresh group."""
    consumer = AIOKafkaConsumer(
        *topic_names,
        bootstrap_servers=KAFKA,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            count = sum(len(records) for records in batch.values())
            if count and started is None:
                started = time.perf_counter()
            seen += count
        elapsed = time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
    return seen / elapsed if elapsed > 0 else float("inf")


async def _action_latencies(topic: str, expected: int, stamps: dict[str, int]) -> list[float]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=KAFKA, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    latencies: list[float] = []
    seen = 0
    deadline = time.monotonic() + 120
    try:
        while seen < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    seen += 1
                    trigger = json.loads(record.value)["trigger"]
                    produced = stamps.get(trigger.get("event_id", ""))
                    if produced is not None:
                        latencies.append((record.timestamp - produced) / 1000)
    finally:
        await consumer.stop()
    return latencies


async def _wait_until_committed(group: str, total: int, service: ServiceProcess) -> None:
    """Until the service's group has committed offsets past every input record (asks Kafka, not the database)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        while True:
            offsets = await admin.list_consumer_group_offsets(group)
            if sum(meta.offset for meta in offsets.values() if meta.offset > 0) >= total:
                return
            if service.process is not None and service.process.poll() is not None:
                raise SystemExit(f"the engagement service died:\n{service.log_tail()}")
            await asyncio.sleep(0.25)
    finally:
        await admin.close()


async def _wait_until_relayed(engine: AsyncEngine) -> None:
    """Until the outbox is empty, so the steady phase does not queue behind the first one's actions."""
    while True:
        async with engine.connect() as connection:
            if not await connection.scalar(select(func.count()).select_from(outbox)):
                return
        await asyncio.sleep(0.5)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main() -> None:
    target = int(os.environ.get("BENCH_EVENTS", "200000"))
    paced_target = int(os.environ.get("BENCH_PACED_EVENTS", str(max(1000, target // 10))))
    events = workload(max(1, round(target / EVENTS_PER_MEMBER)), seed=2026)
    suffix = uuid.uuid4().hex[:8]
    topics = {env: f"bench{suffix}.{env.removeprefix('TOPIC_').lower()}" for env in TOPIC_OF_FAMILY.values()}
    topics["TOPIC_ACTIONS"] = f"bench{suffix}.member.actions"
    topics["TOPIC_DLQ"] = f"bench{suffix}.commerce.dlq"
    topics["TOPIC_NOTIFICATIONS"] = f"bench{suffix}.member.notifications"
    await _create_topics(list(topics.values()))

    database = f"bench_{suffix}"
    await _admin_sql(f'CREATE DATABASE "{database}"')
    database_url = ADMIN_URL.rsplit("/", 1)[0] + "/" + database
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    await asyncio.to_thread(command.upgrade, config, "head")
    engine = create_async_engine(database_url)

    log_path = Path(tempfile.gettempdir()) / f"engagement-bench-{suffix}.log"
    service = ServiceProcess(
        "services.engagement",
        {
            **topics,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
            "ENGAGEMENT_GROUP_ID": f"bench-{suffix}",
            "ENGAGEMENT_METRICS_PORT": os.environ.get("BENCH_METRICS_PORT", "9191"),
            "LOG_LEVEL": "WARNING",
            # The workload's business times lie months behind the wall clock: a background run
            # would replay a season of due items into this measurement of the event path.
            # `make bench-scheduler` measures the scheduler.
            "SCHEDULER_INTERVAL_S": "0",
        },
        log_path,
    ).start()
    group = f"bench-{suffix}"
    paced_events = workload(max(1, round(paced_target / EVENTS_PER_MEMBER)), seed=2027, shop="shop-2")
    try:
        await asyncio.sleep(3)  # let it join the group before the clock starts
        started = time.perf_counter()
        stamps = await _produce(topics, events)
        produced_at = time.perf_counter()
        await _wait_until_committed(group, len(events), service)
        finished = time.perf_counter()
        rate = len(events) / (finished - started)
        await _wait_until_relayed(engine)
        # Second phase: a steady stream at half the measured capacity, for latency without a backlog.
        paced_stamps = await _produce(topics, paced_events, rate=rate / 2)
        await _wait_until_committed(group, len(events) + len(paced_events), service)
        await asyncio.sleep(1)  # the relay's last round
        async with engine.connect() as connection:
            action_count = int(await connection.scalar(select(func.count()).select_from(actions)) or 0)
    finally:
        service.stop()
    latencies = await _action_latencies(topics["TOPIC_ACTIONS"], action_count, stamps)
    paced_latencies = await _action_latencies(topics["TOPIC_ACTIONS"], action_count, paced_stamps)
    raw_rate = await _raw_consume_rate(
        [topics[env] for env in TOPIC_OF_FAMILY.values()], len(events) + len(paced_events)
    )
    await engine.dispose()
    await _admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    machine = f"{platform.machine()} {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    print(
        f"bench: {len(events)} events, {action_count} actions in all | end-to-end {rate:,.0f} events/s "
        f"(producer {len(events) / (produced_at - started):,.0f}/s; backlog p50/p99 event-to-action "
        f"{_ms(latencies, 0.5)}/{_ms(latencies, 0.99)} ms) | steady {len(paced_events)} events at "
        f"{rate / 2:,.0f}/s: event-to-action p50 {_ms(paced_latencies, 0.5)} ms p99 {_ms(paced_latencies, 0.99)} ms | "
        f"raw aiokafka consume {raw_rate:,.0f} events/s (service at {rate / raw_rate:.1%} of it) | {machine}"
    )


def _ms(values: list[float], fraction: float) -> str:
    return f"{_percentile(values, fraction) * 1000:,.0f}"


if __name__ == "__main__":
    asyncio.run(main())
