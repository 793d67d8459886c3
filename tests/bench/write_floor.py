"""The write floor: the rows a drain left in the service's database, written again the cheapest way there is.

After the drain, every non-empty table of the service's database (whatever its version's
schema holds: members, orders, processed events, points ledger, actions, parked events...)
is read back, and each table's rows are loaded with one binary COPY
(asyncpg ``copy_records_to_table``) into an empty copy of it made with
``CREATE TABLE ... (LIKE ... INCLUDING ALL)``: the same columns, defaults, constraints and
indexes, so index maintenance is paid as the service pays it. The outbox is empty by then
(the relay deletes what it publishes), so its rows are rebuilt from the actions, one per
action, as the service queues them.

Only the final rows are written, once each: no lookups, no row locks, no updates of rows
written before, no rows written and deleted again (released parked events, relayed outbox
rows are counted once). No real service can write less for the same events, which is what
makes it a floor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

_OUTBOX_COLUMNS = ["stream", "key", "payload", "event_time"]
# As store.insert_actions queues a new action: stream 'actions', key shop:member, the payload as text.
_OUTBOX_FROM_ACTIONS = (
    "SELECT 'actions'::text, shop_id || ':' || member_id, payload::text, occurred_at FROM actions ORDER BY seq"
)


@dataclass(frozen=True)
class Loaded:
    table: str
    rows: int
    seconds: float


@dataclass
class Floor:
    tables: list[Loaded] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(loaded.rows for loaded in self.tables)

    @property
    def seconds(self) -> float:
        return sum(loaded.seconds for loaded in self.tables)


async def _columns(connection: Any, table: str) -> list[str]:
    """The columns a COPY may fill: generated and GENERATED ALWAYS identity columns left out."""
    rows = await connection.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 "
        "AND is_generated = 'NEVER' AND coalesce(identity_generation, '') <> 'ALWAYS' ORDER BY ordinal_position",
        table,
    )
    return [str(row[0]) for row in rows]


async def measure(database_url: str) -> Floor:
    """COPYs the rows of every non-empty table into empty copies of the tables; times each COPY."""
    floor = Floor()
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as outer:
            connection = (await outer.get_raw_connection()).driver_connection  # asyncpg's own, for COPY
            assert connection is not None
            for kind in ("json", "jsonb"):  # asyncpg's own codecs instead of SQLAlchemy's: text in, text out
                await connection.reset_type_codec(kind, schema="pg_catalog")
            await _load(connection, floor)
    finally:
        await engine.dispose()
    return floor


async def _load(connection: Any, floor: Floor) -> None:
    """Reads every non-empty table, makes its empty copy and COPYs the rows into it (``connection``: asyncpg's)."""
    tables = [
        str(row[0])
        for row in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version' "
            "ORDER BY tablename"
        )
    ]
    loads: list[tuple[str, list[str], list[Any]]] = []
    for table in tables:
        columns = await _columns(connection, table)
        if table == "outbox" and "actions" in tables and set(_OUTBOX_COLUMNS) <= set(columns):
            rows = await connection.fetch(_OUTBOX_FROM_ACTIONS)
            floor.notes.append(f"outbox: {len(rows):,} rows rebuilt from the actions (the relay deleted them)")
            columns = _OUTBOX_COLUMNS
        else:
            names = ", ".join(f'"{column}"' for column in columns)
            rows = await connection.fetch(f'SELECT {names} FROM "{table}"')
        if rows:
            loads.append((table, columns, rows))
    for table, _, _ in loads:
        await connection.execute(f'CREATE TABLE "floor_{table}" (LIKE "{table}" INCLUDING ALL)')
    for table, columns, rows in loads:
        started = time.perf_counter()
        await connection.copy_records_to_table(f"floor_{table}", records=rows, columns=columns)
        floor.tables.append(Loaded(table, len(rows), time.perf_counter() - started))
    for table, _, _ in loads:
        await connection.execute(f'DROP TABLE "floor_{table}"')
