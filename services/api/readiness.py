"""Readiness probes: can this instance reach PostgreSQL and Kafka right now?"""

from __future__ import annotations

import asyncio

import structlog
from aiokafka.client import AIOKafkaClient

from shared.settings import Settings

log = structlog.get_logger("services.api")

PROBE_TIMEOUT_S = 2.0


class KafkaProbe:
    """One long-lived Kafka client, bootstrapped lazily so the API can start while Kafka is down."""

    def __init__(self, settings: Settings) -> None:
        self._client = AIOKafkaClient(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=f"{settings.kafka_client_id}-api",
            request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
        )
        self._bootstrapped = False
        self._lock = asyncio.Lock()

    async def ready(self, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
        """A cluster metadata round trip within the timeout."""
        try:
            async with asyncio.timeout(timeout_s), self._lock:
                if not self._bootstrapped:
                    await self._client.bootstrap()
                    self._bootstrapped = True
                else:
                    await self._client.fetch_all_metadata()
        except Exception as exc:
            log.warning("api.readiness.kafka_unavailable", error_type=type(exc).__name__)
            return False
        return True

    async def close(self) -> None:
        await self._client.close()
