"""Kafka clients configured the one way this project uses them."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient

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


def member_key(shop_id: str, member_id: str) -> bytes:
    """The record key: every record about one member lands on one partition."""
    return f"{shop_id}:{member_id}".encode()


async def kafka_ready(client: AIOKafkaClient, timeout_s: float = 2.0) -> bool:
    """A metadata round trip to the brokers within the timeout."""
    try:
        async with asyncio.timeout(timeout_s):
            await client.fetch_all_metadata()
    except Exception:
        return False
    return True
