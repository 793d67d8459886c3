"""Where rejected records leave: the dead-letter topic, or PostgreSQL when too large for the broker.

A dead-letter record wraps the original bytes in base64, a third larger than the record
itself, so a record near the broker's size limit cannot be dead-lettered as it is: the
broker would refuse it and the batch behind it would be retried forever. Such a record
is kept whole in the ``dead_letters`` table and the topic gets a reference with a prefix.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.engagement import engagement_metrics as metrics
from services.engagement.decode import Rejection
from shared.contract.actions import DeadLetter
from shared.db.schema import dead_letters

log = structlog.get_logger(__name__)

PREFIX_BYTES = 1024  # of the value (before base64) and of the key, in a stored record's reference

Rejected = tuple[ConsumerRecord[bytes, bytes], Rejection]


def _key_text(key: bytes | None) -> str | None:
    return key.decode("utf-8", "replace") if key is not None else None


def whole(record: ConsumerRecord[bytes, bytes], rejection: Rejection, received_at: datetime) -> bytes:
    """The usual dead-letter record: where it came from, the original bytes in base64, and why."""
    return (
        DeadLetter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=_key_text(record.key),
            value=base64.b64encode(record.value or b"").decode(),
            error=rejection.error,
            received_at=received_at,
        )
        .model_dump_json()
        .encode()
    )


def reference(
    record: ConsumerRecord[bytes, bytes], rejection: Rejection, received_at: datetime, stored_id: int
) -> bytes:
    """The dead-letter record of a stored record: a prefix and where the rest is kept."""
    return (
        DeadLetter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=_key_text(record.key[:PREFIX_BYTES] if record.key is not None else None),
            value=None,
            value_prefix=base64.b64encode((record.value or b"")[:PREFIX_BYTES]).decode(),
            stored_as=f"dead_letters/{stored_id}",
            error=rejection.error,
            received_at=received_at,
        )
        .model_dump_json()
        .encode()
    )


class DeadLetterPublisher:
    def __init__(
        self, engine: AsyncEngine, producer: AIOKafkaProducer, topic: str, *, max_bytes: int, timeout_s: float
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._topic = topic
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s

    async def publish(self, items: Sequence[Rejected]) -> None:
        """Sends every item and waits for the broker's acknowledgements (or raises, for a retry).

        A send that does not complete within the timeout raises too, so a topic that went
        missing fails the batch loudly (and the partition shows as stalled) instead of hanging.
        """
        if not items:
            return
        received_at = datetime.now(UTC)
        async with asyncio.timeout(self._timeout_s):
            too_large: list[Rejected] = []
            sent: list[tuple[Rejected, asyncio.Future[object]]] = []
            for item in items:
                record, rejection = item
                value = whole(record, rejection, received_at)
                key = record.key[:PREFIX_BYTES] if record.key is not None else None
                if len(value) + len(key or b"") > self._max_bytes:
                    too_large.append(item)
                    continue
                try:
                    sent.append((item, await self._producer.send(self._topic, key=key, value=value)))
                except MessageSizeTooLargeError:
                    too_large.append(item)
            outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
            for (item, _), outcome in zip(sent, outcomes, strict=True):
                if isinstance(outcome, MessageSizeTooLargeError):
                    too_large.append(item)  # the topic's own limit is lower than ours
                elif isinstance(outcome, BaseException):
                    raise outcome
            if too_large:
                await self._publish_stored(too_large, received_at)
        for record, rejection in items:
            metrics.DLQ_RECORDS.labels(rejection.reason).inc()
            log.warning(
                "engagement.dead_letter",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                reason=rejection.reason,
            )

    async def _publish_stored(self, items: Sequence[Rejected], received_at: datetime) -> None:
        ids = await self._store(items, received_at)
        futures = []
        for record, rejection in items:
            stored_id = ids[(record.topic, record.partition, record.offset)]
            key = record.key[:PREFIX_BYTES] if record.key is not None else None
            value = reference(record, rejection, received_at, stored_id)
            futures.append(await self._producer.send(self._topic, key=key, value=value))
            metrics.DLQ_STORED.inc()
            log.warning("engagement.dead_letter_stored", topic=record.topic, offset=record.offset, stored_id=stored_id)
        await asyncio.gather(*futures)

    async def _store(self, items: Sequence[Rejected], received_at: datetime) -> dict[tuple[str, int, int], int]:
        """Keeps the records whole; the same record stored again (a retried batch) keeps its row."""
        statement = insert(dead_letters).values(
            [
                {
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "key": record.key,
                    "value": record.value,
                    "error": rejection.error,
                    "received_at": received_at,
                }
                for record, rejection in items
            ]
        )
        upsert = statement.on_conflict_do_update(
            constraint="uq_dead_letters_record", set_={"error": statement.excluded.error}
        ).returning(dead_letters.c.id, dead_letters.c.topic, dead_letters.c.partition, dead_letters.c.offset)
        async with self._engine.begin() as connection:
            rows = (await connection.execute(upsert)).all()
        return {(row.topic, row.partition, row.offset): row.id for row in rows}
