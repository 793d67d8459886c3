"""A worker process from start to stop, the same way for the engagement service and the notifier.

Start-up: the health server first (liveness answers while the consumer group is being
joined, which can take a session timeout), then the Kafka producers, the output topics
(created when missing, if allowed), the stored playbook versions (read until the database
answers, so no decision is taken under an older playbook than the one stored), the consumer.

Running, each in its own task: the worker's consume loop (``BatchLoop``) and timers, the
outbox relay, the watchers, the playbook refresher (``shared.playbook_refresh``) and the
health server. The relay has a Kafka producer of its
own, so publishing the outbox never queues behind the worker's own sends (dead letters)
and the consume loop never waits for the relay's acknowledgements.

Stopping, on SIGTERM or SIGINT (or when a task ends unexpectedly): the loops finish what
they hold (the batch in hand is stored and its offsets committed), the consumer leaves
its group, the relay publishes one more round, the producers flush, and the database
pool closes. Whatever is left in the outbox leaves after the next start.

Readiness (``/readyz``) is ``running`` (the consume loop runs and the worker is not
stopping), ``database`` and ``kafka`` (each answers within 2 s), ``topics`` (every output
topic exists) and ``partitions`` (no assigned partition is stalled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import database_ready
from shared.kafka_io import TopicGuard, create_producer, kafka_ready
from shared.observability import health_app, health_server, report_failure
from shared.outbox import OutboxRelay, PublishedHook
from shared.playbook_refresh import PlaybookRefresher
from shared.progress import PartitionProgress
from shared.settings import Settings
from shared.worker_runtime.batch_loop import BatchLoop, Handle, Settle
from shared.worker_runtime.retry_policy import RETRY
from shared.worker_runtime.stopping import install_signal_handlers
from shared.worker_runtime.watchers import Watchers

log = structlog.get_logger(__name__)

R = TypeVar("R")
Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""A loop of the worker's: runs until the stop event is set."""


@dataclass(frozen=True, slots=True)
class RelayRoute:
    """Which outbox stream the worker's relay publishes, to which topic."""

    stream: str
    topic: str
    on_published: PublishedHook | None = None


class WorkerRuntime:
    def __init__(
        self,
        settings: Settings,
        service: str,
        *,
        engine: AsyncEngine,
        consumer: AIOKafkaConsumer,
        outputs: list[str],
        relay: RelayRoute,
        port: int,
        stalled: Gauge,
        backlog: Gauge,
        playbook: PlaybookRefresher | None = None,
    ) -> None:
        self.settings = settings
        self.service = service
        self.engine = engine
        self.consumer = consumer
        self.stop = asyncio.Event()
        self.retry = RETRY
        self.progress = PartitionProgress(settings.stall_after_s)
        self.outputs = TopicGuard(settings, outputs, name=service)
        self._port = port
        self.playbook = playbook
        self._producers: list[AIOKafkaProducer] = []
        self._closers: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self._consume: BatchLoop[Any] | None = None
        self._seen: set[asyncio.Task[None]] = set()
        relay_producer = self.producer(f"{service}-relay")
        self.relay = OutboxRelay(
            engine,
            relay_producer,
            relay.stream,
            relay.topic,
            batch_size=settings.relay_batch_size,
            idle_interval_s=settings.relay_idle_interval_ms / 1000,
            on_published=relay.on_published,
        )
        self._kafka_probe = relay_producer.client
        self.watchers = Watchers(service, consumer, self.progress, self.relay, stalled=stalled, backlog=backlog)

    def producer(self, role: str) -> AIOKafkaProducer:
        """A Kafka producer started before the worker's tasks and flushed after them."""
        producer = create_producer(self.settings, name=role)
        self._producers.append(producer)
        return producer

    def on_close(self, name: str, close: Callable[[], Awaitable[Any]]) -> None:
        """Something of the worker's own to close once every task has ended."""
        self._closers.append((name, close))

    def batch_loop(
        self,
        *,
        handle: Handle[R],
        settle: Settle[R],
        max_records: int,
        timeout_ms: int,
        prepare: Callable[[], Awaitable[Any]] | None = None,
    ) -> BatchLoop[R]:
        """The consume loop over this worker's consumer, partitions' progress, output topics and retry policy."""
        return BatchLoop(
            self.consumer,
            handle=handle,
            settle=settle,
            service=self.service,
            max_records=max_records,
            timeout_ms=timeout_ms,
            progress=self.progress,
            topics=self.outputs,
            retry=self.retry,
            prepare=prepare,
        )

    async def ready(self) -> dict[str, bool]:
        return {
            "running": self._consume is not None and self._consume.running and not self.stop.is_set(),
            "database": await database_ready(self.engine),
            "kafka": await kafka_ready(self._kafka_probe),
            "topics": not self.outputs.missing,
            "partitions": not self.progress.stalled,
        }

    async def run(
        self,
        consume: BatchLoop[Any],
        *,
        timers: Mapping[str, Loop] | None = None,
        about: Mapping[str, Any] | None = None,
    ) -> int:
        """Runs the worker until it is asked to stop; returns the process's exit code.

        ``timers`` are the worker's other loops, by name; ``about`` goes into the start-up
        log line. The code is 1 when start-up failed or a task failed (which stops the
        worker), else 0.
        """
        self._consume = consume
        install_signal_handlers(self.stop, self.service)
        server = health_server(health_app(self.service, self.ready), self.settings.metrics_host, self._port)
        health = asyncio.create_task(server.serve(), name="health")
        tasks: list[asyncio.Task[None]] = []
        failed = False
        try:
            for producer in self._producers:
                await producer.start()
            try:
                await self.outputs.ensure()
            except Exception as error:  # the consume loop looks again before it consumes anything
                report_failure(f"{self.service}.topic_check", error)
            if self.playbook is not None:
                await self.retry.keep_trying(f"{self.service}.playbook_load", self.playbook.refresh, stop=self.stop)
            await self.consumer.start()
            log.info(f"{self.service}.started", topics=sorted(self.consumer.subscription()), **(about or {}))
            loops: dict[str, Loop] = {
                "consumer": consume.run,
                **(timers or {}),
                "relay": self.relay.run,
                "watchers": self.watchers.run,
                **({"playbook": self.playbook.run} if self.playbook is not None else {}),
            }
            tasks = [asyncio.create_task(loop(self.stop), name=name) for name, loop in loops.items()]
            failed = await self._until_stopped([*tasks, health])
        except Exception as error:
            report_failure(f"{self.service}.start", error)
            failed = True
        finally:
            failed = await self._shut_down(tasks, server, health) or failed
        log.info(f"{self.service}.stopped", failed=failed)
        return 1 if failed else 0

    async def _until_stopped(self, tasks: list[asyncio.Task[None]]) -> bool:
        """Waits for the stop event or for a task to end (each loop runs until stopping); True after a failure."""
        stopping = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        return self._failed([task for task in tasks if task in done])

    def _failed(self, tasks: list[asyncio.Task[None]]) -> bool:
        """Reports (once) each of these ended tasks that raised, or ended before stopping; True if any did."""
        failed = False
        for task in tasks:
            if task in self._seen or task.cancelled():
                continue
            self._seen.add(task)
            error = task.exception()
            if error is not None:
                report_failure(f"{self.service}.task", error, task=task.get_name())
                failed = True
            elif not self.stop.is_set():
                log.error(f"{self.service}.task_ended", task=task.get_name())
                failed = True
        return failed

    async def _shut_down(
        self, tasks: list[asyncio.Task[None]], server: uvicorn.Server, health: asyncio.Task[None]
    ) -> bool:
        """Ends every task, then closes what they used; True if a task failed.

        A step that fails is reported and the next one runs: the worker's state is in the
        database already, and outbox rows left behind leave after the next start.
        """
        self.stop.set()
        if tasks:
            await asyncio.wait(tasks)
        failed = self._failed(tasks)
        await self._step("consumer_stop", self.consumer.stop)
        # The outbox rows of the last batches leave before the producers stop.
        await self._step("outbox_final_round", self.relay.publish_pending)
        for producer in self._producers:
            await self._step("producer_stop", producer.stop)
        for name, close in self._closers:
            await self._step(f"{name}_close", close)
        server.should_exit = True
        await asyncio.wait([health])
        failed = self._failed([health]) or failed
        await self._step("database_close", self.engine.dispose)
        return failed

    async def _step(self, name: str, step: Callable[[], Awaitable[Any]]) -> None:
        try:
            await step()
        except Exception as error:
            report_failure(f"{self.service}.{name}", error, level="warning")
