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
from sqlalchemy.ext.asyncio import AsyncEngine

from services.engagement import repository
from services.engagement.decode import Rejection, decode
from shared.domain.engagement import MemberContext, apply_event
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


def action_row(decision: ActionDecision, created_at: datetime) -> tuple[Any, ...]:
    """The outbox row (``repository.insert_actions`` column order) with its contract payload."""
    payload: dict[str, Any] = {
        "action_id": decision.action_id,
        "shop_id": decision.shop_id,
        "member_id": decision.member_id,
        "rule": decision.rule,
        "category": decision.category,
        "trigger": dict(decision.trigger),
        "occurred_at": decision.occurred_at.isoformat(),
        "created_at": created_at.isoformat(),
        "message": {"template": decision.template, "variables": dict(decision.variables)},
    }
    if decision.incentive is not None:
        payload["incentive"] = dict(decision.incentive)
    return (
        decision.action_id,
        decision.shop_id,
        decision.member_id,
        decision.rule,
        decision.category,
        decision.occurred_at,
        created_at,
        payload,
    )


class BatchProcessor:
    def __init__(self, engine: AsyncEngine, playbook: Playbook, max_record_bytes: int) -> None:
        self._engine = engine
        self._playbook = playbook
        self._max_record_bytes = max_record_bytes

    def _decode_batch(
        self, records: Sequence[ConsumerRecord[bytes, bytes]], result: BatchResult
    ) -> dict[tuple[str, str], tuple[Event, ConsumerRecord[bytes, bytes]]]:
        """Valid events by key, first delivery wins; rejected records go to ``dead_letters``."""
        events: dict[tuple[str, str], tuple[Event, ConsumerRecord[bytes, bytes]]] = {}
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
        result = BatchResult()
        by_key = self._decode_batch(records, result)
        decoded = [event for event, _ in by_key.values()]
        if not decoded:
            return result
        async with self._engine.begin() as connection:
            fresh = await repository.claim_events(connection, [event.key for event in decoded])
            events = [event for event in decoded if event.key in fresh]
            result.duplicates += len(decoded) - len(events)
            if not events:
                return result
            member_keys = sorted({(e.shop_id, e.member_id) for e in events})
            members = await repository.lock_members(connection, member_keys)
            order_keys = {(e.shop_id, e.order_id) for e in events if e.order_id is not None}
            parked = [
                (key, event)
                for key, raw in await repository.load_pending(connection, sorted(order_keys))
                if key in members  # another member's events about this order stay parked
                and (event := _decode_parked(raw, self._playbook)) is not None
            ]
            loaded_orders = await repository.load_member_orders(connection, member_keys)
            loaded_orders.update(await repository.load_orders(connection, sorted(order_keys - loaded_orders.keys())))

            shop_orders: dict[str, dict[str, Order]] = {}
            for (shop, order_id), order in loaded_orders.items():
                shop_orders.setdefault(shop, {})[order_id] = order
            contexts = {
                key: MemberContext(member=member, shop_orders=shop_orders.setdefault(key[0], {}))
                for key, member in members.items()
            }
            for (shop, _), order in loaded_orders.items():
                own = contexts.get((shop, order.member_id))
                if own is not None:
                    own.orders[order.order_id] = order
            for key, event in parked:
                contexts[key].pending.append(event)
            previously_parked = {event.key for _, event in parked}

            decisions: list[ActionDecision] = []
            released: list[Event] = []
            for event in events:
                context = contexts[(event.shop_id, event.member_id)]
                try:
                    outcome = apply_event(context, event, self._playbook.for_shop(event.shop_id))
                except Exception as error:  # a bug must not stall the partition
                    log.exception("engagement.apply_failed", event_type=event.type, source=event.source)
                    result.dead_letters.append(
                        (by_key[event.key][1], Rejection("processing_error", type(error).__name__))
                    )
                    continue
                if outcome.rejected is not None:
                    result.dead_letters.append(
                        (by_key[event.key][1], Rejection(outcome.rejected, "the order belongs to another member"))
                    )
                    continue
                result.accepted += 1
                result.parked += int(outcome.parked)
                decisions.extend(outcome.actions)
                released.extend(outcome.released)

            released_keys = {event.key for event in released}
            still_parked = [
                (key, event)
                for key, context in contexts.items()
                for event in context.pending
                if event.key not in previously_parked
            ]
            await repository.save_members(connection, [c.member for c in contexts.values()])
            await repository.save_orders(
                connection,
                [
                    (key[0], context.orders[order_id])
                    for key, context in contexts.items()
                    for order_id in context.touched_orders
                ],
            )
            await repository.park_events(
                connection, [_parked_row(key, event, by_key[event.key][1]) for key, event in still_parked]
            )
            await repository.release_events(connection, sorted(released_keys & previously_parked))
            now = datetime.now(UTC)
            unique = {decision.action_id: decision for decision in decisions}
            result.new_actions = await repository.insert_actions(
                connection, [action_row(decision, now) for decision in unique.values()]
            )
        return result


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
