"""A naive consumer of the same events, the way most services are written: a reference point for ``make bench``.

It reads the input topics and, for every record, opens one SQLAlchemy ORM session and one
transaction, and in it:

1. looks the event up in ``processed_events`` by primary key and skips it if found, else adds it;
2. loads the member by primary key ``FOR UPDATE`` (a new member if none), its orders with one
   query, the order the event names if it is another member's, and the parked events of
   that order;
3. applies the project's pure domain (``apply_event``, then ``settle``) as the service does;
4. writes back through the ORM: the member, the orders the event touched, new points-ledger
   lines, the event if it was parked, the parked events it released (deleted), and each new
   action with its outbox row (an action id already logged is skipped, as the service does);
5. commits. Kafka offsets are committed after each poll's records, as the service does.

So it does the same state changes as the service, one event at a time, with the ORM's
per-row statements instead of the service's set-based statements per batch. It leaves out
what the workload never needs (quarantine checks, dead-letter publishing) and does not
relay the outbox, which only makes it faster than a complete naive service would be.

Everything it takes from the project's code (the decoder, ``apply_event``, ``settle``, the
domain's member, order and context types, the action rows) is used in one section at the
top of this module; the rest is ORM code that reads the record's JSON (contract fields)
and the rows. The domain's event type is in flux, so the naive consumer never builds one:
``_to_event`` hands the record to the service's own contract decoder, the one place that
knows how an event is made, and the event goes to the domain untouched.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped

from services.engagement.decode import decode
from shared.db.schema import (
    actions,
    coupons,
    decisions,
    members,
    orders,
    outbox,
    pending_events,
    points_ledger,
    processed_events,
    unredeemed_codes,
)
from shared.domain.engagement import MemberContext, apply_event, settle
from shared.domain.events import OrderPaid
from shared.domain.model import Coupon, CouponChange, Decision, Event, Member, Order, UnredeemedCode
from shared.domain.playbook import Playbook
from shared.store.action_log import action_row
from shared.store.member_rows import member_from_row, member_to_row, order_from_row, order_to_row
from tests.support import KAFKA, partitions_of

# --- The project's code, as far as the naive consumer uses it: all of it in this section -------------------------


def _to_event(raw: bytes, playbook: Playbook) -> Event | None:
    """The domain event of a record, made by the service's decoder (None: the contract rejects it)."""
    event = decode(raw, playbook, max_bytes=1 << 30)
    return event if isinstance(event, Event) else None


def _domain(kind: type[Any], row: Any) -> Any:
    """A domain Member or Order from an ORM row: every dataclass field from the column of its name.

    The write side's row conversion reads the JSON documents into the domain's records.
    """
    values = [copy.deepcopy(getattr(row, f.name)) for f in fields(kind)]
    return member_from_row(values) if kind is Member else order_from_row(values)


def _coupon(row: Any) -> Coupon:
    """A domain Coupon from its ORM row."""
    return Coupon(**{f.name: getattr(row, f.name) for f in fields(Coupon)})


def _store(obj: Any, row: Any) -> None:
    """Copies every field of a domain Member or Order onto its ORM row, its records as the rows' JSON."""
    values = member_to_row(obj) if isinstance(obj, Member) else order_to_row(obj)
    for f, value in zip(fields(obj), values, strict=True):
        setattr(row, f.name, copy.deepcopy(value))


@dataclass
class _Applied:
    """What the domain made of one event, for the ORM to write."""

    member: Any  # the domain Member, to copy onto its row
    orders: dict[str, Any]  # the domain Orders the event touched, by order id
    ledger: list[Any]  # new points-ledger lines (LedgerEntry)
    parked: bool  # the event waits for its order
    released: list[int]  # positions in ``parked`` of the parked events it let through
    actions: list[tuple[Any, ...]]  # new actions, as the write side makes their rows (action log column order)
    rejected: bool  # the event names another member's order
    coupons: list[Coupon]  # coupons issued
    changes: list[CouponChange]  # coupons redeemed
    unredeemed: list[UnredeemedCode]  # codes the payment named without redeeming
    decisions: list[Decision]  # incentive decisions


def _apply_domain(
    playbook: Playbook,
    key: tuple[str, str],
    member_row: Any | None,
    order_rows: Sequence[Any],
    other_order_row: Any | None,
    parked: Sequence[bytes],
    event: Event,
    coupons: dict[str, Coupon],
) -> _Applied:
    """``apply_event`` then ``settle``, on the member as the rows hold it, as the service does."""
    context = MemberContext(
        member=_domain(Member, member_row) if member_row is not None else Member(shop_id=key[0], member_id=key[1]),
        shop_coupons=coupons,
    )
    for row in order_rows:
        order = _domain(Order, row)
        context.orders[order.order_id] = context.shop_orders[order.order_id] = order
    if other_order_row is not None:
        other = _domain(Order, other_order_row)
        context.shop_orders[other.order_id] = other
    positions: dict[int, int] = {}  # id() of a parked event given to the domain -> its position
    for position, raw in enumerate(parked):
        waiting = _to_event(raw, playbook)
        if waiting is not None:
            context.pending.append(waiting)
            positions[id(waiting)] = position
    shop = playbook.for_shop(key[0])
    outcome = apply_event(context, event, shop)
    settle(context, shop)
    now = datetime.now(UTC)
    unique = {decision.action_id: decision for decision in outcome.actions}
    return _Applied(
        member=context.member,
        orders={order_id: context.orders[order_id] for order_id in context.touched_orders},
        ledger=list(context.new_ledger),
        parked=outcome.parked,
        released=[positions[id(done)] for done in outcome.released if id(done) in positions],
        actions=[action_row(decision, now) for decision in unique.values()],
        rejected=outcome.rejected is not None,
        coupons=list(context.new_coupons),
        changes=list(context.coupon_changes),
        unredeemed=list(context.unredeemed),
        decisions=list(context.decisions),
    )


# --- ORM mapping (typed only where the code reads or sets a column by name) ----------------------------------------


class _Base(DeclarativeBase):
    pass


class MemberRow(_Base):
    __table__ = members
    updated_at: Mapped[Any]


class OrderRow(_Base):
    __table__ = orders
    order_id: Mapped[str]
    updated_at: Mapped[Any]


class ProcessedRow(_Base):
    __table__ = processed_events


class PendingRow(_Base):
    __table__ = pending_events
    event: Mapped[dict[str, Any]]


class LedgerRow(_Base):
    __table__ = points_ledger


class ActionRow(_Base):
    __table__ = actions


class CouponRow(_Base):
    __table__ = coupons
    status: Mapped[str]
    order_id: Mapped[str | None]
    redeemed_at: Mapped[Any]


class UnredeemedRow(_Base):
    __table__ = unredeemed_codes


class DecisionRow(_Base):
    __table__ = decisions


class OutboxRow(_Base):
    __table__ = outbox


@dataclass
class NaiveResult:
    events: int = 0  # records handled (each in its own transaction)
    duplicates: int = 0
    rejected: int = 0
    parked: int = 0  # events that waited for their order, as the service parks them
    actions: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


class NaiveConsumer:
    def __init__(self, database_url: str, playbook: Playbook) -> None:
        self._engine = create_async_engine(
            database_url,
            json_serializer=lambda value: orjson.dumps(value, default=str).decode(),
            json_deserializer=orjson.loads,
        )
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        self._playbook = playbook
        self.result = NaiveResult()

    async def close(self) -> None:
        await self._engine.dispose()

    async def handle(self, raw: bytes) -> None:
        """One record, one session, one transaction."""
        self.result.events += 1
        envelope = orjson.loads(raw)
        event = _to_event(raw, self._playbook)
        if event is None:
            self.result.rejected += 1
            return
        async with self._sessions() as session, session.begin():
            if await session.get(ProcessedRow, (envelope["source"], envelope["id"])) is not None:
                self.result.duplicates += 1
                return
            session.add(ProcessedRow(source=envelope["source"], event_id=envelope["id"]))
            await self._apply(session, envelope, event, raw)

    async def _apply(self, session: AsyncSession, envelope: dict[str, Any], event: Event, raw: bytes) -> None:
        shop, member_id = envelope["shopid"], envelope["memberid"]
        order_id = envelope["data"].get("order_id")
        member_row = await session.get(MemberRow, (shop, member_id), with_for_update=True)
        order_rows = {
            row.order_id: row
            for row in await session.scalars(
                select(OrderRow).where(orders.c.shop_id == shop, orders.c.member_id == member_id)
            )
        }
        other = None
        if order_id is not None and order_id not in order_rows:
            other = await session.get(OrderRow, (shop, order_id))
        parked: list[PendingRow] = []
        if order_id is not None:
            parked = list(
                await session.scalars(
                    select(PendingRow)
                    .where(
                        pending_events.c.shop_id == shop,
                        pending_events.c.order_id == order_id,
                        pending_events.c.member_id == member_id,
                    )
                    .order_by(pending_events.c.event_time, pending_events.c.seq)
                )
            )

        named: dict[str, CouponRow] = {}
        if isinstance(event.data, OrderPaid):
            for code in event.data.coupon_codes or ():
                row = await session.get(CouponRow, (shop, code), with_for_update=True)
                if row is not None:
                    named[code] = row
        applied = _apply_domain(
            self._playbook,
            (shop, member_id),
            member_row,
            list(order_rows.values()),
            other,
            [orjson.dumps(row.event) for row in parked],
            event,
            {code: _coupon(row) for code, row in named.items()},
        )
        self.result.rejected += int(applied.rejected)

        if member_row is None:
            member_row = MemberRow()
            session.add(member_row)
        else:
            member_row.updated_at = func.now()
        _store(applied.member, member_row)
        for touched, order in applied.orders.items():
            order_row = order_rows.get(touched)
            if order_row is None:
                order_row = OrderRow(shop_id=shop)
                session.add(order_row)
            else:
                order_row.updated_at = func.now()
            _store(order, order_row)
        for entry in applied.ledger:
            session.add(
                LedgerRow(
                    shop_id=shop,
                    member_id=member_id,
                    entry_id=entry.entry_id,
                    kind=entry.kind,
                    points=entry.points,
                    shortfall=entry.shortfall,
                    at=entry.at,
                    expires_at=entry.expires_at,
                )
            )
        if applied.parked:
            self.result.parked += 1
            session.add(
                PendingRow(
                    shop_id=shop,
                    member_id=member_id,
                    order_id=order_id,
                    source=envelope["source"],
                    event_id=envelope["id"],
                    event_type=envelope["type"],
                    event_time=datetime.fromisoformat(envelope["time"]),
                    event=orjson.loads(raw),
                )
            )
        for position in applied.released:
            await session.delete(parked[position])
        for coupon in applied.coupons:
            named[coupon.code] = CouponRow(**{f.name: getattr(coupon, f.name) for f in fields(coupon)})
            session.add(named[coupon.code])
        for change in applied.changes:
            row = named[change.code]
            row.status, row.order_id, row.redeemed_at = change.status, change.order_id, change.redeemed_at
        for unredeemed in applied.unredeemed:
            values = {f.name: getattr(unredeemed, f.name) for f in fields(unredeemed)}
            session.add(UnredeemedRow(shop_id=shop, **values))
        decided_at = datetime.now(UTC)
        for decision in applied.decisions:
            values = {f.name: getattr(decision, f.name) for f in fields(decision)}
            session.add(DecisionRow(**values, decided_at=decided_at))
        await self._add_actions(session, applied.actions)

    async def _add_actions(self, session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> None:
        """Each action not logged before, with its outbox row (values in the action log's column order)."""
        if not rows:
            return
        ids = [row[0] for row in rows]
        known = set(await session.scalars(select(actions.c.action_id).where(actions.c.action_id.in_(ids))))
        for action_id, shop_id, member_id, rule, category, occurred_at, created_at, payload in rows:
            if action_id in known:
                continue
            session.add(
                ActionRow(
                    action_id=action_id,
                    shop_id=shop_id,
                    member_id=member_id,
                    rule=rule,
                    category=category,
                    occurred_at=occurred_at,
                    created_at=created_at,
                    payload=payload,
                )
            )
            session.add(
                OutboxRow(
                    stream="actions",
                    key=f"{shop_id}:{member_id}",
                    payload=orjson.dumps(payload, default=str).decode(),
                    event_time=occurred_at,
                )
            )
            self.result.actions += 1


async def run(
    topics: Sequence[str],
    group: str,
    database_url: str,
    playbook: Playbook,
    expected: int,
    *,
    on_done: Callable[[], Awaitable[None]] | None = None,
) -> NaiveResult:
    """Consumes ``topics`` from the start until ``expected`` records are handled and their offsets committed.

    Partitions are assigned rather than subscribed to, so no group join is timed; the
    clock runs from the first poll to the last commit. ``on_done`` runs then, while the
    consumer's database connection is still open.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    naive = NaiveConsumer(database_url, playbook)
    await consumer.start()
    try:
        partitions = await partitions_of(topics)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started = time.perf_counter()
        while naive.result.events < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                for record in records:
                    await naive.handle(record.value or b"")
            if batches:
                await consumer.commit(
                    {TopicPartition(p.topic, p.partition): records[-1].offset + 1 for p, records in batches.items()}
                )
        naive.result.seconds = time.perf_counter() - started
        if on_done is not None:
            await on_done()
    finally:
        await consumer.stop()
        await naive.close()
    return naive.result
