"""What the benches run on: topics, databases, engagement and API processes, producers, offsets and CPU time.

Everything here talks to the service only the way an operator would: environment
variables, ``python -m services.engagement`` or ``python -m services.api`` started from a
checkout, Kafka offsets, HTTP and SQL on the service's database. Nothing imports the
service's write side, so the same bench can measure another version of it
(``BENCH_SERVICE_ROOT``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from tests.bench.results import machine
from tests.support import KAFKA, ROOT, TOPIC_OF_FAMILY, ServiceProcess, delete_topics, group_members, partitions_of

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:55432/postgres")
PARTITIONS = 6  # every bench topic, inputs and outputs
INPUTS = list(TOPIC_OF_FAMILY.values())  # TOPIC_MEMBERS ... TOPIC_REVIEWS
OUTPUTS = {
    "TOPIC_ACTIONS": "member.actions",
    "TOPIC_DLQ": "commerce.dlq",
    "TOPIC_NOTIFICATIONS": "member.notifications",
}
CLOCK_TICK = os.sysconf("SC_CLK_TCK")

# An input record ready to send: (TOPIC_* setting of its topic, key, value).
Record = tuple[str, bytes, bytes]


def encode(events: Sequence[dict[str, Any]]) -> list[Record]:
    """Events as the records an upstream system publishes: keyed ``shop:member``, JSON values."""
    return [
        (
            TOPIC_OF_FAMILY[str(event["type"]).split(".", 1)[0]],
            f"{event['shopid']}:{event['memberid']}".encode(),
            orjson.dumps(event),
        )
        for event in events
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_of(root: Path) -> str:
    """The interpreter of a checkout's own virtualenv when it has one, else the bench's."""
    candidate = root / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


class Stack:
    """The topics and databases one bench run creates, all removed by ``cleanup``."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._topics: list[str] = []
        self._databases: list[str] = []

    async def topics(self, phase: str) -> dict[str, str]:
        """Fresh input and output topics for one phase, as TOPIC_* settings."""
        prefix = f"bench-{self.run_id}-{phase}"
        names = {setting: f"{prefix}.{setting.removeprefix('TOPIC_').lower()}" for setting in INPUTS}
        names.update({setting: f"{prefix}.{name}" for setting, name in OUTPUTS.items()})
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names.values()]
            )
        finally:
            await admin.close()
        self._topics += names.values()
        await partitions_of(names.values())  # every partition has a leader
        return names

    async def database(self, phase: str, root: Path) -> str:
        """A fresh database migrated by ``root``'s own Alembic scripts; returns its URL."""
        name = f"bench_{self.run_id}_{phase}"
        await admin_sql(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        url = database_url_of(name)
        await asyncio.to_thread(migrate, url, root)
        return url

    async def cleanup(self) -> None:
        for name in self._databases:
            await admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self._topics:
            await delete_topics(self._topics)


async def admin_sql(statement: str) -> None:
    engine = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def migrate(url: str, root: Path) -> None:
    """``alembic upgrade head`` as ``root`` defines it (its alembic.ini, migrations and schema)."""
    done = subprocess.run(
        [python_of(root), "-m", "alembic", "-c", str(root / "alembic.ini"), "upgrade", "head"],
        cwd=root,
        env={**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"migrations of {root} failed:\n{done.stderr[-4000:]}")


async def query(url: str, statement: str, **params: Any) -> Any:
    """The first value of the first row of ``statement`` on the database at ``url``."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text(statement), params)
    finally:
        await engine.dispose()


async def table_exists(url: str, table: str) -> bool:
    return bool(await query(url, "SELECT to_regclass(:name) IS NOT NULL", name=f"public.{table}"))


async def scalar(engine: AsyncEngine, statement: str, params: dict[str, Any] | None = None) -> Any:
    """The first value of the first row of ``statement`` on one of ``engine``'s connections."""
    async with engine.connect() as connection:
        return await connection.scalar(text(statement), params or {})


def database_url_of(name: str) -> str:
    """The URL of database ``name`` on the cluster of ``ADMIN_URL``."""
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def create_database(name: str) -> str:
    """A new database ``name`` migrated to head by this checkout's Alembic scripts (in this process); its URL.

    A migration that fails drops the database again.
    """
    await admin_sql(f'CREATE DATABASE "{name}"')
    url = database_url_of(name)
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    try:
        await asyncio.to_thread(command.upgrade, config, "head")
    except BaseException:
        await admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        raise
    return url


def machine_line(server_version: str) -> str:
    """The machine, the PostgreSQL server and the load average now: the first line of a bench's output."""
    load = os.getloadavg()
    return f"machine: {machine()}, {server_version} | load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


class Engagement(ServiceProcess):
    """``python -m services.engagement`` started from ``root``: its cwd, PYTHONPATH and interpreter."""

    def __init__(self, root: Path, env: dict[str, str], log_path: Path) -> None:
        super().__init__("services.engagement", {**env, "PYTHONPATH": str(root)}, log_path)
        self.root = root

    def start(self) -> Engagement:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [python_of(self.root), "-m", self.module],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid) if self.process is not None else 0.0

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise SystemExit(f"the engagement process exited ({self.process.returncode}):\n{self.log_tail()}")


class Api(ServiceProcess):
    """``python -m services.api`` started from ``root`` (its cwd) on a free port, with one full-access token."""

    def __init__(self, root: Path, database_url: str, token: str, log_path: Path) -> None:
        self.port = free_port()
        env = {
            "DATABASE_URL": database_url,
            "API_TOKENS": token,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(self.port),
            "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        }
        super().__init__("services.api", env, log_path)
        self.root = root
        self.token = token
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 60.0) -> Api:
        """Starts the process and returns once ``/healthz`` answers 200; raises if it exits or never does."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module], cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the API exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.get("/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the API did not answer /healthz within {timeout_s:.0f} s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` with the token: (status, body)."""
        request = urllib.request.Request(self.base_url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), bytes(response.read())


def engagement_env(topics: dict[str, str], database_url: str, group: str) -> dict[str, str]:
    return {
        **topics,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "ENGAGEMENT_GROUP_ID": group,
        "ENGAGEMENT_METRICS_PORT": str(free_port()),
        "LOG_LEVEL": "WARNING",
        # The workload's business times lie months behind the wall clock: a background run
        # would replay a season of due items into this measurement of the event path.
        # `make bench-scheduler` measures the scheduler.
        "SCHEDULER_INTERVAL_S": "0",
    }


@dataclass
class Produced:
    """What a producer did: records acknowledged so far and when it started and finished (perf_counter)."""

    sent: int = 0
    started: float = 0.0
    handed: float = 0.0  # when the last record was handed to the producer
    finished: float = 0.0  # when the last acknowledgement came

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else float("inf")

    @property
    def pace(self) -> float:
        """Records handed over per second: what a fixed-rate schedule was held to."""
        elapsed = self.handed - self.started
        return (self.sent - 1) / elapsed if elapsed > 0 and self.sent > 1 else float("inf")


async def produce(
    records: Sequence[Record], topics: dict[str, str], *, rate: float | None = None, progress: Produced | None = None
) -> Produced:
    """Sends every record, as fast as the producer can or on a fixed schedule of ``rate`` records/s.

    Record timestamps are left to the producer (the moment each record is handed to it),
    which is what the latency figures measure from. ``progress.sent`` counts the records
    handed over so far, for a monitor running meanwhile.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=262144
    )
    done = progress if progress is not None else Produced()
    await producer.start()
    try:
        pending = []
        done.started = started = time.perf_counter()
        for index, (setting, key, value) in enumerate(records):
            if rate is not None:
                ahead = started + index / rate - time.perf_counter()
                if ahead > 0.002:
                    await asyncio.sleep(ahead)
            pending.append(await producer.send(topics[setting], value=value, key=key))
            done.sent, done.handed = index + 1, time.perf_counter()
            if len(pending) >= 10000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        done.finished = time.perf_counter()
    finally:
        await producer.stop()
    return done


async def end_offsets(topics: Sequence[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(await partitions_of(topics)))
    finally:
        await consumer.stop()


async def read(
    topics: Sequence[str], since: dict[TopicPartition, int] | None = None, *, timeout_s: float = 300.0
) -> list[tuple[int, bytes]]:
    """(timestamp ms, value) of every record of ``topics`` from ``since`` (default: the start) to their current end."""
    deadline = time.perf_counter() + timeout_s
    partitions = await partitions_of(topics)
    ends = await end_offsets(topics)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA, group_id=None, enable_auto_commit=False, fetch_max_bytes=32 * 1024 * 1024
    )
    await consumer.start()
    found: list[tuple[int, bytes]] = []
    try:
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, (since or {}).get(partition, 0))
        left = {p for p in partitions if ends[p] > (since or {}).get(p, 0)}
        while left:
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            for partition, records in batch.items():
                found += [(r.timestamp, r.value or b"") for r in records if r.offset < ends[partition]]
                if records and records[-1].offset + 1 >= ends[partition]:
                    left.discard(partition)
            if time.perf_counter() > deadline:
                raise SystemExit(f"{sorted(left)} not read to their end offsets within {timeout_s:.0f} s")
    finally:
        await consumer.stop()
    return found


class Offsets:
    """A consumer group's committed offsets, from one admin client kept open for frequent polls."""

    def __init__(self) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)

    async def __aenter__(self) -> Offsets:
        await self._admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._admin.close()

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        offsets = await self._admin.list_consumer_group_offsets(group)
        return {partition: meta.offset for partition, meta in offsets.items() if meta.offset >= 0}


def caught_up(committed: dict[TopicPartition, int], targets: dict[TopicPartition, int]) -> bool:
    return all(committed.get(partition, 0) >= target for partition, target in targets.items() if target > 0)


@dataclass
class Progress:
    """When a group of engagement processes joined, first committed and committed every target offset."""

    first_joined: float | None = None  # a process of the group had partitions assigned
    joined: float | None = None  # every process had
    assignment: list[frozenset[TopicPartition]] = field(default_factory=list)  # each process's, once all joined
    cpu_at_join: float = 0.0  # CPU seconds the processes had used by ``first_joined``: interpreters, imports, joining
    first_commit: float | None = None
    done: float | None = None
    # (perf_counter, events committed, records produced so far) every poll
    samples: list[tuple[float, int, int]] = field(default_factory=list)


def describe_assignment(assignment: Sequence[frozenset[TopicPartition]]) -> str:
    """Each process's partition numbers, and whether they are the same on every topic it reads."""
    owned = []
    aligned = True
    for partitions in assignment:
        numbers_by_topic: dict[str, set[int]] = {}
        for partition in partitions:
            numbers_by_topic.setdefault(partition.topic, set()).add(partition.partition)
        numbers = sorted(set().union(*numbers_by_topic.values()))
        aligned &= all(sorted(found) == numbers for found in numbers_by_topic.values())
        owned.append(",".join(map(str, numbers)))
    verdict = "the same numbers on every topic" if aligned else "numbers differ between topics"
    return f"partitions {' | '.join(owned)} ({verdict})"


def reached(progress: Progress, share: float, total: int, since: float) -> float | None:
    """Seconds from ``since`` to the first sample with ``share`` of ``total`` events committed."""
    return next((at - since for at, committed, _ in progress.samples if committed >= share * total), None)


async def follow(
    group: str,
    targets: dict[TopicPartition, int],
    services: Sequence[Engagement],
    *,
    timeout_s: float,
    interval_s: float = 0.1,
    final: asyncio.Event | None = None,
    sent: Callable[[], int] = lambda: 0,
) -> Progress:
    """Polls the group until its committed offsets reach ``targets`` on every partition.

    While a producer is still running, ``targets`` may still grow: pass ``final``, set once
    they are complete, and the wait cannot end before it is set; ``sent`` then tells how
    many records the producer has handed over, kept with each sample. Raises if a process
    exits or the timeout passes.
    """
    progress = Progress()
    deadline = time.perf_counter() + timeout_s
    async with Offsets() as offsets:
        while True:
            now = time.perf_counter()
            if progress.joined is None:
                members = [member for member in await group_members(group) if member.partitions]
                if members and progress.first_joined is None:
                    progress.first_joined = now
                    progress.cpu_at_join = sum(service.cpu_seconds() for service in services)
                if len(members) == len(services):
                    progress.joined = now
                    progress.assignment = [member.partitions for member in members]
            committed = await offsets.committed(group)
            total = sum(committed.values())  # the group reads the input topics only
            progress.samples.append((now, total, sent()))
            if progress.first_commit is None and total > 0:
                progress.first_commit = now
            if (final is None or final.is_set()) and caught_up(committed, targets):
                progress.done = now
                return progress
            for service in services:
                service.check_alive()
            if now > deadline:
                raise SystemExit(f"group {group} did not catch up within {timeout_s:.0f} s: {total} committed")
            await asyncio.sleep(interval_s)


async def wait_until_relayed(url: str, actions_topic: str, *, timeout_s: float) -> tuple[int, int]:
    """Until ``member.actions`` holds as many records as the ``actions`` table has rows.

    Returns (actions logged, records on the topic). The relay is at least once, so the topic
    may hold more. A version of the service without an ``actions`` table is not waited for,
    and its actions are counted on the topic.
    """
    if not await table_exists(url, "actions"):
        published = sum((await end_offsets([actions_topic])).values())
        return published, published
    deadline = time.perf_counter() + timeout_s
    while True:
        logged = int(await query(url, "SELECT count(*) FROM actions"))
        published = sum((await end_offsets([actions_topic])).values())
        if published >= logged or time.perf_counter() > deadline:
            return logged, published
        await asyncio.sleep(0.2)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc/<pid>/stat (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime: fields 14 and 15 of stat(5)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values[:8]) - idle, sum(values[:8])


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of all cores that was busy between two ``machine_ticks``."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


async def backend_cpu_seconds(database_url: str) -> float:
    """CPU time of the PostgreSQL backends connected to the database at ``database_url`` now.

    A backend that closed its connection earlier is not counted; the services keep pools of
    long-lived connections, so this is all but their whole database work. PostgreSQL's own
    background processes (WAL writer, checkpointer) are not counted either.
    """
    name = database_url.rsplit("/", 1)[1]
    engine = create_async_engine(ADMIN_URL, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )
            pids = [int(row[0]) for row in rows]
    finally:
        await engine.dispose()
    return sum(process_cpu_seconds(pid) for pid in pids)


def self_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class StatementClock:
    """Sums the wall time of an engine's statements by statement, while enabled: where a run's time went.

    Keyed by the statement's first words and the tables it names first, which tells apart the
    few statements a scheduler run issues; ``lines`` gives the heaviest first.
    """

    def __init__(self, engine: Engine, enabled: bool = True) -> None:
        self._engine = engine
        self._enabled = enabled
        self._started: dict[int, float] = {}
        self.seconds: dict[str, float] = {}
        self.calls: Counter[str] = Counter()

    def __enter__(self) -> StatementClock:
        if self._enabled:
            event.listen(self._engine, "before_cursor_execute", self._before)
            event.listen(self._engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            event.remove(self._engine, "before_cursor_execute", self._before)
            event.remove(self._engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._started[id(cursor)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = self._started.pop(id(cursor), None)
        if started is not None:
            label = " ".join(statement.split()[:8])[:90]
            self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started
            self.calls[label] += 1

    def lines(self, top: int = 8) -> list[str]:
        return [
            f"{seconds:7.2f} s in {self.calls[label]:>5} x  {label}"
            for label, seconds in sorted(self.seconds.items(), key=lambda item: -item[1])[:top]
        ]
