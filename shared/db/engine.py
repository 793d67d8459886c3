"""Async engine construction; called from each service's start-up, never at import."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url,
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": settings.kafka_client_id}},
    )
