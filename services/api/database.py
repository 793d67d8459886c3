"""The pool the API's reads go through: asyncpg itself, one statement per request.

The reads (a member's status and lists, the quarantine list) are single statements, so
they need no transaction: each statement sees one snapshot. Going through asyncpg
directly rather than through SQLAlchemy's engine saves, per request, the ping on
checkout, the ``BEGIN`` and ``ROLLBACK`` around the statement and SQLAlchemy's own
statement and result handling; asyncpg keeps each statement prepared per connection.
Writes (redemptions, scheduler runs, quarantine releases) keep the SQLAlchemy engine
and its transactions.

The pool opens no connection before the first request, so the API starts, and reports
not ready, while PostgreSQL is down; a connection that PostgreSQL closed (a restart) is
replaced when it is next taken from the pool.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson
from sqlalchemy.engine import make_url

from shared.settings import Settings

if TYPE_CHECKING:  # asyncpg's classes are generic in its type stubs only
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Connection: TypeAlias = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    Pool = asyncpg.Pool
    Connection = asyncpg.pool.PoolConnectionProxy

# As long as SQLAlchemy's pool waits for a free connection by default.
ACQUIRE_TIMEOUT_S = 30.0


def _dsn(settings: Settings) -> str:
    """DATABASE_URL as libpq understands it (without SQLAlchemy's driver name)."""
    url = make_url(settings.async_database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """JSONB decoded with orjson, as the SQLAlchemy engine does."""
    await connection.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_dump_json, decoder=orjson.loads, format="text"
    )


async def _keep_session(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """Nothing to reset on release: reads change no session state (asyncpg rolls back an open transaction).

    asyncpg's default reset sends ``RESET ALL`` and more on every release: a round trip per request.
    """


async def open_pool(settings: Settings) -> Pool:
    return await asyncpg.create_pool(
        _dsn(settings),
        min_size=0,
        max_size=settings.database_pool_size,
        init=_init,
        reset=_keep_session,
        # The same session settings as the engine's (shared.db.engine.create_engine).
        server_settings={"application_name": settings.kafka_client_id, "plan_cache_mode": "force_custom_plan"},
    )


class _Borrowed:
    """A connection of the pool for one ``async with`` block, waited for up to ACQUIRE_TIMEOUT_S.

    The wait is bounded by ``asyncio.timeout`` rather than by ``acquire(timeout=...)``, which
    on Python 3.11 runs every acquisition in a task of its own.
    """

    __slots__ = ("_connection", "_pool")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._connection: Connection | None = None

    async def __aenter__(self) -> Connection:
        async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
            self._connection = await self._pool.acquire()
        return self._connection

    async def __aexit__(self, *exc_info: object) -> None:
        if self._connection is not None:
            await self._pool.release(self._connection)
            self._connection = None


def connection_from(pool: Pool) -> _Borrowed:
    """``async with connection_from(pool) as connection``: a pooled connection, released after the block."""
    return _Borrowed(pool)
