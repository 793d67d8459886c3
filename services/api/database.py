"""The pool the API's reads go through: asyncpg itself, one statement per request.

The reads (a member's status and lists, the quarantine list) are single statements, so
they need no transaction: each statement sees one snapshot. Going through asyncpg
directly rather than through SQLAlchemy's engine saves, per request, the ping on
checkout, the ``BEGIN`` and ``ROLLBACK`` around the statement and SQLAlchemy's own
statement and result handling; asyncpg keeps each statement prepared per connection.
Writes (redemptions, scheduler runs, quarantine releases) keep the SQLAlchemy engine
and its transactions.

Unlike the engine's sessions (``shared.db.engine``: every statement planned for the data
at hand), the read pool lets PostgreSQL keep a generic plan for a statement it has
prepared (``plan_cache_mode=auto``, PostgreSQL's default): every read is an equality
lookup on the leading columns of an index, planned the same whatever the values, and
planning each execution anew took about two thirds of the backends' CPU per member
status. Such a plan is dropped when ANALYZE refreshes the table's statistics, and
asyncpg prepares its statements again after five minutes.

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
    Connection: TypeAlias = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
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


class ReadPool:
    """asyncpg's pool behind a first-come, first-served gate.

    asyncpg hands a freed connection to whichever request asks next, often one that has
    just arrived rather than one already waiting (``asyncio.Queue.get`` lets a newcomer take
    an item while the waiter it woke is still to run, and that waiter queues again at the
    back). Under load a few requests then wait many times over: the p99 of the member
    status at 50 connections was ten times its median. An ``asyncio.Semaphore`` with as
    many permits as the pool has connections (fair since Python 3.11.1) orders the waiters;
    a request that holds a permit always finds a free connection.
    """

    __slots__ = ("_gate", "pool")

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], size: int) -> None:
        self.pool = pool
        self._gate = asyncio.Semaphore(size)

    def connection(self) -> _Borrowed:
        """``async with reads.connection() as connection``: a pooled connection, released after the block."""
        return _Borrowed(self)

    async def close(self) -> None:
        await self.pool.close()


async def open_pool(settings: Settings) -> ReadPool:
    pool = await asyncpg.create_pool(
        _dsn(settings),
        min_size=0,
        max_size=settings.database_pool_size,
        init=_init,
        reset=_keep_session,
        server_settings={"application_name": settings.kafka_client_id, "plan_cache_mode": "auto"},
    )
    return ReadPool(pool, settings.database_pool_size)


class _Borrowed:
    """A connection of the pool for one ``async with`` block, waited for (in turn) up to ACQUIRE_TIMEOUT_S.

    The wait is bounded by ``asyncio.timeout`` rather than by ``acquire(timeout=...)``, which
    on Python 3.11 runs every acquisition in a task of its own.
    """

    __slots__ = ("_connection", "_reads")

    def __init__(self, reads: ReadPool) -> None:
        self._reads = reads
        self._connection: Connection | None = None

    async def __aenter__(self) -> Connection:
        reads = self._reads
        async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
            await reads._gate.acquire()
        try:
            self._connection = await reads.pool.acquire()
        except BaseException:
            reads._gate.release()
            raise
        return self._connection

    async def __aexit__(self, *exc_info: object) -> None:
        if self._connection is not None:
            try:
                await self._reads.pool.release(self._connection)
            finally:
                self._connection = None
                self._reads._gate.release()
