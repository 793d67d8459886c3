"""Members and their orders as rows: locked and loaded by key, written back with one upsert each."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import members, orders
from shared.domain.model import ExternalTag, Member, Order, RefundRecord, ReviewRecord, ShipmentRecord
from shared.store import member_documents as documents
from shared.store.bulk_sql import UNNEST_KEYS, Key, json_rows, key_arrays, update_rows, upsert

MEMBER_FIELDS = [f.name for f in fields(Member)]
_ORDER_FIELDS = [f.name for f in fields(Order)]
_ORDER_COLUMNS = ["shop_id", *_ORDER_FIELDS]
_MEMBER_UPDATE = text(update_rows(members, MEMBER_FIELDS, ["shop_id", "member_id"]))
_ORDER_UPSERT = text(upsert(orders, _ORDER_COLUMNS, ["shop_id", "order_id"]))
# The fields kept as JSON documents: how each is written (the domain's records and times as JSON).
_MEMBER_DOCUMENTS: dict[str, Callable[[Any], Any]] = {
    "profile_at": documents.times_to_json,
    "schedule_marks": documents.times_to_json,
    "points_expiries": documents.time_list_to_json,
    "external_tags": documents.records_to_json,
}
_ORDER_DOCUMENTS: dict[str, Callable[[Any], Any]] = {
    "refunds": documents.records_to_json,
    "reviews": documents.records_to_json,
    "shipments": documents.records_to_json,
}
_CREATE_MISSING = text(
    f"INSERT INTO members (shop_id, member_id) SELECT * FROM {UNNEST_KEYS} AS k(s, m) "
    "ORDER BY 1, 2 ON CONFLICT DO NOTHING"
)


async def lock_members(
    connection: AsyncConnection, keys: Sequence[Key], *, create: bool = True
) -> tuple[dict[Key, Member], set[Key]]:
    """Locks the members (creating missing rows unless ``create`` is False) and notes the quarantined ones.

    Locks are taken in key order, so two transactions never deadlock on members.
    """
    rows, quarantined = await _lock(connection, keys, create, ", ".join(f"m.{name}" for name in MEMBER_FIELDS))
    return {key: member_from_row(row) for key, row in rows.items()}, quarantined


async def lock_member_stamps(connection: AsyncConnection, keys: Sequence[Key]) -> tuple[dict[Key, int], set[Key]]:
    """``lock_members`` (creating missing rows) that answers only each row version's stamp (``xmin``).

    A caller holding a member whose stamp matches needs nothing more from the row.
    """
    rows, quarantined = await _lock(connection, keys, True, "m.xmin::text::bigint")
    return {key: row[0] for key, row in rows.items()}, quarantined


async def _lock(
    connection: AsyncConnection, keys: Sequence[Key], create: bool, columns: str
) -> tuple[dict[Key, Sequence[Any]], set[Key]]:
    """The locked members' ``columns`` by key, and which of them are quarantined."""
    if not keys:
        return {}, set()
    params = key_arrays(keys)
    if create:
        await connection.execute(_CREATE_MISSING, params)
    rows = await connection.execute(
        text(
            f"SELECT m.shop_id, m.member_id, q.shop_id IS NOT NULL, {columns} FROM members m "
            f"JOIN {UNNEST_KEYS} AS k(shop_id, member_id) USING (shop_id, member_id) "
            "LEFT JOIN quarantined_members q USING (shop_id, member_id) "
            "ORDER BY m.shop_id, m.member_id FOR UPDATE OF m"
        ),
        params,
    )
    locked: dict[Key, Sequence[Any]] = {}
    quarantined: set[Key] = set()
    for row in rows:
        key = (row[0], row[1])
        locked[key] = row[3:]
        if row[2]:
            quarantined.add(key)
    return locked, quarantined


async def load_members(connection: AsyncConnection, keys: Sequence[Key]) -> dict[Key, Member]:
    """Members by key, as they are (the caller already holds their locks)."""
    rows = await _select_by_keys(connection, "members", MEMBER_FIELDS, "member_id", keys)
    return {(member.shop_id, member.member_id): member for member in map(member_from_row, rows)}


async def current_stamp(connection: AsyncConnection) -> int:
    """The stamp (``xmin``) of the row versions this transaction writes."""
    xid8 = int(await connection.scalar(text("SELECT pg_current_xact_id()::text")) or 0)
    return xid8 & 0xFFFFFFFF  # xmin is the transaction id without its epoch


def member_from_row(row: Any) -> Member:
    values = dict(zip(MEMBER_FIELDS, row, strict=True))
    values["rewarded_tiers"] = list(values["rewarded_tiers"])
    values["profile_at"] = documents.times_from_json(values["profile_at"])
    values["schedule_marks"] = documents.times_from_json(values["schedule_marks"])
    values["points_expiries"] = documents.time_list_from_json(values["points_expiries"])
    values["tags"] = list(values["tags"])
    values["external_tags"] = documents.records_from_json(ExternalTag, values["external_tags"])
    return Member(**values)


def order_from_row(row: Any) -> Order:
    """An order from its row's values (``Order`` field order)."""
    values = dict(zip(_ORDER_FIELDS, row, strict=True))
    values["care_done"] = list(values["care_done"])
    values["refunds"] = documents.records_from_json(RefundRecord, values["refunds"])
    values["reviews"] = documents.records_from_json(ReviewRecord, values["reviews"])
    values["shipments"] = documents.records_from_json(ShipmentRecord, values["shipments"])
    values["created_categories"] = list(values["created_categories"])
    if values["paid_categories"] is not None:
        values["paid_categories"] = list(values["paid_categories"])
    return Order(**values)


def _row_values(item: Member | Order, names: Sequence[str], encoders: dict[str, Callable[[Any], Any]]) -> list[Any]:
    return [encoders[name](getattr(item, name)) if name in encoders else getattr(item, name) for name in names]


def member_to_row(member: Member) -> list[Any]:
    """A member's row values (``Member`` field order), its documents as JSON."""
    return _row_values(member, MEMBER_FIELDS, _MEMBER_DOCUMENTS)


def order_to_row(order: Order) -> list[Any]:
    """An order's row values (``Order`` field order), its documents as JSON."""
    return _row_values(order, _ORDER_FIELDS, _ORDER_DOCUMENTS)


async def load_orders(connection: AsyncConnection, keys: Sequence[Key]) -> dict[Key, Order]:
    """Orders by (shop, order id)."""
    return await _load_orders(connection, keys, "order_id")


async def load_member_orders(connection: AsyncConnection, keys: Sequence[Key]) -> dict[Key, Order]:
    """Every order of these members, by (shop, order id): tier decisions need their figures as of a business time."""
    return await _load_orders(connection, keys, "member_id")


async def _load_orders(connection: AsyncConnection, keys: Sequence[Key], by: str) -> dict[Key, Order]:
    rows = await _select_by_keys(connection, "orders", ["shop_id", *_ORDER_FIELDS], by, keys)
    loaded = {}
    for row in rows:
        order = order_from_row(row[1:])
        loaded[(row[0], order.order_id)] = order
    return loaded


async def _select_by_keys(
    connection: AsyncConnection, table: str, columns: Sequence[str], by: str, keys: Sequence[Key]
) -> Sequence[Any]:
    """``columns`` of the rows of ``table`` whose (shop_id, ``by``) is one of ``keys``."""
    if not keys:
        return []
    selected = ", ".join(f"t.{name}" for name in columns)
    result = await connection.execute(
        text(f"SELECT {selected} FROM {table} t JOIN {UNNEST_KEYS} AS k(shop_id, {by}) USING (shop_id, {by})"),
        key_arrays(keys),
    )
    return result.all()


async def save_members(connection: AsyncConnection, rows: Iterable[Member]) -> None:
    """Writes back members whose rows this transaction holds (locked, so they exist)."""
    values = [member_to_row(member) for member in rows]
    if values:
        await connection.execute(_MEMBER_UPDATE, json_rows(values))


async def save_orders(connection: AsyncConnection, rows: Iterable[tuple[str, Order]]) -> None:
    """Orders as (shop, order)."""
    values = [[shop, *order_to_row(order)] for shop, order in rows]
    if values:
        await connection.execute(_ORDER_UPSERT, json_rows(values))
