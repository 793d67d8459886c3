"""Which events were processed, and the events parked until their order can take them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import pending_events
from shared.store.bulk_sql import UNNEST_KEYS, Key, insert_rows, json_rows, key_arrays

EventKey = tuple[str, str]  # (source, event id)


class ParkedEvent(NamedTuple):
    """A ``pending_events`` row; ``event`` is the record's own JSON, the event as published."""

    shop_id: str
    member_id: str
    order_id: str
    source: str
    event_id: str
    event_type: str
    event_time: datetime
    event: str


async def claim_events(connection: AsyncConnection, keys: Sequence[EventKey]) -> set[EventKey]:
    """Records the events as processed; returns those no earlier transaction had processed.

    A concurrent transaction claiming the same event waits on the primary key and, once
    the first commits, gets nothing back: a redelivered event is applied exactly once.
    """
    if not keys:
        return set()
    rows = await connection.execute(
        text(
            f"INSERT INTO processed_events (source, event_id) SELECT * FROM {UNNEST_KEYS} AS k(s, i) "
            "ORDER BY 1, 2 ON CONFLICT DO NOTHING RETURNING source, event_id"
        ),
        key_arrays(keys),
    )
    return {(row[0], row[1]) for row in rows}


async def unclaim_events(connection: AsyncConnection, keys: Sequence[EventKey]) -> None:
    """Forgets that these events were processed, so they can be published again after a fix."""
    await _delete_by_event(connection, "processed_events", keys)


async def _delete_by_event(connection: AsyncConnection, table: str, keys: Sequence[EventKey]) -> None:
    if keys:
        await connection.execute(
            text(
                f"DELETE FROM {table} t USING {UNNEST_KEYS} AS k(source, event_id) "
                "WHERE t.source = k.source AND t.event_id = k.event_id"
            ),
            key_arrays(keys),
        )


async def load_parked(connection: AsyncConnection, orders: Sequence[Key]) -> list[tuple[Key, str]]:
    """Parked events about these (shop, order)s as (member key, event JSON), oldest business time first.

    Only an event about its order can release a parked event, so a batch loads just those.
    """
    if not orders:
        return []
    rows = await connection.execute(
        text(
            f"SELECT p.shop_id, p.member_id, p.event::text FROM pending_events p "
            f"JOIN {UNNEST_KEYS} AS k(shop_id, order_id) USING (shop_id, order_id) "
            "ORDER BY p.event_time, p.seq"
        ),
        key_arrays(orders),
    )
    return [((row[0], row[1]), row[2]) for row in rows]


_PARK = f"{insert_rows(pending_events, ParkedEvent._fields)} ON CONFLICT DO NOTHING"


async def park_events(connection: AsyncConnection, rows: Sequence[ParkedEvent]) -> None:
    """Keeps events until their order arrives."""
    if rows:
        # The record's own text goes into the document as it is (a JSON text, not a string of one).
        values = [[*row[:-1], orjson.Fragment(row.event)] for row in rows]
        await connection.execute(text(_PARK), json_rows(values))


async def release_events(connection: AsyncConnection, keys: Sequence[EventKey]) -> None:
    """Deletes parked events that have now been applied, by their (source, id)."""
    await _delete_by_event(connection, "pending_events", keys)
