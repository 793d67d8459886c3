"""Quarantined members as listed to operators (the API's quarantine route, the command line).

The quarantine is a small table, listed oldest quarantine first, then by key, a page at a
time after the last row's (quarantined_at, shop_id, member_id). The statements run on an
asyncpg connection (the API's read pool, or the driver connection under an engine's), each
one a single snapshot that needs no transaction. Nothing here writes: releasing goes
through ``shared.usecases.quarantine_release``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

if TYPE_CHECKING:  # asyncpg's classes are generic in its type stubs only
    Driver: TypeAlias = asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]


@dataclass(frozen=True, slots=True)
class QuarantineKey:
    """Position in the quarantine list: the last row's (quarantined_at, shop_id, member_id)."""

    quarantined_at: datetime
    shop_id: str
    member_id: str


def quarantine_item(row: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    """A quarantine row as listed (and as a release answers it): times in RFC 3339."""
    return {
        "shop_id": row["shop_id"],
        "member_id": row["member_id"],
        "reason": row["reason"],
        "detail": row["detail"],
        "events": row["events"],
        "quarantined_at": row["quarantined_at"].isoformat(),
        "last_event_at": row["last_event_at"].isoformat() if row["last_event_at"] else None,
    }


_SELECT = "SELECT shop_id, member_id, reason, detail, events, quarantined_at, last_event_at FROM quarantined_members "
_ORDER = "ORDER BY quarantined_at, shop_id, member_id"
_AFTER = "(quarantined_at, shop_id, member_id) > ($1, $2, $3)"


def _statement(after: QuarantineKey | None, shop_id: str | None) -> tuple[str, list[Any]]:
    """One of four fixed statements (each prepared once per connection) and its arguments; the limit comes last."""
    conditions: list[str] = []
    arguments: list[Any] = []
    if after is not None:
        conditions.append(_AFTER)
        arguments += [after.quarantined_at, after.shop_id, after.member_id]
    if shop_id is not None:
        arguments.append(shop_id)
        conditions.append(f"shop_id = ${len(arguments)}")
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    return f"{_SELECT}{where}{_ORDER} LIMIT ${len(arguments) + 1}", arguments


async def list_quarantined(
    connection: Driver, *, limit: int, after: QuarantineKey | None, shop_id: str | None = None
) -> tuple[list[dict[str, Any]], QuarantineKey | None]:
    """Up to ``limit`` quarantined members after ``after`` (of ``shop_id`` only, if given), oldest quarantine
    first, then by key; and the key the next page starts after, None at the end."""
    sql, arguments = _statement(after, shop_id)
    rows = await connection.fetch(sql, *arguments, limit + 1)
    page = rows[:limit]
    next_key = None
    if len(rows) > limit:
        last = page[-1]
        next_key = QuarantineKey(last["quarantined_at"], last["shop_id"], last["member_id"])
    return [quarantine_item(row) for row in page], next_key
