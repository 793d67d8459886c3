"""Member state in SQL: set-based loads and writes, a few statements per batch.

Shared by the event path (the engagement consumer) and the scheduler.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.engine import dump_json
from shared.db.schema import actions, members, orders, pending_events, points_ledger
from shared.domain import points
from shared.domain.model import LedgerEntry, Member, Order

MemberKey = tuple[str, str]
OrderKey = tuple[str, str]
EventKey = tuple[str, str]

_MEMBER_FIELDS = [f.name for f in fields(Member)]
_ORDER_FIELDS = [f.name for f in fields(Order)]


def _columns(keys: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    ordered = sorted(set(keys))
    return {"a": [k[0] for k in ordered], "b": [k[1] for k in ordered]}


_UNNEST = "unnest(CAST(:a AS text[]), CAST(:b AS text[]))"


async def claim_events(connection: AsyncConnection, keys: Sequence[EventKey]) -> set[EventKey]:
    """Records the events as processed; returns those no earlier transaction had processed.

    A concurrent transaction claiming the same event waits on the primary key and, once
    the first commits, gets nothing back: a redelivered event is applied exactly once.
    """
    if not keys:
        return set()
    rows = await connection.execute(
        text(
            f"INSERT INTO processed_events (source, event_id) SELECT * FROM {_UNNEST} AS k(s, i) "
            "ORDER BY 1, 2 ON CONFLICT DO NOTHING RETURNING source, event_id"
        ),
        _columns(keys),
    )
    return {(row[0], row[1]) for row in rows}


async def lock_members(connection: AsyncConnection, keys: Sequence[MemberKey]) -> dict[MemberKey, Member]:
    """Creates missing member rows and locks them all, in key order so instances never deadlock."""
    locked, _ = await lock_members_noting_quarantine(connection, keys)
    return locked


async def lock_members_noting_quarantine(
    connection: AsyncConnection, keys: Sequence[MemberKey]
) -> tuple[dict[MemberKey, Member], set[MemberKey]]:
    """``lock_members``, and which of them are quarantined, in the same statement."""
    if not keys:
        return {}, set()
    params = _columns(keys)
    await connection.execute(
        text(
            f"INSERT INTO members (shop_id, member_id) SELECT * FROM {_UNNEST} AS k(s, m) "
            "ORDER BY 1, 2 ON CONFLICT DO NOTHING"
        ),
        params,
    )
    columns = ", ".join(f"m.{name}" for name in _MEMBER_FIELDS)
    rows = await connection.execute(
        text(
            f"SELECT {columns}, q.shop_id IS NOT NULL FROM members m JOIN {_UNNEST} AS k(shop_id, member_id) "
            "USING (shop_id, member_id) LEFT JOIN quarantined_members q USING (shop_id, member_id) "
            "ORDER BY m.shop_id, m.member_id FOR UPDATE OF m"
        ),
        params,
    )
    locked: dict[MemberKey, Member] = {}
    quarantined: set[MemberKey] = set()
    for row in rows:
        member = _member(row[:-1])
        key = (member.shop_id, member.member_id)
        locked[key] = member
        if row[-1]:
            quarantined.add(key)
    return locked, quarantined


def _member(row: Any) -> Member:
    member = Member(**dict(zip(_MEMBER_FIELDS, row, strict=True)))
    member.rewarded_tiers = list(member.rewarded_tiers)
    member.points_expiries = list(member.points_expiries)
    return member


async def load_orders(connection: AsyncConnection, keys: Sequence[OrderKey]) -> dict[OrderKey, Order]:
    """Orders by (shop, order id): those the batch names that are not its members' own."""
    return await _load_orders(connection, keys, "order_id")


async def load_member_orders(connection: AsyncConnection, keys: Sequence[MemberKey]) -> dict[OrderKey, Order]:
    """Every order of these members: tier decisions need their figures as of a business time."""
    return await _load_orders(connection, keys, "member_id")


async def _load_orders(connection: AsyncConnection, keys: Sequence[tuple[str, str]], by: str) -> dict[OrderKey, Order]:
    if not keys:
        return {}
    columns = ", ".join(f"o.{name}" for name in _ORDER_FIELDS)
    rows = await connection.execute(
        text(f"SELECT o.shop_id, {columns} FROM orders o JOIN {_UNNEST} AS k(shop_id, {by}) USING (shop_id, {by})"),
        _columns(keys),
    )
    return _orders(rows)


def _orders(rows: Iterable[Any]) -> dict[OrderKey, Order]:
    loaded = {}
    for row in rows:
        order = Order(**dict(zip(_ORDER_FIELDS, row[1:], strict=True)))
        order.care_done = list(order.care_done)
        loaded[(row[0], order.order_id)] = order
    return loaded


async def load_pending(connection: AsyncConnection, keys: Sequence[OrderKey]) -> list[tuple[MemberKey, str]]:
    """Parked events about these orders as (member key, event JSON), oldest business time first.

    Only an event about its order can release a parked event, so a batch loads just those.
    """
    if not keys:
        return []
    rows = await connection.execute(
        text(
            f"SELECT p.shop_id, p.member_id, p.event::text FROM pending_events p "
            f"JOIN {_UNNEST} AS k(shop_id, order_id) USING (shop_id, order_id) "
            "ORDER BY p.event_time, p.seq"
        ),
        _columns(keys),
    )
    return [((row[0], row[1]), row[2]) for row in rows]


def _array_type(column: Column[Any]) -> str:
    """The PostgreSQL array type a column's values travel in; JSON and arrays go as text."""
    kind = column.type
    if isinstance(kind, (JSONB, ARRAY)):
        return "text[]"
    return f"{kind.compile(dialect=postgresql.dialect())}[]"  # type: ignore[no-untyped-call]


def _unnest_insert(table: Table, names: Sequence[str]) -> str:
    """``INSERT ... SELECT FROM unnest(arrays)``: one statement and one parameter per column."""
    selects = []
    for name in names:
        column = table.c[name]
        if isinstance(column.type, JSONB):
            selects.append(f"u.{name}::jsonb")
        elif isinstance(column.type, ARRAY):
            selects.append(f"ARRAY(SELECT jsonb_array_elements_text(u.{name}::jsonb))")
        else:
            selects.append(f"u.{name}")
    arrays = ", ".join(f"CAST(:{name} AS {_array_type(table.c[name])})" for name in names)
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(selects)} "
        f"FROM unnest({arrays}) AS u({', '.join(names)})"
    )


def _arrays(table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {}
    for index, name in enumerate(names):
        values = [row[index] for row in rows]
        if isinstance(table.c[name].type, (JSONB, ARRAY)):
            # A str is taken to be JSON text already (e.g. a record's original bytes).
            values = [value if isinstance(value, str) else dump_json(value) for value in values]
        params[name] = values
    return params


def _upsert(table: Table, names: Sequence[str], keys: Sequence[str]) -> str:
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name not in keys)
    return f"{_unnest_insert(table, names)} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}, updated_at = now()"


_MEMBER_UPSERT = text(_upsert(members, _MEMBER_FIELDS, ["shop_id", "member_id"]))
_ORDER_COLUMNS = ["shop_id", *_ORDER_FIELDS]
_ORDER_UPSERT = text(_upsert(orders, _ORDER_COLUMNS, ["shop_id", "order_id"]))


async def save_members(connection: AsyncConnection, rows: Iterable[Member]) -> None:
    values = [[getattr(member, name) for name in _MEMBER_FIELDS] for member in rows]
    if values:
        await connection.execute(_MEMBER_UPSERT, _arrays(members, _MEMBER_FIELDS, values))


async def save_orders(connection: AsyncConnection, rows: Iterable[tuple[str, Order]]) -> None:
    values = [[shop, *(getattr(order, name) for name in _ORDER_FIELDS)] for shop, order in rows]
    if values:
        await connection.execute(_ORDER_UPSERT, _arrays(orders, _ORDER_COLUMNS, values))


_PENDING_COLUMNS = ["shop_id", "member_id", "order_id", "source", "event_id", "event_type", "event_time", "event"]
_PARK = text(f"{_unnest_insert(pending_events, _PENDING_COLUMNS)} ON CONFLICT DO NOTHING")


async def park_events(connection: AsyncConnection, rows: Sequence[Sequence[Any]]) -> None:
    """Keeps events (values in ``_PENDING_COLUMNS`` order, the event as JSON text) until their order arrives."""
    if rows:
        await connection.execute(_PARK, _arrays(pending_events, _PENDING_COLUMNS, rows))


async def release_events(connection: AsyncConnection, keys: Sequence[EventKey]) -> None:
    """Deletes parked events that have now been applied, by their (source, id)."""
    if keys:
        await connection.execute(
            text(
                f"DELETE FROM pending_events p USING {_UNNEST} AS k(source, event_id) "
                "WHERE p.source = k.source AND p.event_id = k.event_id"
            ),
            _columns(keys),
        )


_ACTION_COLUMNS = ["action_id", "shop_id", "member_id", "rule", "category", "occurred_at", "created_at", "payload"]
_ACTION_INSERT = text(
    f"WITH new AS ({_unnest_insert(actions, _ACTION_COLUMNS)} ON CONFLICT (action_id) DO NOTHING "
    "RETURNING shop_id, member_id, rule, payload, occurred_at), "
    "queued AS (INSERT INTO outbox (stream, key, payload, event_time) "
    "SELECT 'actions', shop_id || ':' || member_id, payload::text, occurred_at FROM new) "
    "SELECT rule FROM new"
)


async def insert_actions(connection: AsyncConnection, rows: Sequence[Sequence[Any]]) -> list[str]:
    """Logs actions (values in ``_ACTION_COLUMNS`` order) and queues the new ones in the outbox.

    Returns the rules of the new actions; an action id seen before is neither logged nor queued again.
    """
    if not rows:
        return []
    result = await connection.execute(_ACTION_INSERT, _arrays(actions, _ACTION_COLUMNS, rows))
    return [row[0] for row in result]


_LEDGER_COLUMNS = ["shop_id", "member_id", "entry_id", "kind", "points", "shortfall", "at", "expires_at"]
_LEDGER_INSERT = text(_unnest_insert(points_ledger, _LEDGER_COLUMNS))


async def append_ledger(connection: AsyncConnection, rows: Sequence[tuple[MemberKey, LedgerEntry]]) -> None:
    """Appends ledger lines; a line booked twice fails the transaction rather than drift from the balance."""
    values = [[key[0], key[1], e.entry_id, e.kind, e.points, e.shortfall, e.at, e.expires_at] for key, e in rows]
    if values:
        await connection.execute(_LEDGER_INSERT, _arrays(points_ledger, _LEDGER_COLUMNS, values))


async def load_ledgers(connection: AsyncConnection, keys: Sequence[MemberKey]) -> dict[MemberKey, list[LedgerEntry]]:
    """Every ledger line of these members, in booking order."""
    loaded: dict[MemberKey, list[LedgerEntry]] = {key: [] for key in keys}
    if not keys:
        return loaded
    rows = await connection.execute(
        text(
            "SELECT l.shop_id, l.member_id, l.entry_id, l.kind, l.points, l.at, l.expires_at, l.shortfall "
            f"FROM points_ledger l JOIN {_UNNEST} AS k(shop_id, member_id) USING (shop_id, member_id) ORDER BY l.seq"
        ),
        _columns(keys),
    )
    for row in rows:
        loaded.setdefault((row[0], row[1]), []).append(LedgerEntry(*row[2:]))
    return loaded


async def claim_due_members(connection: AsyncConnection, as_of: datetime, limit: int) -> dict[MemberKey, Member]:
    """Locks up to ``limit`` members with something due by ``as_of``, skipping rows others hold.

    Two scheduler runs, or a run and the event path, never wait for each other here:
    a member locked elsewhere is left for a later pass.
    """
    columns = ", ".join(_MEMBER_FIELDS)
    rows = await connection.execute(
        text(
            f"SELECT {columns} FROM members WHERE next_due_at <= :as_of "
            "ORDER BY next_due_at LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"as_of": as_of, "limit": limit},
    )
    return {(member.shop_id, member.member_id): member for member in map(_member, rows)}


async def count_due(connection: AsyncConnection, as_of: datetime) -> int:
    """Members with something due by ``as_of``, locked or not."""
    return int(
        await connection.scalar(text("SELECT count(*) FROM members WHERE next_due_at <= :as_of"), {"as_of": as_of}) or 0
    )


async def shops_with_members(connection: AsyncConnection) -> dict[str, datetime | None]:
    """Every shop with members, and the business time its RFM edges were computed at (None: never).

    A loose index scan over the primary key's leading ``shop_id``: one index probe per
    shop, so the cost follows the number of shops, not of members.
    """
    rows = await connection.execute(
        text(
            "WITH RECURSIVE shops AS ("
            "(SELECT shop_id FROM members ORDER BY shop_id LIMIT 1) UNION ALL "
            "SELECT (SELECT m.shop_id FROM members m WHERE m.shop_id > shops.shop_id ORDER BY m.shop_id LIMIT 1) "
            "FROM shops WHERE shops.shop_id IS NOT NULL) "
            "SELECT s.shop_id, e.as_of FROM shops s LEFT JOIN rfm_edges e USING (shop_id) WHERE s.shop_id IS NOT NULL"
        )
    )
    return {row[0]: row[1] for row in rows}


async def compute_rfm_edges(connection: AsyncConnection, shops: Sequence[str], as_of: datetime) -> int:
    """Recomputes the quintile edges of these shops' buyers as of ``as_of``, in one statement.

    Recency is days from the last paid order to ``as_of``; frequency and monetary are
    lifetime paid orders and net spend. Edges computed at a later business time are kept.
    A shop without buyers gets a row with no edges, so it is not scanned again until due.
    """
    if not shops:
        return 0
    result = await connection.execute(
        text(
            "INSERT INTO rfm_edges (shop_id, as_of, buyers, recency_days, frequency, monetary, computed_at) "
            "SELECT s.shop_id, :as_of, count(m.member_id), "
            "coalesce(percentile_cont(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP "
            "(ORDER BY extract(epoch FROM (CAST(:as_of AS timestamptz) - m.last_order_at)) / 86400), '{}'), "
            "coalesce(percentile_cont(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY m.paid_orders), '{}'), "
            "coalesce(percentile_cont(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP "
            "(ORDER BY CAST(m.net_spend AS float8)), '{}'), now() "
            "FROM unnest(CAST(:shops AS text[])) AS s(shop_id) "
            "LEFT JOIN members m ON m.shop_id = s.shop_id AND m.last_order_at <= :as_of "
            "GROUP BY s.shop_id "
            "ON CONFLICT (shop_id) DO UPDATE SET as_of = excluded.as_of, buyers = excluded.buyers, "
            "recency_days = excluded.recency_days, frequency = excluded.frequency, monetary = excluded.monetary, "
            "computed_at = excluded.computed_at WHERE rfm_edges.as_of <= excluded.as_of"
        ),
        {"as_of": as_of, "shops": list(shops)},
    )
    return int(result.rowcount or 0)


async def quarantine(connection: AsyncConnection, rows: Sequence[tuple[MemberKey, str, str]]) -> None:
    """Quarantines members as ((shop, member), reason, detail) and takes them off the schedule.

    Their events are dead-lettered until an operator releases them (which puts them back
    on the schedule); a member already quarantined keeps its first reason.
    """
    if not rows:
        return
    params = {
        "a": [key[0] for key, _, _ in rows],
        "b": [key[1] for key, _, _ in rows],
        "reason": [reason for _, reason, _ in rows],
        "detail": [detail for _, _, detail in rows],
    }
    await connection.execute(
        text(
            "INSERT INTO quarantined_members (shop_id, member_id, reason, detail) "
            "SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:reason AS text[]), "
            "CAST(:detail AS text[])) ORDER BY 1, 2 ON CONFLICT DO NOTHING"
        ),
        params,
    )
    await connection.execute(
        text(
            f"UPDATE members m SET next_due_at = NULL FROM {_UNNEST} AS k(shop_id, member_id) "
            "WHERE m.shop_id = k.shop_id AND m.member_id = k.member_id"
        ),
        _columns([key for key, _, _ in rows]),
    )


async def count_quarantined_events(connection: AsyncConnection, counts: dict[MemberKey, int]) -> None:
    """Counts events that reached quarantined members (they went to the dead-letter topic)."""
    if not counts:
        return
    keys = sorted(counts)
    await connection.execute(
        text(
            "UPDATE quarantined_members q SET events = q.events + k.n, last_event_at = now() "
            "FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:n AS int[])) AS k(shop_id, member_id, n) "
            "WHERE q.shop_id = k.shop_id AND q.member_id = k.member_id"
        ),
        {"a": [k[0] for k in keys], "b": [k[1] for k in keys], "n": [counts[k] for k in keys]},
    )


async def count_quarantined(connection: AsyncConnection) -> int:
    return int(await connection.scalar(text("SELECT count(*) FROM quarantined_members")) or 0)


async def unclaim_events(connection: AsyncConnection, keys: Sequence[EventKey]) -> None:
    """Forgets that these events were processed, so they can be published again after a fix."""
    if keys:
        await connection.execute(
            text(
                f"DELETE FROM processed_events p USING {_UNNEST} AS k(source, event_id) "
                "WHERE p.source = k.source AND p.event_id = k.event_id"
            ),
            _columns(keys),
        )


class RedemptionRefusedError(Exception):
    """A redemption that cannot be booked; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Redemption:
    entry: LedgerEntry
    balance: int
    replayed: bool


async def redeem_points(
    connection: AsyncConnection, key: MemberKey, idempotency_key: str, wanted: int, at: datetime
) -> Redemption:
    """Books a redemption once per idempotency key, under the member's row lock.

    Repeating a key returns the first booking; reusing it for another amount, an
    unknown member or a short balance raises ``RedemptionRefusedError``.
    """
    params = {"shop_id": key[0], "member_id": key[1]}
    balance = await connection.scalar(
        text("SELECT points_balance FROM members WHERE shop_id = :shop_id AND member_id = :member_id FOR UPDATE"),
        params,
    )
    if balance is None:
        raise RedemptionRefusedError("member_not_found", f"No member {key[1]!r} in shop {key[0]!r}")
    entry_id = f"redeem:{idempotency_key}"
    existing = (
        await connection.execute(
            text(
                "SELECT entry_id, kind, points, at, expires_at, shortfall FROM points_ledger "
                "WHERE shop_id = :shop_id AND member_id = :member_id AND entry_id = :entry_id"
            ),
            {**params, "entry_id": entry_id},
        )
    ).one_or_none()
    if existing is not None:
        entry = LedgerEntry(*existing)
        if -entry.points != wanted:
            raise RedemptionRefusedError(
                "idempotency_key_reused", f"Key {idempotency_key!r} already redeemed {-entry.points} points"
            )
        return Redemption(entry=entry, balance=int(balance), replayed=True)
    if balance < wanted:
        raise RedemptionRefusedError("insufficient_points", f"The balance is {balance} points; {wanted} were asked for")
    entry = points.debit(int(balance), entry_id, "redeem", wanted, at)
    await append_ledger(connection, [(key, entry)])
    await connection.execute(
        text(
            "UPDATE members SET points_balance = points_balance + :delta, updated_at = now() "
            "WHERE shop_id = :shop_id AND member_id = :member_id"
        ),
        {**params, "delta": entry.points},
    )
    return Redemption(entry=entry, balance=int(balance) + entry.points, replayed=False)
