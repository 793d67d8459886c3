"""One batch of records, one transaction: dedupe, load, apply the domain, write.

Where state changes: the batch's events are applied in memory by the pure domain
(shared.domain.engagement) and the results are written with set-based statements,
together with the processed-event ids and the outbox rows, in a single transaction.

A failure while applying one member's events is that member's alone: the transaction
is rolled back and run again without the member's events, which go to the dead-letter
topic (``processing_error``); when the member's stored state itself cannot be settled,
the member is quarantined and its later events are dead-lettered (``member_quarantined``)
until an operator releases it. The rest of the batch always goes through.
"""

from __future__ import annotations

import traceback
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
from shared.db.errors import describe
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
    quarantined: int = 0  # members newly quarantined

    def merge(self, other: BatchResult) -> BatchResult:
        """This result followed by ``other``'s (for a batch processed in parts)."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.parked += other.parked
        self.new_actions += other.new_actions
        self.dead_letters += other.dead_letters
        self.types += other.types
        self.quarantined += other.quarantined
        return self


EventKey = tuple[str, str]
MemberKey = tuple[str, str]
_Decoded = tuple[Event, ConsumerRecord[bytes, bytes]]

QUARANTINED = Rejection(
    "member_quarantined",
    "the member is quarantined (GET /v1/admin/quarantine); publish the event again once it is released",
)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a member's events were set aside: ``detail`` of what raised on ``event`` (None: settling)."""

    detail: str
    event: EventKey | None
    fresh: frozenset[EventKey]  # the member's events of the batch that no earlier transaction had processed


class MembersFailedError(Exception):
    """Members whose events could not be applied; the batch is run again without them."""

    def __init__(self, failures: dict[MemberKey, Failure]) -> None:
        super().__init__(f"{len(failures)} member(s) failed")
        self.failures = failures


@dataclass(slots=True)
class _Batch:
    """The loaded state of one batch's members while the transaction is open."""

    contexts: dict[tuple[str, str], MemberContext]
    previously_parked: set[EventKey]
    released: set[EventKey] = field(default_factory=set)
    quarantined: set[MemberKey] = field(default_factory=set)


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
        now = datetime.now(UTC)  # the business-time window's wall clock, once per batch
        for record in records:
            decoded = decode(record.value, self._playbook, self._max_record_bytes, now)
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
        """Applies a batch in one transaction: claim, load, apply in memory, write.

        Members whose events fail are set aside and the transaction is run again without
        them, so each failing member costs one more attempt and never the batch.
        """
        result = BatchResult()
        by_key = self._decode_batch(records, result)
        failed: dict[MemberKey, Failure] = {}
        while by_key:
            attempt = BatchResult()
            try:
                await self._transaction(by_key, failed, attempt)
            except MembersFailedError as error:
                if error.failures.keys() <= failed.keys():
                    raise RuntimeError("a member set aside failed again") from error
                failed.update(error.failures)
                continue
            return result.merge(attempt)
        return result

    async def _transaction(
        self, by_key: dict[EventKey, _Decoded], failed: dict[MemberKey, Failure], result: BatchResult
    ) -> None:
        async with self._engine.begin() as connection:
            claimable = [key for key, (event, _) in by_key.items() if _member_of(event) not in failed]
            fresh = await store.claim_events(connection, claimable)
            events = [event for key, (event, _) in by_key.items() if key in fresh]
            result.duplicates += len(claimable) - len(events)
            if not events and not failed:
                return
            batch = await self._load(connection, events, sorted(failed))
            events = await self._set_aside_quarantined(connection, batch, events, by_key, result)
            aside = {key: batch.contexts.pop(key) for key in failed if key in batch.contexts}
            decisions = self._apply(batch, events, by_key, result)
            quarantined = await self._quarantine_unsettleable(connection, aside, result)
            self._dead_letter_failed(by_key, failed, quarantined, result)
            await self._write(connection, batch, decisions, by_key, result)

    def _dead_letter_failed(
        self,
        by_key: dict[EventKey, _Decoded],
        failed: dict[MemberKey, Failure],
        quarantined: set[MemberKey],
        result: BatchResult,
    ) -> None:
        """The set-aside members' fresh events go to the dead-letter topic, unclaimed."""
        for key, (event, record) in by_key.items():
            failure = failed.get(_member_of(event))
            if failure is None:
                continue
            if key not in failure.fresh:
                result.duplicates += 1  # processed by an earlier transaction: nothing to undo
                continue
            detail = failure.detail if key == failure.event else f"{failure.detail} of the same member in this batch"
            if _member_of(event) in quarantined:
                detail += "; the member is quarantined"
            result.dead_letters.append((record, Rejection("processing_error", detail)))

    async def _set_aside_quarantined(
        self,
        connection: AsyncConnection,
        batch: _Batch,
        events: list[Event],
        by_key: dict[EventKey, _Decoded],
        result: BatchResult,
    ) -> list[Event]:
        """Dead-letters the events of quarantined members, unclaimed so they can be published again."""
        if not batch.quarantined:
            return events
        held = [event for event in events if _member_of(event) in batch.quarantined]
        for event in held:
            result.dead_letters.append((by_key[event.key][1], QUARANTINED))
        await store.unclaim_events(connection, [event.key for event in held])
        counts: dict[MemberKey, int] = {}
        for event in held:
            counts[_member_of(event)] = counts.get(_member_of(event), 0) + 1
        await store.count_quarantined_events(connection, counts)
        for key in batch.quarantined:
            batch.contexts.pop(key, None)
        return [event for event in events if _member_of(event) not in batch.quarantined]

    async def _quarantine_unsettleable(
        self, connection: AsyncConnection, aside: dict[MemberKey, MemberContext], result: BatchResult
    ) -> set[MemberKey]:
        """Settles each failed member's stored state alone: if even that fails, the state is at fault.

        Such a member is quarantined; a member whose state settles was failed by its events
        only, which are dead-lettered while the member carries on. Neither is written.
        """
        rows = []
        for key, context in sorted(aside.items()):
            try:
                settle(context, self._playbook.for_shop(key[0]))
            except Exception as error:
                detail = f"{describe(error)} while settling the member's stored state"
                log.error("engagement.member_quarantined", shop_id=key[0], error_type=type(error).__name__)
                rows.append((key, "processing_error", detail))
        await store.quarantine(connection, rows)
        result.quarantined += len(rows)
        return {key for key, _, _ in rows}

    async def _load(
        self, connection: AsyncConnection, events: Sequence[Event], also: Sequence[MemberKey] = ()
    ) -> _Batch:
        """Locks the batch's members (and ``also``) and loads their orders and the parked events it may release."""
        member_keys = sorted({(e.shop_id, e.member_id) for e in events} | set(also))
        members, quarantined = await store.lock_members_noting_quarantine(connection, member_keys)
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
        return _Batch(contexts=contexts, previously_parked={event.key for _, event in parked}, quarantined=quarantined)

    def _apply(
        self, batch: _Batch, events: Sequence[Event], by_key: dict[EventKey, _Decoded], result: BatchResult
    ) -> list[ActionDecision]:
        """Runs the pure domain event by event, in the batch's (per-partition) order.

        Raises ``MembersFailedError`` naming every member whose events or settling raised.
        """
        decisions: list[ActionDecision] = []
        failures: dict[MemberKey, tuple[str, EventKey | None]] = {}
        for event in events:
            key = _member_of(event)
            if key in failures:
                continue
            try:
                outcome = apply_event(batch.contexts[key], event, self._playbook.for_shop(event.shop_id))
            except Exception as error:  # contained to this member, never the batch
                failures[key] = (f"{describe(error)} while applying {event.type}", event.key)
                _log_failure("engagement.apply_failed", key, error)
                continue
            if outcome.rejected is not None:
                rejection = Rejection(outcome.rejected, "the order belongs to another member")
                result.dead_letters.append((by_key[event.key][1], rejection))
                continue
            result.accepted += 1
            result.parked += int(outcome.parked)
            decisions.extend(outcome.actions)
            batch.released.update(released.key for released in outcome.released)
        for key, context in batch.contexts.items():
            if key in failures:
                continue
            try:
                settle(context, self._playbook.for_shop(key[0]))
            except Exception as error:
                failures[key] = (f"{describe(error)} while settling the member", None)
                _log_failure("engagement.settle_failed", key, error)
        if failures:
            raise MembersFailedError(
                {
                    key: Failure(detail, failing, frozenset(e.key for e in events if _member_of(e) == key))
                    for key, (detail, failing) in failures.items()
                }
            )
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

    async def quarantine_member_of(self, record: ConsumerRecord[bytes, bytes], detail: str) -> int:
        """Quarantines the member a record is about (when it names one); returns 1 if it did."""
        event = decode(record.value, self._playbook, self._max_record_bytes)
        if isinstance(event, Rejection):
            return 0
        key = _member_of(event)
        log.error("engagement.member_quarantined", shop_id=key[0])
        async with self._engine.begin() as connection:
            await store.quarantine(connection, [(key, "processing_error", detail)])
        return 1


def _member_of(event: Event) -> MemberKey:
    return (event.shop_id, event.member_id)


def _log_failure(name: str, key: MemberKey, error: Exception) -> None:
    """The error's type and where it was raised; its message may quote member data, so it is left out."""
    log.error(
        name, shop_id=key[0], error_type=type(error).__name__, stack="".join(traceback.format_tb(error.__traceback__))
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
