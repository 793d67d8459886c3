"""Transactional outbox relay: publishes messages written with a state change, then deletes them.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and deleted in the same transaction
that waits for Kafka's acknowledgement, so several relays can run at once without
publishing a row twice in the normal case, and a failed send puts the rows back. If a
relay dies after Kafka acknowledged a batch but before its commit, that batch is
published again on restart: delivery to Kafka is at least once, and every message
carries a stable id (``action_id``, ``notification_id``) that consumers dedupe on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import outbox
from shared.worker_runtime.retry_policy import RETRY, RetryPolicy
from shared.worker_runtime.stopping import pause

PublishedHook = Callable[[Sequence[datetime]], None]

# The claimed rows are locked once, in a materialised CTE, and deleted by primary key from
# its array. Written as ``seq IN (subquery)``, a plan cached while the table was nearly
# empty can be a nested-loop semi join that re-runs the locking subquery for every row of
# the outbox: seconds to minutes per claim once the table has grown, and more rows claimed
# than the limit (tests/integration/test_outbox_claim.py).
_CLAIM = text(
    "WITH claimed AS MATERIALIZED ("
    "  SELECT seq FROM outbox WHERE stream = :stream AND seq > :after ORDER BY seq LIMIT :limit"
    "  FOR UPDATE SKIP LOCKED"
    ") DELETE FROM outbox WHERE stream = :stream AND seq = ANY(ARRAY(SELECT seq FROM claimed)) "
    "RETURNING seq, key, payload, event_time"
)


def _seq(row: Row[Any]) -> int:
    return int(row[0])


class OutboxRelay:
    """Moves the outbox rows of one ``stream`` to ``topic``, oldest first."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        stream: str,
        topic: str,
        *,
        batch_size: int = 1000,
        idle_interval_s: float = 0.05,
        on_published: PublishedHook | None = None,
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._stream = stream
        self._topic = topic
        self._batch_size = batch_size
        self._idle_interval_s = idle_interval_s
        self._on_published = on_published
        self._wake = asyncio.Event()
        # Where the last batch ended: the next claim starts there instead of wading through
        # the index entries of rows just deleted. Reset to 0 whenever a claim comes back
        # empty, so a row whose transaction committed late (a lower seq) is still found.
        self._after = 0

    def wake(self) -> None:
        """Called after a commit that wrote rows, so they leave without waiting for the poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publishes one batch of pending rows; returns how many."""
        async with self._engine.begin() as connection:
            params = {"stream": self._stream, "limit": self._batch_size, "after": self._after}
            rows = sorted((await connection.execute(_CLAIM, params)).all(), key=_seq)
            if not rows:
                self._after = 0
                return 0
            futures = [
                await self._producer.send(self._topic, key=key.encode(), value=payload.encode())
                for _, key, payload, _ in rows
            ]
            await asyncio.gather(*futures)
        self._after = rows[-1][0]
        if self._on_published is not None:
            self._on_published([row[3] for row in rows])
        return len(rows)

    async def backlog(self) -> int:
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.stream == self._stream)
            )
        return int(count or 0)

    async def run(self, stop: asyncio.Event, retry: RetryPolicy = RETRY) -> None:
        """Publishes until ``stop`` is set; a failed round is retried with backoff instead of ending the loop."""
        while not stop.is_set():
            if await retry.keep_trying("outbox.publish", self.publish_pending, stop=stop):
                continue
            self._wake.clear()
            await pause(stop, self._idle_interval_s, wake=self._wake)
