"""One batch of records, one transaction: dedupe, load, apply the domain, write.

Where state changes: a unit of work (shared.store.unit_of_work) claims the batch's events
and locks and loads their members; the pure domain (shared.domain.engagement) applies the
events in memory; the unit of work then writes the results, the processed-event ids and
the outbox rows with set-based statements in a single transaction.

A failure while applying one member's events is that member's alone: the transaction
is rolled back and run again without the member's events, which go to the dead-letter
topic (``processing_error``); when the member's stored state itself cannot be settled,
the member is quarantined and its later events are dead-lettered (``member_quarantined``)
until an operator releases it. The rest of the batch always goes through.
"""

from __future__ import annotations

import asyncio
import functools
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from aiokafka.structs import ConsumerRecord

from services.engagement.decode import Rejection, decode
from shared.db.error_triage import describe
from shared.domain.engagement import MemberContext, apply_event, settle
from shared.domain.events import OrderPaid
from shared.domain.model import ActionDecision, Event
from shared.domain.playbook import Playbook, ShopPlaybook
from shared.store.unit_of_work import ParkedEvent, UnitOfWork, UnitsOfWork
from shared.usecases.incentive_inputs import attach_incentive_inputs

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
    decisions: Counter[str] = field(default_factory=Counter)  # incentive decisions by outcome
    coupons_redeemed: int = 0
    coupons_shared: int = 0

    def merge(self, other: BatchResult) -> BatchResult:
        """This result followed by ``other``'s (for a batch processed in parts)."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.parked += other.parked
        self.new_actions += other.new_actions
        self.dead_letters += other.dead_letters
        self.types += other.types
        self.quarantined += other.quarantined
        self.decisions += other.decisions
        self.coupons_redeemed += other.coupons_redeemed
        self.coupons_shared += other.coupons_shared
        return self


EventKey = tuple[str, str]
MemberKey = tuple[str, str]
_Decoded = tuple[Event, ConsumerRecord[bytes, bytes]]

PARKED_DECODED = 50_000  # parked events whose decoding is remembered

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
    playbooks: Callable[[str], ShopPlaybook]  # each shop's playbook, as in force when the batch began
    released: set[EventKey] = field(default_factory=set)
    quarantined: set[MemberKey] = field(default_factory=set)


class BatchProcessor:
    def __init__(self, units: UnitsOfWork, playbook: Playbook, max_record_bytes: int, lanes: int = 1) -> None:
        self._units = units
        self._lanes = max(1, lanes)
        # A parked event is read again by every batch about its order until it is released:
        # its decoding is remembered (events are immutable), until the playbook changes.
        self._decode_parked = functools.lru_cache(maxsize=PARKED_DECODED)(functools.partial(_decode_parked, playbook))
        self._playbook = playbook
        self._max_record_bytes = max_record_bytes

    def playbook_changed(self) -> None:
        """Forgets remembered decodings: a shop's new currency or business-time window may judge them otherwise."""
        self._decode_parked.cache_clear()

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
        """Applies a batch: its members are split into lanes, one transaction per lane, run side by side.

        A member's events always fall in the same lane, and lanes never share a member, so
        each lane locks its own rows and keeps its members' order of events; while one lane
        waits on PostgreSQL, another applies the domain. A lane that fails fails the batch
        (the consumer runs it again: lanes already committed find their events claimed).
        """
        result = BatchResult()
        lanes = self._split(self._decode_batch(records, result))
        if len(lanes) == 1:
            return result.merge(await self._process_lane(lanes[0]))
        outcomes = await asyncio.gather(*(self._process_lane(lane) for lane in lanes), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        for outcome in outcomes:
            assert isinstance(outcome, BatchResult)
            result.merge(outcome)
        return result

    def _split(self, by_key: dict[EventKey, _Decoded]) -> list[dict[EventKey, _Decoded]]:
        """The batch's events in ``lanes`` groups by member, in their batch order; empty lanes left out."""
        lanes: list[dict[EventKey, _Decoded]] = [{} for _ in range(self._lanes)]
        for key, decoded in by_key.items():
            event = decoded[0]
            lanes[zlib.crc32(f"{event.shop_id}:{event.member_id}".encode()) % self._lanes][key] = decoded
        return [lane for lane in lanes if lane] or [{}]

    async def _process_lane(self, by_key: dict[EventKey, _Decoded]) -> BatchResult:
        """One transaction over a lane's members.

        Members whose events fail are set aside and the transaction is run again without
        them, so each failing member costs one more attempt and never the batch.
        """
        result = BatchResult()
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
        async with self._units() as uow:
            claimable = [key for key, (event, _) in by_key.items() if _member_of(event) not in failed]
            fresh = await uow.claim_events(claimable)
            events = [event for key, (event, _) in by_key.items() if key in fresh]
            result.duplicates += len(claimable) - len(events)
            if not events and not failed:
                return
            batch = await self._load(uow, events, sorted(failed))
            events = self._set_aside_quarantined(uow, batch, events, by_key, result)
            await self._attach_incentive_inputs(uow, batch, events)
            aside = {key: batch.contexts.pop(key) for key in failed if key in batch.contexts}
            decisions = self._apply(batch, events, by_key, result)
            quarantined = self._quarantine_unsettleable(uow, batch, aside, result)
            self._dead_letter_failed(by_key, failed, quarantined, result)
            self._stage(uow, batch, decisions, by_key)
            _count_incentives(batch, result)
            result.new_actions = await uow.commit()

    async def _attach_incentive_inputs(self, uow: UnitOfWork, batch: _Batch, events: Sequence[Event]) -> None:
        """Budgets and other members' coupons, for the times and codes of the events (and parked ones) to apply."""
        pending = [event for context in batch.contexts.values() for event in context.pending]
        applied = [*events, *pending]
        codes = [
            (_member_of(event), code)
            for event in applied
            if isinstance(event.data, OrderPaid)
            for code in event.data.coupon_codes or ()
        ]
        earliest = min((event.time for event in applied), default=None)
        await attach_incentive_inputs(uow, batch.contexts, batch.playbooks, earliest, codes)

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

    def _set_aside_quarantined(
        self,
        uow: UnitOfWork,
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
        uow.unclaim(event.key for event in held)
        uow.count_quarantined_events(Counter(_member_of(event) for event in held))
        for key in batch.quarantined:
            batch.contexts.pop(key, None)
        return [event for event in events if _member_of(event) not in batch.quarantined]

    def _quarantine_unsettleable(
        self, uow: UnitOfWork, batch: _Batch, aside: dict[MemberKey, MemberContext], result: BatchResult
    ) -> set[MemberKey]:
        """Settles each failed member's stored state alone: if even that fails, the state is at fault.

        Such a member is quarantined; a member whose state settles was failed by its events
        only, which are dead-lettered while the member carries on. Neither is written.
        """
        rows = []
        for key, context in sorted(aside.items()):
            try:
                settle(context, batch.playbooks(key[0]))
            except Exception as error:
                detail = f"{describe(error)} while settling the member's stored state"
                log.error("engagement.member_quarantined", shop_id=key[0], error_type=type(error).__name__)
                rows.append((key, "processing_error", detail))
        uow.quarantine(rows)
        result.quarantined += len(rows)
        return {key for key, _, _ in rows}

    async def _load(self, uow: UnitOfWork, events: Sequence[Event], also: Sequence[MemberKey] = ()) -> _Batch:
        """Locks the batch's members (and ``also``) with their orders and the parked events the batch may release."""
        loaded = await uow.load_members(
            sorted({_member_of(e) for e in events} | set(also)),
            orders=sorted({(e.shop_id, e.order_id) for e in events if e.order_id is not None}),
        )
        previously_parked = set()
        for key, raw in loaded.parked:
            event = self._decode_parked(raw)
            if event is not None:  # another member's events about these orders stay parked
                loaded.contexts[key].pending.append(event)
                previously_parked.add(event.key)
        return _Batch(
            contexts=loaded.contexts,
            previously_parked=previously_parked,
            playbooks=functools.cache(self._playbook.for_shop),
            quarantined=loaded.quarantined,
        )

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
                outcome = apply_event(batch.contexts[key], event, batch.playbooks(event.shop_id))
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
                settle(context, batch.playbooks(key[0]))
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

    def _stage(
        self, uow: UnitOfWork, batch: _Batch, decisions: Sequence[ActionDecision], by_key: dict[EventKey, _Decoded]
    ) -> None:
        """Members, touched orders, ledger lines, parked and released events, actions: all written at commit."""
        uow.save(batch.contexts.values())
        uow.park(
            _parked_row(key, event, by_key[event.key][1])
            for key, context in batch.contexts.items()
            for event in context.pending
            if event.key not in batch.previously_parked
        )
        uow.release(sorted(batch.released & batch.previously_parked))
        uow.add_actions(decisions)

    async def quarantine_member_of(self, record: ConsumerRecord[bytes, bytes], detail: str) -> int:
        """Quarantines the member a record is about (when it names one); returns 1 if it did."""
        event = decode(record.value, self._playbook, self._max_record_bytes)
        if isinstance(event, Rejection):
            return 0
        key = _member_of(event)
        log.error("engagement.member_quarantined", shop_id=key[0])
        async with self._units() as uow:
            uow.quarantine([(key, "processing_error", detail)])
            await uow.commit()
        return 1


def _count_incentives(batch: _Batch, result: BatchResult) -> None:
    for context in batch.contexts.values():
        result.decisions.update(decision.outcome for decision in context.decisions)
        result.coupons_redeemed += sum(1 for change in context.coupon_changes if change.status == "redeemed")
        result.coupons_shared += context.shared_seen


def _member_of(event: Event) -> MemberKey:
    return (event.shop_id, event.member_id)


def _log_failure(name: str, key: MemberKey, error: Exception) -> None:
    """The error's type and where it was raised; its message may quote member data, so it is left out."""
    log.error(
        name, shop_id=key[0], error_type=type(error).__name__, stack="".join(traceback.format_tb(error.__traceback__))
    )


def _decode_parked(playbook: Playbook, raw: str) -> Event | None:
    """A parked event, or None (logged) if it no longer passes, e.g. after a shop's currency changed."""
    event = decode(raw.encode(), playbook, max_bytes=1 << 30)
    if isinstance(event, Rejection):
        log.error("engagement.parked_event_unreadable", reason=event.reason)
        return None
    return event


def _parked_row(key: MemberKey, event: Event, record: ConsumerRecord[bytes, bytes]) -> ParkedEvent:
    """The record's own bytes are kept: they are the event as published."""
    assert event.order_id is not None  # only events about an order are parked
    raw = (record.value or b"").decode()
    return ParkedEvent(key[0], key[1], event.order_id, event.source, event.id, event.type, event.time, raw)
