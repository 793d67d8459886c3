"""Entry point: ``python -m services.engagement``. Wires the consumer, the relay and health."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.engagement import metrics
from services.engagement.consumer import EngagementConsumer
from services.engagement.dead_letters import DeadLetterPublisher
from services.engagement.processor import BatchProcessor
from shared.db.engine import create_engine, database_ready
from shared.db.errors import describe
from shared.db.schema import pending_events
from shared.kafka_io import TopicGuard, create_consumer, create_producer, kafka_ready
from shared.observability import configure_logging, health_app, health_server
from shared.outbox import OutboxRelay
from shared.playbook_file import load_playbook
from shared.progress import PartitionProgress
from shared.settings import Settings
from shared.store import quarantine
from shared.store.member_cache import MemberCache
from shared.store.unit_of_work import SqlUnitOfWork
from shared.usecases.scheduler_run import Scheduler

log = structlog.get_logger(__name__)

WATCH_INTERVAL_S = 5.0


def _observe_published(occurred: Sequence[datetime]) -> None:
    now = datetime.now(UTC)
    for at in occurred:
        metrics.EVENT_TO_ACTION_SECONDS.observe(max(0.0, (now - at).total_seconds()))


def _member_cache(settings: Settings) -> MemberCache | None:
    return MemberCache(settings.engagement_member_cache_size) if settings.engagement_member_cache_size > 0 else None


async def _watch(
    relay: OutboxRelay,
    engine: AsyncEngine,
    consumer: AIOKafkaConsumer,
    progress: PartitionProgress,
    stop: asyncio.Event,
) -> None:
    """Keeps the backlog, quarantine and stalled-partition gauges (and readiness) current."""
    while not stop.is_set():
        try:
            metrics.STALLED_PARTITIONS.set(len(await progress.check(consumer)))
            metrics.OUTBOX_BACKLOG.set(await relay.backlog())
            async with engine.connect() as connection:
                parked = await connection.scalar(select(func.count()).select_from(pending_events))
                metrics.PARKED_BACKLOG.set(parked or 0)
                metrics.QUARANTINED_MEMBERS.set(await quarantine.count_quarantined(connection))
        except Exception as error:
            log.warning("engagement.watch_failed", error=describe(error))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=WATCH_INTERVAL_S)


async def _schedule(scheduler: Scheduler, interval_s: float, stop: asyncio.Event) -> None:
    """Runs the scheduler as of the wall clock every ``interval_s``; a failed run is retried next time."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            report = await scheduler.run(datetime.now(UTC), wait_for_locked_s=0)
        except Exception:
            log.exception("engagement.scheduler_failed")
            metrics.SCHEDULER_RUNS.labels("error").inc()
        else:
            metrics.SCHEDULER_RUNS.labels("ok").inc()
            metrics.SCHEDULER_MEMBERS.inc(report.members)
            metrics.SCHEDULER_FAILED_MEMBERS.inc(report.failed_members)
            metrics.SCHEDULER_LATE_SKIPPED.inc(report.late_skipped)
            for rule, count in report.by_rule.items():
                metrics.ACTIONS.labels(rule).inc(count)
        metrics.SCHEDULER_RUN_SECONDS.observe(time.monotonic() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


async def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    playbook = load_playbook(settings.playbook_path)
    topics = settings.topics
    engine = create_engine(settings)
    producer = create_producer(settings, name="engagement")
    consumer = create_consumer(settings, *topics.inputs, group_id=settings.engagement_group_id, name="engagement")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    relay = OutboxRelay(
        engine,
        producer,
        "actions",
        topics.actions,
        batch_size=settings.relay_batch_size,
        idle_interval_s=settings.relay_idle_interval_ms / 1000,
        on_published=_observe_published,
    )
    progress = PartitionProgress(settings.stall_after_s)
    outputs = TopicGuard(settings, [topics.dlq, topics.actions], name="engagement")
    worker = EngagementConsumer(
        consumer,
        BatchProcessor(SqlUnitOfWork.factory(engine, _member_cache(settings)), playbook, settings.max_record_bytes),
        DeadLetterPublisher(
            engine,
            producer,
            topics.dlq,
            max_bytes=settings.dlq_max_record_bytes,
            timeout_s=settings.dlq_send_timeout_s,
        ),
        max_records=settings.engagement_batch_max_records,
        timeout_ms=settings.engagement_batch_timeout_ms,
        on_committed=relay.wake,
        progress=progress,
        topics=outputs,
    )

    scheduler = Scheduler(SqlUnitOfWork.factory(engine), playbook, settings.scheduler_batch_size)

    consuming = asyncio.Event()

    async def ready() -> dict[str, bool]:
        return {
            "running": consuming.is_set() and not stop.is_set(),
            "database": await database_ready(engine),
            "kafka": await kafka_ready(producer.client),
            "topics": not outputs.missing,
            "partitions": not progress.stalled,
        }

    server = health_server(health_app("engagement", ready), settings.metrics_host, settings.engagement_metrics_port)
    # Liveness answers from the start: joining the consumer group can take a session timeout.
    health = asyncio.create_task(server.serve(), name="health")
    await producer.start()
    with contextlib.suppress(Exception):  # unreachable now: the consume loop keeps trying
        await outputs.ensure()
    await consumer.start()
    consuming.set()
    log.info("engagement.started", topics=topics.inputs, group=settings.engagement_group_id)
    tasks = [
        asyncio.create_task(worker.run(stop), name="consumer"),
        *(
            [asyncio.create_task(_schedule(scheduler, settings.scheduler_interval_s, stop), name="scheduler")]
            if settings.scheduler_interval_s > 0
            else []
        ),
        asyncio.create_task(relay.run(stop), name="relay"),
        asyncio.create_task(_watch(relay, engine, consumer, progress, stop), name="watch"),
        health,
    ]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        failure = None if task is stopper else task.exception()
        if failure is not None:
            log.error("engagement.task_failed", task=task.get_name(), error=describe(failure))
    stop.set()
    server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await consumer.stop()
    with contextlib.suppress(Exception):
        await relay.publish_pending()
    await producer.stop()
    await engine.dispose()
    log.info("engagement.stopped")


if __name__ == "__main__":
    asyncio.run(main())
