"""Fault suite: ``make chaos`` (``CHAOS_EVENTS`` events, default 30,000).

Starts a stack of its own beside the development one: a PostgreSQL cluster, a Kafka
broker and the three services (engagement, notifier, API) under ``.local/chaos``, on
other ports, with the deploy scripts an operator uses. It then plays the same stream
(tests/workload.py: joins, orders, payments, shipments, refunds, reviews) twice, each
time on fresh topics and a fresh database, with the background scheduler off so that
the result depends on the stream alone:

* the reference run: the stream at full speed, no faults;
* the fault run: the stream paced at ``CHAOS_RATE`` events/s while the engagement
  service is SIGKILLed ``CHAOS_ENGAGEMENT_KILLS`` times (default 4), the Kafka broker is
  SIGKILLed once and PostgreSQL is stopped in immediate mode once. Each comes back the
  way an operator brings it back: ``services.sh start``, ``kafka.sh start``,
  ``postgres.sh start`` (Kafka and PostgreSQL after ``CHAOS_OUTAGE_S`` seconds down).

Once a run has consumed the whole stream, every outbox row has left and every action
has its final outcome, the fault run is compared with the reference: member state
(members, orders, points ledger, parked events, processed events; wall-clock columns
aside), the actions (by id, payload minus ``created_at``), the actions on
``member.actions`` (distinct ids; a repeated publication, which the at-least-once relay
allows, is counted as republished), the outcomes per action and channel (final status
and reason), the outcomes on ``member.notifications`` and the deliveries on the log
channel. It prints each fault's recovery time (from the fault to the first batch the
engagement service commits after the restart), the totals lost / duplicated / differing
(all must be 0) and a JSON summary, and exits with 1 when any total is not 0.

The suite's databases commit synchronously (``CHAOS_SYNCHRONOUS_COMMIT``, default
``on``): the development cluster's ``synchronous_commit=off`` lets a stop in immediate
mode lose transactions PostgreSQL had already reported committed, which no service can
make up for (``CHAOS_SYNCHRONOUS_COMMIT=off`` shows it: deliveries left ``sending``).

Settings (environment): ``CHAOS_EVENTS`` (30000), ``CHAOS_RATE`` (400 events/s),
``CHAOS_ENGAGEMENT_KILLS`` (4), ``CHAOS_OUTAGE_S`` (5), ``CHAOS_SEED`` (7), ``CHAOS_DIR``
(.local/chaos), ``CHAOS_PG_PORT`` (55433), ``CHAOS_KAFKA_PORT`` (9192),
``CHAOS_KAFKA_CONTROLLER_PORT`` (9193), ``CHAOS_API_PORT`` (8290),
``CHAOS_ENGAGEMENT_METRICS_PORT`` (9291), ``CHAOS_NOTIFIER_METRICS_PORT`` (9292),
``CHAOS_SETTLE_TIMEOUT_S`` (300), ``CHAOS_STUCK_AFTER_S`` (30: deliveries that have not
moved for that long are reported rather than waited for), ``CHAOS_RECOVERY_TIMEOUT_S``
(120) and ``CHAOS_KEEP_STACK`` (1 leaves the stack and the runs' topics and databases up
for a look; ``.local/chaos/logs`` and ``scripts.log`` hold the services' and scripts' output).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.db.schema import actions, deliveries, notifications, outbox, processed_events
from tests.support import ROOT, TOPIC_OF_FAMILY, snapshot, topic_for
from tests.workload import workload

SCRIPTS = ROOT / "deploy" / "scripts"
EVENTS_PER_MEMBER = 16.3
CHANNEL = "log"
FINAL_STATUSES = ("sent", "suppressed", "failed")
Json = dict[str, Any]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


@dataclass(frozen=True)
class Config:
    events: int
    rate: float
    engagement_kills: int
    outage_s: float
    seed: int
    local_dir: Path
    pg_port: int
    kafka_port: int
    controller_port: int
    api_port: int
    engagement_metrics_port: int
    notifier_metrics_port: int
    settle_timeout_s: float
    recovery_timeout_s: float
    keep_stack: bool
    synchronous_commit: str
    stuck_after_s: float

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            events=_env_int("CHAOS_EVENTS", 30_000),
            rate=_env_float("CHAOS_RATE", 400.0),
            engagement_kills=_env_int("CHAOS_ENGAGEMENT_KILLS", 4),
            outage_s=_env_float("CHAOS_OUTAGE_S", 5.0),
            seed=_env_int("CHAOS_SEED", 7),
            local_dir=Path(os.environ.get("CHAOS_DIR", str(ROOT / ".local" / "chaos"))).resolve(),
            pg_port=_env_int("CHAOS_PG_PORT", 55433),
            kafka_port=_env_int("CHAOS_KAFKA_PORT", 9192),
            controller_port=_env_int("CHAOS_KAFKA_CONTROLLER_PORT", 9193),
            api_port=_env_int("CHAOS_API_PORT", 8290),
            engagement_metrics_port=_env_int("CHAOS_ENGAGEMENT_METRICS_PORT", 9291),
            notifier_metrics_port=_env_int("CHAOS_NOTIFIER_METRICS_PORT", 9292),
            settle_timeout_s=_env_float("CHAOS_SETTLE_TIMEOUT_S", 300.0),
            recovery_timeout_s=_env_float("CHAOS_RECOVERY_TIMEOUT_S", 120.0),
            keep_stack=os.environ.get("CHAOS_KEEP_STACK", "0") not in ("", "0", "false", "no"),
            synchronous_commit=os.environ.get("CHAOS_SYNCHRONOUS_COMMIT", "on"),
            stuck_after_s=_env_float("CHAOS_STUCK_AFTER_S", 30.0),
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg_port}/postgres"

    def database_url(self, database: str) -> str:
        return f"postgresql+asyncpg://engagement@127.0.0.1:{self.pg_port}/{database}"


_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[chaos {time.monotonic() - _T0:7.1f}s] {message}", flush=True)


# --------------------------------------------------------------------------- the stack


_FOREIGN = {
    "DATABASE_URL",
    "TEST_DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "ENGAGEMENT_GROUP_ID",
    "NOTIFIER_GROUP_ID",
    "NOTIFIER_LOG_PATH",
    "WEBHOOK_URL",
    "API_URL",
    "API_TOKEN",
    "API_TOKENS",
    "API_READ_TOKENS",
    "PLAYBOOK_PATH",
}


class Stack:
    """The suite's own PostgreSQL, Kafka and services, driven through deploy/scripts."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log_path = config.local_dir / "scripts.log"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        c = self.config
        # Whatever points at the development stack stays out of the suite's processes.
        env = {key: value for key, value in os.environ.items() if not key.startswith("TOPIC_") and key not in _FOREIGN}
        env.update(
            {
                "LOCAL_DIR": str(c.local_dir),
                "PG_PORT": str(c.pg_port),
                "PG_DATABASES": "engagement",
                "KAFKA_PORT": str(c.kafka_port),
                "KAFKA_CONTROLLER_PORT": str(c.controller_port),
                "KAFKA_BOOTSTRAP_SERVERS": c.bootstrap,
                # The jars are shared with the development stack (read only).
                "KAFKA_LIBS": os.environ.get("KAFKA_LIBS", str(ROOT / ".local" / "kafka" / "libs")),
                "API_PORT": str(c.api_port),
                "ENGAGEMENT_METRICS_PORT": str(c.engagement_metrics_port),
                "NOTIFIER_METRICS_PORT": str(c.notifier_metrics_port),
                "SCHEDULER_INTERVAL_S": "0",
                "NOTIFIER_CHANNELS": CHANNEL,
            }
        )
        env.update(extra or {})
        return env

    async def script(self, name: str, *args: str, extra: dict[str, str] | None = None, check: bool = True) -> str:
        """Runs deploy/scripts/<name>.sh with the stack's environment; its output goes to scripts.log."""
        process = await asyncio.create_subprocess_exec(
            str(SCRIPTS / f"{name}.sh"),
            *args,
            cwd=ROOT,
            env=self.env(extra),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        output, _ = await process.communicate()
        text_out = output.decode(errors="replace")
        with self.log_path.open("a") as log:
            log.write(f"$ {name}.sh {' '.join(args)}  (exit {process.returncode})\n{text_out}")
        if check and process.returncode != 0:
            tail = "\n".join(text_out.splitlines()[-30:])
            raise RuntimeError(f"{name}.sh {' '.join(args)} failed with {process.returncode}:\n{tail}")
        return text_out

    async def start_infra(self) -> None:
        self.config.local_dir.mkdir(parents=True, exist_ok=True)
        await self.script("postgres", "start")
        await self.script("kafka", "fetch", "start", "wait")

    async def stop_all(self) -> None:
        for name, args in (("services", ("stop",)), ("kafka", ("stop",)), ("postgres", ("stop",))):
            try:
                await self.script(name, *args)
            except Exception as error:
                say(f"warning: {name}.sh stop failed: {error}")

    def pid(self, pidfile: Path) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(pidfile.read_text().strip())
        return None

    @property
    def engagement_pidfile(self) -> Path:
        return self.config.local_dir / "run" / "engagement.pid"

    @property
    def kafka_pidfile(self) -> Path:
        return self.config.local_dir / "kafka" / "kafka.pid"

    def sigkill(self, pidfile: Path) -> int:
        pid = self.pid(pidfile)
        if pid is None:
            raise RuntimeError(f"no pid in {pidfile}")
        os.kill(pid, signal.SIGKILL)
        return pid

    async def pg_stop_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: the postmaster and its backends quit at once, no checkpoint."""
        data = self.config.local_dir / "pg" / "data"
        command = [str(_pg_bindir() / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate", "-w"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", os.environ.get("PG_USER_OS", "postgres"), "--", *command]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"pg_ctl stop -m immediate failed: {output.decode(errors='replace')}")


def _pg_bindir() -> Path:
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("pg_ctl not found under /usr/lib/postgresql (set PG_BINDIR)")
    return found[-1].parent


# --------------------------------------------------------------------------- Kafka and SQL helpers


async def admin_sql(url: str, *statements: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=count, replication_factor=1) for name, count in partitions.items()]
        )
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


class KafkaProbe:
    """One admin client and one consumer for offsets and group lags; started again after an error."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin: Any = None
        self._consumer: Any = None

    async def _clients(self) -> tuple[Any, Any]:
        if self._admin is None or self._consumer is None:
            await self.close()
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await admin.start()
            self._admin = admin
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
            await consumer.start()
            self._consumer = consumer
        return self._admin, self._consumer

    async def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        with contextlib.suppress(Exception):
            if admin is not None:
                await admin.close()
        with contextlib.suppress(Exception):
            if consumer is not None:
                await consumer.stop()

    async def end_offsets(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        try:
            admin, consumer = await self._clients()
            described = await admin.describe_topics(list(topics))
            partitions = [
                TopicPartition(topic["topic"], partition["partition"])
                for topic in described
                for partition in topic["partitions"]
            ]
            if not partitions or any(topic.get("error_code") for topic in described):
                raise RuntimeError(f"topics not found: {list(topics)}")
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            return ends
        except Exception:
            await self.close()
            raise

    async def lag(self, group: str, topics: Iterable[str]) -> int:
        """Records on ``topics`` that ``group`` has not committed yet."""
        ends = await self.end_offsets(topics)
        try:
            admin, _ = await self._clients()
            committed = await admin.list_consumer_group_offsets(group)
        except Exception:
            await self.close()
            raise
        lag = 0
        for partition, end in ends.items():
            meta = committed.get(partition)
            lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag


async def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Every record value on ``topic``, from the beginning to the current end."""
    probe = KafkaProbe(bootstrap)
    try:
        ends = await probe.end_offsets([topic])
    finally:
        await probe.close()
    wanted = {tp: end for tp, end in ends.items() if end > 0}
    if not wanted:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        done: set[TopicPartition] = set()
        deadline = time.monotonic() + 120
        while len(done) < len(wanted) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                values.extend(record.value for record in records)
                if records and records[-1].offset + 1 >= wanted[tp]:
                    done.add(tp)
            for tp in wanted:
                if tp not in done and await consumer.position(tp) >= wanted[tp]:
                    done.add(tp)
        if len(done) < len(wanted):
            raise RuntimeError(f"could not read {topic} to its end")
    finally:
        await consumer.stop()
    return values


# --------------------------------------------------------------------------- one run


@dataclass
class Run:
    """One play of the stream: its topics, database, consumer groups and results."""

    name: str
    config: Config
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def topics(self) -> dict[str, str]:
        prefix = f"chaos{self.suffix}.{self.name}"
        topics = {env: f"{prefix}.{env.removeprefix('TOPIC_').lower()}" for env in TOPIC_OF_FAMILY.values()}
        topics["TOPIC_ACTIONS"] = f"{prefix}.member.actions"
        topics["TOPIC_NOTIFICATIONS"] = f"{prefix}.member.notifications"
        topics["TOPIC_DLQ"] = f"{prefix}.commerce.dlq"
        return topics

    @property
    def inputs(self) -> list[str]:
        return [self.topics[env] for env in TOPIC_OF_FAMILY.values()]

    @property
    def database(self) -> str:
        return f"chaos_{self.name}"

    @property
    def database_url(self) -> str:
        return self.config.database_url(self.database)

    @property
    def engagement_group(self) -> str:
        return f"chaos-{self.suffix}-{self.name}-engagement"

    @property
    def notifier_group(self) -> str:
        return f"chaos-{self.suffix}-{self.name}-notifier"

    @property
    def delivery_log(self) -> Path:
        return self.config.local_dir / f"{self.name}-deliveries.jsonl"

    def env(self) -> dict[str, str]:
        return {
            **self.topics,
            "DATABASE_URL": self.database_url,
            "ENGAGEMENT_GROUP_ID": self.engagement_group,
            "NOTIFIER_GROUP_ID": self.notifier_group,
            "NOTIFIER_LOG_PATH": str(self.delivery_log),
        }

    async def prepare(self, stack: Stack) -> None:
        partitions = dict.fromkeys(self.inputs, 6)
        partitions[self.topics["TOPIC_ACTIONS"]] = 6
        partitions[self.topics["TOPIC_NOTIFICATIONS"]] = 3
        partitions[self.topics["TOPIC_DLQ"]] = 3
        await create_topics(self.config.bootstrap, partitions)
        await admin_sql(
            self.config.admin_url,
            f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)',
            f'CREATE DATABASE "{self.database}" OWNER engagement',
            # The development cluster runs with synchronous_commit=off, which, in a stop in
            # immediate mode, loses transactions already reported committed (PostgreSQL's
            # documented trade-off). The services rely on an acknowledged commit being
            # durable, as on any production database, so the suite's databases commit
            # synchronously (fsync stays off: the operating system does not crash here).
            f'ALTER DATABASE "{self.database}" SET synchronous_commit = {self.config.synchronous_commit}',
        )
        self.delivery_log.unlink(missing_ok=True)
        await stack.script("services", "stop")
        await stack.script("services", "env", "migrate", "start", "wait", extra=self.env())


@dataclass
class Fault:
    kind: str  # engagement | kafka | postgres
    produced: int = 0  # events acknowledged by the broker when it struck
    at_s: float = 0.0  # since the start of the stream
    fault_t: float = 0.0
    wall_t: float = 0.0  # the fault's wall-clock time, to place rows' timestamps
    restart_t: float = 0.0
    restart_s: float = 0.0  # how long the restart commands took (start + wait)
    recovery_s: float | None = None  # fault -> first batch the engagement service commits after the restart
    notifier_recovery_s: float | None = None  # fault -> first outcome the notifier records after the restart
    restart_output: str = ""


class Monitor:
    """Scrapes both services' /metrics every 100 ms: committed batches and recorded outcomes, per process.

    A counter only moves after its transaction (and, for the engagement service, its
    offset commit) succeeded, so its first step after a restart is the first progress.
    Processes are told apart by ``process_start_time_seconds``.
    """

    def __init__(self, config: Config) -> None:
        self.urls = {
            "engagement": (
                f"http://127.0.0.1:{config.engagement_metrics_port}/metrics",
                "engagement_batch_seconds_count",
            ),
            "notifier": (f"http://127.0.0.1:{config.notifier_metrics_port}/metrics", "notifier_notifications_total"),
        }
        self.samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in self.urls}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=0.5) as client:
            while True:
                for name, (url, metric) in self.urls.items():
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        body = (await client.get(url)).text
                        started = _metric_sum(body, "process_start_time_seconds")
                        self.samples[name].append((time.monotonic(), started, _metric_sum(body, metric)))
                await asyncio.sleep(0.1)

    def progress_after(self, name: str, restart_t: float) -> float | None:
        """Time of the first step of ``name``'s counter after ``restart_t`` (a new process: its first step)."""
        before = [sample for sample in self.samples[name] if sample[0] <= restart_t]
        last_process, last_value = (before[-1][1], before[-1][2]) if before else (None, 0.0)
        for at, process, value in self.samples[name]:
            if at <= restart_t:
                continue
            if (process == last_process and value > last_value) or (process != last_process and value > 0):
                return at
        return None


def _metric_sum(body: str, name: str) -> float:
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Producer:
    """Produces the stream, paced or at full speed; a send that fails is sent again (the service dedupes)."""

    def __init__(self, config: Config, topics: dict[str, str], events: list[Json]) -> None:
        self.config = config
        self.topics = topics
        self.events = events
        self.acked = 0
        self.resent = 0
        self.limit = len(events)  # the fault driver holds the producer back while a fault is pending
        self._advanced = asyncio.Event()

    async def wait_acked(self, count: int, task: asyncio.Task[None]) -> None:
        """Until ``count`` events are acknowledged (or the producer has ended)."""
        while self.acked < count and not task.done():
            self._advanced.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), timeout=0.5)

    async def run(self, rate: float | None) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.config.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=262144,
            request_timeout_ms=120_000,
        )
        await producer.start()
        try:
            window: list[Json] = []
            base_t, base_i = time.monotonic(), 0
            for index, event in enumerate(self.events):
                while index >= self.limit:
                    await self._flush(producer, window)
                    await asyncio.sleep(0.05)
                if rate is not None:
                    target = base_t + (index - base_i) / rate
                    now = time.monotonic()
                    if now > target + 1.0:  # late after a stall: go on at the rate, no burst
                        base_t, base_i = now, index
                    elif target > now:
                        await asyncio.sleep(target - now)
                window.append(event)
                if len(window) >= (50 if rate is not None else 2000):
                    await self._flush(producer, window)
            await self._flush(producer, window)
        finally:
            await producer.stop()

    async def _flush(self, producer: Any, window: list[Json]) -> None:
        pending = list(window)
        window.clear()
        while pending:
            futures = [
                await producer.send(
                    topic_for(event, self.topics),
                    value=json.dumps(event).encode(),
                    key=f"{event['shopid']}:{event['memberid']}".encode(),
                )
                for event in pending
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = [
                event for event, result in zip(pending, results, strict=True) if isinstance(result, BaseException)
            ]
            self.acked += len(pending) - len(failed)
            self._advanced.set()
            if failed:
                say(f"producer: {len(failed)} sends failed ({type(results[0]).__name__}); sending them again")
                self.resent += len(failed)
                await asyncio.sleep(1.0)
            pending = failed


async def run_stream(stack: Stack, run: Run, events: list[Json], plan: list[str]) -> tuple[float, list[Fault]]:
    """Produces the stream (with the faults of ``plan``) and waits until it has settled; returns its duration."""
    config = stack.config
    producer = Producer(config, run.topics, events)
    monitor = Monitor(config)
    monitor.start()
    faults = [Fault(kind) for kind in plan]
    started = time.monotonic()
    try:
        if plan:
            thresholds = [int(len(events) * (0.08 + 0.8 * i / len(plan))) for i in range(len(plan))]
            producer.limit = thresholds[0] + len(events) // 20
            produce = asyncio.create_task(producer.run(config.rate))
            for index, fault in enumerate(faults):
                await producer.wait_acked(thresholds[index], produce)
                await strike(stack, run, fault, producer, started)
                fault.recovery_s = await _await_progress(monitor, "engagement", fault, config.recovery_timeout_s)
                if fault.kind != "engagement":
                    fault.notifier_recovery_s = await _await_progress(monitor, "notifier", fault, 30.0)
                say(
                    f"fault {index + 1}/{len(plan)} {fault.kind}: first commit after the restart "
                    f"{_seconds(fault.recovery_s)} after the fault"
                )
                producer.limit = thresholds[index + 1] + len(events) // 20 if index + 1 < len(plan) else len(events)
                await asyncio.sleep(1.0)
            await produce
        else:
            await producer.run(None)
        say(f"{run.name}: {producer.acked:,} events produced ({producer.resent} sent again); waiting to settle")
        await settle(run, len(events), config)
        elapsed = time.monotonic() - started
    finally:
        await monitor.stop()
    return elapsed, faults


async def _await_progress(monitor: Monitor, name: str, fault: Fault, timeout_s: float) -> float | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        at = monitor.progress_after(name, fault.restart_t)
        if at is not None:
            return at - fault.fault_t
        await asyncio.sleep(0.1)
    return None


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


async def strike(stack: Stack, run: Run, fault: Fault, producer: Producer, started: float) -> None:
    """One fault, then the operator's restart."""
    fault.produced = producer.acked
    fault.fault_t = time.monotonic()
    fault.wall_t = time.time()
    fault.at_s = fault.fault_t - started
    outage = stack.config.outage_s
    if fault.kind == "engagement":
        pid = stack.sigkill(stack.engagement_pidfile)
        say(f"SIGKILL engagement (pid {pid}) at {fault.produced:,} events; services.sh start at once")
        fault.restart_t = time.monotonic()
        fault.restart_output = await stack.script("services", "start", "wait", extra=run.env())
        if "engagement already running" in fault.restart_output:
            say("warning: services.sh start took the killed engagement process for a running one")
    elif fault.kind == "kafka":
        pid = stack.sigkill(stack.kafka_pidfile)
        say(f"SIGKILL kafka (pid {pid}) at {fault.produced:,} events; kafka.sh start in {outage:.0f} s")
        await asyncio.sleep(outage)
        fault.restart_t = time.monotonic()
        fault.restart_output = await stack.script("kafka", "start", "wait")
    elif fault.kind == "postgres":
        await stack.pg_stop_immediate()
        say(f"pg_ctl stop -m immediate at {fault.produced:,} events; postgres.sh start in {outage:.0f} s")
        await asyncio.sleep(outage)
        fault.restart_t = time.monotonic()
        fault.restart_output = await stack.script("postgres", "start")
    else:
        raise ValueError(fault.kind)
    fault.restart_s = time.monotonic() - fault.restart_t


async def settle(run: Run, events: int, config: Config) -> dict[str, int]:
    """Until the stream is consumed, the outbox empty and every action has its final outcome.

    Gives up after ``settle_timeout_s``, or once everything but some deliveries has settled
    and those have not moved for ``stuck_after_s``: they are reported, not waited for.
    """
    engine = create_async_engine(run.database_url, pool_pre_ping=True)
    probe = KafkaProbe(config.bootstrap)
    deadline = time.monotonic() + config.settle_timeout_s
    last_report = 0.0
    state: dict[str, int] = {}
    unchanged_since, last_state = time.monotonic(), dict(state)
    try:
        while True:
            try:
                state = await _settle_state(engine, probe, run)
            except Exception as error:
                say(f"{run.name}: could not look at the run's progress ({type(error).__name__}: {error})")
                await asyncio.sleep(1.0)
                continue
            consumed = (
                state.get("processed") == events
                and state.get("outbox") == 0
                and state.get("input_lag") == 0
                and state.get("actions_lag") == 0
                and state.get("delivered_actions") == state.get("actions")
            )
            if consumed and state.get("open_deliveries") == 0:
                return state
            now = time.monotonic()
            if state != last_state:
                unchanged_since, last_state = now, dict(state)
            if consumed and now - unchanged_since >= config.stuck_after_s:
                say(f"{run.name}: {state['open_deliveries']} deliveries stuck for {config.stuck_after_s:.0f} s")
                return state
            if now >= deadline:
                say(f"{run.name}: not settled after {config.settle_timeout_s:.0f} s: {state}")
                return state
            if now - last_report > 10:
                say(f"{run.name}: settling {state}")
                last_report = now
            await asyncio.sleep(1.0)
    finally:
        await probe.close()
        await engine.dispose()


async def _settle_state(engine: AsyncEngine, probe: KafkaProbe, run: Run) -> dict[str, int]:
    state: dict[str, int] = {}
    async with engine.connect() as connection:

        async def count(statement: Any) -> int:
            return int(await connection.scalar(statement) or 0)

        state["processed"] = await count(select(func.count()).select_from(processed_events))
        state["outbox"] = await count(select(func.count()).select_from(outbox))
        state["outbox_actions"] = await count(
            select(func.count()).select_from(outbox).where(outbox.c.stream == "actions")
        )
        state["actions"] = await count(select(func.count()).select_from(actions))
        state["delivered_actions"] = await count(select(func.count(func.distinct(deliveries.c.action_id))))
        state["open_deliveries"] = await count(
            select(func.count()).select_from(deliveries).where(deliveries.c.status.not_in(FINAL_STATUSES))
        )
    state["input_lag"] = await probe.lag(run.engagement_group, run.inputs)
    state["actions_lag"] = await probe.lag(run.notifier_group, [run.topics["TOPIC_ACTIONS"]])
    return state


# --------------------------------------------------------------------------- what a run leaves


@dataclass
class Result:
    state: dict[str, dict[Any, Any]]  # table -> key -> row (wall-clock columns left out)
    duplicate_keys: dict[str, int]
    outcomes: dict[tuple[str, str], list[tuple[str, str | None]]]  # (action, channel) -> [(status, reason)]
    deliveries: dict[tuple[str, str], tuple[str, str | None]]  # (action, channel) -> (status, reason)
    touched: dict[tuple[str, str], float]  # (action, channel) -> the delivery row's updated_at (epoch s)
    topic_actions: dict[str, list[Json]]  # action_id -> every copy on member.actions
    topic_outcomes: dict[str, list[Json]]  # notification_id -> every copy on member.notifications
    delivered: Counter[tuple[str, str]]  # (action, channel) -> lines in the log channel's file
    dead_letters: list[Json]


STATE_KEYS: dict[str, Callable[[Any], Any]] = {
    "members": lambda row: (row["shop_id"], row["member_id"]),
    "orders": lambda row: (row["shop_id"], row["order_id"]),
    "pending_events": lambda row: (row["source"], row["event_id"]),
    "points_ledger": lambda row: (row["shop_id"], row["member_id"], row["entry_id"]),
    "coupons": lambda row: (row["shop_id"], row["code"]),
    "unredeemed_codes": lambda row: (row["shop_id"], row["code"], row["order_id"]),
    "decisions": lambda row: row["decision_id"],
    "budget_spend": lambda row: (row["shop_id"], row["scope"], row["period_start"]),
    "actions": lambda row: row[0],
    "processed_events": lambda row: (row[0], row[1]),
}


async def collect(run: Run) -> Result:
    engine = create_async_engine(run.database_url)
    try:
        raw = await snapshot(engine)
        async with engine.connect() as connection:
            outcome_rows = (
                await connection.execute(
                    select(
                        notifications.c.action_id,
                        notifications.c.channel,
                        notifications.c.status,
                        notifications.c.reason,
                    )
                )
            ).all()
            delivery_rows = (
                await connection.execute(
                    select(
                        deliveries.c.action_id,
                        deliveries.c.channel,
                        deliveries.c.status,
                        deliveries.c.reason,
                        deliveries.c.updated_at,
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    state: dict[str, dict[Any, Any]] = {}
    duplicate_keys: dict[str, int] = {}
    for table, key in STATE_KEYS.items():
        rows = raw[table]
        keyed = {key(row): (row[1] if table == "actions" else row) for row in rows}
        state[table] = keyed
        duplicate_keys[table] = len(rows) - len(keyed)
    outcomes: dict[tuple[str, str], list[tuple[str, str | None]]] = defaultdict(list)
    for action_id, channel, status, reason in outcome_rows:
        outcomes[(action_id, channel)].append((status, reason))
    topic_actions: dict[str, list[Json]] = defaultdict(list)
    for value in await read_topic(run.config.bootstrap, run.topics["TOPIC_ACTIONS"]):
        action = json.loads(value)
        topic_actions[action["action_id"]].append(action)
    topic_outcomes: dict[str, list[Json]] = defaultdict(list)
    for value in await read_topic(run.config.bootstrap, run.topics["TOPIC_NOTIFICATIONS"]):
        outcome = json.loads(value)
        topic_outcomes[outcome["notification_id"]].append(outcome)
    delivered: Counter[tuple[str, str]] = Counter()
    if run.delivery_log.exists():
        for line in run.delivery_log.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError):
                entry = json.loads(line)
                delivered[(entry["action_id"], entry["channel"])] += 1
    dead_letters = [json.loads(value) for value in await read_topic(run.config.bootstrap, run.topics["TOPIC_DLQ"])]
    return Result(
        state=state,
        duplicate_keys=duplicate_keys,
        outcomes=dict(outcomes),
        deliveries={(row[0], row[1]): (row[2], row[3]) for row in delivery_rows},
        touched={(row[0], row[1]): row[4].timestamp() for row in delivery_rows},
        topic_actions=dict(topic_actions),
        topic_outcomes=dict(topic_outcomes),
        delivered=delivered,
        dead_letters=dead_letters,
    )


# --------------------------------------------------------------------------- comparison


@dataclass
class Tally:
    """Counts per category and a few examples of each, for the report."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, category: str, what: str, example: str, count: int = 1) -> None:
        if count <= 0:
            return
        self.counts[f"{category}:{what}"] += count
        if len(self.examples[f"{category}:{what}"]) < 5:
            self.examples[f"{category}:{what}"].append(example)

    def total(self, category: str) -> int:
        return sum(count for key, count in self.counts.items() if key.startswith(f"{category}:"))


def _without_created_at(action: Json) -> Json:
    return {key: value for key, value in action.items() if key != "created_at"}


def _row_diff(left: Any, right: Any) -> str:
    if isinstance(left, dict) and isinstance(right, dict):
        keys = sorted(key for key in set(left) | set(right) if left.get(key) != right.get(key))
        return ", ".join(f"{key}: {left.get(key)!r} -> {right.get(key)!r}" for key in keys[:6])
    return f"{left!r} -> {right!r}"


def final_outcome(outcomes: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    return sorted((status, reason) for status, reason in outcomes if status in FINAL_STATUSES)


def near_fault(at: float | None, faults: list[Fault]) -> str:
    """Which fault a wall-clock time follows (and by how much), to point at a difference's cause."""
    if at is None:
        return "time unknown"
    before = [(index, fault) for index, fault in enumerate(faults, 1) if fault.wall_t and fault.wall_t <= at + 1.0]
    if not before:
        return "before any fault"
    index, fault = before[-1]
    return f"last touched {at - fault.wall_t:+.2f} s from fault {index} ({fault.kind})"


def compare(reference: Result, faulted: Result, faults: list[Fault]) -> Tally:
    tally = Tally()
    # Member state and actions, as stored.
    for table, expected in reference.state.items():
        found = faulted.state[table]
        tally.add("duplicated", table, f"{faulted.duplicate_keys[table]} keys twice", faulted.duplicate_keys[table])
        for key in expected.keys() - found.keys():
            tally.add("lost", table, repr(key))
        for key in found.keys() - expected.keys():
            tally.add("differing", f"{table} (extra)", repr(key))
        for key in expected.keys() & found.keys():
            left, right = expected[key], found[key]
            if table == "actions":
                left, right = _without_created_at(left), _without_created_at(right)
            if left != right:
                tally.add("differing", table, f"{key!r}: {_row_diff(left, right)}")
    # Actions on member.actions: every stored action once, copies identical.
    expected_ids = set(reference.topic_actions)
    found_ids = set(faulted.topic_actions)
    for action_id in expected_ids - found_ids:
        tally.add("lost", "member.actions", action_id)
    for action_id in found_ids - expected_ids:
        tally.add("differing", "member.actions (extra)", action_id)
    for action_id in set(faulted.state["actions"]) - found_ids:
        tally.add("lost", "member.actions (stored, never published)", action_id)
    for action_id in expected_ids & found_ids:
        copies = {json.dumps(_without_created_at(copy), sort_keys=True) for copy in faulted.topic_actions[action_id]}
        if len(copies) > 1:
            tally.add("differing", "member.actions (copies differ)", action_id)
        elif _without_created_at(faulted.topic_actions[action_id][0]) != _without_created_at(
            reference.topic_actions[action_id][0]
        ):
            tally.add("differing", "member.actions", action_id)
    # Outcomes per (action, channel): one final status, the reference's.
    for key in set(reference.outcomes) | set(faulted.outcomes):
        expected_final = final_outcome(reference.outcomes.get(key, []))
        found_final = final_outcome(faulted.outcomes.get(key, []))
        if len(found_final) > 1:
            tally.add("duplicated", "outcomes (two final outcomes)", f"{key}: {found_final}")
        if expected_final and not found_final:
            stuck = faulted.deliveries.get(key)
            lines = faulted.delivered.get(key, 0)
            where = near_fault(faulted.touched.get(key), faults)
            tally.add(
                "lost",
                "outcomes",
                f"{key}: expected {expected_final}, delivery row {stuck} ({where}), log channel lines {lines}",
            )
        elif found_final and not expected_final:
            tally.add("differing", "outcomes (extra)", f"{key}: {found_final}")
        elif expected_final != found_final and len(found_final) == 1:
            lines = faulted.delivered.get(key, 0)
            where = near_fault(faulted.touched.get(key), faults)
            tally.add(
                "differing",
                "outcomes",
                f"{key}: {expected_final[0]} -> {found_final[0]} (log channel lines: {lines}, {where})",
            )
    # Outcomes on member.notifications: each recorded outcome published (copies are republications).
    recorded = {
        (action_id, channel, status) for (action_id, channel), items in faulted.outcomes.items() for status, _ in items
    }
    published = {
        (copies[0]["action_id"], copies[0]["channel"], copies[0]["status"])
        for copies in faulted.topic_outcomes.values()
    }
    for item in recorded - published:
        tally.add("lost", "member.notifications", repr(item))
    # The log channel: at most once per (action, channel).
    for key, lines in faulted.delivered.items():
        tally.add("duplicated", "deliveries (log channel)", f"{key}: {lines} times", 1 if lines > 1 else 0)
    for key, (status, _) in faulted.deliveries.items():
        if status == "sent" and faulted.delivered.get(key, 0) == 0:
            tally.add("lost", "deliveries (sent, no log line)", repr(key))
    # Dead letters: a valid stream has none.
    if len(faulted.dead_letters) > len(reference.dead_letters):
        for letter in faulted.dead_letters[:5]:
            tally.add("lost", "dead-lettered", f"{letter.get('topic')}@{letter.get('offset')}: {letter.get('error')}")
        tally.counts["lost:dead-lettered"] = len(faulted.dead_letters) - len(reference.dead_letters)
    return tally


def republished(result: Result) -> tuple[int, int]:
    actions_extra = sum(len(copies) - 1 for copies in result.topic_actions.values())
    outcomes_extra = sum(len(copies) - 1 for copies in result.topic_outcomes.values())
    return actions_extra, outcomes_extra


def self_check(name: str, result: Result, events: int) -> list[str]:
    """What a settled run must hold on its own (the reference included)."""
    problems = []
    if len(result.state["processed_events"]) != events:
        problems.append(f"{name}: {len(result.state['processed_events'])} events processed of {events}")
    if set(result.state["actions"]) != set(result.topic_actions):
        problems.append(f"{name}: stored actions and member.actions differ")
    missing = [key for key in result.deliveries if not final_outcome(result.outcomes.get(key, []))]
    if missing:
        problems.append(f"{name}: {len(missing)} deliveries without a final outcome")
    return problems


# --------------------------------------------------------------------------- main


def fault_plan(kills: int) -> list[str]:
    plan = ["engagement"] * kills
    plan.insert(min(2, len(plan)), "kafka")
    plan.insert(min(4, len(plan)), "postgres")
    return plan


async def main() -> int:
    # The suite's own Kafka clients would log every refused connection while the broker is down.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    config = Config.from_env()
    started = time.monotonic()
    members = max(1, round(config.events / EVENTS_PER_MEMBER))
    events = workload(members, seed=config.seed)
    say(f"{len(events):,} events of {members:,} members; stack in {config.local_dir}")
    stack = Stack(config)
    runs = [Run("reference", config), Run("faults", config)]
    results: dict[str, Result] = {}
    durations: dict[str, float] = {}
    faults: list[Fault] = []
    plan = fault_plan(config.engagement_kills)
    try:
        await stack.start_infra()
        for run in runs:
            say(f"{run.name}: fresh topics ({run.topics['TOPIC_ACTIONS'].split('.')[0]}.*) and database {run.database}")
            await run.prepare(stack)
            run_plan = plan if run.name == "faults" else []
            if run_plan:
                say(f"{run.name}: stream at {config.rate:,.0f} events/s with faults: {', '.join(run_plan)}")
            else:
                say(f"{run.name}: stream at full speed, no faults")
            durations[run.name], run_faults = await run_stream(stack, run, events, run_plan)
            faults.extend(run_faults)
            await stack.script("services", "stop", extra=run.env())
            results[run.name] = await collect(run)
            say(f"{run.name}: settled in {durations[run.name]:.1f} s")
    finally:
        if not config.keep_stack:
            for run in runs:
                with contextlib.suppress(Exception):
                    await delete_topics(config.bootstrap, run.topics.values())
            await stack.stop_all()
    tally = compare(results["reference"], results["faults"], faults)
    problems = self_check("reference", results["reference"], len(events)) + self_check(
        "faults", results["faults"], len(events)
    )
    report(config, events, members, results, durations, faults, tally, problems, time.monotonic() - started)
    failed = any(tally.total(category) for category in ("lost", "duplicated", "differing")) or problems
    return 1 if failed else 0


def report(
    config: Config,
    events: list[Json],
    members: int,
    results: dict[str, Result],
    durations: dict[str, float],
    faults: list[Fault],
    tally: Tally,
    problems: list[str],
    elapsed: float,
) -> None:
    reference, faulted = results["reference"], results["faults"]
    machine = f"{platform.machine()} {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    republished_actions, republished_outcomes = republished(faulted)
    print()
    actions_count = len(reference.state["actions"])
    print(f"chaos: {len(events):,} events, {members:,} members, {actions_count:,} actions | {machine}")
    print(
        f"  reference run {durations['reference']:.1f} s (full speed, no faults); "
        f"fault run {durations['faults']:.1f} s (paced at {config.rate:,.0f} events/s); "
        f"PostgreSQL synchronous_commit={config.synchronous_commit}"
    )
    for index, fault in enumerate(faults, 1):
        extra = "" if fault.kind == "engagement" else f", notifier {_seconds(fault.notifier_recovery_s)}"
        down = "" if fault.kind == "engagement" else f", down {config.outage_s:.0f} s"
        print(
            f"  fault {index} {fault.kind:<10} at {fault.at_s:6.1f} s ({fault.produced:,} events produced){down}, "
            f"restart commands {fault.restart_s:.1f} s: recovered (first commit) {_seconds(fault.recovery_s)}{extra}"
        )
    for category in ("lost", "duplicated", "differing"):
        print(f"  {category}: {tally.total(category)}")
        for key, count in sorted(tally.counts.items()):
            if key.startswith(f"{category}:"):
                print(f"    {key.split(':', 1)[1]}: {count}")
                for example in tally.examples[key]:
                    print(f"      e.g. {example}")
    print(
        f"  republished (at least once, not duplicates): {republished_actions} actions, {republished_outcomes} outcomes"
    )
    for problem in problems:
        print(f"  problem: {problem}")
    summary = {
        "events": len(events),
        "members": members,
        "actions": len(reference.state["actions"]),
        "outcomes": sum(len(items) for items in reference.outcomes.values()),
        "faults": [
            {
                "kind": fault.kind,
                "at_s": round(fault.at_s, 1),
                "produced": fault.produced,
                "restart_s": round(fault.restart_s, 1),
                "recovery_s": None if fault.recovery_s is None else round(fault.recovery_s, 1),
                "notifier_recovery_s": None
                if fault.notifier_recovery_s is None
                else round(fault.notifier_recovery_s, 1),
            }
            for fault in faults
        ],
        "lost": tally.total("lost"),
        "duplicated": tally.total("duplicated"),
        "differing": tally.total("differing"),
        "republished_actions": republished_actions,
        "republished_outcomes": republished_outcomes,
        "problems": problems,
        "reference_run_s": round(durations["reference"], 1),
        "fault_run_s": round(durations["faults"], 1),
        "total_s": round(elapsed, 1),
        "synchronous_commit": config.synchronous_commit,
        "machine": machine,
    }
    print("chaos summary: " + json.dumps(summary))


def entry() -> None:
    sys.exit(asyncio.run(main()))


if __name__ == "__main__":
    entry()
