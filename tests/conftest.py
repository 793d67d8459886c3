"""Fixtures for tests on the real PostgreSQL and Kafka that `make infra-up` starts.

Each test session gets its own database, migrated by Alembic; each test gets empty
tables and its own freshly created topics, so tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.db.schema import metadata
from shared.settings import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:55432/postgres")
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = {"members": 3, "orders": 3, "shipments": 3, "refunds": 3, "reviews": 3, "actions": 3}


async def _admin_execute(statement: str) -> None:
    engine = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this test session, migrated to head by Alembic."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.attributes["database_url"] = url
    command.upgrade(config, "head")
    yield url
    asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's database, with every table emptied first."""
    engine = create_async_engine(database_url)
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def topic_env() -> AsyncIterator[dict[str, str]]:
    """Fresh topics for one test, as TOPIC_* environment variables."""
    suffix = uuid.uuid4().hex[:10]
    names = {
        "members": f"t{suffix}.commerce.members",
        "orders": f"t{suffix}.commerce.orders",
        "shipments": f"t{suffix}.commerce.shipments",
        "refunds": f"t{suffix}.commerce.refunds",
        "reviews": f"t{suffix}.commerce.reviews",
        "actions": f"t{suffix}.member.actions",
        "notifications": f"t{suffix}.member.notifications",
        "dlq": f"t{suffix}.commerce.dlq",
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=PARTITIONS.get(key, 1), replication_factor=1) for key, name in names.items()]
        )
    finally:
        await admin.close()
    yield {f"TOPIC_{key.upper()}": name for key, name in names.items()}
    # Deleted afterwards, so a broker that serves many runs keeps its open files in check.
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.delete_topics(list(names.values()))
    except KafkaError as error:
        warnings.warn(f"test topics not deleted: {error!r}", stacklevel=1)
    finally:
        await admin.close()


@pytest.fixture
def service_env(database_url: str, topic_env: dict[str, str], tmp_path: object) -> dict[str, str]:
    """Environment variables that point a service at the test database and topics."""
    return {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "ENGAGEMENT_GROUP_ID": f"engagement-{uuid.uuid4().hex[:8]}",
        "NOTIFIER_GROUP_ID": f"notifier-{uuid.uuid4().hex[:8]}",
        "API_TOKENS": "test-token",
        "SCHEDULER_INTERVAL_S": "0",  # tests drive business time through the scheduler route
        **topic_env,
    }


@pytest.fixture
def settings(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for in-process adapters, read from the test environment like a service would."""
    for key, value in service_env.items():
        monkeypatch.setenv(key, value)
    return Settings()
