"""The append-only points ledger: lines appended in a batch, read back per member."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import points_ledger
from shared.domain.model import LedgerEntry
from shared.store.bulk_sql import UNNEST_KEYS, Key, insert_rows, json_rows, key_arrays

_COLUMNS = ["shop_id", "member_id", "entry_id", "kind", "points", "shortfall", "at", "expires_at"]
_INSERT = text(insert_rows(points_ledger, _COLUMNS))
_ENTRY = "l.entry_id, l.kind, l.points, l.at, l.expires_at, l.shortfall"


async def append_ledger(connection: AsyncConnection, rows: Sequence[tuple[Key, LedgerEntry]]) -> None:
    """Appends ledger lines; a line booked twice fails the transaction rather than drift from the balance."""
    values = [[key[0], key[1], e.entry_id, e.kind, e.points, e.shortfall, e.at, e.expires_at] for key, e in rows]
    if values:
        await connection.execute(_INSERT, json_rows(values))


async def load_ledgers(connection: AsyncConnection, keys: Sequence[Key]) -> dict[Key, list[LedgerEntry]]:
    """Every ledger line of these members, in booking order."""
    loaded: dict[Key, list[LedgerEntry]] = {key: [] for key in keys}
    if not keys:
        return loaded
    rows = await connection.execute(
        text(
            f"SELECT l.shop_id, l.member_id, {_ENTRY} FROM points_ledger l "
            f"JOIN {UNNEST_KEYS} AS k(shop_id, member_id) USING (shop_id, member_id) ORDER BY l.seq"
        ),
        key_arrays(keys),
    )
    for row in rows:
        loaded.setdefault((row[0], row[1]), []).append(LedgerEntry(*row[2:]))
    return loaded


async def ledger_entry(connection: AsyncConnection, key: Key, entry_id: str) -> LedgerEntry | None:
    """One line of a member's ledger by its entry id."""
    row = (
        await connection.execute(
            text(
                f"SELECT {_ENTRY} FROM points_ledger l "
                "WHERE l.shop_id = :shop_id AND l.member_id = :member_id AND l.entry_id = :entry_id"
            ),
            {"shop_id": key[0], "member_id": key[1], "entry_id": entry_id},
        )
    ).one_or_none()
    return None if row is None else LedgerEntry(*row)
