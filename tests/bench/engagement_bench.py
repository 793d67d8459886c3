"""Event-path benchmark: ``make bench`` (``make bench-pair`` for two processes in one group).

Runs the real engagement process (``python -m services.engagement``, from this checkout or
from ``BENCH_SERVICE_ROOT``) against the local Kafka and PostgreSQL, with the background
scheduler off, on the synthetic workload of tests/workload.py (joins, orders, payments,
shipments, refunds, reviews; about 16 events per member). Each phase gets fresh topics
(6 partitions each) and a fresh database migrated by the service checkout's own Alembic
scripts; all are removed at the end. Phases:

1. **Drain**: the whole backlog (``BENCH_EVENTS``) is produced first; only then are the
   engagement processes started. Timed from their start until the group's committed
   offsets reach the end offsets of every input partition (Kafka is asked every 0.1 s):
   events/s and actions/s (rows in ``actions``), with the start-up (process start to group
   joined) shown apart, the time until every action is on ``member.actions``, and the CPU
   seconds per event of the service processes and of their PostgreSQL backends.
2. **Reference points** on the drain's events, each set against the drain rate:
   (a) raw aiokafka consume of the drain's input topics, nothing done with the records;
   (b) a naive consumer (tests/bench/naive_consumer.py: one ORM session and one
   transaction per event, the same domain and state changes) on the first
   ``BENCH_NAIVE_EVENTS`` events, on topics of their own and a database of its own;
   (c) the write floor (tests/bench/write_floor.py): the rows the drain left in the
   service's database loaded with COPY into empty copies of the tables.
3. With ``BENCH_PROCESSES`` > 1, the drain again with that many processes in one group
   (fresh topics and database, the same events), set against the single process.
4. **End to end**: a process already in its group while the producer sends the same
   events; from the first record produced to the last offset committed.
5. **Steady stream**, on the same process once the end-to-end phase is relayed: a new
   stream sent at ``BENCH_STEADY_RATE`` events/s for ``BENCH_STEADY_SECONDS``; latency from
   each input record's timestamp to the timestamp of each action it triggered on
   ``member.actions`` (p50, p99, max), and whether the service kept up.

It prints a line per phase, a table and one summary line, and appends all of it to
tests/bench/results/engagement.log (tests/bench/results.py), failed runs included.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from shared.playbook_file import load_playbook
from tests.bench import naive_consumer, write_floor
from tests.bench.harness import (
    ADMIN_URL,
    INPUTS,
    Engagement,
    Produced,
    Progress,
    Record,
    Stack,
    backend_cpu_seconds,
    busy_share,
    describe_assignment,
    encode,
    end_offsets,
    engagement_env,
    follow,
    machine_ticks,
    produce,
    query,
    reached,
    read,
    self_cpu_seconds,
    table_exists,
    wait_until_relayed,
)
from tests.bench.results import ROOT, commit, machine, record
from tests.support import KAFKA, group_members, partitions_of
from tests.workload import workload

EVENTS_PER_MEMBER = 16.3


@dataclass(frozen=True)
class BenchSettings:
    events: int
    processes: int
    steady_rate: float
    steady_seconds: float
    naive_events: int
    service_root: Path
    timeout_s: float

    @classmethod
    def from_env(cls) -> BenchSettings:
        env = os.environ.get
        return cls(
            events=int(env("BENCH_EVENTS", "200000")),
            processes=int(env("BENCH_PROCESSES", "1")),
            steady_rate=float(env("BENCH_STEADY_RATE", "5000")),
            steady_seconds=float(env("BENCH_STEADY_SECONDS", "20")),
            naive_events=int(env("BENCH_NAIVE_EVENTS", "20000")),
            service_root=Path(env("BENCH_SERVICE_ROOT") or ROOT).resolve(),
            timeout_s=float(env("BENCH_PHASE_TIMEOUT_S", "1200")),
        )


class Report:
    """Lines printed as they come and kept for the results file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Drain:
    processes: int
    events: int
    produced: Produced
    started: float
    progress: Progress
    actions: int
    published: int
    relayed: float
    dead_letters: int
    processed_rows: int | None
    service_cpu: float
    database_cpu: float
    busy: float
    database_url: str
    topics: dict[str, str]

    @property
    def seconds(self) -> float:
        assert self.progress.done is not None
        return self.progress.done - self.started

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def startup(self) -> float:
        """From process start until the group first had partitions assigned."""
        return (self.progress.first_joined or self.started) - self.started

    @property
    def rate_after_join(self) -> float:
        return self.events / (self.seconds - self.startup)

    @property
    def cpu_per_event(self) -> tuple[float, float]:
        """CPU seconds per event of the processes (start-up included) and of their PostgreSQL backends."""
        return self.service_cpu / self.events, self.database_cpu / self.events

    def quartiles(self) -> str:
        marks = [reached(self.progress, share, self.events, self.started) for share in (0.25, 0.5, 0.75)]
        return "/".join("?" if mark is None else f"{mark:.1f}" for mark in [*marks, self.seconds])


@dataclass
class Steady:
    target_rate: float
    produced: Produced
    caught_up: float  # s from the last record produced to the last offset committed
    max_lag: int  # events produced and not yet committed, at worst
    end_lag: int  # the same when the producer finished
    latencies: list[float]
    actions: int  # triggered by the stream (rows added to actions)

    @property
    def sustained(self) -> bool:
        """Less than a second of the stream waiting when it ended, and cleared within 2 s."""
        return self.end_lag <= self.target_rate and self.caught_up <= 2.0


def _log(stack: Stack, name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"engagement-bench-{stack.run_id}-{name}.log"


def _start(
    stack: Stack, settings: BenchSettings, topics: dict[str, str], url: str, group: str, n: int
) -> list[Engagement]:
    """``n`` engagement processes in one group, each with a metrics port of its own."""
    return [
        Engagement(settings.service_root, engagement_env(topics, url, group), _log(stack, f"{group}-{i}")).start()
        for i in range(n)
    ]


async def drain(stack: Stack, settings: BenchSettings, records: Sequence[Record], processes: int, phase: str) -> Drain:
    """The backlog first, then the processes; timed from their start until every offset is committed."""
    topics = await stack.topics(phase)
    url = await stack.database(phase, settings.service_root)
    produced = await produce(records, topics)
    targets = await end_offsets([topics[setting] for setting in INPUTS])
    if sum(targets.values()) != len(records):
        raise SystemExit(f"{sum(targets.values())} records on the input topics, {len(records)} produced")
    group = f"bench-{stack.run_id}-{phase}"
    ticks = machine_ticks()
    started = time.perf_counter()
    services = _start(stack, settings, topics, url, group, processes)
    try:
        progress = await follow(group, targets, services, timeout_s=settings.timeout_s)
        busy = busy_share(ticks, machine_ticks())
        service_cpu = sum(service.cpu_seconds() for service in services)
        database_cpu = await backend_cpu_seconds(url)
        actions, published = await wait_until_relayed(url, topics["TOPIC_ACTIONS"], timeout_s=settings.timeout_s)
        relayed = time.perf_counter()
    finally:
        for service in services:
            service.stop()
    dead_letters = sum((await end_offsets([topics["TOPIC_DLQ"]])).values())
    processed = (
        int(await query(url, "SELECT count(*) FROM processed_events"))
        if await table_exists(url, "processed_events")
        else None
    )
    return Drain(
        processes=processes,
        events=len(records),
        produced=produced,
        started=started,
        progress=progress,
        actions=actions,
        published=published,
        relayed=relayed,
        dead_letters=dead_letters,
        processed_rows=processed,
        service_cpu=service_cpu,
        database_cpu=database_cpu,
        busy=busy,
        database_url=url,
        topics=topics,
    )


def describe_drain(d: Drain) -> str:
    processes = f"{d.processes} process" + ("es" if d.processes > 1 else "")
    relayed = d.relayed - d.started
    service, database = d.cpu_per_event
    joined = d.progress.joined
    everyone = (
        f", all {d.processes} at {joined - d.started:.1f} s, {describe_assignment(d.progress.assignment)}"
        if d.processes > 1 and joined is not None
        else ""
    )
    return (
        f"drain, {processes}: {d.events:,} events in {d.seconds:.1f} s from process start = {d.rate:,.0f} events/s, "
        f"{d.actions / d.seconds:,.0f} actions/s ({d.actions:,} actions) | start-up to partitions assigned "
        f"{d.startup:.1f} s ({d.progress.cpu_at_join:.1f} CPU s){everyone}; {d.rate_after_join:,.0f} events/s "
        f"after it | 25/50/75/100 % committed at {d.quartiles()} s | every action on member.actions at "
        f"{relayed:.1f} s ({d.published:,} records) | CPU per event (start-up included): service {_ms(service)}, "
        f"its PostgreSQL backends {_ms(database)}; machine busy {d.busy:.0%} | "
        f"dead letters {d.dead_letters}, processed_events rows {_count(d.processed_rows)} | "
        f"backlog produced at {d.produced.rate:,.0f} records/s"
    )


async def raw_consume(topics: dict[str, str], expected: int) -> float:
    """Events/s aiokafka alone reads from the drain's input topics: assigned partitions, no group, no processing."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    try:
        partitions = await partitions_of([topics[setting] for setting in INPUTS])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started = time.perf_counter()
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)  # the service's batch size
            seen += sum(len(records) for records in batch.values())
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def naive(stack: Stack, records: Sequence[Record]) -> tuple[naive_consumer.NaiveResult, float, float]:
    """The naive consumer on ``records`` (topics and a database of its own); returns its result and CPU seconds."""
    topics = await stack.topics("naive")
    url = await stack.database("naive", ROOT)  # the naive consumer is this checkout's code, on its schema
    await produce(records, topics)
    cpu: list[float] = []

    async def measure_cpu() -> None:
        cpu.append(await backend_cpu_seconds(url))

    before = self_cpu_seconds()
    result = await naive_consumer.run(
        [topics[setting] for setting in INPUTS],
        f"bench-{stack.run_id}-naive",
        url,
        load_playbook(),
        len(records),
        on_done=measure_cpu,
    )
    return result, self_cpu_seconds() - before, cpu[0]


async def end_to_end_and_steady(
    stack: Stack, settings: BenchSettings, records: Sequence[Record], steady: Sequence[Record]
) -> tuple[float, float, int, Steady]:
    """End to end with the producer running, then the steady stream on the same process."""
    topics = await stack.topics("e2e")
    url = await stack.database("e2e", settings.service_root)
    inputs = [topics[setting] for setting in INPUTS]
    group = f"bench-{stack.run_id}-e2e"
    [service] = _start(stack, settings, topics, url, group, 1)
    try:
        deadline = time.perf_counter() + settings.timeout_s
        while not any(member.partitions for member in await group_members(group)):
            service.check_alive()
            if time.perf_counter() > deadline:
                raise SystemExit("the engagement process did not join its group")
            await asyncio.sleep(0.1)

        produced, progress = await _stream(settings, group, topics, records, [service], rate=None)
        assert progress.done is not None
        e2e_seconds = progress.done - produced.started
        e2e_actions, _ = await wait_until_relayed(url, topics["TOPIC_ACTIONS"], timeout_s=settings.timeout_s)

        input_marks = await end_offsets(inputs)
        base = sum(input_marks.values())  # every one committed by now
        action_marks = await end_offsets([topics["TOPIC_ACTIONS"]])
        paced, progress = await _stream(settings, group, topics, steady, [service], rate=settings.steady_rate)
        assert progress.done is not None
        total_actions, _ = await wait_until_relayed(url, topics["TOPIC_ACTIONS"], timeout_s=settings.timeout_s)
    finally:
        service.stop()
    lags = [(at, sent - (committed - base)) for at, committed, sent in progress.samples]
    max_lag = max((lag for _, lag in lags), default=0)
    end_lag = next((lag for at, lag in lags if at >= paced.finished), 0)
    produced_at = {orjson.loads(value)["id"]: timestamp for timestamp, value in await read(inputs, since=input_marks)}
    latencies = []
    for timestamp, value in await read([topics["TOPIC_ACTIONS"]], since=action_marks):
        trigger = orjson.loads(value).get("trigger", {})
        at = produced_at.get(trigger.get("event_id"))
        if at is not None:
            latencies.append((timestamp - at) / 1000)
    result = Steady(
        target_rate=settings.steady_rate,
        produced=paced,
        caught_up=progress.done - paced.finished,
        max_lag=max_lag,
        end_lag=end_lag,
        latencies=latencies,
        actions=total_actions - e2e_actions,
    )
    return len(records) / e2e_seconds, e2e_actions / e2e_seconds, e2e_actions, result


async def _stream(
    settings: BenchSettings,
    group: str,
    topics: dict[str, str],
    records: Sequence[Record],
    services: list[Engagement],
    *,
    rate: float | None,
) -> tuple[Produced, Progress]:
    """Produces ``records`` while following the group; returns when every record is committed."""
    inputs = [topics[setting] for setting in INPUTS]
    targets = await end_offsets(inputs)
    final = asyncio.Event()
    produced = Produced()

    async def send() -> None:
        try:
            await produce(records, topics, rate=rate, progress=produced)
            targets.update(await end_offsets(inputs))
        finally:
            final.set()  # on failure too: the wait then ends and the failure is raised below

    sender = asyncio.create_task(send())
    try:
        progress = await follow(
            group, targets, services, timeout_s=settings.timeout_s, final=final, sent=lambda: produced.sent
        )
    finally:
        if not sender.done():
            sender.cancel()
    await sender
    return produced, progress


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.2f} ms"


def _short(revision: str) -> str:
    """A commit as ``results.commit`` gives it, the hash cut to 12 characters."""
    head, dirty, _ = revision.partition("-dirty")
    return head[:12] + dirty


def _count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _times(ratio: float) -> str:
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.3f}×"


def _table(rows: list[tuple[str, str, str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c}".rstrip() for a, b, c in rows]


def _workload(events: int, seed: int, shop: str) -> list[Record]:
    members = math.ceil(events / EVENTS_PER_MEMBER * 1.1) + 1
    return encode(workload(members, seed=seed, shop=shop)[:events])


async def main() -> None:
    settings = BenchSettings.from_env()
    report = Report()
    stack = Stack(uuid.uuid4().hex[:8])
    try:
        await _run(settings, stack, report)
    except BaseException as error:
        report.say(f"FAILED: {type(error).__name__}: {error}")
        raise
    finally:
        try:
            await stack.cleanup()
        finally:
            path = record("engagement", report.text, service_root=settings.service_root)
            print(f"(appended to {path.relative_to(ROOT)})")


async def _run(settings: BenchSettings, stack: Stack, report: Report) -> None:
    load = os.getloadavg()
    report.say(
        f"engagement bench {stack.run_id}: bench {ROOT} at {commit()} | service {settings.service_root} at "
        f"{commit(settings.service_root)}"
    )
    report.say(f"machine: {machine()} | load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    report.say(
        f"sizes: BENCH_EVENTS={settings.events} BENCH_PROCESSES={settings.processes} "
        f"BENCH_STEADY_RATE={settings.steady_rate:g} BENCH_STEADY_SECONDS={settings.steady_seconds:g} "
        f"BENCH_NAIVE_EVENTS={settings.naive_events}"
    )
    began = mark = time.perf_counter()
    walls: list[str] = []

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        walls.append(f"{name} {now - mark:.0f} s")
        mark = now

    records = _workload(settings.events, 2026, "shop-1")
    steady = _workload(round(settings.steady_rate * settings.steady_seconds), 2027, "shop-2")
    version = await query(ADMIN_URL, "SELECT version()")
    report.say(f"workload: {len(records):,} events (steady stream {len(steady):,}); {str(version).split(',')[0]}")

    lap("workload")
    single = await drain(stack, settings, records, 1, "drain")
    lap("drain")
    report.say(describe_drain(single))
    raw = await raw_consume(single.topics, len(records))
    lap("raw consume")
    report.say(f"raw aiokafka consume of the drain's topics: {raw:,.0f} events/s")
    floor = await write_floor.measure(single.database_url)
    lap("write floor")
    per_table = ", ".join(f"{t.table} {t.rows:,} in {t.seconds:.2f} s" for t in floor.tables)
    report.say(
        f"write floor (COPY into empty copies of the tables): {floor.rows:,} rows in {floor.seconds:.2f} s = "
        f"{floor.rows / floor.seconds:,.0f} rows/s, {len(records) / floor.seconds:,.0f} events/s | {per_table}"
        + "".join(f" | {note}" for note in floor.notes)
    )
    naive_records = records[: min(settings.naive_events, len(records))]
    slow, naive_cpu, naive_db_cpu = await naive(stack, naive_records)
    lap("naive")
    report.say(
        f"naive consumer (one ORM session and transaction per event): {slow.events:,} events in {slow.seconds:.1f} s "
        f"= {slow.rate:,.0f} events/s, {slow.actions:,} actions, {slow.parked} parked, {slow.duplicates} duplicates, "
        f"{slow.rejected} rejected | CPU per event: consumer {_ms(naive_cpu / slow.events)}, its PostgreSQL backend "
        f"{_ms(naive_db_cpu / slow.events)}"
    )
    pair = None
    if settings.processes > 1:
        pair = await drain(stack, settings, records, settings.processes, f"drain{settings.processes}")
        lap(f"drain x{settings.processes}")
        report.say(describe_drain(pair) + f" | {pair.rate / single.rate:.2f}× the single process")
    e2e_rate, e2e_actions_rate, e2e_actions, paced = await end_to_end_and_steady(stack, settings, records, steady)
    lap("end to end and steady")
    report.say(
        f"end to end (producer running): {len(records):,} events, {e2e_rate:,.0f} events/s, "
        f"{e2e_actions_rate:,.0f} actions/s ({e2e_actions:,} actions)"
    )
    p50, p99, worst = (_percentile(paced.latencies, q) * 1000 for q in (0.5, 0.99, 1.0))
    verdict = "sustained" if paced.sustained else "FELL BEHIND (the service did not keep up with the rate)"
    producer_note = (
        ""
        if paced.produced.pace >= 0.97 * paced.target_rate
        else f" (the producer held only {paced.produced.pace:,.0f}/s)"
    )
    report.say(
        f"steady stream: {paced.produced.sent:,} events at {paced.target_rate:,.0f}/s for "
        f"{paced.produced.seconds:.1f} s{producer_note}: event-to-action p50 {p50:,.0f} ms, p99 {p99:,.0f} ms, "
        f"max {worst:,.0f} ms over {len(paced.latencies):,} of its {paced.actions:,} actions | {verdict}: "
        f"{paced.end_lag:,} events waiting when the stream ended (at most {paced.max_lag:,}), all committed "
        f"{paced.caught_up:.2f} s after the last record"
    )

    rows = [
        ("figure", "value", "how"),
        (
            "drain, 1 process",
            f"{single.rate:,.0f} events/s",
            f"{single.events:,} events backlogged, process start to last offset committed ({single.seconds:.1f} s)",
        ),
        ("  actions", f"{single.actions / single.seconds:,.0f} actions/s", f"{single.actions:,} rows in actions"),
        (
            "  after start-up",
            f"{single.rate_after_join:,.0f} events/s",
            f"partitions assigned {single.startup:.1f} s after process start",
        ),
        (
            "  CPU per event",
            _ms(sum(single.cpu_per_event)),
            f"service {_ms(single.cpu_per_event[0])} + its PostgreSQL backends {_ms(single.cpu_per_event[1])}; "
            f"machine {single.busy:.0%} busy",
        ),
    ]
    if pair is not None:
        rows.append(
            (
                f"drain, {pair.processes} processes",
                f"{pair.rate:,.0f} events/s",
                f"{pair.rate / single.rate:.2f}× one process; {pair.rate_after_join:,.0f} events/s after start-up; "
                f"CPU per event service {_ms(pair.cpu_per_event[0])} + backends {_ms(pair.cpu_per_event[1])}; "
                f"machine {pair.busy:.0%} busy",
            )
        )
    rows += [
        ("end to end", f"{e2e_rate:,.0f} events/s", "producer running; first record produced to last offset committed"),
        (
            f"steady {paced.target_rate:,.0f}/s",
            f"p99 {p99:,.0f} ms",
            f"p50 {p50:,.0f} ms, max {worst:,.0f} ms; input record timestamp to action record timestamp; {verdict}",
        ),
        (
            "raw aiokafka consume",
            f"{raw:,.0f} events/s",
            f"same topics, no processing; drain = {_times(single.rate / raw)} it",
        ),
        (
            "naive ORM consumer",
            f"{slow.rate:,.0f} events/s",
            f"first {slow.events:,} events, a transaction per event; drain = {_times(single.rate / slow.rate)} it",
        ),
        (
            "write floor (COPY)",
            f"{len(records) / floor.seconds:,.0f} events/s",
            f"{floor.rows:,} rows at {floor.rows / floor.seconds:,.0f} rows/s; drain = "
            f"{_times(single.rate * floor.seconds / len(records))} it",
        ),
    ]
    report.say()
    for line in _table(rows):
        report.say(line)
    report.say()
    report.say(f"bench wall time {time.perf_counter() - began:.0f} s: " + ", ".join(walls))
    load = os.getloadavg()
    report.say(
        f"engagement bench: drain {single.rate:,.0f} events/s ({single.actions / single.seconds:,.0f} actions/s, "
        f"{single.events:,} events)"
        + (f" | {pair.processes} processes {pair.rate:,.0f} events/s ({pair.rate / single.rate:.2f}×)" if pair else "")
        + f" | end to end {e2e_rate:,.0f} events/s | steady {paced.target_rate:,.0f}/s p50/p99/max "
        f"{p50:,.0f}/{p99:,.0f}/{worst:,.0f} ms {'sustained' if paced.sustained else 'FELL BEHIND'} | raw consume "
        f"{raw:,.0f}/s (drain {_times(single.rate / raw)}) | naive {slow.rate:,.0f}/s (drain "
        f"{_times(single.rate / slow.rate)}) | write floor {len(records) / floor.seconds:,.0f} events/s (drain "
        f"{_times(single.rate * floor.seconds / len(records))}) | service {_short(commit(settings.service_root))} | "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
