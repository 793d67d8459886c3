"""The worker runtime's parts without a broker: the retry policy, the consume loop's commits and
rewinds, the watchers' gauges, and failures reported with a log line and a metric."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import Gauge
from sqlalchemy.exc import OperationalError

from shared.observability import HANDLED_ERRORS, configure_logging, report_failure
from shared.progress import PartitionProgress
from shared.worker_runtime.batch_loop import BatchLoop
from shared.worker_runtime.retry_policy import RETRIES, RetryPolicy
from shared.worker_runtime.stopping import pause
from shared.worker_runtime.watchers import CONSUMER_LAG, Watchers

FAST = RetryPolicy(initial_s=0.001, max_s=0.005)
SECRET = "buyer.name@example.com"
P0 = TopicPartition("t.orders", 0)
P1 = TopicPartition("t.orders", 1)


def outage() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionResetError(f"lost {SECRET}"))


def counted(counter: Any, *labels: str) -> float:
    return float(counter.labels(*labels)._value.get())


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """The JSON lines the services would write, captured."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("INFO", stream)
    yield stream
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


# --- failures ------------------------------------------------------------------------------------------


def test_a_handled_failure_is_logged_without_its_message_and_counted(logged: io.StringIO) -> None:
    before = counted(HANDLED_ERRORS, "test.thing", "ValueError")
    try:
        raise ValueError(f"bad value {SECRET}")
    except ValueError as error:
        report_failure("test.thing", error, topic="t")
    [line] = lines(logged)
    assert (line["event"], line["level"], line["error"], line["topic"]) == (
        "test.thing_failed",
        "error",
        "ValueError",
        "t",
    )
    assert "test_a_handled_failure" in line["stack"]  # not an outage: where it came from helps
    assert SECRET not in logged.getvalue()
    assert counted(HANDLED_ERRORS, "test.thing", "ValueError") == before + 1


def test_an_outage_is_reported_by_the_database_error_behind_it_without_a_stack(logged: io.StringIO) -> None:
    before = counted(HANDLED_ERRORS, "test.outage", "ConnectionResetError")
    report_failure("test.outage", outage(), level="warning")
    [line] = lines(logged)
    assert line["event"] == "test.outage_failed"
    assert line["error"].startswith("ConnectionResetError")
    assert "stack" not in line
    assert SECRET not in logged.getvalue()
    assert counted(HANDLED_ERRORS, "test.outage", "ConnectionResetError") == before + 1


# --- retry policy --------------------------------------------------------------------------------------


class Flaky:
    """Fails with the given errors, one per call, then returns the number of calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.calls


async def test_transient_failures_are_retried_logged_and_counted(logged: io.StringIO) -> None:
    before = counted(RETRIES, "test.call", "ConnectionResetError")
    flaky = Flaky(outage(), outage())
    assert await FAST.call("test.call", flaky) == 3
    assert counted(RETRIES, "test.call", "ConnectionResetError") == before + 2
    retries = [line for line in lines(logged) if line["event"] == "test.call_retry"]
    assert [(line["attempt"], line["level"]) for line in retries] == [(1, "warning"), (2, "warning")]
    assert SECRET not in logged.getvalue()


async def test_anything_else_is_raised_at_once() -> None:
    flaky = Flaky(ValueError("not transient"))
    with pytest.raises(ValueError, match="not transient"):
        await FAST.call("test.call", flaky)
    assert flaky.calls == 1


async def test_a_retry_gives_up_when_the_worker_stops_raising_the_last_error() -> None:
    stop = asyncio.Event()

    async def failing() -> None:
        stop.set()
        raise outage()

    with pytest.raises(OperationalError):
        await RetryPolicy(initial_s=60, max_s=60).call("test.call", failing, stop=stop)


async def test_a_retry_gives_up_after_its_limit() -> None:
    flaky = Flaky(*(outage() for _ in range(1000)))
    with pytest.raises(OperationalError):
        await FAST.call("test.call", flaky, give_up_after_s=0.05)
    assert 1 < flaky.calls < 1000


async def test_keep_trying_retries_any_exception_until_it_succeeds() -> None:
    flaky = Flaky(ValueError("a bug?"), KeyError("k"), outage())
    assert await FAST.keep_trying("test.loop", flaky, stop=asyncio.Event()) == 4


async def test_keep_trying_returns_none_once_stopping_and_reports_the_last_failure(logged: io.StringIO) -> None:
    stop = asyncio.Event()
    before = counted(HANDLED_ERRORS, "test.loop", "ValueError")

    async def failing() -> int:
        stop.set()
        raise ValueError(SECRET)

    assert await FAST.keep_trying("test.loop", failing, stop=stop) is None
    assert counted(HANDLED_ERRORS, "test.loop", "ValueError") == before + 1
    assert [line["event"] for line in lines(logged)] == ["test.loop_failed"]
    assert SECRET not in logged.getvalue()


async def test_a_cancelled_call_is_never_retried() -> None:
    flaky = Flaky(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await FAST.keep_trying("test.loop", flaky, stop=asyncio.Event())
    assert flaky.calls == 1


async def test_a_pause_ends_when_stopping_or_woken() -> None:
    loop = asyncio.get_running_loop()
    stop, wake = asyncio.Event(), asyncio.Event()
    loop.call_later(0.01, wake.set)
    started = loop.time()
    await pause(stop, 30, wake=wake)
    loop.call_later(0.01, stop.set)
    await pause(stop, 30)
    assert loop.time() - started < 5


# --- the consume loop ----------------------------------------------------------------------------------


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes = b"{}"


@dataclass
class FakeConsumer:
    """Serves scripted polls from per-partition logs, from each partition's position."""

    logs: dict[TopicPartition, int]  # records per partition
    per_poll: int = 2
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)
    commit_errors: list[Exception] = field(default_factory=list)
    revoked: set[TopicPartition] = field(default_factory=set)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        polled = {}
        for partition, size in self.logs.items():
            start = self.positions.get(partition, 0)
            end = min(size, start + self.per_poll)
            if end > start:
                polled[partition] = [Record(partition.topic, partition.partition, o) for o in range(start, end)]
                self.positions[partition] = end
        if not polled:
            await asyncio.sleep(timeout_ms / 1000)
        return polled

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.commits.append(dict(offsets))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if partition in self.revoked:
            raise IllegalStateError("not assigned")
        self.seeks.append((partition, offset))
        self.positions[partition] = offset


@dataclass
class Handler:
    """Records what it handled and settled, and fails on the calls it is told to.

    ``reached`` is set once it has settled ``until_settled`` batches, or been called ``until_calls`` times.
    """

    fail_on_calls: set[int] = field(default_factory=set)
    until_settled: int = 1
    until_calls: int = 0
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0
    handled: list[list[tuple[int, int]]] = field(default_factory=list)
    settled: list[list[tuple[int, int]]] = field(default_factory=list)
    consumer: FakeConsumer | None = None
    committed_at_settle: list[int] = field(default_factory=list)

    async def handle(self, records: Sequence[Any]) -> list[tuple[int, int]]:
        self.calls += 1
        if self.until_calls and self.calls >= self.until_calls:
            self.reached.set()
        if self.calls in self.fail_on_calls:
            raise outage()
        batch = [(record.partition, record.offset) for record in records]
        self.handled.append(batch)
        return batch

    async def settle(self, batch: list[tuple[int, int]]) -> None:
        self.settled.append(batch)
        if self.consumer is not None:
            self.committed_at_settle.append(len(self.consumer.commits))
        if len(self.settled) >= self.until_settled:
            self.reached.set()


def loop_over(consumer: FakeConsumer, handler: Handler, progress: PartitionProgress | None = None) -> BatchLoop[Any]:
    return BatchLoop(
        consumer,
        handle=handler.handle,
        settle=handler.settle,
        service="test",
        max_records=10,
        timeout_ms=1,
        progress=progress or PartitionProgress(60),
        retry=FAST,
    )


async def run_until(loop: BatchLoop[Any], handler: Handler) -> None:
    """Runs the loop until the handler has seen what it waits for, then stops it."""
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await asyncio.wait_for(handler.reached.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_offsets_are_committed_after_the_batch_is_handled_and_settled_after_the_commit() -> None:
    consumer = FakeConsumer({P0: 4})
    handler = Handler(consumer=consumer, until_settled=2)
    progress = PartitionProgress(60)
    loop = loop_over(consumer, handler, progress)
    await run_until(loop, handler)
    assert handler.handled == [[(0, 0), (0, 1)], [(0, 2), (0, 3)]]
    assert consumer.commits == [{P0: 2}, {P0: 4}]
    assert handler.committed_at_settle == [1, 2]
    assert progress.judge(P0, end=4, committed=4) is False
    assert loop.running is False


async def test_a_failed_batch_is_rewound_to_its_first_records_and_read_again() -> None:
    consumer = FakeConsumer({P0: 4, P1: 2})
    handler = Handler(fail_on_calls={2, 3}, consumer=consumer, until_settled=2)
    before = counted(RETRIES, "test.batch", "ConnectionResetError")
    await run_until(loop_over(consumer, handler), handler)
    # The second batch failed twice: nothing of it was committed, and it was read again from its start.
    assert consumer.seeks == [(P0, 2), (P0, 2)]
    assert handler.handled == [[(0, 0), (0, 1), (1, 0), (1, 1)], [(0, 2), (0, 3)]]
    assert consumer.commits == [{P0: 2, P1: 2}, {P0: 4}]
    assert counted(RETRIES, "test.batch", "ConnectionResetError") == before + 2


async def test_a_partition_revoked_before_its_rewind_is_reported_and_left_to_its_new_owner(
    logged: io.StringIO,
) -> None:
    consumer = FakeConsumer({P0: 2, P1: 2}, revoked={P1})
    handler = Handler(fail_on_calls={1})
    before = counted(HANDLED_ERRORS, "test.rewind", "IllegalStateError")
    await run_until(loop_over(consumer, handler), handler)
    assert consumer.seeks == [(P0, 0)]
    assert counted(HANDLED_ERRORS, "test.rewind", "IllegalStateError") == before + 1
    assert {"test.rewind_failed", "test.batch_retry"} <= {line["event"] for line in lines(logged)}


async def test_a_failed_commit_is_reported_and_the_stored_batch_still_settled() -> None:
    consumer = FakeConsumer({P0: 2}, commit_errors=[CommitFailedError("rebalanced")])
    handler = Handler()
    progress = PartitionProgress(60)
    before = counted(HANDLED_ERRORS, "test.offset_commit", "CommitFailedError")
    await run_until(loop_over(consumer, handler, progress), handler)
    assert consumer.commits == []
    assert handler.settled == [[(0, 0), (0, 1)]]
    assert counted(HANDLED_ERRORS, "test.offset_commit", "CommitFailedError") == before + 1


async def test_stopping_during_an_outage_ends_the_loop_with_nothing_committed() -> None:
    consumer = FakeConsumer({P0: 2})
    handler = Handler(fail_on_calls=set(range(1, 10_000)), until_calls=3)
    await run_until(loop_over(consumer, handler), handler)
    assert consumer.commits == []
    assert handler.settled == []


# --- watchers ------------------------------------------------------------------------------------------


class AssignedConsumer:
    def __init__(self, ends: dict[TopicPartition, int], committed: dict[TopicPartition, int]) -> None:
        self.ends = ends
        self.committed_offsets = committed

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    async def committed(self, partition: TopicPartition) -> int | None:
        return self.committed_offsets.get(partition)

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    def last_stable_offset(self, partition: TopicPartition) -> int:
        return self.ends[partition]

    def highwater(self, partition: TopicPartition) -> int:
        return self.ends[partition]


class Relay:
    def __init__(self, backlog: int | Exception) -> None:
        self._backlog = backlog

    async def backlog(self) -> int:
        if isinstance(self._backlog, Exception):
            raise self._backlog
        return self._backlog


STALLED = Gauge("test_stalled_partitions", "test")
BACKLOG = Gauge("test_outbox_backlog", "test")


async def test_watchers_set_lag_per_topic_stalled_partitions_and_the_backlog() -> None:
    other = TopicPartition("t.members", 0)
    consumer = AssignedConsumer({P0: 10, P1: 5, other: 3}, {P0: 4, P1: 5, other: None})  # type: ignore[dict-item]
    watchers = Watchers(
        "test",
        consumer,
        PartitionProgress(0),
        Relay(7),  # type: ignore[arg-type]
        stalled=STALLED,
        backlog=BACKLOG,
    )
    await watchers.check_all()
    await asyncio.sleep(0.01)
    await watchers.check_all()  # records waiting past the limit of 0 s: stalled
    assert CONSUMER_LAG.labels("t.orders")._value.get() == 6
    assert CONSUMER_LAG.labels("t.members")._value.get() == 3
    assert STALLED._value.get() == 2
    assert BACKLOG._value.get() == 7


async def test_a_failing_watcher_is_reported_and_the_others_still_run(logged: io.StringIO) -> None:
    consumer = AssignedConsumer({P0: 1}, {P0: 1})
    ran: list[str] = []

    async def own() -> None:
        ran.append("own")

    watchers = Watchers(
        "test",
        consumer,
        PartitionProgress(60),
        Relay(outage()),  # type: ignore[arg-type]
        stalled=STALLED,
        backlog=BACKLOG,
    )
    watchers.add("own", own)
    before = counted(HANDLED_ERRORS, "test.watch_outbox", "ConnectionResetError")
    await watchers.check_all()
    assert ran == ["own"]
    assert counted(HANDLED_ERRORS, "test.watch_outbox", "ConnectionResetError") == before + 1
    assert [line["event"] for line in lines(logged)] == ["test.watch_outbox_failed"]
