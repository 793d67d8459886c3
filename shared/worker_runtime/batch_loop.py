"""The consume loop both workers share: poll, handle, commit, settle; rewind after a failure.

A worker gives it two functions: ``handle`` stores a batch's effects in one database
transaction (it raises to have the batch read again) and ``settle`` does what follows
the commit of its offsets (count it, deliver what it decided to send).

Exactly once towards the database rests on three rules kept here:

* offsets are committed only after ``handle`` returned, that is after its database
  transaction committed (and, for the engagement service, after the broker acknowledged
  the batch's dead letters); a process that dies before the commit reads the batch
  again, and the transaction's idempotency keys turn what was already stored into no-ops;
* a batch whose handling raised is never skipped: each of its partitions is rewound to
  where the batch began (the offset committed last) before the next poll, and the batch
  is tried again after the retry policy's backoff;
* nothing is consumed while a topic the worker writes to is missing (readiness says so).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord

from shared.kafka_io import TopicGuard
from shared.observability import report_failure
from shared.progress import PartitionProgress
from shared.worker_runtime.retry_policy import RETRY, RetryPolicy
from shared.worker_runtime.stopping import pause

TOPIC_RECHECK_S = 5.0

Record: TypeAlias = ConsumerRecord[bytes, bytes]
R = TypeVar("R")

Handle = Callable[[Sequence[Record]], Awaitable[R]]
"""Stores a batch's effects in one database transaction; raises to have the batch read again."""

Settle = Callable[[R], Awaitable[None]]
"""What follows once the offsets are committed (or the commit failed: the batch is stored anyway)."""


class BatchLoop(Generic[R]):
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        handle: Handle[R],
        settle: Settle[R],
        service: str,
        max_records: int,
        timeout_ms: int,
        progress: PartitionProgress,
        topics: TopicGuard | None = None,
        retry: RetryPolicy = RETRY,
        prepare: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self._consumer = consumer
        self._handle = handle
        self._settle = settle
        self._service = service
        self._max_records = max_records
        self._timeout_ms = timeout_ms
        self._progress = progress
        self._topics = topics
        self._retry = retry
        self._prepare = prepare
        self.running = False

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until ``stop``; the batch in hand is finished and committed first.

        ``prepare`` (when given) runs first, retried until it succeeds. A failed batch is
        rewound and tried again with backoff: an outage pauses the loop, never ends it.
        """
        if self._prepare is not None:
            prepare = self._prepare
            await self._retry.keep_trying(f"{self._service}.prepare", prepare, stop=stop)
        self.running = not stop.is_set()
        try:
            while not stop.is_set():
                if await self._outputs_ready(stop):
                    await self._retry.keep_trying(f"{self._service}.batch", self.run_once, stop=stop)
        finally:
            self.running = False

    async def _outputs_ready(self, stop: asyncio.Event) -> bool:
        """Whether every topic the worker writes to exists; looks for (or creates) missing ones every few seconds."""
        if self._topics is None or not self._topics.missing:
            return True
        try:
            missing = await self._topics.ensure()
        except Exception as error:
            report_failure(f"{self._service}.topic_check", error)
            missing = self._topics.missing
        if missing:
            await pause(stop, TOPIC_RECHECK_S)
        return not missing

    async def run_once(self) -> int:
        """One poll: returns the number of records handled (0 when idle)."""
        polled = await self._consumer.getmany(timeout_ms=self._timeout_ms, max_records=self._max_records)
        records = [record for batch in polled.values() for record in batch]
        if not records:
            return 0
        try:
            result = await self._handle(records)
        except Exception:
            self._rewind(polled)
            raise
        offsets = {TopicPartition(tp.topic, tp.partition): batch[-1].offset + 1 for tp, batch in polled.items()}
        await self._commit(offsets)
        await self._settle(result)
        return len(records)

    async def _commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except Exception as error:
            # The batch is stored. Whoever reads these records again (the partition's new
            # owner after a rebalance, this process after a restart) finds them processed.
            rebalanced = isinstance(error, CommitFailedError)
            report_failure(
                f"{self._service}.offset_commit",
                error,
                level="warning" if rebalanced else "error",
                stack=False if rebalanced else None,
                partitions=len(offsets),
            )
        else:
            self._progress.committed(offsets)

    def _rewind(self, polled: Mapping[TopicPartition, Sequence[Record]]) -> None:
        """Seeks each partition of a failed batch back to the batch's first record, so it is read again.

        That is the partition's last committed offset (a batch is committed before the next
        one is polled), or past it when that commit failed but the batch before was stored.
        """
        for partition, batch in polled.items():
            try:
                self._consumer.seek(partition, batch[0].offset)
            except Exception as error:
                # Revoked meanwhile: its new owner starts from the committed offset anyway.
                report_failure(
                    f"{self._service}.rewind",
                    error,
                    level="warning",
                    stack=False,
                    topic=partition.topic,
                    partition=partition.partition,
                )
