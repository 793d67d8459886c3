"""The consume loop: batch from Kafka, one transaction, dead letters, then offsets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord
from sqlalchemy.exc import DBAPIError
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from services.engagement import metrics
from services.engagement.dead_letters import DeadLetterPublisher
from services.engagement.decode import Rejection
from services.engagement.processor import BatchProcessor, BatchResult
from shared.db.errors import describe, is_transient
from shared.kafka_io import TopicGuard
from shared.progress import PartitionProgress

log = structlog.get_logger(__name__)

TOPIC_RECHECK_S = 5.0


class EngagementConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        processor: BatchProcessor,
        dead_letters: DeadLetterPublisher,
        *,
        max_records: int,
        timeout_ms: int,
        on_committed: Callable[[], None],
        progress: PartitionProgress,
        topics: TopicGuard,
    ) -> None:
        self._consumer = consumer
        self._processor = processor
        self._dead_letters = dead_letters
        self._max_records = max_records
        self._timeout_ms = timeout_ms
        self._on_committed = on_committed
        self._progress = progress
        self._topics = topics

    async def _process(self, records: list[ConsumerRecord[bytes, bytes]]) -> BatchResult:
        """Retries transient database trouble; isolates a record that fails for any other reason.

        The transaction is idempotent, so retrying it is safe. An error that retrying cannot
        cure (a value PostgreSQL will not store, a member's stored state the code cannot
        load) splits the batch in halves until the record behind it stands alone and goes
        to the dead-letter topic: the partition never stalls on it. Halves commit in order,
        so each partition's order is kept.
        """
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(is_transient),
                wait=wait_exponential(multiplier=0.2, max=10),
                before_sleep=lambda state: log.warning(
                    "engagement.batch_retry", error=type(state.outcome.exception()).__name__ if state.outcome else None
                ),
                reraise=True,
            ):
                with attempt:
                    return await self._processor.process(records)
        except Exception as error:
            if is_transient(error):
                raise
            if len(records) == 1:
                return await self._isolate(records[0], error)
            middle = len(records) // 2
            first = await self._process(records[:middle])
            return first.merge(await self._process(records[middle:]))
        raise AssertionError("unreachable")

    async def _isolate(self, record: ConsumerRecord[bytes, bytes], error: Exception) -> BatchResult:
        """One record the batch could not get past: dead-lettered, and its member quarantined
        when the failure was not the database refusing a value (then the member's stored state,
        which every later event would load again, is presumed at fault).
        """
        refused = isinstance(error, DBAPIError)
        detail = f"the database refused it ({describe(error)})" if refused else f"{describe(error)} while processing it"
        log.error("engagement.record_isolated", topic=record.topic, offset=record.offset, error=describe(error))
        result = BatchResult(types=[(record.topic, "refused")])
        result.dead_letters.append((record, Rejection("processing_error", detail)))
        if not refused:
            try:
                result.quarantined += await self._processor.quarantine_member_of(record, detail)
            except Exception as failure:
                if is_transient(failure):
                    raise
                log.error(
                    "engagement.quarantine_failed", topic=record.topic, offset=record.offset, error=describe(failure)
                )
        return result

    async def run_once(self) -> int:
        """One poll: returns the number of records handled (0 when idle)."""
        batches = await self._consumer.getmany(timeout_ms=self._timeout_ms, max_records=self._max_records)
        records = [record for partition_records in batches.values() for record in partition_records]
        if not records:
            return 0
        started = time.perf_counter()
        try:
            result = await self._process(records)
            await self._dead_letters.publish(result.dead_letters)
        except Exception:
            # Kafka or the database went away mid-batch. Go back to the batch's first
            # records so they are read again: committed events turn into no-ops, and dead
            # letters that were not acknowledged are sent again.
            self._rewind(batches)
            raise
        offsets = {TopicPartition(tp.topic, tp.partition): recs[-1].offset + 1 for tp, recs in batches.items()}
        self._on_committed()
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced: the new owner gets these records again and the
            # processed-events table turns them into no-ops.
            log.warning("engagement.commit_failed_after_rebalance", partitions=len(offsets))
        else:
            self._progress.committed(offsets)
        metrics.BATCH_SIZE.observe(len(records))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        for topic, event_type in result.types:
            metrics.RECORDS_CONSUMED.labels(topic, event_type).inc()
        for rule in result.new_actions:
            metrics.ACTIONS.labels(rule).inc()
        metrics.DUPLICATE_EVENTS.inc(result.duplicates)
        metrics.PARKED_EVENTS.inc(result.parked)
        metrics.QUARANTINES.inc(result.quarantined)
        return len(records)

    def _rewind(self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for partition, records in batches.items():
            try:
                self._consumer.seek(partition, records[0].offset)
            except Exception:  # revoked meanwhile: its new owner starts from the committed offset
                log.warning("engagement.rewind_skipped", topic=partition.topic, partition=partition.partition)

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until ``stop``; an outage pauses the loop with backoff instead of ending it.

        Nothing is consumed while a topic the service writes to is missing: readiness says
        so, and the topics are looked for (and created, when allowed) again every few seconds.
        """
        failures = 0
        while not stop.is_set():
            delay = 0.0
            try:
                if self._topics.missing and await self._topics.ensure():
                    delay = TOPIC_RECHECK_S
                else:
                    await self.run_once()
                    failures = 0
            except Exception as error:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.error("engagement.batch_failed", retry_in_s=delay, error=describe(error))
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
