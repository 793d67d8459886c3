"""Helpers for integration and end-to-end tests: event builders, Kafka I/O, service processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")

TOPIC_OF_FAMILY = {
    "member": "TOPIC_MEMBERS",
    "order": "TOPIC_ORDERS",
    "shipment": "TOPIC_SHIPMENTS",
    "refund": "TOPIC_REFUNDS",
    "review": "TOPIC_REVIEWS",
}


def envelope(
    event_type: str,
    event_id: str,
    at: datetime,
    member: str,
    data: dict[str, Any],
    *,
    shop: str = "shop-1",
    source: str = "test",
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": at.isoformat(),
        "datacontenttype": "application/json",
        "shopid": shop,
        "memberid": member,
        "data": data,
    }


@dataclass
class Stream:
    """A story of events told in business time, ready to produce to the test's topics."""

    start: datetime = field(default_factory=lambda: datetime(2026, 3, 1, 10, 0, tzinfo=SHANGHAI))
    events: list[dict[str, Any]] = field(default_factory=list)
    shop: str = "shop-1"

    def add(self, event_type: str, member: str, minutes: float, **data: Any) -> dict[str, Any]:
        event = envelope(
            event_type,
            f"{event_type}-{member}-{len(self.events)}",
            self.start + timedelta(minutes=minutes),
            member,
            data,
            shop=self.shop,
        )
        self.events.append(event)
        return event


def topic_for(event: dict[str, Any], topics: dict[str, str]) -> str:
    return topics[TOPIC_OF_FAMILY[str(event["type"]).split(".", 1)[0]]]


async def produce(topics: dict[str, str], events: Iterable[dict[str, Any] | tuple[str, bytes, bytes | None]]) -> None:
    """Produces events (dicts, keyed by shop:member) or raw (topic, value, key) records, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for item in events:
            if isinstance(item, tuple):
                topic, value, key = item
            else:
                topic = topic_for(item, topics)
                value = json.dumps(item).encode()
                key = f"{item['shopid']}:{item['memberid']}".encode()
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def consume_all(topic: str, *, expect: int | None = None, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Every record on ``topic`` as JSON; waits until ``expect`` arrived, else until quiet."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            records = [record for records in batch.values() for record in records]
            found.extend(json.loads(record.value) for record in records)
            if records:
                quiet_since = time.monotonic()
            if expect is not None and len(found) >= expect:
                break
            if expect is None and time.monotonic() - quiet_since > 3:
                break
    finally:
        await consumer.stop()
    return found


async def eventually(check: Callable[[], Any], *, timeout_s: float = 60.0, interval_s: float = 0.3) -> Any:
    """Polls an async check until it returns a truthy value; fails with the last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s; last value: {last!r}")


class ServiceProcess:
    """A service started as its own OS process, as in production (``python -m services.X``)."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.module = module
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to finish a batch, commit offsets or flush anything."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


async def snapshot(engine: Any) -> dict[str, Any]:
    """The service's durable state, minus wall-clock columns, for comparing two runs."""
    from sqlalchemy import select

    from shared.db.schema import actions, members, orders, pending_events, points_ledger, processed_events

    wall_clock = {"created_at", "updated_at", "processed_at", "parked_at", "published_at", "seq"}
    state: dict[str, Any] = {}
    async with engine.connect() as connection:
        tables = (
            (members, "member_id"),
            (orders, "order_id"),
            (pending_events, "event_id"),
            (points_ledger, "entry_id"),
        )
        for table, order in tables:
            ordering = (
                (table.c.shop_id, table.c.member_id, table.c[order])
                if table is points_ledger
                else (table.c.shop_id, table.c[order])
            )
            rows = (await connection.execute(select(table).order_by(*ordering))).mappings()
            state[table.name] = [{k: v for k, v in row.items() if k not in wall_clock} for row in rows]
        rows = (
            await connection.execute(select(actions.c.action_id, actions.c.payload).order_by(actions.c.action_id))
        ).all()
        state["actions"] = [(row[0], {k: v for k, v in row[1].items() if k != "created_at"}) for row in rows]
        state["processed_events"] = (
            await connection.execute(
                select(processed_events.c.source, processed_events.c.event_id).order_by(processed_events.c.event_id)
            )
        ).all()
    return state


async def create_topic(name: str, partitions: int = 3) -> str:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def wait_until_processed(engine: Any, count: int, *, timeout_s: float = 180.0) -> None:
    """Until ``count`` events are processed and every action has left through the outbox."""
    from sqlalchemy import func, select

    from shared.db.schema import outbox, processed_events

    async def done() -> tuple[int, int] | None:
        async with engine.connect() as connection:
            processed = await connection.scalar(select(func.count()).select_from(processed_events))
            unpublished = await connection.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.stream == "actions")
            )
        return (processed, unpublished) if processed == count and unpublished == 0 else None

    await eventually(done, timeout_s=timeout_s, interval_s=0.5)
