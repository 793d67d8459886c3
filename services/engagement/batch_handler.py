"""What the engagement service does with a polled batch: process it, dead-letter, count.

Polling, committing offsets after the transaction and rewinding a failed batch are the
worker runtime's (``shared.worker_runtime.batch_loop``); this is the service's own part.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from aiokafka.structs import ConsumerRecord
from sqlalchemy.exc import DBAPIError

from services.engagement import engagement_metrics as metrics
from services.engagement.dead_letters import DeadLetterPublisher
from services.engagement.decode import Rejection
from services.engagement.processor import BatchProcessor, BatchResult
from shared.db.error_triage import describe, is_transient
from shared.observability import report_failure
from shared.worker_runtime.retry_policy import RETRY, RetryPolicy

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class HandledBatch:
    result: BatchResult
    records: int
    started: float  # time.perf_counter() when handling began


class EngagementBatchHandler:
    def __init__(
        self,
        processor: BatchProcessor,
        dead_letters: DeadLetterPublisher,
        *,
        on_committed: Callable[[], None],
        stop: asyncio.Event | None = None,
        retry: RetryPolicy = RETRY,
    ) -> None:
        self._processor = processor
        self._dead_letters = dead_letters
        self._on_committed = on_committed
        self._stop = stop
        self._retry = retry

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> HandledBatch:
        """One transaction (or several, around a poison record), then the dead letters, acknowledged.

        Raising leaves the batch to be read again: committed events turn into no-ops, and
        dead letters that were not acknowledged are sent again.
        """
        started = time.perf_counter()
        result = await self._process(records)
        await self._dead_letters.publish(result.dead_letters)
        self._on_committed()
        return HandledBatch(result, len(records), started)

    async def settle(self, handled: HandledBatch) -> None:
        """Counts a batch whose offsets are committed."""
        result = handled.result
        metrics.BATCH_SIZE.observe(handled.records)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - handled.started)
        for topic, event_type in result.types:
            metrics.RECORDS_CONSUMED.labels(topic, event_type).inc()
        for rule in result.new_actions:
            metrics.ACTIONS.labels(rule).inc()
        metrics.DUPLICATE_EVENTS.inc(result.duplicates)
        metrics.PARKED_EVENTS.inc(result.parked)
        metrics.QUARANTINES.inc(result.quarantined)
        for outcome, count in result.decisions.items():
            metrics.INCENTIVE_DECISIONS.labels(outcome).inc(count)
        metrics.COUPONS_REDEEMED.inc(result.coupons_redeemed)
        metrics.COUPONS_SHARED.inc(result.coupons_shared)

    async def _process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> BatchResult:
        """Retries transient database trouble; isolates a record that fails for any other reason.

        The transaction is idempotent, so retrying it is safe. An error that retrying cannot
        cure (a value PostgreSQL will not store, a member's stored state the code cannot
        load) splits the batch in halves until the record behind it stands alone and goes
        to the dead-letter topic: the partition never stalls on it. Halves commit in order,
        so each partition's order is kept.
        """
        try:
            return await self._retry.call("engagement.batch", lambda: self._processor.process(records), stop=self._stop)
        except Exception as error:
            if is_transient(error):
                raise
            if len(records) == 1:
                return await self._isolate(records[0], error)
            middle = len(records) // 2
            first = await self._process(records[:middle])
            return first.merge(await self._process(records[middle:]))

    async def _isolate(self, record: ConsumerRecord[bytes, bytes], error: Exception) -> BatchResult:
        """One record the batch could not get past: dead-lettered, and its member quarantined
        when the failure was not the database refusing a value (then the member's stored state,
        which every later event would load again, is presumed at fault).
        """
        refused = isinstance(error, DBAPIError)
        detail = f"the database refused it ({describe(error)})" if refused else f"{describe(error)} while processing it"
        # Counted with the dead letter (engagement_dlq_records_total{reason="processing_error"}).
        log.error("engagement.record_isolated", topic=record.topic, offset=record.offset, error=describe(error))
        result = BatchResult(types=[(record.topic, "refused")])
        result.dead_letters.append((record, Rejection("processing_error", detail)))
        if not refused:
            try:
                result.quarantined += await self._processor.quarantine_member_of(record, detail)
            except Exception as failure:
                if is_transient(failure):
                    raise
                report_failure("engagement.quarantine", failure, topic=record.topic, offset=record.offset)
        return result
