"""The unit of work over a set of members: lock and load them, then write all they changed in one commit.

Reads (claims, locks, loads) run at once inside the unit's transaction; writes are
collected and sent by ``commit`` as one set-based statement per kind, in a fixed order,
then the transaction commits. Leaving the ``async with`` block without ``commit``
rolls everything back, so a failure never leaves half a batch behind.

``UnitOfWork`` is the port the use cases depend on; ``SqlUnitOfWork`` is PostgreSQL's.
An in-memory one for service-layer tests lives with the tests.
"""

from __future__ import annotations

import abc
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.domain.budgets import BudgetBook
from shared.domain.campaign_waves import RULE, ConversionWindow, DueWave, WaveBatch
from shared.domain.decisions import MemberContext
from shared.domain.model import (
    ActionDecision,
    Coupon,
    CouponChange,
    Decision,
    LedgerEntry,
    Member,
    Order,
    UnredeemedCode,
)
from shared.domain.rfm import RfmEdges
from shared.store import (
    action_log,
    budget_spend,
    campaign_waves,
    decision_log,
    due_claims,
    event_log,
    manual_tags,
    member_rows,
    points_ledger,
    quarantine,
    rfm_edges,
    wallet,
)
from shared.store.bulk_sql import Key
from shared.store.event_log import EventKey, ParkedEvent
from shared.store.member_cache import CachedMember, MemberCache

__all__ = ["EventKey", "Key", "LoadedMembers", "ParkedEvent", "SqlUnitOfWork", "UnitOfWork", "UnitsOfWork"]


@dataclass(slots=True)
class LoadedMembers:
    """Locked members with their orders; ``parked`` are their parked events (JSON) about the orders asked for."""

    contexts: dict[Key, MemberContext]
    quarantined: set[Key] = field(default_factory=set)
    parked: list[tuple[Key, str]] = field(default_factory=list)


@dataclass(slots=True)
class Changes:
    """What a unit of work will write at commit."""

    members: dict[Key, MemberContext] = field(default_factory=dict)
    actions: dict[str, ActionDecision] = field(default_factory=dict)
    parked: list[ParkedEvent] = field(default_factory=list)
    released: list[EventKey] = field(default_factory=list)
    unclaimed: list[EventKey] = field(default_factory=list)
    quarantined: list[tuple[Key, str, str]] = field(default_factory=list)
    quarantined_events: Counter[Key] = field(default_factory=Counter)
    budgets: BudgetBook | None = None
    coupon_pass: list[tuple[str, CouponChange]] = field(default_factory=list)  # the scheduler's expiries, reminders
    # Decisions and coupons of members not loaded (a campaign wave's batch): written like the members' own.
    loose_decisions: list[Decision] = field(default_factory=list)
    loose_coupons: list[Coupon] = field(default_factory=list)
    wave_batches: list[WaveBatch] = field(default_factory=list)  # written set-based, after the rest

    def orders(self) -> list[tuple[str, Order]]:
        return [
            (key[0], context.orders[order_id])
            for key, context in self.members.items()
            for order_id in sorted(context.touched_orders)
        ]

    def ledger(self) -> list[tuple[Key, LedgerEntry]]:
        return [(key, entry) for key, context in self.members.items() for entry in context.new_ledger]

    def decisions(self) -> list[Decision]:
        return [decision for context in self.members.values() for decision in context.decisions] + self.loose_decisions

    def coupons(self) -> list[Coupon]:
        return [coupon for context in self.members.values() for coupon in context.new_coupons] + self.loose_coupons

    def coupon_changes(self) -> list[tuple[str, CouponChange]]:
        return [(key[0], change) for key, context in self.members.items() for change in context.coupon_changes]

    def unredeemed(self) -> list[tuple[str, UnredeemedCode]]:
        return [(key[0], share) for key, context in self.members.items() for share in context.unredeemed]


class UnitOfWork(abc.ABC):
    """One transaction over a set of members: reads at once, writes collected until ``commit``."""

    changes: Changes

    @abc.abstractmethod
    async def __aenter__(self) -> Self: ...

    @abc.abstractmethod
    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...

    @abc.abstractmethod
    async def claim_events(self, keys: Sequence[EventKey]) -> set[EventKey]:
        """Marks events processed; returns those no earlier transaction had processed."""

    @abc.abstractmethod
    async def load_members(
        self, keys: Sequence[Key], *, orders: Sequence[Key] = (), ledgers: bool = False, create: bool = True
    ) -> LoadedMembers:
        """Locks the members (created unless ``create`` is False) with every order of theirs.

        ``orders`` are (shop, order id)s the caller also needs: those of other members
        land in each context's ``shop_orders``, and parked events about them are returned.
        """

    @abc.abstractmethod
    async def claim_due_members(self, as_of: datetime, limit: int) -> dict[Key, MemberContext]:
        """Locks up to ``limit`` members due by ``as_of`` that nobody else holds, with orders and ledgers."""

    @abc.abstractmethod
    async def count_due(self, as_of: datetime) -> int:
        """Members with something due by ``as_of``, held by others or not."""

    @abc.abstractmethod
    async def lock_budgets(self, scopes: Sequence[Key], since: date) -> BudgetBook:
        """Locks these (shop, scope) budgets until commit and loads their spend from ``since``; written at commit."""

    @abc.abstractmethod
    async def find_coupons(self, keys: Sequence[Key]) -> dict[Key, Coupon]:
        """Coupons by (shop, code), whoever's wallet holds them."""

    @abc.abstractmethod
    async def claim_due_coupons(
        self, as_of: datetime, limit: int, leads: Mapping[str, timedelta | None], default_lead: timedelta | None
    ) -> list[Coupon]:
        """Locks up to ``limit`` issued coupons whose reminder (``lead`` before expiry, by shop) or expiry is due."""

    def pass_coupons(self, changes: Iterable[tuple[str, CouponChange]]) -> None:
        """The coupons' new status and reminder time, written at commit."""
        self.changes.coupon_pass.extend(changes)

    @abc.abstractmethod
    async def cancel_waves(self) -> int:
        """Marks the open waves of cancelled campaigns ``cancelled``; how many."""

    @abc.abstractmethod
    async def claim_pending_wave(self, as_of: datetime) -> DueWave | None:
        """Locks the earliest pending campaign wave due by ``as_of`` that nobody else holds."""

    @abc.abstractmethod
    async def start_wave(self, wave: DueWave, audience: ColumnElement[bool]) -> int:
        """Fixes the claimed wave's audience (a condition on ``members``) as its targets and starts it; its size."""

    @abc.abstractmethod
    async def running_waves(self, as_of: datetime) -> list[DueWave]:
        """Running waves due by ``as_of`` of campaigns not cancelled, earliest first."""

    @abc.abstractmethod
    async def claim_targets(
        self, wave: DueWave, limit: int, windows: Sequence[ConversionWindow], after: str = ""
    ) -> list[tuple[str, bool]]:
        """Claims up to ``limit`` open targets of the wave after member ``after``, gone at commit.

        Each comes with whether it converted (in the ``windows`` of earlier waves).
        """

    @abc.abstractmethod
    async def finish_wave(self, wave: DueWave) -> bool:
        """Marks the wave done if none of its targets is open (its campaign completed after its last wave)."""

    @abc.abstractmethod
    async def rfm_edges(self, shop_id: str) -> RfmEdges | None:
        """The shop's RFM edges, for a segment that names an RFM segment."""

    def add_decisions(self, decisions: Iterable[Decision]) -> None:
        """Decisions about members the unit did not load, written at commit."""
        self.changes.loose_decisions.extend(decisions)

    def add_coupons(self, coupons: Iterable[Coupon]) -> None:
        """Coupons for members the unit did not load, written at commit."""
        self.changes.loose_coupons.extend(coupons)

    def add_wave_batch(self, batch: WaveBatch) -> None:
        """A wave's decided batch, written at commit: members credited points like any, the rest set-based."""
        self.add_decisions(outcome.decision for outcome in batch.credited)
        self.add_coupons(outcome.coupon for outcome in batch.credited if outcome.coupon is not None)
        self.add_actions(outcome.action for outcome in batch.credited if outcome.action is not None)
        self.changes.wave_batches.append(batch)

    @abc.abstractmethod
    async def ledger_entry(self, key: Key, entry_id: str) -> LedgerEntry | None:
        """One line of a member's ledger, by entry id."""

    @abc.abstractmethod
    async def rfm_shops(self) -> dict[str, datetime | None]:
        """Every shop with members and when its RFM edges were computed (None: never)."""

    @abc.abstractmethod
    async def compute_rfm_edges(self, shops: Sequence[str], as_of: datetime) -> int:
        """Recomputes these shops' RFM edges as of ``as_of``; returns how many shops were updated."""

    @abc.abstractmethod
    async def release_quarantined(self, key: Key) -> dict[str, Any] | None:
        """Takes a member out of quarantine and makes it due now; the released row, or None."""

    @abc.abstractmethod
    async def set_manual_tag(self, key: Key, tag: str, expires_at: datetime | None) -> datetime | None:
        """Sets a ``manual.`` tag (or its new expiry); when it was set, or None when the member is unknown."""

    @abc.abstractmethod
    async def remove_manual_tag(self, key: Key, tag: str) -> bool:
        """Removes a ``manual.`` tag if carried; whether the member is known."""

    @abc.abstractmethod
    async def commit(self) -> list[str]:
        """Writes the changes and commits; returns the rules of the actions that were new."""

    def save(self, contexts: Iterable[MemberContext]) -> None:
        """Members to write back, with their touched orders and new ledger lines."""
        for context in contexts:
            self.changes.members[(context.member.shop_id, context.member.member_id)] = context

    def add_actions(self, decisions: Iterable[ActionDecision]) -> None:
        """Actions to log and queue; the same action id twice is one action."""
        for decision in decisions:
            self.changes.actions.setdefault(decision.action_id, decision)

    def park(self, rows: Iterable[ParkedEvent]) -> None:
        self.changes.parked.extend(rows)

    def release(self, keys: Iterable[EventKey]) -> None:
        """Parked events that have now been applied."""
        self.changes.released.extend(keys)

    def unclaim(self, keys: Iterable[EventKey]) -> None:
        """Claimed events to forget, so they can be published again."""
        self.changes.unclaimed.extend(keys)

    def quarantine(self, rows: Iterable[tuple[Key, str, str]]) -> None:
        """Members to quarantine as (key, reason, detail); they are taken off the schedule."""
        self.changes.quarantined.extend(rows)

    def count_quarantined_events(self, counts: Counter[Key]) -> None:
        self.changes.quarantined_events.update(counts)


UnitsOfWork = Callable[[], UnitOfWork]

_COMPANIONS = (decision_log.INSERT_DECISIONS, wallet.INSERT_COUPONS, wallet.CHANGE_COUPONS, wallet.INSERT_UNREDEEMED)


class SqlUnitOfWork(UnitOfWork):
    """A unit of work on one PostgreSQL connection and transaction."""

    def __init__(self, engine: AsyncEngine, cache: MemberCache | None = None) -> None:
        self._engine = engine
        self._cache = cache
        self._stack = AsyncExitStack()
        self._connection: AsyncConnection | None = None
        self.changes = Changes()

    @classmethod
    def factory(cls, engine: AsyncEngine, cache: MemberCache | None = None) -> UnitsOfWork:
        """Units on ``engine``; with a ``cache``, members are kept in memory between units (``MemberCache``)."""
        return lambda: cls(engine, cache)

    async def __aenter__(self) -> Self:
        self.changes = Changes()
        self._connection = await self._stack.enter_async_context(self._engine.connect())
        await self._connection.begin()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        connection, self._connection = self._connection, None
        try:
            if connection is not None and connection.in_transaction():
                await connection.rollback()
        finally:
            await self._stack.aclose()

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("the unit of work is not open")
        return self._connection

    async def claim_events(self, keys: Sequence[EventKey]) -> set[EventKey]:
        return await event_log.claim_events(self.connection, keys)

    async def load_members(
        self, keys: Sequence[Key], *, orders: Sequence[Key] = (), ledgers: bool = False, create: bool = True
    ) -> LoadedMembers:
        connection = self.connection
        members, loaded, quarantined = await self._lock_and_load(keys, create)
        parked = [(key, raw) for key, raw in await event_log.load_parked(connection, orders) if key in members]
        loaded.update(await member_rows.load_orders(connection, sorted(set(orders) - loaded.keys())))
        books = await points_ledger.load_ledgers(connection, list(members)) if ledgers else {}
        shop_orders: dict[str, dict[str, Order]] = {}
        for (shop, order_id), order in loaded.items():
            shop_orders.setdefault(shop, {})[order_id] = order
        contexts = {
            key: MemberContext(member=member, shop_orders=shop_orders.setdefault(key[0], {}), ledger=books.get(key))
            for key, member in members.items()
        }
        for (shop, _), order in loaded.items():
            owner = contexts.get((shop, order.member_id))
            if owner is not None:
                owner.orders[order.order_id] = order
        return LoadedMembers(contexts=contexts, quarantined=quarantined, parked=parked)

    async def _lock_and_load(
        self, keys: Sequence[Key], create: bool
    ) -> tuple[dict[Key, Member], dict[Key, Order], set[Key]]:
        """The locked members, their orders by (shop, order id), and which of them are quarantined.

        With a cache, only members whose row changed since this process last wrote it are read.
        """
        connection = self.connection
        if self._cache is None or not create:
            locked, held = await member_rows.lock_members(connection, keys, create=create)
            return locked, await member_rows.load_member_orders(connection, list(locked)), held
        stamps, quarantined = await member_rows.lock_member_stamps(connection, keys)
        members: dict[Key, Member] = {}
        orders: dict[Key, Order] = {}
        misses = []
        for key, stamp in stamps.items():
            entry = self._cache.take(key, stamp)
            if entry is None:
                misses.append(key)
                continue
            members[key] = entry.member
            orders.update(((key[0], order_id), order) for order_id, order in entry.orders.items())
        members.update(await member_rows.load_members(connection, misses))
        orders.update(await member_rows.load_member_orders(connection, misses))
        return members, orders, quarantined

    async def claim_due_members(self, as_of: datetime, limit: int) -> dict[Key, MemberContext]:
        connection = self.connection
        members = await due_claims.claim_due_members(connection, as_of, limit)
        keys = sorted(members)
        orders = await member_rows.load_member_orders(connection, keys)
        books = await points_ledger.load_ledgers(connection, keys)
        contexts = {key: MemberContext(member=member, ledger=books.get(key, [])) for key, member in members.items()}
        for (shop, _), order in orders.items():
            owner = contexts.get((shop, order.member_id))
            if owner is not None:
                owner.orders[order.order_id] = order
        return contexts

    async def count_due(self, as_of: datetime) -> int:
        return await due_claims.count_due(self.connection, as_of)

    async def cancel_waves(self) -> int:
        return await campaign_waves.cancel_waves(self.connection)

    async def claim_pending_wave(self, as_of: datetime) -> DueWave | None:
        return await campaign_waves.claim_pending_wave(self.connection, as_of)

    async def start_wave(self, wave: DueWave, audience: ColumnElement[bool]) -> int:
        return await campaign_waves.start_wave(self.connection, wave, audience)

    async def running_waves(self, as_of: datetime) -> list[DueWave]:
        return await campaign_waves.running_waves(self.connection, as_of)

    async def claim_targets(
        self, wave: DueWave, limit: int, windows: Sequence[ConversionWindow], after: str = ""
    ) -> list[tuple[str, bool]]:
        return await campaign_waves.claim_targets(self.connection, wave, limit, windows, after)

    async def finish_wave(self, wave: DueWave) -> bool:
        return await campaign_waves.finish_wave(self.connection, wave)

    async def rfm_edges(self, shop_id: str) -> RfmEdges | None:
        return await rfm_edges.load_edges(self.connection, shop_id)

    async def ledger_entry(self, key: Key, entry_id: str) -> LedgerEntry | None:
        return await points_ledger.ledger_entry(self.connection, key, entry_id)

    async def lock_budgets(self, scopes: Sequence[Key], since: date) -> BudgetBook:
        book = await budget_spend.lock_budgets(self.connection, scopes, since)
        self.changes.budgets = book
        return book

    async def find_coupons(self, keys: Sequence[Key]) -> dict[Key, Coupon]:
        return await wallet.find_coupons(self.connection, keys)

    async def claim_due_coupons(
        self, as_of: datetime, limit: int, leads: Mapping[str, timedelta | None], default_lead: timedelta | None
    ) -> list[Coupon]:
        return await wallet.claim_due_coupons(self.connection, as_of, limit, leads, default_lead)

    async def rfm_shops(self) -> dict[str, datetime | None]:
        return await rfm_edges.shops_with_members(self.connection)

    async def compute_rfm_edges(self, shops: Sequence[str], as_of: datetime) -> int:
        return await rfm_edges.compute_rfm_edges(self.connection, shops, as_of)

    async def release_quarantined(self, key: Key) -> dict[str, Any] | None:
        return await quarantine.release(self.connection, key)

    async def set_manual_tag(self, key: Key, tag: str, expires_at: datetime | None) -> datetime | None:
        return await manual_tags.set_manual_tag(self.connection, key, tag, expires_at)

    async def remove_manual_tag(self, key: Key, tag: str) -> bool:
        return await manual_tags.remove_manual_tag(self.connection, key, tag)

    async def commit(self) -> list[str]:
        connection, changes = self.connection, self.changes
        await member_rows.save_members(connection, [context.member for context in changes.members.values()])
        stamp = await member_rows.current_stamp(connection) if self._cache is not None and changes.members else 0
        await member_rows.save_orders(connection, changes.orders())
        await points_ledger.append_ledger(connection, changes.ledger())
        if changes.budgets is not None:
            await budget_spend.save_budgets(connection, changes.budgets)
        await wallet.pass_coupons(connection, changes.coupon_pass)
        await event_log.park_events(connection, changes.parked)
        await event_log.release_events(connection, sorted(set(changes.released)))
        await event_log.unclaim_events(connection, sorted(set(changes.unclaimed)))
        await quarantine.count_quarantined_events(connection, dict(changes.quarantined_events))
        # After the members are written: quarantine takes its members off the schedule.
        await quarantine.quarantine(connection, changes.quarantined)
        now = datetime.now(UTC)
        # The batch's decisions and wallet changes travel in the statement that logs its actions.
        parameters = {
            **decision_log.decision_parameters(changes.decisions(), now),
            **wallet.coupon_parameters(changes.coupons(), changes.coupon_changes(), changes.unredeemed()),
        }
        rules = await action_log.insert_actions(
            connection,
            [action_log.action_row(decision, now) for decision in changes.actions.values()],
            _COMPANIONS,
            parameters,
        )
        for batch in changes.wave_batches:
            rules += [RULE] * await campaign_waves.write_batch(connection, batch, now)
        await connection.commit()
        if self._cache is not None:
            for key, context in changes.members.items():
                self._cache.put(key, CachedMember(stamp, context.member, context.orders))
        self.changes = Changes()
        return rules
