"""Periodic work of a worker: the gauges behind readiness and alerts, and timers of its own.

Every ``WATCH_INTERVAL_S`` the watchers judge the assigned partitions (stalled ones make
the worker not ready, see ``shared.progress``), set the consumer lag per topic and the
outbox backlog, and run the worker's own checks (e.g. the engagement service's parked
events and quarantined members). Each check fails alone: it is reported and the others run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from prometheus_client import Gauge

from shared.observability import report_failure
from shared.outbox import OutboxRelay
from shared.progress import PartitionProgress
from shared.worker_runtime.stopping import pause

WATCH_INTERVAL_S = 5.0

CONSUMER_LAG = Gauge(
    "consumer_lag",
    "Records waiting on the worker's assigned partitions past its committed offsets, by topic",
    ["topic"],
)

Check = Callable[[], Awaitable[None]]


async def every(operation: str, interval_s: float, work: Check, stop: asyncio.Event) -> None:
    """Runs ``work`` every ``interval_s`` until ``stop``; a failed run is reported and the next one comes on time."""
    while not stop.is_set():
        try:
            await work()
        except Exception as error:
            report_failure(operation, error)
        await pause(stop, interval_s)


class Watchers:
    def __init__(
        self,
        service: str,
        consumer: AIOKafkaConsumer,
        progress: PartitionProgress,
        relay: OutboxRelay,
        *,
        stalled: Gauge,
        backlog: Gauge,
    ) -> None:
        self._service = service
        self._consumer = consumer
        self._progress = progress
        self._relay = relay
        self._stalled = stalled
        self._backlog = backlog
        self._lag_topics: set[str] = set()
        self._checks: list[tuple[str, Check]] = [("partitions", self._partitions), ("outbox", self._outbox)]

    def add(self, name: str, check: Check) -> None:
        """A check of the worker's own, run with the others (reported as ``<service>.watch_<name>``)."""
        self._checks.append((name, check))

    async def run(self, stop: asyncio.Event) -> None:
        await every(f"{self._service}.watch", WATCH_INTERVAL_S, self.check_all, stop)

    async def check_all(self) -> None:
        for name, check in self._checks:
            try:
                await check()
            except Exception as error:
                report_failure(f"{self._service}.watch_{name}", error, level="warning")

    async def _partitions(self) -> None:
        self._stalled.set(len(await self._progress.check(self._consumer)))
        by_topic: dict[str, int] = dict.fromkeys(self._lag_topics, 0)  # a topic no longer assigned shows 0
        for partition, waiting in self._progress.lag.items():
            by_topic[partition.topic] = by_topic.get(partition.topic, 0) + waiting
        for topic, waiting in by_topic.items():
            CONSUMER_LAG.labels(topic).set(waiting)
        self._lag_topics = set(by_topic)

    async def _outbox(self) -> None:
        self._backlog.set(await self._relay.backlog())
