"""Kafka clients configured the one way this project uses them."""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import TopicAlreadyExistsError

from shared.observability import report_failure
from shared.settings import Settings


def create_producer(settings: Settings, *, name: str) -> AIOKafkaProducer:
    """Idempotent, acks=all: a retried send never duplicates or reorders within a partition."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id}-{name}",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=262144,
        compression_type=None,
    )


def create_consumer(settings: Settings, *topics: str, group_id: str, name: str) -> AIOKafkaConsumer:
    """Manual commits only, after the database transaction; new groups start at the beginning."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id}-{name}",
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )


def create_reader(settings: Settings, *, name: str) -> AIOKafkaConsumer:
    """No group and no commits: partitions are assigned and sought by the caller, which reads a range and stops."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id}-{name}",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )


log = structlog.get_logger(__name__)


class TopicGuard:
    """Makes sure the topics a service writes to exist before it consumes anything.

    A producer waits for a missing topic's metadata instead of failing, so a consumer that
    dead-letters to a topic nobody created would hang on its first bad record. At start-up
    (and again while any is missing) the missing topics are created when
    ``CREATE_MISSING_TOPICS`` allows it; until they exist, ``missing`` names them, readiness
    reports not ready and the consume loop waits.
    """

    def __init__(self, settings: Settings, topics: list[str], *, name: str) -> None:
        self._settings = settings
        self._topics = topics
        self._name = name
        self.missing: list[str] = list(topics)

    async def ensure(self) -> list[str]:
        """Creates what is missing (when allowed); returns the topics still missing."""
        settings = self._settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, client_id=f"{settings.kafka_client_id}-{self._name}"
        )
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [topic for topic in self._topics if topic not in existing]
            if missing and settings.create_missing_topics:
                log.warning("kafka.creating_missing_topics", topics=missing)
                for topic in missing:
                    new = NewTopic(
                        topic,
                        num_partitions=settings.new_topic_partitions,
                        replication_factor=settings.new_topic_replication_factor,
                    )
                    try:
                        await admin.create_topics([new])
                    except TopicAlreadyExistsError as error:  # another instance was quicker: fine
                        report_failure("kafka.create_topic", error, level="info", stack=False, topic=topic)
                existing = set(await admin.list_topics())
                missing = [topic for topic in self._topics if topic not in existing]
        finally:
            await admin.close()
        if missing:
            log.error("kafka.topics_missing", topics=missing, create_missing_topics=settings.create_missing_topics)
        self.missing = missing
        return missing


def member_key(shop_id: str, member_id: str) -> bytes:
    """The record key: every record about one member lands on one partition."""
    return f"{shop_id}:{member_id}".encode()


async def kafka_ready(client: AIOKafkaClient, timeout_s: float = 2.0) -> bool:
    """A metadata round trip to the brokers within the timeout."""
    try:
        async with asyncio.timeout(timeout_s):
            await client.fetch_all_metadata()
    except Exception as error:
        report_failure("readiness.kafka", error, level="warning")
        return False
    return True
