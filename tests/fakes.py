"""An in-memory unit of work, so the use cases get fast tests without PostgreSQL or Kafka.

It keeps what ``SqlUnitOfWork`` keeps, with the same visible rules: reads are copies,
nothing is stored until ``commit``, leaving without ``commit`` forgets everything, an
action id is logged once and only new actions reach the outbox. Locks are not modelled:
service-layer tests run one unit of work at a time.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from sqlalchemy import ColumnElement

from shared.domain.budgets import BudgetBook, BudgetKey, SpendRow
from shared.domain.campaign_waves import ConversionWindow, DueWave
from shared.domain.decisions import MemberContext
from shared.domain.model import ActionDecision, Coupon, Decision, LedgerEntry, Member, Order, UnredeemedCode
from shared.domain.rfm import RfmEdges
from shared.store.unit_of_work import Changes, EventKey, Key, LoadedMembers, ParkedEvent, UnitOfWork, UnitsOfWork


class _Removed:
    """A manual tag removed in this unit of work."""


_REMOVED = _Removed()


@dataclass(slots=True)
class InMemoryStore:
    """The tables a unit of work reads and writes."""

    members: dict[Key, Member] = field(default_factory=dict)
    orders: dict[Key, Order] = field(default_factory=dict)  # by (shop, order id)
    ledgers: dict[Key, list[LedgerEntry]] = field(default_factory=dict)
    processed: set[EventKey] = field(default_factory=set)
    parked: list[ParkedEvent] = field(default_factory=list)
    actions: dict[str, ActionDecision] = field(default_factory=dict)
    outbox: list[ActionDecision] = field(default_factory=list)
    quarantined: dict[Key, dict[str, Any]] = field(default_factory=dict)
    rfm_computed: dict[str, datetime] = field(default_factory=dict)
    manual_tags: dict[Key, dict[str, datetime | None]] = field(default_factory=dict)  # tag -> expiry
    coupons: dict[Key, Coupon] = field(default_factory=dict)  # by (shop, code)
    unredeemed: dict[tuple[str, str, str], UnredeemedCode] = field(default_factory=dict)  # by (shop, code, order)
    decisions: dict[str, Decision] = field(default_factory=dict)
    budget_spend: dict[BudgetKey, SpendRow] = field(default_factory=dict)
    commits: int = 0

    def units(self) -> UnitsOfWork:
        return lambda: InMemoryUnitOfWork(self)


class InMemoryUnitOfWork(UnitOfWork):
    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.changes = Changes()
        self._claimed: set[EventKey] = set()
        self._created: dict[Key, Member] = {}
        self._tagged: dict[tuple[Key, str], datetime | _Removed | None] = {}

    async def __aenter__(self) -> Self:
        self.changes, self._claimed, self._created, self._tagged = Changes(), set(), {}, {}
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.changes, self._claimed, self._created, self._tagged = Changes(), set(), {}, {}

    async def claim_events(self, keys: Sequence[EventKey]) -> set[EventKey]:
        fresh = set(keys) - self.store.processed - self._claimed
        self._claimed |= fresh
        return fresh

    def _member(self, key: Key, create: bool) -> Member | None:
        member = self.store.members.get(key) or self._created.get(key)
        if member is None and create:
            member = self._created[key] = Member(shop_id=key[0], member_id=key[1])
        return copy.deepcopy(member)

    def _orders_of(self, key: Key) -> dict[str, Order]:
        return {
            order_id: copy.deepcopy(order)
            for (shop, order_id), order in self.store.orders.items()
            if shop == key[0] and order.member_id == key[1]
        }

    async def load_members(
        self, keys: Sequence[Key], *, orders: Sequence[Key] = (), ledgers: bool = False, create: bool = True
    ) -> LoadedMembers:
        loaded = LoadedMembers(contexts={})
        shop_orders: dict[str, dict[str, Order]] = {}
        for key in sorted(set(keys)):
            member = self._member(key, create)
            if member is None:
                continue
            own = self._orders_of(key)
            shared = shop_orders.setdefault(key[0], {})
            shared.update(own)
            book = copy.deepcopy(self.store.ledgers.get(key, [])) if ledgers else None
            loaded.contexts[key] = MemberContext(member=member, orders=own, shop_orders=shared, ledger=book)
            if key in self.store.quarantined:
                loaded.quarantined.add(key)
        for shop, order_id in orders:
            order = self.store.orders.get((shop, order_id))
            if order is not None and order_id not in shop_orders.setdefault(shop, {}):
                shop_orders[shop][order_id] = copy.deepcopy(order)
        wanted = set(orders)
        for row in sorted(self.store.parked, key=lambda row: row.event_time):
            key = (row.shop_id, row.member_id)
            if (row.shop_id, row.order_id) in wanted and key in loaded.contexts:
                loaded.parked.append((key, row.event))
        return loaded

    async def claim_due_members(self, as_of: datetime, limit: int) -> dict[Key, MemberContext]:
        due = sorted(
            (m for m in self.store.members.values() if m.next_due_at is not None and m.next_due_at <= as_of),
            key=lambda m: m.next_due_at or as_of,
        )[:limit]
        keys = [(m.shop_id, m.member_id) for m in due]
        loaded = await self.load_members(keys, ledgers=True, create=False)
        for context in loaded.contexts.values():
            context.shop_orders = {}
        return loaded.contexts

    async def count_due(self, as_of: datetime) -> int:
        return sum(1 for m in self.store.members.values() if m.next_due_at is not None and m.next_due_at <= as_of)

    async def lock_budgets(self, scopes: Sequence[Key], since: date) -> BudgetBook:
        book = BudgetBook(since=dict.fromkeys(scopes, since))
        for (shop, scope, start), row in self.store.budget_spend.items():
            if (shop, scope) in book.since and start >= since:
                book.spend[(shop, scope, start)] = copy.deepcopy(row)
        self.changes.budgets = book
        return book

    async def find_coupons(self, keys: Sequence[Key]) -> dict[Key, Coupon]:
        return {key: copy.deepcopy(self.store.coupons[key]) for key in keys if key in self.store.coupons}

    async def claim_due_coupons(
        self, as_of: datetime, limit: int, leads: Mapping[str, timedelta | None], default_lead: timedelta | None
    ) -> list[Coupon]:
        def due(coupon: Coupon) -> bool:
            lead = leads.get(coupon.shop_id, default_lead)
            reminder = coupon.reminded_at is None and lead is not None and coupon.expires_at - lead <= as_of
            return coupon.status == "issued" and (coupon.expires_at <= as_of or reminder)

        found = sorted((c for c in self.store.coupons.values() if due(c)), key=lambda c: c.expires_at)
        return [copy.deepcopy(coupon) for coupon in found[:limit]]

    async def cancel_waves(self) -> int:
        return 0

    async def claim_pending_wave(self, as_of: datetime) -> DueWave | None:
        return None  # campaigns are tested on PostgreSQL

    async def start_wave(self, wave: DueWave, audience: ColumnElement[bool]) -> int:
        raise NotImplementedError("campaign waves run on PostgreSQL only")

    async def running_waves(self, as_of: datetime) -> list[DueWave]:
        return []

    async def claim_targets(
        self, wave: DueWave, limit: int, windows: Sequence[ConversionWindow], after: str = ""
    ) -> list[tuple[str, bool]]:
        raise NotImplementedError("campaign waves run on PostgreSQL only")

    async def finish_wave(self, wave: DueWave) -> bool:
        raise NotImplementedError("campaign waves run on PostgreSQL only")

    async def rfm_edges(self, shop_id: str) -> RfmEdges | None:
        return None

    async def ledger_entry(self, key: Key, entry_id: str) -> LedgerEntry | None:
        return next((e for e in self.store.ledgers.get(key, []) if e.entry_id == entry_id), None)

    async def rfm_shops(self) -> dict[str, datetime | None]:
        return {shop: self.store.rfm_computed.get(shop) for shop, _ in self.store.members}

    async def compute_rfm_edges(self, shops: Sequence[str], as_of: datetime) -> int:
        for shop in shops:
            self.store.rfm_computed[shop] = as_of
        return len(shops)

    async def release_quarantined(self, key: Key) -> dict[str, Any] | None:
        released = self.store.quarantined.pop(key, None)
        if released is not None and key in self.store.members:
            self.store.members[key].next_due_at = datetime.now(UTC)  # due at once, as the SQL does
        return released

    async def set_manual_tag(self, key: Key, tag: str, expires_at: datetime | None) -> datetime | None:
        if key not in self.store.members:
            return None
        self._tagged[(key, tag)] = expires_at
        return datetime.now(UTC)

    async def remove_manual_tag(self, key: Key, tag: str) -> bool:
        self._tagged[(key, tag)] = _REMOVED
        return key in self.store.members

    async def commit(self) -> list[str]:
        store, changes = self.store, self.changes
        store.processed |= self._claimed
        for key, context in changes.members.items():
            store.members[key] = copy.deepcopy(context.member)
        for shop, order in changes.orders():
            store.orders[(shop, order.order_id)] = copy.deepcopy(order)
        for key, entry in changes.ledger():
            book = store.ledgers.setdefault(key, [])
            if any(line.entry_id == entry.entry_id for line in book):
                raise ValueError(f"ledger line {entry.entry_id!r} booked twice")
            book.append(entry)
        for coupon in changes.coupons():
            store.coupons.setdefault((coupon.shop_id, coupon.code), copy.deepcopy(coupon))
        for shop, change in changes.coupon_changes():
            stored = store.coupons[(shop, change.code)]
            stored.status, stored.order_id, stored.redeemed_at = change.status, change.order_id, change.redeemed_at
        for shop, share in changes.unredeemed():
            store.unredeemed.setdefault((shop, share.code, share.order_id), share)
        for shop, change in changes.coupon_pass:
            stored = store.coupons[(shop, change.code)]
            stored.status, stored.reminded_at = change.status, change.reminded_at
        for decision in changes.decisions():
            store.decisions.setdefault(decision.decision_id, decision)
        if changes.budgets is not None:
            for budget_key in changes.budgets.changed:
                store.budget_spend[budget_key] = copy.deepcopy(changes.budgets.spend[budget_key])
        known = {(row.source, row.event_id) for row in store.parked}
        store.parked += [row for row in changes.parked if (row.source, row.event_id) not in known]
        released = set(changes.released)
        store.parked = [row for row in store.parked if (row.source, row.event_id) not in released]
        store.processed -= set(changes.unclaimed)
        for key, count in Counter(changes.quarantined_events).items():
            if key in store.quarantined:
                store.quarantined[key]["events"] += count
        for key, reason, detail in changes.quarantined:
            store.quarantined.setdefault(key, {"reason": reason, "detail": detail, "events": 0})
            if key in store.members:
                store.members[key].next_due_at = None
        rules = []
        for action_id, action in changes.actions.items():
            if action_id not in store.actions:
                store.actions[action_id] = action
                store.outbox.append(action)
                rules.append(action.rule)
        for (key, tag), expiry in self._tagged.items():
            tags = store.manual_tags.setdefault(key, {})
            if isinstance(expiry, _Removed):
                tags.pop(tag, None)
            else:
                tags[tag] = expiry
        self._tagged = {}
        store.commits += 1
        self.changes, self._claimed, self._created = Changes(), set(), {}
        return rules
