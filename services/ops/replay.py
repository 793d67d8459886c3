"""``replay``: a range of a topic's records produced again, for the service to consume once more.

Records are read (committed ones only) from one partition or all, between offsets or
between times (the broker's ``offsets_for_times``), up to the end offsets as they were at
the start, so replaying a topic onto itself ends. Each record is produced with its key,
value and headers unchanged (a new timestamp; its partition chosen by its key), to the
same topic or to ``--target``. On the dead-letter topic (``TOPIC_DLQ``) a record is the
wrapper the engagement service wrote: what is produced is the original record it carries
(its key, and its value from base64, or from PostgreSQL when it was stored whole), to the
topic it was first read from.

Replaying never doubles an effect: the engagement service records the ``(source, id)`` of
every event it accepts and applies each once, so a record already applied is a no-op, and
one that was dead-lettered (never recorded) is applied now.

Work goes in batches: a batch's records are all acknowledged by the broker before the next
batch is read, so a stop (Ctrl-C) or a failure leaves every record before the reported
offsets produced, and the command prints how to go on from there.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ops import dependencies
from services.ops.arguments import Bounds, TimeBounds, parse_instant, replay_bounds, resolve
from services.ops.output import counted, err_console, print_grids, say
from services.ops.progress import ProgressDisplay
from services.ops.running import EXIT_FAILURE, CommandError, Stop, explain, run
from services.ops.tables import Grid, cell
from shared.audience.dead_letter_reads import StoredRecord, stored_records
from shared.contract.actions import DeadLetter
from shared.kafka_io import create_producer, create_reader
from shared.settings import Settings

CONNECT_TIMEOUT_S = 30.0
POLL_MS = 500
STALLED_POLLS = 60  # polls in a row that read nothing while records remain: the range cannot be read

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    topic: str
    partition: int | None  # None: every partition
    bounds: Bounds
    target: str | None  # None: the same topic (for dead letters, each one's original topic)
    key: bytes | None  # only records with this key
    dry_run: bool
    batch_size: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(frozen=True, slots=True)
class Stored:
    """A dead letter kept whole in PostgreSQL: produced once its record is read back."""

    stored_id: int
    topic: str
    headers: Headers


@dataclass(slots=True)
class PartitionTally:
    partition: int
    start: int
    end: int  # exclusive
    position: int  # the next offset to read: every record before it is done
    read: int = 0
    produced: int = 0

    @property
    def done(self) -> bool:
        return self.position >= self.end


@dataclass(slots=True)
class ReplayResult:
    topic: str
    partitions: list[PartitionTally]
    by_target: Counter[str] = field(default_factory=Counter)
    other_keys: int = 0  # records left out by --key
    unreadable: list[int] = field(default_factory=list)  # offsets of dead-letter-topic records that are not one
    missing_stored: list[int] = field(default_factory=list)  # stored dead letters whose row is gone
    failure: str | None = None

    @property
    def produced(self) -> int:
        return sum(self.by_target.values())


_STORED_AS = re.compile(r"dead_letters/([0-9]{1,19})")


def stored_id(stored_as: str | None) -> int | None:
    """The row id in a dead letter's ``stored_as`` (``dead_letters/<id>``, docs/events.md), or None."""
    found = _STORED_AS.fullmatch(stored_as or "")
    return int(found.group(1)) if found else None


def unwrap(record: ConsumerRecord[bytes, bytes], target: str | None) -> Outgoing | Stored | None:
    """The original record a dead-letter record carries, to ``target`` or where it was first read; None when
    the record is not a dead letter. Its key is the dead letter's Kafka key: the original key's bytes."""
    try:
        dead = DeadLetter.model_validate_json(record.value or b"")
    except ValidationError:
        return None
    headers = tuple(record.headers)
    topic = target or dead.topic
    if dead.value is not None:
        try:
            value = base64.b64decode(dead.value, validate=True)
        except (binascii.Error, ValueError):
            return None
        return Outgoing(topic, record.key, value, headers)
    found = stored_id(dead.stored_as)
    return None if found is None else Stored(found, topic, headers)


def resume_commands(request: ReplayRequest, partitions: Sequence[PartitionTally]) -> list[str]:
    """The commands that replay what is left of each partition, from where it stopped, by offsets."""
    extra = ""
    if request.target is not None:
        extra += f" --target {request.target}"
    if request.key is not None:
        extra += f" --key {request.key.decode('utf-8', 'replace')}"
    return [
        f"engagement-ops replay {request.topic} --partition {tally.partition} "
        f"--from-offset {tally.position} --to-offset {tally.end}{extra}"
        for tally in partitions
        if not tally.done
    ]


def summary_grids(result: ReplayResult, dry_run: bool) -> list[Grid]:
    produced = "would produce" if dry_run else "produced"
    partitions = Grid(
        f"Replay of {result.topic}",
        ("partition", "from offset", "to offset", "read", produced, "next offset"),
        [
            (
                cell(t.partition),
                cell(t.start),
                cell(t.end),
                cell(t.read),
                cell(t.produced),
                "done" if t.done else cell(t.position),
            )
            for t in result.partitions
        ],
        frozenset(range(0, 5)),
    )
    targets = Grid(
        "Records by target topic",
        ("target", produced),
        [(topic, cell(n)) for topic, n in sorted(result.by_target.items())],
        frozenset({1}),
    )
    return [partitions, targets]


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def _spans(reader: AIOKafkaConsumer, topic: str, partitions: list[int], bounds: Bounds) -> list[PartitionTally]:
    """Each partition's offsets to read, from its first and end offsets as they are now."""
    tps = [TopicPartition(topic, p) for p in partitions]
    begin = await reader.beginning_offsets(tps)
    end = await reader.end_offsets(tps)
    at_since: dict[TopicPartition, int | None] = {}
    at_until: dict[TopicPartition, int | None] = {}
    if isinstance(bounds, TimeBounds):
        for bound, found in ((bounds.since, at_since), (bounds.until, at_until)):
            if bound is not None:
                answer = await reader.offsets_for_times({tp: _millis(bound) for tp in tps})
                found.update({tp: None if hit is None else hit.offset for tp, hit in answer.items()})
    tallies = []
    for tp in tps:
        start, stop = resolve(bounds, begin[tp], end[tp], at_since.get(tp), at_until.get(tp))
        tallies.append(PartitionTally(tp.partition, start, stop, start))
    return tallies


class Replayer:
    """Reads the range batch by batch and produces each batch, acknowledged, before the next."""

    def __init__(self, settings: Settings, request: ReplayRequest, stop: Stop) -> None:
        self._settings = settings
        self._request = request
        self._stop = stop
        self._unwrap = request.topic == settings.topics.dlq
        self._topics: set[str] = set()
        self._resources = contextlib.AsyncExitStack()
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, client_id=f"{settings.kafka_client_id}-ops-replay"
        )
        self._engine: AsyncEngine | None = None

    async def run(self) -> ReplayResult:
        async with self._resources:
            await self._start(self._admin)
            self._resources.push_async_callback(self._admin.close)
            reader = create_reader(self._settings, name="ops-replay")
            await self._start(reader)
            self._resources.push_async_callback(reader.stop)
            tallies = await self._plan(reader)
            result = ReplayResult(self._request.topic, tallies)
            producer = None
            if not self._request.dry_run:
                producer = create_producer(self._settings, name="ops-replay")
                await self._start(producer)
                self._resources.push_async_callback(producer.stop)
            try:
                await self._copy(reader, producer, result)
            except CommandError as failure:
                result.failure = failure.message
            except Exception as error:  # Kafka or the database failed: say so with how to go on
                result.failure = explain(error)
                if result.failure is None:
                    raise
            return result

    async def _start(self, client: AIOKafkaConsumer | AIOKafkaProducer | AIOKafkaAdminClient) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await client.start()
        except (KafkaError, OSError, TimeoutError) as error:
            with contextlib.suppress(Exception):
                await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
            servers = self._settings.kafka_bootstrap_servers
            raise CommandError(f"cannot reach Kafka at {servers} ({type(error).__name__})") from None

    async def _plan(self, reader: AIOKafkaConsumer) -> list[PartitionTally]:
        request = self._request
        self._topics = set(await self._admin.list_topics())
        if request.topic not in self._topics:
            raise CommandError(f"no topic {request.topic!r}")
        if request.target is not None and request.target not in self._topics:
            raise CommandError(f"no target topic {request.target!r}")
        described = await self._admin.describe_topics([request.topic])
        partitions = sorted(p["partition"] for topic in described for p in topic["partitions"])
        if request.partition is not None:
            if request.partition not in partitions:
                raise CommandError(f"topic {request.topic!r} has no partition {request.partition}")
            partitions = [request.partition]
        tallies = await _spans(reader, request.topic, partitions, request.bounds)
        reading = [t for t in tallies if not t.done]
        reader.assign([TopicPartition(request.topic, t.partition) for t in reading])
        for tally in reading:
            reader.seek(TopicPartition(request.topic, tally.partition), tally.start)
        return tallies

    async def _copy(self, reader: AIOKafkaConsumer, producer: AIOKafkaProducer | None, result: ReplayResult) -> None:
        topic, batch_size = self._request.topic, self._request.batch_size
        tallies = {TopicPartition(topic, t.partition): t for t in result.partitions if not t.done}
        total = sum(t.end - t.start for t in result.partitions)
        idle = 0
        verb = "counted" if producer is None else "produced"
        with ProgressDisplay(err_console(), f"replay {topic}", total, "offset") as progress:
            while tallies and not self._stop.requested:
                fetched = await reader.getmany(*tallies, timeout_ms=POLL_MS, max_records=batch_size)
                batch: list[ConsumerRecord[bytes, bytes]] = []
                for tp, records in fetched.items():
                    tally = tallies.get(tp)
                    if tally is not None:
                        inside = [record for record in records if record.offset < tally.end]
                        tally.read += len(inside)
                        batch += inside
                outgoing, origins = await self._outgoing(batch, result)
                if producer is not None:
                    await self._produce(producer, outgoing)
                result.by_target.update(item.topic for item in outgoing)
                for partition, count in Counter(origins).items():
                    tallies[TopicPartition(topic, partition)].produced += count
                moved = False
                for tp, tally in list(tallies.items()):
                    position = min(await reader.position(tp), tally.end)
                    moved = moved or position > tally.position
                    tally.position = position
                    if tally.done:
                        del tallies[tp]
                        reader.pause(tp)
                idle = 0 if moved else idle + 1
                if idle >= STALLED_POLLS:
                    raise CommandError(f"nothing could be read from {topic} for {STALLED_POLLS * POLL_MS // 1000} s")
                done = sum(t.position - t.start for t in result.partitions)
                progress.update(done, f"{result.produced:,} {verb}")

    async def _outgoing(
        self, batch: list[ConsumerRecord[bytes, bytes]], result: ReplayResult
    ) -> tuple[list[Outgoing], list[int]]:
        """The batch's records to produce, in order, and the partition each came from."""
        request = self._request
        picked: list[tuple[int, Outgoing | Stored]] = []
        for record in batch:
            if request.key is not None and record.key != request.key:
                result.other_keys += 1
                continue
            item: Outgoing | Stored | None
            if self._unwrap:
                item = unwrap(record, request.target)
            else:
                item = Outgoing(request.target or request.topic, record.key, record.value, tuple(record.headers))
            if item is None:
                result.unreadable.append(record.offset)
            else:
                picked.append((record.partition, item))
        needed = {item.stored_id for _, item in picked if isinstance(item, Stored)}
        stored = await self._stored(needed) if needed and not request.dry_run else {}
        outgoing: list[Outgoing] = []
        origins: list[int] = []
        for partition, item in picked:
            if isinstance(item, Stored):
                if request.dry_run:  # counted where it would go, without reading it back
                    outgoing.append(Outgoing(item.topic, None, None, item.headers))
                    origins.append(partition)
                    continue
                kept = stored.get(item.stored_id)
                if kept is None:
                    result.missing_stored.append(item.stored_id)
                    continue
                item = Outgoing(item.topic, kept.key, kept.value, item.headers)
            outgoing.append(item)
            origins.append(partition)
        await self._check_targets({item.topic for item in outgoing})
        return outgoing, origins

    async def _stored(self, ids: set[int]) -> dict[int, StoredRecord]:
        if self._engine is None:
            self._engine = await self._resources.enter_async_context(dependencies.database(self._settings))
        async with self._engine.connect() as connection:
            return await stored_records(connection, ids)

    async def _check_targets(self, targets: set[str]) -> None:
        """Every target exists: a producer would otherwise wait for a topic nobody creates."""
        if targets - self._topics:
            self._topics = set(await self._admin.list_topics())  # created since the replay began?
        missing = sorted(targets - self._topics)
        if missing:
            raise CommandError(f"no target topic {missing[0]!r}")

    @staticmethod
    async def _produce(producer: AIOKafkaProducer, outgoing: list[Outgoing]) -> None:
        sent = [
            await producer.send(item.topic, value=item.value, key=item.key, headers=list(item.headers) or None)
            for item in outgoing
        ]
        await asyncio.gather(*sent)


def replay_command(
    topic: Annotated[str, typer.Argument(help="The topic to read, e.g. commerce.orders or commerce.dlq.")],
    partition: Annotated[int | None, typer.Option("--partition", min=0, help="Only this partition.")] = None,
    from_offset: Annotated[
        int | None, typer.Option("--from-offset", min=0, help="First offset to read (default: the first record).")
    ] = None,
    to_offset: Annotated[
        int | None, typer.Option("--to-offset", min=0, help="Offset to stop before (default: the end).")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since", parser=parse_instant, metavar="TIME", help="Start at the first record timestamped at or after."
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            "--until", parser=parse_instant, metavar="TIME", help="Stop at the first record timestamped at or after."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Topic to produce to (default: the same topic; for dead letters, the topic each was first read from).",
        ),
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="Only records with this key, e.g. shop-1:m-1001.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read and count only; produce nothing.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Records per acknowledged batch.")] = 500,
) -> None:
    """Replay a range of a topic's records into the service: key, value and headers unchanged.

    The range is [--from-offset, --to-offset) of each chosen partition, or the records
    timestamped in [--since, --until); by default the whole topic as it is now. Records on
    the dead-letter topic (TOPIC_DLQ) are unwrapped: the original record goes back to the
    topic it was first read from. Replaying is safe: the service applies each event id once,
    so records already applied change nothing and dead-lettered ones are applied now.
    Ctrl-C stops after the current batch and prints how to go on.
    """
    bounds = replay_bounds(from_offset, to_offset, since, until)
    settings = dependencies.load_settings()
    request = ReplayRequest(
        topic, partition, bounds, target, None if key is None else key.encode(), dry_run, batch_size
    )
    stop = Stop()

    async def work(stop: Stop) -> ReplayResult:
        return await Replayer(settings, request, stop).run()

    result = run(work, stop)
    print_grids(summary_grids(result, dry_run))
    if result.other_keys:
        say(f"Left out, another key: {counted(result.other_keys, 'record')}.")
    if result.unreadable:
        shown = ", ".join(str(offset) for offset in result.unreadable[:10])
        say(f"Left out, not a dead letter: {counted(len(result.unreadable), 'record')} (offsets {shown}).")
    if result.missing_stored:
        shown = ", ".join(str(stored) for stored in result.missing_stored[:10])
        missing = counted(len(result.missing_stored), "record")
        say(f"Left out, stored dead letter no longer in PostgreSQL: {missing} (dead_letters ids {shown}).")
    if dry_run:
        say(f"Dry run: {counted(result.produced, 'record')} would be produced; nothing was.")
    else:
        say(f"Produced {counted(result.produced, 'record')}.")
    if result.failure is not None or stop.requested:
        commands = resume_commands(request, result.partitions)
        if commands:
            say("Every record before each partition's next offset is done. To go on:")
            for command in commands:
                say(f"  {command}")
        if result.failure is not None:
            say(f"error: {result.failure}")
            raise typer.Exit(EXIT_FAILURE)
        raise typer.Exit(stop.exit_code)
