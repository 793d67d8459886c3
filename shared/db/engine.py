"""Async engine construction; called from each service's start-up, never at import."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.observability import report_failure
from shared.settings import Settings


def dump_json(value: Any) -> str:
    """JSON text for a JSONB value; orjson, since members' and orders' documents are written every batch."""
    return orjson.dumps(value, default=str).decode()


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url,
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
        json_serializer=dump_json,
        json_deserializer=orjson.loads,
        # Every statement is planned for the data at hand. A generic plan cached for a
        # prepared statement while a table was small (the outbox, members) can stay in use
        # long after the table has grown, at a cost that grows with the table.
        connect_args={
            "server_settings": {"application_name": settings.kafka_client_id, "plan_cache_mode": "force_custom_plan"}
        },
    )


async def database_ready(engine: AsyncEngine, timeout_s: float = 2.0) -> bool:
    """``select 1`` within the timeout; any failure counts as not ready."""
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as connection:
            await connection.execute(text("select 1"))
    except Exception as error:
        report_failure("readiness.database", error, level="warning")
        return False
    return True
