"""Helpers for integration and end-to-end tests: Kafka I/O, service processes, the API in process
(builders: tests/builders.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from services.api.app import create_app
from shared.domain.playbook import Playbook
from shared.playbook_file import PlaybookLayers, load_playbook
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")

TOPIC_OF_FAMILY = {
    "member": "TOPIC_MEMBERS",
    "order": "TOPIC_ORDERS",
    "shipment": "TOPIC_SHIPMENTS",
    "refund": "TOPIC_REFUNDS",
    "review": "TOPIC_REVIEWS",
}


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


async def end_offsets(topics: Iterable[str]) -> dict[TopicPartition, int]:
    """The end offset of every partition of ``topics``: the offset the next record written there will get.

    A consumer group whose committed offsets reach these has processed every record
    written so far; a reader whose position reaches them has read every one.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(await partitions_of(topics)))
    finally:
        await consumer.stop()


async def partitions_of(topics: Iterable[str], *, timeout_s: float = 30.0) -> list[TopicPartition]:
    """Every partition of ``topics``, as the broker describes them (waiting for a topic created a moment ago)."""
    wanted = list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:

        async def described() -> list[TopicPartition] | None:
            found = []
            for topic in await admin.describe_topics(wanted):
                partitions = topic["partitions"]
                if topic["error_code"] != 0 or not partitions:
                    return None
                if any(partition["error_code"] != 0 or partition["leader"] < 0 for partition in partitions):
                    return None  # no leader elected yet
                found += [TopicPartition(topic["topic"], partition["partition"]) for partition in topic["partitions"]]
            return sorted(found)

        result: list[TopicPartition] = await eventually(described, timeout_s=timeout_s, interval_s=0.1)
        return result
    finally:
        await admin.close()


async def read_to_end(topic: str, *, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Every record on ``topic``, as JSON, up to the end offsets of all its partitions when called.

    Nothing stops early at an expected count, so a duplicate already written is read too.
    Records still to come are not: first wait for what proves they were written (the
    writer's committed offsets, a drained outbox), then read to the end.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=None, enable_auto_commit=False)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        partitions = await partitions_of([topic])
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        while True:
            positions = {partition: await consumer.position(partition) for partition in partitions}
            if all(positions[partition] >= ends[partition] for partition in partitions):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic} not read to its end offsets {ends} within {timeout_s}s: at {positions}")
            batch = await consumer.getmany(timeout_ms=300)
            for partition, records in batch.items():
                found.extend(json.loads(record.value) for record in records if record.offset < ends[partition])
    finally:
        await consumer.stop()


async def committed_offsets(group: str, topics: Iterable[str] | None = None) -> dict[TopicPartition, int]:
    """The offsets ``group`` has committed, per partition (of ``topics`` only, if given), as Kafka reports them.

    A committed offset is the next record the group will read: every record before it
    was processed and the group's work for it is done.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    wanted = set(topics) if topics is not None else None
    return {
        partition: meta.offset
        for partition, meta in offsets.items()
        if (wanted is None or partition.topic in wanted) and meta.offset >= 0
    }


async def wait_until_committed(
    group: str, targets: Mapping[TopicPartition, int], *, timeout_s: float = 120.0
) -> dict[TopicPartition, int]:
    """Until ``group`` has committed, on every partition of ``targets``, at least its target offset.

    Pass ``await end_offsets(topics)`` taken after producing: then the group has processed
    every record produced so far. Partitions whose target is 0 hold nothing to wait for.
    Returns the committed offsets.
    """
    topics = {partition.topic for partition in targets}
    committed: dict[TopicPartition, int] = {}
    behind: dict[TopicPartition, tuple[int, int]] = {}

    async def reached() -> bool:
        committed.clear()
        committed.update(await committed_offsets(group, topics))
        behind.clear()
        behind.update({p: (committed.get(p, 0), t) for p, t in targets.items() if committed.get(p, 0) < t})
        return not behind

    try:
        await eventually(reached, timeout_s=timeout_s, interval_s=0.2)
    except AssertionError:
        raise AssertionError(f"group {group} still behind (committed, target): {behind}") from None
    return dict(committed)


@dataclass(frozen=True)
class GroupMember:
    """One consumer in a group, as the group coordinator describes it."""

    client_id: str
    partitions: frozenset[TopicPartition]


async def group_members(group: str) -> list[GroupMember]:
    """The members of ``group`` and the partitions each is assigned, once the group is stable; else []."""
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [description] = response.groups
    state, members = description[2], description[5]
    if state != "Stable":
        return []
    found = []
    for member in members:
        client_id, raw = member[1], member[-1]
        assignment = ConsumerProtocolMemberAssignment.decode(raw) if raw else None
        partitions = frozenset(
            TopicPartition(topic, number)
            for topic, numbers in (assignment.assignment if assignment is not None else [])
            for number in numbers
        )
        found.append(GroupMember(client_id, partitions))
    return found


def metric_total(port: int | str, name: str) -> float:
    """The sum over all labels of the counter ``name`` (without ``_total``) on a service's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_total"
    )


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

    from shared.db.schema import (
        actions,
        budget_spend,
        coupons,
        decisions,
        members,
        orders,
        pending_events,
        points_ledger,
        processed_events,
        unredeemed_codes,
    )

    wall_clock = {"created_at", "updated_at", "processed_at", "parked_at", "published_at", "seq", "decided_at"}
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
        # The wallet, shared codes, decisions and budget spend: ordered by their whole key.
        for table in (coupons, unredeemed_codes, decisions, budget_spend):
            rows = (await connection.execute(select(table).order_by(*table.primary_key.columns))).mappings()
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


async def delete_topics(names: Iterable[str]) -> None:
    """Deletes topics a test created itself, so a broker serving many runs keeps its open files in check."""
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    except KafkaError as error:
        warnings.warn(f"test topics not deleted: {error!r}", stacklevel=2)
    finally:
        await admin.close()


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


async def wait_until_outbox_empty(engine: Any, *, timeout_s: float = 60.0) -> None:
    """Until every outbox row (actions and notification outcomes) was published and deleted.

    Then everything the database decided is on its topic, and ``read_to_end`` reads all of it.
    """
    from sqlalchemy import func, select

    from shared.db.schema import outbox

    async def empty() -> bool:
        async with engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(outbox)) or 0) == 0

    await eventually(empty, timeout_s=timeout_s, interval_s=0.2)


@asynccontextmanager
async def api_in_process(
    settings: Settings,
    *,
    tokens: Iterable[str] = ("test-token",),
    read_tokens: Iterable[str] = (),
    layers: PlaybookLayers | None = None,
    playbook: Playbook | None = None,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The API app on ``settings`` with its lifespan running (pools, Kafka client), and a client on it.

    The playbook is ``layers``' (stored versions compose over them), else ``playbook``, else
    the file named by the settings' ``PLAYBOOK_PATH``.
    """
    settings = settings.model_copy(
        update={
            "api_tokens": [SecretStr(token) for token in tokens],
            "api_read_tokens": [SecretStr(token) for token in read_tokens],
        }
    )
    if layers is not None:
        app = create_app(settings, layers.playbook(), layers)
    else:
        app = create_app(settings, playbook if playbook is not None else load_playbook(settings.playbook_path))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api.test", headers=headers) as http,
    ):
        yield http
