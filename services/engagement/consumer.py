"""The consume loop: batch from Kafka, one transaction, dead letters, then offsets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from services.engagement import metrics
from services.engagement.decode import Rejection
from services.engagement.processor import BatchProcessor, BatchResult
from shared.contract.actions import DeadLetter

log = structlog.get_logger(__name__)

# SQLSTATE classes worth retrying: connection exceptions (08), insufficient resources (53),
# operator intervention such as a terminated backend or a restart (57), and the lost races
# of serialization failure and deadlock (40001, 40P01).
_RETRYABLE_SQLSTATE_CLASSES = ("08", "53", "57")
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


def is_transient(error: BaseException) -> bool:
    """Connection trouble and lost races are worth retrying; anything else the database said is final."""
    if isinstance(error, (OperationalError, InterfaceError, OSError, TimeoutError)):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
    return sqlstate in _RETRYABLE_SQLSTATES or sqlstate.startswith(_RETRYABLE_SQLSTATE_CLASSES)


def dead_letter(record: ConsumerRecord[bytes, bytes], rejection: Rejection) -> bytes:
    """The DLQ record: where it came from, the original bytes in base64, and why."""
    return (
        DeadLetter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key is not None else None,
            value=base64.b64encode(record.value or b"").decode(),
            error=rejection.error,
            received_at=datetime.now(UTC),
        )
        .model_dump_json()
        .encode()
    )


class EngagementConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        processor: BatchProcessor,
        *,
        dlq_topic: str,
        max_records: int,
        timeout_ms: int,
        on_committed: Callable[[], None],
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._processor = processor
        self._dlq_topic = dlq_topic
        self._max_records = max_records
        self._timeout_ms = timeout_ms
        self._on_committed = on_committed

    async def _process(self, records: list[ConsumerRecord[bytes, bytes]]) -> BatchResult:
        """Retries transient database trouble; isolates a record the database refuses outright.

        The transaction is idempotent, so retrying it is safe. An error that retrying cannot
        cure (a value PostgreSQL will not store, say) splits the batch in halves until the
        record behind it stands alone and goes to the dead-letter topic: the partition never
        stalls on it. Halves commit in order, so each partition's order is kept.
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
        except DBAPIError as error:
            if len(records) == 1:
                cause = getattr(error.orig, "__cause__", None) or error.orig
                detail = (
                    f"the database refused it ({type(cause).__name__}, SQLSTATE {getattr(error.orig, 'sqlstate', '?')})"
                )
                log.error("engagement.record_refused_by_database", detail=detail)
                result = BatchResult(types=[(records[0].topic, "refused")])
                result.dead_letters.append((records[0], Rejection("processing_error", detail)))
                return result
            middle = len(records) // 2
            first = await self._process(records[:middle])
            return first.merge(await self._process(records[middle:]))
        raise AssertionError("unreachable")

    async def _send_dead_letters(self, result: BatchResult) -> None:
        futures = []
        for record, rejection in result.dead_letters:
            metrics.DLQ_RECORDS.labels(rejection.reason).inc()
            log.warning(
                "engagement.dead_letter",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                reason=rejection.reason,
            )
            futures.append(
                await self._producer.send(self._dlq_topic, key=record.key, value=dead_letter(record, rejection))
            )
        await asyncio.gather(*futures)

    async def run_once(self) -> int:
        """One poll: returns the number of records handled (0 when idle)."""
        batches = await self._consumer.getmany(timeout_ms=self._timeout_ms, max_records=self._max_records)
        records = [record for partition_records in batches.values() for record in partition_records]
        if not records:
            return 0
        started = time.perf_counter()
        try:
            result = await self._process(records)
            await self._send_dead_letters(result)
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
        metrics.BATCH_SIZE.observe(len(records))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        for topic, event_type in result.types:
            metrics.RECORDS_CONSUMED.labels(topic, event_type).inc()
        for rule in result.new_actions:
            metrics.ACTIONS.labels(rule).inc()
        metrics.DUPLICATE_EVENTS.inc(result.duplicates)
        metrics.PARKED_EVENTS.inc(result.parked)
        return len(records)

    def _rewind(self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for partition, records in batches.items():
            try:
                self._consumer.seek(partition, records[0].offset)
            except Exception:  # revoked meanwhile: its new owner starts from the committed offset
                log.warning("engagement.rewind_skipped", topic=partition.topic, partition=partition.partition)

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until ``stop``; an outage pauses the loop with backoff instead of ending it."""
        failures = 0
        while not stop.is_set():
            try:
                await self.run_once()
                failures = 0
            except Exception:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.exception("engagement.batch_failed", retry_in_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
