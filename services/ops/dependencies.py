"""What commands work with: settings, the database, the playbook in force, units of work.

Configuration is the services' own (``shared.settings``: ``DATABASE_URL``,
``KAFKA_BOOTSTRAP_SERVERS``, ``TOPIC_*``, ``PLAYBOOK_PATH`` ...), read from the environment
only. The playbook is the file's layers with each shop's newest version stored through the
API, read once, as a service has it in force. This module is the one place that builds the
write side's units of work, for the use cases a command calls.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ops.running import EXIT_USAGE, CommandError, fail
from shared.db.engine import create_engine
from shared.db.error_triage import describe
from shared.domain.business_time import BusinessTimeBounds
from shared.domain.playbook import Playbook
from shared.observability import configure_logging
from shared.playbook_file import InvalidPlaybookError, PlaybookLayers, read_layers
from shared.playbook_refresh import PlaybookRefresher
from shared.settings import Settings
from shared.store.unit_of_work import SqlUnitOfWork, UnitsOfWork

if TYPE_CHECKING:
    from shared.audience.quarantine_reads import Driver

CONNECT_TIMEOUT_S = 10.0


def load_settings() -> Settings:
    """The environment's settings; logs (JSON lines) go to stderr, at WARNING unless ``LOG_LEVEL`` says otherwise."""
    try:
        settings = Settings()
    except ValidationError as error:
        names = ", ".join(sorted({str(problem["loc"][0]).upper() for problem in error.errors() if problem["loc"]}))
        fail(f"invalid settings in the environment: {names or 'see docs/configuration.md'}")
    if "log_level" in settings.model_fields_set:
        configure_logging(settings.log_level, sys.stderr)
    else:  # a command's own one-line messages say what failed; the clients' log lines would repeat it
        configure_logging("WARNING", sys.stderr)
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return settings


def load_layers(settings: Settings) -> PlaybookLayers:
    try:
        return read_layers(settings.playbook_path)
    except (OSError, InvalidPlaybookError) as error:
        fail(f"cannot read the playbook file PLAYBOOK_PATH ({type(error).__name__})")


def _where(settings: Settings) -> str:
    """The database's host, port and name, for messages (never the password)."""
    try:
        url = make_url(settings.async_database_url)
    except ArgumentError:
        return "DATABASE_URL"
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on ``DATABASE_URL``, checked with one statement first; disposed of at the end."""
    try:
        engine = create_engine(settings)
    except ArgumentError:
        raise CommandError("DATABASE_URL is not a database URL") from None
    try:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S), engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (OSError, TimeoutError, DBAPIError, asyncpg.PostgresError) as error:
            raise CommandError(f"cannot reach PostgreSQL at {_where(settings)} ({describe(error)})") from None
        yield engine
    finally:
        await engine.dispose()


async def playbook_in_force(engine: AsyncEngine, settings: Settings, layers: PlaybookLayers) -> Playbook:
    """The file's playbook with each shop's newest stored version, as the services have it now."""
    playbook = layers.playbook()
    refresher = PlaybookRefresher(engine, playbook, layers, service="ops", interval_s=settings.playbook_refresh_seconds)
    await refresher.refresh()
    return playbook


def units(engine: AsyncEngine) -> UnitsOfWork:
    return SqlUnitOfWork.factory(engine)


async def driver(connection: AsyncConnection) -> Driver:
    """The asyncpg connection under an engine's connection, for the read side's driver-level statements."""
    pooled = await connection.get_raw_connection()
    found = pooled.driver_connection
    assert isinstance(found, asyncpg.Connection)
    return found


def outside(at: datetime, windows: list[BusinessTimeBounds]) -> BusinessTimeBounds | None:
    """The first window ``at`` lies outside, as of the wall clock; None when it lies in every one."""
    now = datetime.now(UTC)
    return next((window for window in windows if not window.contains(at, now)), None)


def check_window(name: str, at: datetime, windows: list[BusinessTimeBounds]) -> None:
    """A usage error unless ``at`` lies in every window, stating the rule (as the API's ``time_out_of_range``)."""
    window = outside(at, windows)
    if window is not None:
        raise CommandError(f"{name} {window.describe()}", EXIT_USAGE)
