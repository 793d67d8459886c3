"""One batch of records, one transaction: dedupe, load, apply the domain, write.

Where state changes: the batch's events are applied in memory by the pure domain
(shared.domain.engagement) and the results are written with set-based statements,
together with the processed-event ids and the outbox rows, in a single transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.engagement.decode import Rejection, decode
from shared.actions import action_row
from shared.db import store
from shared.domain.engagement import MemberContext, apply_event, settle
from shared.domain.model import ActionDecision, Event, Order
from shared.domain.playbook import Playbook

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    parked: int = 0
    new_actions: list[str] = field(default_factory=list)
    dead_letters: list[tuple[ConsumerRecord[bytes, bytes], Rejection]] = field(default_factory=list)
    types: list[tuple[str, str]] = field(default_factory=list)

    def merge(self, other: BatchResult) -> BatchResult:
        """This result followed by ``other``'s (for a batch processed in parts)."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.parked += other.parked
        self.new_actions += other.new_actions
        self.dead_letters += other.dead_letters
        self.types += other.types
        return self


EventKey = tuple[str, str]
_Decoded = tuple[Event, ConsumerRecord[bytes, bytes]]


@dataclass(slots=True)
class _Batch:
    """The loaded state of one batch's members while the transaction is open."""

    contexts: dict[tuple[str, str], MemberContext]
    previously_parked: set[EventKey]
    released: set[EventKey] = field(default_factory=set)


class BatchProcessor:
    def __init__(self, engine: AsyncEngine, playbook: Playbook, max_record_bytes: int) -> None:
        self._engine = engine
        self._playbook = playbook
        self._max_record_bytes = max_record_bytes

    def _decode_batch(
        self, records: Sequence[ConsumerRecord[bytes, bytes]], result: BatchResult
    ) -> dict[EventKey, _Decoded]:
        """Valid events by key, first delivery wins; rejected records go to ``dead_letters``."""
        events: dict[EventKey, _Decoded] = {}
        for record in records:
            decoded = decode(record.value, self._playbook, self._max_record_bytes)
            if isinstance(decoded, Rejection):
                result.dead_letters.append((record, decoded))
                result.types.append((record.topic, "invalid"))
                continue
            result.types.append((record.topic, decoded.type))
            if decoded.key in events:
                result.duplicates += 1
                continue
            events[decoded.key] = (decoded, record)
        return events

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> BatchResult:
        """Applies a batch in one transaction: claim, load, apply in memory, write."""
        result = BatchResult()
        by_key = self._decode_batch(records, result)
        if not by_key:
            return result
        async with self._engine.begin() as connection:
            fresh = await store.claim_events(connection, list(by_key))
            events = [event for key, (event, _) in by_key.items() if key in fresh]
            result.duplicates += len(by_key) - len(events)
            if not events:
                return result
            batch = await self._load(connection, events)
            decisions = self._apply(batch, events, by_key, result)
            await self._write(connection, batch, decisions, by_key, result)
        return result

    async def _load(self, connection: AsyncConnection, events: Sequence[Event]) -> _Batch:
        """Locks the batch's members and loads their orders and the parked events it may release."""
        member_keys = sorted({(e.shop_id, e.member_id) for e in events})
        members = await store.lock_members(connection, member_keys)
        order_keys = {(e.shop_id, e.order_id) for e in events if e.order_id is not None}
        parked = [
            (key, event)
            for key, raw in await store.load_pending(connection, sorted(order_keys))
            if key in members  # another member's events about this order stay parked
            and (event := _decode_parked(raw, self._playbook)) is not None
        ]
        orders = await store.load_member_orders(connection, member_keys)
        orders.update(await store.load_orders(connection, sorted(order_keys - orders.keys())))

        shop_orders: dict[str, dict[str, Order]] = {}
        for (shop, order_id), order in orders.items():
            shop_orders.setdefault(shop, {})[order_id] = order
        contexts = {
            key: MemberContext(member=member, shop_orders=shop_orders.setdefault(key[0], {}))
            for key, member in members.items()
        }
        for (shop, _), order in orders.items():
            own = contexts.get((shop, order.member_id))
            if own is not None:
                own.orders[order.order_id] = order
        for key, event in parked:
            contexts[key].pending.append(event)
        return _Batch(contexts=contexts, previously_parked={event.key for _, event in parked})

    def _apply(
        self, batch: _Batch, events: Sequence[Event], by_key: dict[EventKey, _Decoded], result: BatchResult
    ) -> list[ActionDecision]:
        """Runs the pure domain event by event, in the batch's (per-partition) order."""
        decisions: list[ActionDecision] = []
        for event in events:
            context = batch.contexts[(event.shop_id, event.member_id)]
            try:
                outcome = apply_event(context, event, self._playbook.for_shop(event.shop_id))
            except Exception as error:  # a bug must not stall the partition
                log.exception("engagement.apply_failed", event_type=event.type, source=event.source)
                result.dead_letters.append((by_key[event.key][1], Rejection("processing_error", type(error).__name__)))
                continue
            if outcome.rejected is not None:
                rejection = Rejection(outcome.rejected, "the order belongs to another member")
                result.dead_letters.append((by_key[event.key][1], rejection))
                continue
            result.accepted += 1
            result.parked += int(outcome.parked)
            decisions.extend(outcome.actions)
            batch.released.update(released.key for released in outcome.released)
        for (shop, _), context in batch.contexts.items():
            settle(context, self._playbook.for_shop(shop))
        return decisions

    async def _write(
        self,
        connection: AsyncConnection,
        batch: _Batch,
        decisions: Sequence[ActionDecision],
        by_key: dict[EventKey, _Decoded],
        result: BatchResult,
    ) -> None:
        """Members, touched orders, parked and released events, actions and outbox rows: a few statements."""
        contexts = batch.contexts
        await store.save_members(connection, [context.member for context in contexts.values()])
        await store.save_orders(
            connection,
            [
                (key[0], context.orders[order_id])
                for key, context in contexts.items()
                for order_id in context.touched_orders
            ],
        )
        await store.append_ledger(
            connection, [(key, entry) for key, context in contexts.items() for entry in context.new_ledger]
        )
        newly_parked = [
            _parked_row(key, event, by_key[event.key][1])
            for key, context in contexts.items()
            for event in context.pending
            if event.key not in batch.previously_parked
        ]
        await store.park_events(connection, newly_parked)
        await store.release_events(connection, sorted(batch.released & batch.previously_parked))
        now = datetime.now(UTC)
        unique = {decision.action_id: decision for decision in decisions}
        result.new_actions = await store.insert_actions(
            connection, [action_row(decision, now) for decision in unique.values()]
        )


def _decode_parked(raw: str, playbook: Playbook) -> Event | None:
    """A parked event, or None (logged) if it no longer passes, e.g. after a shop's currency changed."""
    event = decode(raw.encode(), playbook, max_bytes=1 << 30)
    if isinstance(event, Rejection):
        log.error("engagement.parked_event_unreadable", reason=event.reason)
        return None
    return event


def _parked_row(key: tuple[str, str], event: Event, record: ConsumerRecord[bytes, bytes]) -> tuple[Any, ...]:
    """A pending_events row; the record's own bytes are kept, they are the event as published."""
    raw = (record.value or b"").decode()
    return (key[0], key[1], event.order_id, event.source, event.id, event.type, event.time, raw)
