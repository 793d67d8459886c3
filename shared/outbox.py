"""Transactional outbox relay: publishes rows written with a state change, then marks them.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several relays can run at once
without publishing a row twice in the normal case. If a relay dies after Kafka
acknowledged a batch but before its database commit, that batch is published again
on restart: delivery to Kafka is at least once, and every message carries a stable id
(``action_id``, ``notification_id``) that consumers dedupe on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import Row, Table, Text, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.kafka_io import member_key

log = structlog.get_logger(__name__)

PublishedHook = Callable[[Sequence[Row[tuple[int, str, str, str, datetime]]]], None]


class OutboxRelay:
    """Moves unpublished rows of ``table`` (seq, shop_id, member_id, payload, published_at) to ``topic``."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        table: Table,
        topic: str,
        *,
        batch_size: int = 1000,
        idle_interval_s: float = 0.05,
        time_column: str = "created_at",
        on_published: PublishedHook | None = None,
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._table = table
        self._topic = topic
        self._batch_size = batch_size
        self._idle_interval_s = idle_interval_s
        self._time_column = time_column
        self._on_published = on_published
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after a commit that wrote rows, so they leave without waiting for the poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publishes one batch of pending rows; returns how many."""
        table = self._table
        claim = (
            select(
                table.c.seq,
                table.c.shop_id,
                table.c.member_id,
                table.c.payload.cast(Text).label("payload"),
                table.c[self._time_column],
            )
            .where(table.c.published_at.is_(None))
            .order_by(table.c.seq)
            .limit(self._batch_size)
            .with_for_update(skip_locked=True)
        )
        async with self._engine.begin() as connection:
            rows = (await connection.execute(claim)).all()
            if not rows:
                return 0
            futures = [
                await self._producer.send(self._topic, key=member_key(shop, member), value=payload.encode())
                for _, shop, member, payload, _ in rows
            ]
            await asyncio.gather(*futures)
            await connection.execute(
                update(table).where(table.c.seq.in_([row[0] for row in rows])).values(published_at=func.now())
            )
        if self._on_published is not None:
            self._on_published(rows)
        return len(rows)

    async def backlog(self) -> int:
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(self._table).where(self._table.c.published_at.is_(None))
            )
        return int(count or 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Publishes until ``stop`` is set; backs off on errors instead of dying."""
        while not stop.is_set():
            try:
                published = await self.publish_pending()
            except Exception:
                log.exception("outbox.publish_failed", table=self._table.name)
                published = 0
                await asyncio.sleep(1.0)
            if published:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._idle_interval_s)
