"""Dead letters kept whole in PostgreSQL, read back to be published again.

A dead letter too large for the broker once wrapped is stored in ``dead_letters`` and the
dead-letter topic carries only a reference (``stored_as``: ``dead_letters/<id>``); replaying
such a record needs its key and value from here (docs/events.md, "Dead letters too large
for the broker").
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import dead_letters


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """The original record as it was read: where from, and its key and value bytes."""

    topic: str
    key: bytes | None
    value: bytes | None


async def stored_records(connection: AsyncConnection, ids: Collection[int]) -> dict[int, StoredRecord]:
    """The stored records among ``ids``, by id; an id with no row (deleted once handled) is left out."""
    if not ids:
        return {}
    statement = select(dead_letters.c.id, dead_letters.c.topic, dead_letters.c.key, dead_letters.c.value).where(
        dead_letters.c.id.in_(sorted(ids))
    )
    rows = (await connection.execute(statement)).all()
    return {row.id: StoredRecord(row.topic, row.key, row.value) for row in rows}
